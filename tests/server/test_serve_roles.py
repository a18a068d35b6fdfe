"""Live and job replicas apart (SUMMARIZER_ROLE, issue 23): two real `bentoml serve` replicas on one
PostgreSQL database, one `live`, one `jobs`. A job submitted through the live replica is run by the
jobs replica alone; the jobs replica refuses the summarizing routes with a clear 503 and still
answers for jobs, health and metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.postgres import new_database
from tests.server.conftest import Server, StartServer, replica_home
from tests.server.test_serve_jobs import assert_one_line_per_id, corpus, results, wait_for
from tests.server.test_serve_replicas import documents_done, submit

pytestmark = [pytest.mark.server, pytest.mark.postgres]
SETTINGS = {"jobs_batch_documents": "8", "database_pool_size": "4", "max_latency_ms": "20000"}


@pytest.fixture(scope="module")
def database(postgres_server: str) -> Iterator[str]:
    with new_database(postgres_server) as url:
        yield url


@pytest.fixture(scope="module")
def split(
    start_server: StartServer, bentoml_home: Path, database: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Server, Server]:
    live = start_server(bentoml_home, database_url=database, role="live", **SETTINGS)
    jobs = start_server(replica_home(tmp_path_factory, bentoml_home), database_url=database, role="jobs", **SETTINGS)
    return live, jobs


def test_a_job_submitted_to_a_live_replica_is_run_by_the_jobs_replica_alone(split: tuple[Server, Server], tmp_path: Path) -> None:
    live, jobs = split
    docs = corpus(200, seed=23)
    job_id = submit(live, tmp_path, docs)
    final = wait_for(live, job_id, statuses=("completed",))  # status read through the live replica
    assert (final["done"], final["failed"]) == (200, 0)
    assert documents_done(live) == 0 and documents_done(jobs) == 200
    assert_one_line_per_id(results(live, job_id), docs)
    assert httpx.post(f"{live.url}/summarize", json={"text": docs[0]["text"]}, timeout=60).status_code == 200


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/summarize", {"text": "The council approved the budget on Monday."}),
        ("/batch", {"documents": [{"id": "a", "text": "The council approved the budget."}]}),
        ("/rag", {"text": "The council approved the budget."}),
        ("/rag/index", {"documents": [{"id": "a", "text": "Refunds take five days."}]}),
    ],
)
def test_a_jobs_replica_refuses_live_routes_clearly(split: tuple[Server, Server], route: str, body: dict[str, object]) -> None:
    jobs = split[1]
    response = httpx.post(f"{jobs.url}{route}", json=body, timeout=30)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "NotServedHere" and "SUMMARIZER_ROLE=jobs" in error["message"]
    assert "retry-after" not in response.headers  # retrying this replica cannot help
    assert httpx.get(f"{jobs.url}/readyz", timeout=10).status_code == 200
    assert httpx.get(f"{jobs.url}/jobs", timeout=10).status_code == 200

"""Two real `bentoml serve` replicas on one PostgreSQL database (issue 18): what one is told, the
other knows. Documents indexed through A are cited through B; a job submitted through A is
worked by both, survives A's SIGKILL and a database restart with one result line per id; a cancel
through B stops A; a replica started while the database is down serves /summarize and answers
503 with Retry-After on the routes that need the database, until it is back. The URL's password
appears in no log, metric or error body. A database migrated by a newer release stops the start.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from pipelines.postgres.migrations import head
from tests.fixtures.postgres import database_down, new_database
from tests.server.conftest import BIN, REPO, Server, StartServer, base_env, free_port, replica_home, wait_for
from tests.server.test_serve_jobs import assert_one_line_per_id, corpus, results, status, write_jsonl
from tests.server.test_serve_rag import DOCS, QUERIES, index_body, post

pytestmark = [pytest.mark.server, pytest.mark.postgres]
PASSWORD = "replica-pw-5b1d"  # trust auth accepts any password; it must show up nowhere
JOB_DOCUMENTS = 2_000  # ~20 s of work for two replicas here: long enough to kill one mid-job
REPLICA_SETTINGS = {
    "jobs_lease_s": "5",  # a killed replica's documents are taken over after 5 s
    "jobs_batch_documents": "4",  # small batches: both replicas get a share of a short job
    "database_pool_size": "4",
    "max_latency_ms": "20000",
}


@pytest.fixture(scope="module")
def database(postgres_server: str) -> Iterator[str]:
    """The replicas' database, with a password in its URL."""
    with new_database(postgres_server) as url:
        yield with_password(url)


def with_password(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}").geturl()


@pytest.fixture(scope="module")
def replicas(
    start_server: StartServer, bentoml_home: Path, database: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Server, Server]:
    """Each with a BentoML home of its own over the same model store, as in two containers."""
    a = start_server(bentoml_home, database_url=database, **REPLICA_SETTINGS)
    b = start_server(replica_home(tmp_path_factory, bentoml_home), database_url=database, **REPLICA_SETTINGS)
    return a, b


def submit(server: Server, tmp_path: Path, docs: list[dict[str, Any]]) -> str:
    path = write_jsonl(tmp_path / "in.jsonl", docs)
    response = httpx.post(
        f"{server.url}/jobs", content=path.read_bytes(), headers={"Content-Type": "application/x-ndjson"}, timeout=120
    )
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def documents_done(server: Server) -> float:
    """The job documents this replica recorded (its own metric, not the shared job status)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(m) for m in re.findall(r'^summarizer_job_documents_total\{state="done"\} (\S+)$', text, re.M))


def wait_until(server: Server, job_id: str, condition: Any, timeout_s: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = status(server, job_id)
        if condition(s):
            return s
        time.sleep(0.3)
    pytest.fail(f"job {job_id}: condition not met after {timeout_s} s: {status(server, job_id)}\n{server.log_tail()}")


def test_documents_indexed_through_one_replica_are_cited_through_the_other(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    report = post(a, "/rag/index", index_body())
    assert report.status_code == 200, report.text
    listed = post(b, "/rag/documents", {}).json()
    assert sorted(d["id"] for d in listed.get("documents", [])) == sorted(DOCS), listed
    for expected, query in QUERIES.items():
        body = post(b, "/rag", {"text": query, "top_k": 2}).json()
        assert body["citations"][0]["document_id"] == expected, body
    assert post(b, "/rag/delete", {"ids": ["shipping/delivery.txt"]}).json()["deleted"] == ["shipping/delivery.txt"]
    cited = post(a, "/rag", {"text": QUERIES["shipping/delivery.txt"], "top_k": 3}).json()["citations"]
    assert cited and all(c["document_id"] != "shipping/delivery.txt" for c in cited)


def test_a_database_that_refuses_writes_is_a_507(replicas: tuple[Server, Server], database: str, tmp_path: Path) -> None:
    a = replicas[0]
    with psycopg.connect(database, autocommit=True) as conn:
        # What PostgreSQL raises when it cannot extend a file (SQLSTATE 53100).
        conn.execute(
            "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$"
        )
        for table in ("jobs", "rag_chunks"):
            conn.execute(f"CREATE TRIGGER disk_is_full BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION full_disk()")
    try:
        path = write_jsonl(tmp_path / "in.jsonl", corpus(3, seed=10))
        refused = httpx.post(f"{a.url}/jobs", content=path.read_bytes(), headers={"Content-Type": "application/x-ndjson"}, timeout=60)
        assert refused.status_code == 507 and refused.json()["error"]["type"] == "StorageFull", refused.text
        new_doc = {"documents": [{"id": "full/disk.md", "text": "A page written while the disk was full."}]}
        assert post(a, "/rag/index", new_doc).status_code == 507
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("DROP FUNCTION full_disk() CASCADE")
    assert httpx.get(f"{a.url}/jobs", timeout=30).json()["jobs"] == []  # nothing half-written


def test_a_cancel_through_one_replica_stops_the_others_work(replicas: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = replicas
    job_id = submit(a, tmp_path, corpus(JOB_DOCUMENTS, seed=11))
    wait_until(b, job_id, lambda s: s["done"] >= 12)
    assert httpx.post(f"{b.url}/jobs/{job_id}/cancel", timeout=30).json()["status"] == "cancelled"
    time.sleep(3.0)  # batches already in flight finish (at most 2 x 4 documents per replica)
    settled = status(a, job_id)["done"]
    time.sleep(4.0)
    after = status(a, job_id)
    assert after["status"] == "cancelled" and after["done"] == settled < JOB_DOCUMENTS


def test_a_job_through_one_replica_is_worked_by_both_and_survives_a_sigkill(
    replicas: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = replicas
    before = documents_done(a), documents_done(b)
    docs = corpus(JOB_DOCUMENTS, seed=12)
    job_id = submit(a, tmp_path, docs)
    # Each replica's own metrics show documents it did (B finds the job at its next poll).
    wait_for(lambda: documents_done(a) > before[0] and documents_done(b) > before[1], timeout_s=60)
    assert status(b, job_id)["status"] == "running"
    a.kill()  # mid-job, its claims held: B takes them once their leases expire
    final = wait_until(b, job_id, lambda s: s["status"] == "completed")
    assert (final["done"], final["failed"], final["pending"]) == (JOB_DOCUMENTS, 0, 0)
    lines = results(b, job_id)
    assert_one_line_per_id(lines, docs)
    assert [line["line"] for line in lines] == list(range(1, JOB_DOCUMENTS + 1))


def test_a_job_survives_a_database_restart(replicas: tuple[Server, Server], database: str, tmp_path: Path) -> None:
    b = replicas[1]
    docs = corpus(JOB_DOCUMENTS // 2, seed=13)
    job_id = submit(b, tmp_path, docs)
    wait_until(b, job_id, lambda s: s["done"] >= 30)
    with database_down(database):
        refused = httpx.get(f"{b.url}/jobs/{job_id}", timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["type"] == "DatabaseUnavailable"
        time.sleep(3.0)
    final = wait_until(b, job_id, lambda s: s["status"] == "completed", timeout_s=300)
    assert (final["done"], final["failed"]) == (len(docs), 0)
    assert_one_line_per_id(results(b, job_id), docs)


def test_the_password_reaches_no_log_metric_or_error_body(replicas: tuple[Server, Server]) -> None:
    # After the tests above, the logs hold the database faults of a restart and of a SIGKILL.
    for server in replicas:
        assert PASSWORD not in server.log.read_text(errors="replace")
    metrics = httpx.get(f"{replicas[1].url}/metrics", timeout=10).text
    assert PASSWORD not in metrics and "summarizer_job_documents_total" in metrics


def test_a_replica_started_while_the_database_is_down_serves_and_recovers(
    start_server: StartServer, bentoml_home: Path, postgres_server: str
) -> None:
    with new_database(postgres_server) as url:
        with database_down(url):
            server = start_server(bentoml_home, database_url=with_password(url), **REPLICA_SETTINGS)
            text = "The council met today. It approved the budget."
            assert httpx.post(f"{server.url}/summarize", json={"text": text}, timeout=60).status_code == 200
            batch = httpx.post(f"{server.url}/batch", json={"documents": [{"id": "x", "text": text}]}, timeout=60)
            assert batch.status_code == 200, batch.text
            for method, route in (("GET", "/jobs"), ("POST", "/rag/documents")):
                refused = httpx.request(method, f"{server.url}{route}", json={} if method == "POST" else None, timeout=30)
                assert refused.status_code == 503, (route, refused.text)
                assert refused.headers["retry-after"].isdigit() and refused.json()["error"]["type"] == "DatabaseUnavailable"
                assert PASSWORD not in refused.text
        # Allowed again: the same replica recovers by itself, no restart.
        wait_for(lambda: httpx.get(f"{server.url}/jobs", timeout=30).status_code == 200, timeout_s=30)
        assert post(server, "/rag/documents", {}).status_code == 200


def test_a_database_newer_than_the_code_stops_the_start_naming_both_revisions(
    bentoml_home: Path, postgres_server: str, tmp_path: Path
) -> None:
    with new_database(postgres_server) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            conn.execute("INSERT INTO alembic_version VALUES ('9999')")
        env = {**base_env(bentoml_home), "SUMMARIZER_DATABASE_URL": with_password(url), "SUMMARIZER_JOBS_DIR": str(tmp_path)}
        done = subprocess.run(
            [str(BIN / "bentoml"), "serve", "service:Summarizer", "--host", "127.0.0.1", "--port", str(free_port())],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode != 0
    assert f"revision '9999', which this release does not know (its newest is '{head()}')" in done.stderr + done.stdout
    assert PASSWORD not in done.stderr + done.stdout

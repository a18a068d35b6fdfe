"""What only the PostgreSQL job store does: many replicas on one database. Claims never overlap,
a dead replica's leases expire and another takes its documents, a stale replica's late results
are ignored (one result per id, ever), progress counts every replica, and runners on two
"replicas" (two stores, two runners) finish one job together, through a database restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.batch.core import BatchResult
from pipelines.errors import Overloaded
from pipelines.jobs.postgres import PostgresJobStore
from pipelines.jobs.records import Claimed, JobStorage, RetryPolicy
from pipelines.jobs.runner import JobRunner
from pipelines.postgres.connection import DatabaseUnavailable
from pipelines.postgres.pool import Database
from tests.fixtures.postgres import database_down
from tests.pipelines.jobs.test_runner import FakeSummarizer
from tests.pipelines.jobs.test_store import claim_at_once

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=4, timeout_s=2.0)
    yield database
    database.close()


def replica(db: Database, tmp_path: Path, lease_s: float = 60.0) -> PostgresJobStore:
    return PostgresJobStore(db, tmp_path / "spool", lease_s=lease_s)


def submit(store: PostgresJobStore, n: int) -> str:
    job_id, path = store.new_upload_path()
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Report {i} opens. It goes on."}) + "\n" for i in range(n)))
    store.create(job_id, path, "upload", None)
    return job_id


def ok(claim: Claimed, tag: str = "") -> BatchResult:
    return BatchResult(id=claim.doc_id, summary=f"summary of {claim.doc_id}{tag}", style="news")


def result_ids(store: PostgresJobStore, job_id: str) -> list[str]:
    return [json.loads(r)["id"] for r in "".join(store.results(job_id)).splitlines()]


def test_replicas_claiming_at_once_split_the_documents_without_overlap(db: Database, tmp_path: Path) -> None:
    stores: list[JobStorage] = [replica(db, tmp_path) for _ in range(3)]
    job_id = submit(replica(db, tmp_path), 300)
    taken = claim_at_once(stores, job_id, 9)
    everything = [d for part in taken for d in part]
    assert sorted(everything) == sorted(f"d{i}" for i in range(300)) and all(taken)


def test_a_dead_replicas_claims_expire_and_its_late_results_are_ignored(db: Database, tmp_path: Path) -> None:
    dead, alive = replica(db, tmp_path, lease_s=1.0), replica(db, tmp_path, lease_s=1.0)
    job_id = submit(dead, 6)
    dead.start(job_id)
    held = dead.claim(job_id, 4)
    mine = alive.claim(job_id, 10)
    assert [c.doc_id for c in mine] == ["d4", "d5"]  # the rest are held
    alive.record(job_id, mine, [ok(c) for c in mine], RetryPolicy())
    assert alive.next_due(job_id) is not None  # not finished: claims are out
    alive.finish(job_id, "completed")
    assert alive.job_status(job_id) == "running"
    time.sleep(1.2)
    taken = alive.claim(job_id, 10)
    assert [c.doc_id for c in taken] == ["d0", "d1", "d2", "d3"]
    assert [c.attempts for c in taken] == [0, 0, 0, 0]  # a dead replica is not the documents' fault
    alive.record(job_id, taken, [ok(c) for c in taken], RetryPolicy())
    dead.record(job_id, held, [ok(c, " (late)") for c in held], RetryPolicy())  # it was only slow
    dead.release(job_id, held)
    assert alive.claim(job_id, 10) == [] and alive.next_due(job_id) is None
    lines = "".join(alive.results(job_id))
    assert result_ids(alive, job_id) == [f"d{i}" for i in range(6)] and "(late)" not in lines


def test_a_renewed_lease_is_not_taken(db: Database, tmp_path: Path) -> None:
    worker, other = replica(db, tmp_path, lease_s=1.0), replica(db, tmp_path, lease_s=1.0)
    job_id = submit(worker, 2)
    held = worker.claim(job_id, 2)
    for _ in range(3):
        time.sleep(0.5)
        worker.renew(job_id)
        assert other.claim(job_id, 2) == []
    worker.record(job_id, held, [ok(c) for c in held], RetryPolicy())
    assert result_ids(other, job_id) == ["d0", "d1"]


def test_recover_frees_only_this_replicas_claims(db: Database, tmp_path: Path) -> None:
    a, b = replica(db, tmp_path), replica(db, tmp_path)
    job_id = submit(a, 4)
    a.claim(job_id, 2)
    b.claim(job_id, 1)
    assert a.recover() == 2
    assert a.get(job_id).counts == {"pending": 3, "running": 1}


def test_transient_errors_back_off_on_the_databases_clock(db: Database, tmp_path: Path) -> None:
    store = replica(db, tmp_path)
    job_id = submit(store, 1)
    claimed = store.claim(job_id, 1)
    policy = RetryPolicy(max_attempts=3, backoff_s=1.0, backoff_max_s=5.0)
    before = time.time()
    store.record(job_id, claimed, [BatchResult.failed("d0", Overloaded("busy"))], policy)
    due = store.next_due(job_id)
    assert due is not None and before + 0.9 <= due <= time.time() + 1.1
    assert store.claim(job_id, 1) == []
    time.sleep(max(due - time.time(), 0) + 0.05)
    again = store.claim(job_id, 1)
    assert [(c.doc_id, c.attempts) for c in again] == [("d0", 1)]


def test_progress_and_rate_count_every_replica(db: Database, tmp_path: Path) -> None:
    a, b = replica(db, tmp_path), replica(db, tmp_path)
    job_id = submit(a, 10)
    a.start(job_id)
    for store in (a, b):
        claimed = store.claim(job_id, 3)
        store.record(job_id, claimed, [ok(c) for c in claimed], RetryPolicy())
    seen = replica(db, tmp_path).status(job_id)
    assert (seen["done"], seen["pending"], seen["percent"]) == (6, 4, 60.0)
    assert seen["rate_docs_per_s"] > 0 and seen["eta_s"] is not None


def test_the_upload_is_deleted_once_its_lines_are_in_the_database(db: Database, tmp_path: Path) -> None:
    store = replica(db, tmp_path)
    job_id = submit(store, 3)
    assert list((tmp_path / "spool").iterdir()) == []
    other = replica(db, tmp_path / "elsewhere")  # another replica, another disk
    docs = other.read(other.get(job_id), other.claim(job_id, 3))
    assert [getattr(d, "id", None) for d in docs] == ["d0", "d1", "d2"]


def test_calls_answer_503_while_the_database_is_down_and_recover(db: Database, tmp_path: Path) -> None:
    store = replica(db, tmp_path)
    job_id = submit(store, 1)
    with database_down(db.url):
        with pytest.raises(DatabaseUnavailable) as caught:
            store.status(job_id)
        assert caught.value.status_code == 503
    assert store.status(job_id)["total"] == 1


@pytest.mark.anyio
async def test_two_runners_finish_one_job_through_a_database_restart(db: Database, tmp_path: Path) -> None:
    """Two replicas' runners on one job; the database drops every connection and refuses new ones
    for a while mid-job. The job completes with one result per id, none lost, none twice."""
    stores = [replica(db, tmp_path, lease_s=3.0) for _ in range(2)]
    job_id = submit(stores[0], 120)
    summarizers = [FakeSummarizer(), FakeSummarizer()]
    for s in summarizers:
        s.before = lambda batch: asyncio.sleep(0.05)  # type: ignore[method-assign]
    runners = [
        JobRunner(store, s, batch_documents=8, concurrency=2, poll_s=0.2, renew_s=1.0)
        for store, s in zip(stores, summarizers, strict=True)
    ]
    tasks = [asyncio.create_task(r.run_forever()) for r in runners]
    try:
        while stores[0].status(job_id)["done"] < 30:
            await asyncio.sleep(0.05)
        with database_down(db.url):
            await asyncio.sleep(2.0)
        for _ in range(600):
            if stores[1].job_status(job_id) == "completed":
                break
            await asyncio.sleep(0.1)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert stores[0].job_status(job_id) == "completed"
    ids = result_ids(stores[0], job_id)
    assert ids == [f"d{i}" for i in range(120)]  # input order, no gap, no duplicate
    assert all(sum(s.calls.values()) > 0 for s in summarizers)  # both replicas did work


@pytest.mark.anyio
async def test_a_job_deleted_through_another_replica_stops_this_runner_quietly(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker, other = replica(db, tmp_path), replica(db, tmp_path)
    job_id = submit(worker, 200)
    slow = FakeSummarizer()
    slow.before = lambda batch: asyncio.sleep(0.1)  # type: ignore[method-assign]
    runner = JobRunner(worker, slow, batch_documents=4, concurrency=1, poll_s=0.1)
    task = asyncio.create_task(runner.run_job(worker.get(job_id)))
    while slow.batches < 2:
        await asyncio.sleep(0.02)
    other.cancel(job_id)
    other.delete(job_id)
    await asyncio.wait_for(task, 10)  # returns: no error, no traceback
    assert "runner error" not in caplog.text
    assert worker.all() == []

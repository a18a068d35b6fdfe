"""The job runner against a real SQLite store, with fake summarizers: completion, retries,
cancel, a changed input file, a crash and resume, and the one-runner lock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pipelines.batch.core import BatchDocument, BatchResult, DocumentPreparer, summarize_documents
from pipelines.engines.contract import ItemOutcome, SummaryItem, SummaryResult
from pipelines.errors import Overloaded
from pipelines.jobs.runner import JobRunner, acquire_runner_lock
from pipelines.jobs.store import Job, JobStore, RetryPolicy
from pipelines.settings import Settings
from pipelines.styles import StyleRegistry
from pipelines.text.prepare import InputPipeline

TIMEOUT_S = 20.0
FAST_RETRIES = RetryPolicy(max_attempts=4, backoff_s=0.01, backoff_max_s=0.02)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "store")


def first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".") + "."


def text_of(i: int) -> str:
    return f"Report {i} opens the file. It goes on a while."


def submit(store: JobStore, n: int, prefix: str = "d", **fields: object) -> Job:
    job_id, path = store.new_upload_path()
    lines = [json.dumps({"id": f"{prefix}{i}", "text": text_of(i), **fields}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return store.create(job_id, path, "upload", None)


def file_of(job: Job) -> Path:
    """The SQLite job's input file (these tests change it under the runner)."""
    assert job.input_path is not None
    return job.input_path


def results(store: JobStore, job_id: str) -> list[dict[str, object]]:
    return [json.loads(r) for r in "".join(store.results(job_id)).splitlines()]


class FakeSummarizer:
    """The runner's `summarize`: the first sentence of each document. `transient` maps an id to
    how many calls fail with Overloaded before it succeeds (-1: every call)."""

    def __init__(self, transient: dict[str, int] | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.batches = 0
        self.transient = transient or {}
        self.urgent: list[bool] = []  # the flag each batch was passed, in call order

    async def __call__(self, docs: list[BatchDocument], default_style: str | None, urgent: bool = False) -> list[BatchResult]:
        self.batches += 1
        self.urgent.append(urgent)
        await self.before(self.batches)
        out = []
        for d in docs:
            self.calls[d.id] += 1
            fails = self.transient.get(d.id, 0)
            if fails < 0 or self.calls[d.id] <= fails:
                out.append(BatchResult.failed(d.id, Overloaded(f"busy ({d.id})"), d.metadata))
            else:
                out.append(BatchResult(id=d.id, summary=first_sentence(d.text), style=default_style or "news", metadata=d.metadata))
        return out

    async def before(self, batch: int) -> None:
        """A hook for tests that need to hold a batch."""


class Gated(FakeSummarizer):
    """Holds its second batch until `release` is set; `entered` says it got there."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def before(self, batch: int) -> None:
        if batch >= 2:
            self.entered.set()
            await self.release.wait()


@contextlib.asynccontextmanager
async def running_forever(runner: JobRunner) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(runner.run_forever())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)


async def until(predicate: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while not await asyncio.to_thread(predicate):
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), TIMEOUT_S)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.mark.anyio
async def test_a_job_of_hundreds_of_documents_completes_each_one_once(store: JobStore) -> None:
    """The runner with the real batch flow (preparation, chunks, assembly) and a fake model."""
    preparer = DocumentPreparer(InputPipeline.from_settings(Settings(redact=False)), StyleRegistry.load())
    seen: Counter[str] = Counter()

    async def model(items: list[SummaryItem]) -> list[ItemOutcome]:
        await asyncio.sleep(0)
        seen.update(item.text for item in items)
        return [ItemOutcome.of(SummaryResult(summary=first_sentence(i.text), input_words=9, summary_words=5), "fake", "f:1") for i in items]

    async def summarize(docs: list[BatchDocument], default_style: str | None, urgent: bool) -> list[BatchResult]:
        return await summarize_documents(preparer, docs, model, default_style)

    n = 300
    job_id, path = store.new_upload_path()
    lines = [json.dumps({"id": f"d{i}", "text": text_of(i), "style": "nope" if i % 50 == 7 else None}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    job = store.create(job_id, path, "upload", "legal")

    runner = JobRunner(store, summarize, batch_documents=16, concurrency=3, policy=FAST_RETRIES, poll_s=0.05)
    await asyncio.wait_for(runner.run_job(job), TIMEOUT_S)

    status = store.status(job.id)
    assert (status["status"], status["done"], status["failed"], status["pending"]) == ("completed", 294, 6, 0)
    out = results(store, job.id)
    assert [r["id"] for r in out] == [f"d{i}" for i in range(n)]
    assert [r["line"] for r in out] == list(range(1, n + 1))
    for i, r in enumerate(out):
        if i % 50 == 7:
            assert r["error"]["type"] == "UnknownStyle"  # type: ignore[index]
        else:
            assert r["summary"] == first_sentence(text_of(i)) and r["style"] == "legal"
    assert sorted(seen.values()) == [1] * 294 and len(seen) == 294


@pytest.mark.anyio
async def test_transient_errors_are_retried_until_max_attempts(store: JobStore) -> None:
    job = submit(store, 20)
    fake = FakeSummarizer(transient={"d3": 2, "d11": -1})
    runner = JobRunner(store, fake, batch_documents=8, concurrency=2, policy=FAST_RETRIES, poll_s=0.05)
    await asyncio.wait_for(runner.run_job(job), TIMEOUT_S)

    assert store.job_status(job.id) == "completed"
    assert fake.calls["d3"] == 3 and fake.calls["d11"] == FAST_RETRIES.max_attempts
    assert all(fake.calls[f"d{i}"] == 1 for i in range(20) if i not in (3, 11))
    by_id = {r["id"]: r for r in results(store, job.id)}
    assert len(by_id) == 20 and by_id["d3"]["summary"] == first_sentence(text_of(3))
    assert by_id["d11"]["error"] == {"type": "Overloaded", "message": "busy (d11)", "status": 429}
    assert store.get(job.id).counts == {"done": 19, "failed": 1}


@pytest.mark.anyio
async def test_a_summarizer_that_raises_costs_an_attempt_then_the_batch_is_retried(store: JobStore) -> None:
    job = submit(store, 6)
    fake = FakeSummarizer()
    broke = False

    async def raises_once(docs: list[BatchDocument], style: str | None, urgent: bool) -> list[BatchResult]:
        nonlocal broke
        if not broke:
            broke = True
            raise RuntimeError("connection reset")
        return await fake(docs, style, urgent)

    runner = JobRunner(store, raises_once, batch_documents=4, concurrency=1, policy=FAST_RETRIES, poll_s=0.05)
    await asyncio.wait_for(runner.run_job(job), TIMEOUT_S)
    assert store.get(job.id).counts == {"done": 6}
    assert all(fake.calls[f"d{i}"] == 1 for i in range(6))


@pytest.mark.anyio
async def test_cancel_stops_the_job_and_keeps_finished_results(store: JobStore) -> None:
    job = submit(store, 30)
    fake = Gated()
    runner = JobRunner(store, fake, batch_documents=5, concurrency=1, policy=FAST_RETRIES, poll_s=0.05)
    task = asyncio.create_task(runner.run_job(job))
    try:
        await asyncio.wait_for(fake.entered.wait(), TIMEOUT_S)  # batch 1 done, batch 2 in the model
        await asyncio.to_thread(store.cancel, job.id)
        runner.wake()
        fake.release.set()
        await asyncio.wait_for(task, TIMEOUT_S)
    finally:
        fake.release.set()
        await asyncio.wait({task}, timeout=5)

    after = store.get(job.id)
    assert after.status == "cancelled" and after.counts == {"done": 10, "pending": 20}
    assert [r["id"] for r in results(store, job.id)] == [f"d{i}" for i in range(10)]
    assert fake.batches == 2 and store.next_job() is None


@pytest.mark.anyio
async def test_an_input_file_changed_after_submission_fails_the_job(store: JobStore) -> None:
    job = submit(store, 3)
    with file_of(job).open("a") as f:
        f.write(json.dumps({"id": "late", "text": "Added later."}) + "\n")
    fake = FakeSummarizer()
    await asyncio.wait_for(JobRunner(store, fake, poll_s=0.05).run_job(job), TIMEOUT_S)
    status = store.status(job.id)
    assert status["status"] == "failed" and "changed after the job was submitted" in status["error"]
    assert fake.batches == 0 and status["pending"] == 3

    gone = submit(store, 2, prefix="g")
    file_of(gone).unlink()
    await asyncio.wait_for(JobRunner(store, fake, poll_s=0.05).run_job(gone), TIMEOUT_S)
    assert store.job_status(gone.id) == "failed" and "cannot be read" in store.status(gone.id)["error"]


@pytest.mark.anyio
async def test_lines_swapped_in_place_fail_as_documents_not_as_other_documents(store: JobStore) -> None:
    """Same size and mtime, but the lines moved: each document is checked to be the one claimed."""
    job = submit(store, 3)
    path = file_of(job)
    stat = path.stat()
    first, second, third = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(second + first + third)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    fake = FakeSummarizer()
    await asyncio.wait_for(JobRunner(store, fake, policy=FAST_RETRIES, poll_s=0.05).run_job(job), TIMEOUT_S)

    out = results(store, job.id)
    assert store.job_status(job.id) == "completed" and [r["id"] for r in out] == ["d0", "d1", "d2"]
    for r in out[:2]:
        error = r["error"]
        assert isinstance(error, dict) and error["status"] == 400 and "the input file changed" in error["message"]
    assert out[2]["summary"] == first_sentence(text_of(2)) and set(fake.calls) == {"d2"}


@pytest.mark.anyio
async def test_after_a_crash_a_new_runner_resumes_without_duplicates(store: JobStore) -> None:
    job = submit(store, 50)
    later = submit(store, 5, prefix="q")
    # The dead runner: it started the job, finished 10 documents and held claims on 10 more.
    store.start(job.id)
    finished = store.claim(job.id, 10)
    store.record(job.id, finished, [BatchResult(id=c.doc_id, summary="before the crash") for c in finished], RetryPolicy())
    orphaned = store.claim(job.id, 10)
    assert store.get(job.id).counts == {"done": 10, "running": 10, "pending": 30}

    fake = FakeSummarizer()
    runner = JobRunner(store, fake, batch_documents=8, concurrency=2, policy=FAST_RETRIES, poll_s=0.05)
    async with running_forever(runner):
        await until(lambda: store.job_status(later.id) == "completed", "both jobs to complete")

    assert store.job_status(job.id) == "completed"
    out = results(store, job.id)
    assert [r["id"] for r in out] == [f"d{i}" for i in range(50)]
    assert [r["summary"] for r in out[:10]] == ["before the crash"] * 10
    assert {c.doc_id for c in orphaned} <= set(fake.calls)
    assert all(fake.calls[f"d{i}"] == (0 if i < 10 else 1) for i in range(50))
    assert [r["id"] for r in results(store, later.id)] == [f"q{i}" for i in range(5)]


@pytest.mark.anyio
async def test_a_submitted_job_is_picked_up_when_woken(store: JobStore) -> None:
    fake = FakeSummarizer()
    runner = JobRunner(store, fake, policy=FAST_RETRIES, poll_s=30.0)  # only a wake-up can explain a quick start
    async with running_forever(runner):
        await asyncio.sleep(0.05)  # idle, with nothing to do
        job = submit(store, 4)
        runner.wake()
        await until(lambda: store.job_status(job.id) == "completed", "the job to complete")
    assert store.get(job.id).counts == {"done": 4}


@pytest.mark.anyio
async def test_stopping_the_runner_releases_claims_of_batches_in_flight(store: JobStore) -> None:
    job = submit(store, 10)
    fake = Gated()
    runner = JobRunner(store, fake, batch_documents=5, concurrency=1, policy=FAST_RETRIES, poll_s=0.05)
    task = asyncio.create_task(runner.run_forever())
    try:
        await asyncio.wait_for(fake.entered.wait(), TIMEOUT_S)
        task.cancel()  # what the service's on_shutdown does
        await asyncio.wait({task}, timeout=1.0)
        assert task.done(), "the runner did not stop while a model call was in flight"
        assert store.get(job.id).counts == {"done": 5, "pending": 5}
    finally:
        fake.release.set()
        task.cancel()
        await asyncio.wait({task}, timeout=5)


@pytest.mark.anyio
async def test_metadata_that_cannot_be_serialized_fails_only_its_document(store: JobStore) -> None:
    job_id, path = store.new_upload_path()
    path.write_text(
        json.dumps({"id": "a", "text": text_of(0)}) + "\n"
        + '{"id": "b", "text": "Bad metadata here. Yes.", "metadata": {"k": "\\ud800"}}\n'
        + json.dumps({"id": "c", "text": text_of(2)}) + "\n"
    )  # fmt: skip
    job = store.create(job_id, path, "upload", None)
    runner = JobRunner(store, FakeSummarizer(), batch_documents=8, policy=FAST_RETRIES, poll_s=0.05)
    await asyncio.wait_for(runner.run_job(job), TIMEOUT_S)
    by_id = {r["id"]: r for r in results(store, job.id)}
    assert "summary" in by_id["a"] and "summary" in by_id["c"], by_id


def submit_due(store: JobStore, n: int, deadline: float | None, prefix: str = "d") -> Job:
    job_id, path = store.new_upload_path()
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "text": text_of(i)}) + "\n" for i in range(n)))
    return store.create(job_id, path, "upload", None, deadline)


@pytest.mark.anyio
async def test_only_a_job_behind_its_deadline_has_its_batches_run_urgently(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    # The store takes any deadline (the route refuses past ones): one already passed is behind from the start.
    cases = {"passed": (time.time() - 1, True), "far off": (time.time() + 86_400, False), "none": (None, False)}
    with caplog.at_level(logging.INFO, logger="summarizer.jobs"):
        for name, (deadline, urgent) in cases.items():
            job = submit_due(store, 12, deadline)
            fake = FakeSummarizer()
            runner = JobRunner(store, fake, batch_documents=4, concurrency=2, policy=FAST_RETRIES, poll_s=0.05)
            await asyncio.wait_for(runner.run_job(job), TIMEOUT_S)
            assert store.job_status(job.id) == "completed", name
            assert fake.urgent == [urgent] * 3, name
            behind = [r.getMessage() for r in caplog.records if "behind schedule" in r.getMessage()]
            assert behind == ([f"job {job.id}: behind schedule; its batches go to the model's live lane"] if urgent else []), name
            caplog.clear()


@pytest.mark.anyio
async def test_a_job_becomes_urgent_when_its_rate_would_miss_the_deadline(store: JobStore) -> None:
    # 20 batches of 0.15 s: 3 s of work for a deadline 2 s away. No rate at the start: not urgent
    # yet; once batches finish, the rate says it will be late (and later the deadline passes).
    job = submit_due(store, 40, time.time() + 2.0)
    fake = FakeSummarizer()
    fake.before = lambda batch: asyncio.sleep(0.15)  # type: ignore[method-assign]
    runner = JobRunner(store, fake, batch_documents=2, concurrency=1, policy=FAST_RETRIES, poll_s=0.05, urgency_s=0.0)
    await asyncio.wait_for(runner.run_job(job), TIMEOUT_S)
    assert fake.urgent[0] is False and fake.urgent[-1] is True
    first = fake.urgent.index(True)
    assert fake.urgent[first:] == [True] * (len(fake.urgent) - first)  # it never catches up


@pytest.mark.anyio
async def test_a_job_back_on_schedule_leaves_the_live_lane_and_each_change_is_logged_once(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    job = submit_due(store, 24, time.time() - 1)
    fake = FakeSummarizer()

    async def move_the_deadline(batch: int) -> None:
        if batch == 3:  # stands in for a job catching up: it is no longer behind
            with contextlib.closing(sqlite3.connect(store.path)) as db, db:
                db.execute("UPDATE jobs SET deadline = ? WHERE id = ?", (time.time() + 86_400, job.id))

    fake.before = move_the_deadline  # type: ignore[method-assign]
    runner = JobRunner(store, fake, batch_documents=4, concurrency=1, policy=FAST_RETRIES, poll_s=0.05, urgency_s=0.0)
    with caplog.at_level(logging.INFO, logger="summarizer.jobs"):
        await asyncio.wait_for(runner.run_job(job), TIMEOUT_S)
    assert fake.urgent == [True, True, True, False, False, False]
    changes = [r.getMessage() for r in caplog.records if "schedule" in r.getMessage()]
    assert changes == [
        f"job {job.id}: behind schedule; its batches go to the model's live lane",
        f"job {job.id}: back on schedule; its batches go to the job lane",
    ]


@pytest.mark.anyio
async def test_a_job_without_a_deadline_never_reads_its_status_for_urgency(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    job = submit_due(store, 12, None)
    reads: list[str] = []
    real = store.status

    def counted(job_id: str) -> dict[str, object]:
        reads.append(job_id)
        return real(job_id)

    monkeypatch.setattr(store, "status", counted)
    fake = FakeSummarizer()
    await asyncio.wait_for(JobRunner(store, fake, batch_documents=2, policy=FAST_RETRIES, poll_s=0.05, urgency_s=0.0).run_job(job), TIMEOUT_S)
    assert reads == [] and fake.urgent == [False] * 6


def test_only_one_runner_lock_at_a_time(tmp_path: Path) -> None:
    first = acquire_runner_lock(tmp_path)
    assert first is not None
    try:
        assert acquire_runner_lock(tmp_path) is None
        assert acquire_runner_lock(tmp_path) is None
    finally:
        first.close()
    again = acquire_runner_lock(tmp_path)
    assert again is not None
    again.close()

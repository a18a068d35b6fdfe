"""The job runner: works through the job store, a batch of documents at a time.

On SQLite, one runner per job store (a file lock makes sure of it, whatever the number of
workers); on PostgreSQL, one per worker of every replica, all on the same jobs: each claims
documents under a lease it renews while it works on them, and a claim of a runner that died
expires. It resumes the running job first, then takes queued jobs oldest first. `concurrency` batches are in
flight at once, so preparing one batch overlaps the model's work on another. Summarizing is
passed in (the same `summarize_documents` flow that `/batch` uses), so this runs without BentoML.

A job with a deadline is checked every `urgency_s` (its status: rate and what is left); while it
is behind schedule each batch it starts is passed `urgent=True`, which the service turns into the
model's live lane.

When the job store cannot be written (a full or read-only volume) or is damaged, the runner
neither stops nor counts attempts against the documents: the batch's summaries are dropped, its
claims go back to pending, and it tries again after a backoff (one log line per try, no traceback).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

from pipelines.batch.core import BatchDocument, BatchResult
from pipelines.errors import NotFound, NotReady, StorageError
from pipelines.jobs.database import JobStoreCorrupt
from pipelines.jobs.records import Claimed, Job, JobStorage, RetryPolicy
from pipelines.observe.traces import tracer
from pipelines.postgres.connection import DatabaseUnavailable

log = logging.getLogger("summarizer.jobs")
# (documents, the job's default style, urgent: the job is behind its deadline) -> one result each
SummarizeDocuments = Callable[[list[BatchDocument], str | None, bool], Awaitable[list[BatchResult]]]
PROGRESS_LOG_S = 30.0
URGENCY_CHECK_S = 5.0  # a status read counts the job's documents: not once per batch
STORE_BACKOFF_MAX_S = 60.0
# The volume, the file or the database, not the documents.
StoreFault = (StorageError, JobStoreCorrupt, DatabaseUnavailable)


def acquire_runner_lock(root: Path) -> IO[bytes] | None:
    """The runner lock of a job store, or None if another process runs its jobs. Keep the handle open.

    Opened read-only (flock needs no write access), so an existing lock file works on a read-only
    volume; a volume where it cannot even be created gets no runner, with a log line, not a crash.
    """
    try:
        fd = os.open(root / "runner.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        log.error("job runner disabled: cannot open %s: %s", root / "runner.lock", exc.strerror)
        return None
    handle = os.fdopen(fd, "rb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class JobRunner:
    def __init__(
        self,
        store: JobStorage,
        summarize: SummarizeDocuments,
        *,
        batch_documents: int = 32,
        concurrency: int = 2,
        policy: RetryPolicy = RetryPolicy(),
        poll_s: float = 2.0,
        renew_s: float = 20.0,
        urgency_s: float = URGENCY_CHECK_S,
    ) -> None:
        self.store = store
        self.summarize = summarize
        self.batch_documents = batch_documents
        self.concurrency = concurrency
        self.policy = policy
        self.poll_s = poll_s
        self.renew_s = renew_s  # a third of the lease: two renewals may fail before a claim expires
        self.urgency_s = urgency_s
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """A job was submitted or cancelled: look now, not at the next poll."""
        self._wakeup.set()

    async def _idle(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=max(seconds, 0.0))
        except asyncio.TimeoutError:
            pass
        self._wakeup.clear()

    async def run_forever(self) -> None:
        """Run jobs until cancelled; no error ends the loop."""
        recover, faults = True, 0
        while True:
            job: Job | None = None
            try:
                if recover:
                    # Claims of a runner that died, or of a batch whose results could not be
                    # stored, go back to pending: no document is lost or left claimed.
                    recovered = await asyncio.to_thread(self.store.recover)
                    recover = False
                    if recovered:
                        log.info("resuming: %d claimed documents are pending again", recovered)
                job = await asyncio.to_thread(self.store.next_job)
                if job is None:
                    faults = 0
                    await self._idle(self.poll_s)
                    continue
                await self.run_job(job)
                faults = 0  # reads work on a full volume: only a job run through proves it repaired
            except StoreFault as err:
                recover, faults = True, faults + 1
                delay = min(STORE_BACKOFF_MAX_S, self.poll_s * 2 ** (faults - 1))
                log.error("job store unavailable: %s; jobs resume by themselves, next try in %.0f s", err.message, delay)
                await self._idle(delay)
            except Exception:
                # A bug: keep the job as it is (its claims are released) and retry later.
                recover = True
                log.exception("job %s: runner error; retrying in %.0f s", job.id if job else "-", self.poll_s)
                await self._idle(self.poll_s)

    async def run_job(self, job: Job) -> None:
        """Work on one job until it is complete or cancelled."""
        changed = await asyncio.to_thread(self.store.input_problem, job)
        if changed:
            log.error("job %s failed: %s", job.id, changed)
            await asyncio.to_thread(self.store.start, job.id)
            await asyncio.to_thread(self.store.finish, job.id, "failed", changed)
            return
        await asyncio.to_thread(self.store.start, job.id)
        log.info("job %s: running (%d documents)", job.id, job.total)
        in_flight: set[asyncio.Task[None]] = set()
        last_log = last_renew = time.monotonic()
        urgent, last_urgency = False, -math.inf
        try:
            while await self._still_running(job.id):
                if job.deadline is not None and time.monotonic() - last_urgency >= self.urgency_s:
                    last_urgency = time.monotonic()
                    urgent = await self._urgency(job.id, urgent)
                if len(in_flight) < self.concurrency:
                    claimed = await asyncio.to_thread(self.store.claim, job.id, self.batch_documents)
                    if claimed:
                        in_flight.add(asyncio.create_task(self._process(job, claimed, urgent)))
                        continue
                if not in_flight:
                    due = await asyncio.to_thread(self.store.next_due, job.id)
                    if due is None:
                        await asyncio.to_thread(self.store.finish, job.id, "completed")
                        log.info("job %s: completed", job.id)
                        return
                    await self._idle(min(due - time.time(), self.poll_s))
                    continue
                done, in_flight = await asyncio.wait(in_flight, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a runner bug surfaces here, not silently
                if in_flight and time.monotonic() - last_renew >= self.renew_s:
                    last_renew = time.monotonic()
                    await asyncio.to_thread(self.store.renew, job.id)
                if time.monotonic() - last_log >= PROGRESS_LOG_S:
                    last_log = time.monotonic()
                    await self._log_progress(job.id)
            log.info("job %s: cancelled; finishing %d batches in flight", job.id, len(in_flight))
        except asyncio.CancelledError:
            # The server is stopping: abandon the batches in flight (each releases its claims).
            for task in in_flight:
                task.cancel()
            raise
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def _still_running(self, job_id: str) -> bool:
        """False once the job is cancelled or finished, or deleted (another replica may delete a
        job this one was helping with, right after cancelling it)."""
        try:
            return await asyncio.to_thread(self.store.job_status, job_id) == "running"
        except NotFound:
            return False

    async def _urgency(self, job_id: str, was: bool) -> bool:
        """Whether the job is behind schedule now (the status's verdict); one log line when that changes."""
        try:
            urgent = bool((await asyncio.to_thread(self.store.status, job_id))["behind_schedule"])
        except NotFound:
            return was  # deleted: _still_running ends the job's loop
        if urgent != was:
            if urgent:
                log.info("job %s: behind schedule; its batches go to the model's live lane", job_id)
            else:
                log.info("job %s: back on schedule; its batches go to the job lane", job_id)
        return urgent

    async def _log_progress(self, job_id: str) -> None:
        try:
            s = await asyncio.to_thread(self.store.status, job_id)
        except NotFound:
            return
        log.info(
            "job %s: %d done, %d failed of %d (%.1f%%), %.2f docs/s, eta %s s",
            job_id, s["done"], s["failed"], s["total"], s["percent"], s["rate_docs_per_s"], s["eta_s"],
        )  # fmt: skip

    async def _process(self, job: Job, claimed: list[Claimed], urgent: bool) -> None:
        """One batch: read it back from the file, summarize, record. Never leaves a claim behind."""
        # A trace per batch (jobs have no request): its stage spans and the model's join it.
        with tracer().start_as_current_span(
            "job.batch", attributes={"summarizer.job_id": job.id, "summarizer.documents": len(claimed), "summarizer.urgent": urgent}
        ):
            await self._summarize_batch(job, claimed, urgent)

    async def _summarize_batch(self, job: Job, claimed: list[Claimed], urgent: bool) -> None:
        recorded = False
        try:
            docs = await asyncio.to_thread(self.store.read, job, claimed)
            good = [d for d in docs if isinstance(d, BatchDocument)]
            summaries = iter(await self.summarize(good, job.default_style, urgent) if good else [])
            results = [
                next(summaries) if isinstance(d, BatchDocument) else BatchResult.failed(c.doc_id, d)
                for c, d in zip(claimed, docs, strict=True)
            ]
            await asyncio.to_thread(self.store.record, job.id, claimed, results, self.policy)
            recorded = True
        except StoreFault:
            raise  # the volume, not the documents: no attempt counted; run_forever backs off
        except Exception as exc:
            # Not the documents' fault as far as we know: count an attempt, with backoff.
            log.error("job %s: batch at line %d failed: %s", job.id, claimed[0].line, type(exc).__name__)
            results = [BatchResult.failed(c.doc_id, NotReady()) for c in claimed]
            await asyncio.to_thread(self.store.record, job.id, claimed, results, self.policy)
            recorded = True
        finally:
            if not recorded:  # cancelled mid-batch (shutdown), or a store fault: pending again
                try:
                    self.store.release(job.id, claimed)
                except StoreFault:
                    pass  # claims stay `running`; run_forever's recover() frees them


"""What both job stores (SQLite, PostgreSQL) hand out and take in: jobs, claims, the retry
policy, the status a client polls, and the validated lines of a submitted file.

`JobStorage` is the interface the runner and the routes use; `pipelines.jobs.store.JobStore`
(SQLite, one replica) and `pipelines.jobs.postgres.PostgresJobStore` (many replicas) provide it,
and tests/pipelines/jobs/test_store.py runs one contract suite against both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from pipelines.batch.core import BatchDocument, BatchResult, InvalidLine, parse_line
from pipelines.errors import BadInput

JobStatus = Literal["queued", "running", "completed", "cancelled", "failed"]
UNFINISHED: tuple[JobStatus, ...] = ("queued", "running")
RATE_WINDOW_S = 60.0
SHOWN_INVALID_LINES = 20


@dataclass(frozen=True)
class Claimed:
    """A document handed to the runner: where to read it (SQLite: the file; PostgreSQL: `body`),
    and how often it was tried."""

    doc_id: str
    line: int
    offset: int
    length: int
    attempts: int
    body: str | None = None


@dataclass
class Job:
    id: str
    status: JobStatus
    source: str
    input_path: Path | None  # SQLite: the file read by offset; PostgreSQL keeps the lines instead
    input_size: int
    input_mtime_ns: int
    default_style: str | None
    total: int
    invalid: int
    created_at: float
    started_at: float | None
    run_started_at: float | None
    finished_at: float | None
    error: str | None
    deadline: float | None  # seconds since the epoch; None: no deadline
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED


@dataclass(frozen=True)
class RetryPolicy:
    """Transient errors are retried with exponential backoff; after `max_attempts` the error is the result."""

    max_attempts: int = 5
    backoff_s: float = 2.0
    backoff_max_s: float = 120.0

    def delay(self, attempts: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(attempts - 1, 0)))


class JobStorage(Protocol):
    """All job state; methods are synchronous and short (async callers run them in a thread)."""

    max_line_bytes: int
    inputs: Path  # where uploads land

    def new_upload_path(self) -> tuple[str, Path]: ...
    def create(
        self, job_id: str, input_path: Path, source: str, default_style: str | None, deadline: float | None = None
    ) -> Job: ...
    def get(self, job_id: str) -> Job: ...
    def job_status(self, job_id: str) -> JobStatus: ...
    def all(self) -> list[Job]: ...
    def status(self, job_id: str) -> dict[str, Any]: ...
    def results(self, job_id: str) -> Iterator[str]: ...
    def invalid_lines(self, job_id: str) -> Iterator[str]: ...
    def cancel(self, job_id: str) -> Job: ...
    def delete(self, job_id: str) -> None: ...
    # The runner's side
    def recover(self) -> int: ...
    def next_job(self) -> Job | None: ...
    def input_problem(self, job: Job) -> str | None: ...
    def start(self, job_id: str) -> None: ...
    def finish(self, job_id: str, status: JobStatus, error: str | None = None) -> None: ...
    def claim(self, job_id: str, limit: int) -> list[Claimed]: ...
    def renew(self, job_id: str) -> None: ...
    def read(self, job: Job, claimed: list[Claimed]) -> list[BatchDocument | BadInput]: ...
    def next_due(self, job_id: str) -> float | None: ...
    def record(self, job_id: str, claimed: list[Claimed], results: list[BatchResult], policy: RetryPolicy) -> None: ...
    def release(self, job_id: str, claimed: list[Claimed]) -> None: ...
    def close(self) -> None: ...


def iso_utc(ts: float | None) -> str | None:
    """Seconds since the epoch as the ISO 8601 UTC timestamp the status shows."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def status_payload(job: Job, rate: float, shown: list[tuple[int, str]], now: float) -> dict[str, Any]:
    """What a client polls: progress, rate over the last minute, ETA, deadline, the first invalid lines."""
    done, failed = job.counts.get("done", 0), job.counts.get("failed", 0)
    remaining = job.total - done - failed
    return {
        "id": job.id,
        "status": job.status,
        "source": job.source,
        "default_style": job.default_style,
        "total": job.total,
        "done": done,
        "failed": failed,
        "pending": remaining,
        "percent": round(100.0 * (done + failed) / job.total, 2),
        "rate_docs_per_s": round(rate, 3),
        "eta_s": round(remaining / rate, 1) if rate > 0 and remaining else None,
        "deadline": iso_utc(job.deadline),
        # A finished job is no longer scheduled: it cannot be behind.
        "behind_schedule": not job.finished and behind_schedule(job.deadline, remaining, rate, now),
        "invalid_lines": job.invalid,
        "invalid": [{"line": line, "error": error} for line, error in shown],
        "created_at": iso_utc(job.created_at),
        "started_at": iso_utc(job.started_at),
        "finished_at": iso_utc(job.finished_at),
        "error": job.error,
        "results": f"/jobs/{job.id}/results",
    }


def behind_schedule(deadline: float | None, remaining: int, rate_docs_per_s: float | None, now: float) -> bool:
    """Whether a job, at its current rate, would finish after its deadline: the runner then sends
    its documents to the model's live lane. Without a measured rate (None or 0) there is no
    evidence yet, so only a deadline already passed counts."""
    if deadline is None or remaining <= 0:
        return False
    if now >= deadline:
        return True
    if rate_docs_per_s is None or rate_docs_per_s <= 0:
        return False
    return now + remaining / rate_docs_per_s > deadline


def rate_window(job: Job, now: float) -> float | None:
    """The seconds over which the rate is counted (the last minute of this run), or None when idle."""
    if job.status != "running" or job.run_started_at is None:
        return None
    return min(RATE_WINDOW_S, max(now - job.run_started_at, 1e-3))


def validated_lines(f: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, int, bytes, BatchDocument | InvalidLine]]:
    """(line number, byte offset, raw line, its document or why it is invalid) for every
    non-blank line of a submitted file, streamed; duplicates are the store's to find."""
    for line, offset, raw in _lines(f, max_line_bytes):
        if raw is not None and not raw.strip():
            continue
        try:
            if raw is None:
                raise InvalidLine(line, f"longer than {max_line_bytes} bytes (SUMMARIZER_JOBS_MAX_LINE_BYTES)")
            yield line, offset, raw, parse_line(raw, line)
        except InvalidLine as err:
            yield line, offset, raw or b"", err


def nothing_valid(invalid: int, first_problems: list[str]) -> BadInput:
    shown = "; ".join(first_problems) or "the file is empty"
    return BadInput(f"the job holds no valid document ({invalid} invalid lines: {shown})")


def duplicate(doc_id: str, first_line: int) -> str:
    return f"duplicate id {doc_id!r} (first on line {first_line}); ids must be unique in a job"


def _lines(f: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, int, bytes | None]]:
    """(1-based line number, byte offset, raw line) for every line of a file, streamed; the raw
    line is None where it is longer than `max_line_bytes`, which is then skipped unread: a file
    submitted by path is not bounded by the upload's line guard, and one line is one document."""
    offset = 0
    number = 0
    while raw := f.readline(max_line_bytes + 1):
        number += 1
        start, offset = offset, offset + len(raw)
        if raw.endswith(b"\n") or len(raw) <= max_line_bytes:
            yield number, start, raw
            continue
        while not raw.endswith(b"\n") and (raw := f.readline(1 << 20)):
            offset += len(raw)
        yield number, start, None


def parse_claimed(claimed: list[Claimed], raws: list[bytes]) -> list[BatchDocument | BadInput]:
    """The claimed documents from their raw lines; a line whose id is not the claimed one means the
    input changed under the job."""
    docs: list[BatchDocument | BadInput] = []
    for claim, raw in zip(claimed, raws, strict=True):
        try:
            doc = parse_line(raw, claim.line)
        except InvalidLine as err:
            docs.append(BadInput(err.message))
            continue
        if doc.id != claim.doc_id:
            docs.append(BadInput(f"line {claim.line}: the input file changed: expected id {claim.doc_id!r} on this line"))
        else:
            docs.append(doc)
    return docs

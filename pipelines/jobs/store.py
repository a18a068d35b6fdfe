"""Durable batch jobs on one replica: the job store, in SQLite on the service's volume.

(With SUMMARIZER_DATABASE_URL set, `pipelines.jobs.postgres` keeps the same state in PostgreSQL
for many replicas; both give `pipelines.jobs.records.JobStorage`.)

A job is a JSONL file (uploaded, or already under the data directory) plus one row per document:
its line, its byte offset in the file, its state and, once finished, its result line. Texts stay
in the file and results in the database, so memory does not grow with the job: the runner reads
documents by offset, a batch at a time, and results stream out of a cursor.

Document states: pending -> running -> done | failed (or back to pending with a backoff, after a
transient error). `running` is only ever a claim of the one live runner: on start-up it is reset
to pending, so a killed server loses no document and, with (job, id) as the key, never records
one twice. Every change is a transaction with synchronous=FULL: a commit survives a SIGKILL and a
power cut.

Storage faults are errors, never damage: a full or read-only volume makes writes raise StorageFull
or StorageReadOnly (507) and the transaction rolls back whole; a damaged database file raises
JobStoreCorrupt (503). Each names the store, and the log names the file. A store that cannot be
opened at start-up does not stop the server: every call tries again, so fixing the volume is enough.
Reads go on while the volume is full or read-only. The SQLite plumbing that makes this so is in
`pipelines.jobs.database`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

from pipelines.batch.core import BatchDocument, BatchResult, InvalidLine
from pipelines.errors import BadInput, Conflict, NotFound, StorageError
from pipelines.jobs.database import JobDatabase, JobStoreCorrupt
from pipelines.jobs.records import (
    SHOWN_INVALID_LINES,
    Claimed,
    Job,
    JobStatus,
    RetryPolicy,
    duplicate,
    nothing_valid,
    parse_claimed,
    rate_window,
    status_payload,
    validated_lines,
)
from pipelines.observe.metrics import JOB_DOCUMENTS, JOBS

# Re-exported: callers import job things from here.
__all__ = ["Claimed", "Job", "JobStatus", "JobStore", "JobStoreCorrupt", "RetryPolicy"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    input_path TEXT NOT NULL,
    input_size INTEGER NOT NULL,
    input_mtime_ns INTEGER NOT NULL,
    default_style TEXT,
    total INTEGER NOT NULL,
    invalid INTEGER NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    run_started_at REAL,
    finished_at REAL,
    error TEXT,
    deadline REAL
);
CREATE TABLE IF NOT EXISTS documents (
    job_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    finished_at REAL,
    result TEXT,
    PRIMARY KEY (job_id, doc_id)
);
CREATE INDEX IF NOT EXISTS documents_by_state ON documents (job_id, status, line);
CREATE INDEX IF NOT EXISTS documents_by_line ON documents (job_id, line);
CREATE INDEX IF NOT EXISTS documents_by_finish ON documents (job_id, finished_at);
CREATE TABLE IF NOT EXISTS invalid_lines (
    job_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (job_id, line)
);
"""
# Columns added after a release: a store file made before has its tables without them, and
# CREATE TABLE IF NOT EXISTS leaves them so. JobDatabase.open adds what is missing, at the end
# (the order SCHEMA gives them, so `SELECT *` reads both alike).
ADDED_COLUMNS = (("jobs", "deadline", "REAL"),)


class JobStore:
    """All job state. Methods are synchronous and short; async callers run them in a thread.

    Each call opens its own connection (cheap for SQLite), so threads and processes never
    share one; WAL lets status reads proceed while the runner writes.
    """

    def __init__(self, root: Path, max_line_bytes: int = 16_777_216) -> None:
        self.root = root
        self.max_line_bytes = max_line_bytes
        self.inputs = root / "inputs"
        self.path = root / "jobs.sqlite3"
        self._db = JobDatabase(self.path, SCHEMA, self.inputs, ADDED_COLUMNS)
        # Every query goes through these; `_connect(read_only=True)` still reads on a broken volume.
        self._connect, self._transaction = self._db.connect, self._db.transaction
        with suppress(StorageError, JobStoreCorrupt):
            # Not fatal (it is logged with the path): the rest of the service works, /jobs answers
            # with this error, and every call tries again, so fixing the volume is enough.
            self._db.open()

    def close(self) -> None:
        """Release the store's open connection (tests; a server keeps it for its life)."""
        self._db.close()

    # -- submission -------------------------------------------------------------------------

    def new_upload_path(self) -> tuple[str, Path]:
        job_id = f"job-{secrets.token_hex(8)}"
        return job_id, self.inputs / f"{job_id}.jsonl"

    def create(
        self, job_id: str, input_path: Path, source: str, default_style: str | None, deadline: float | None = None
    ) -> Job:
        """Register a job: one streaming pass over its file, validating every line.

        The job row, its documents and its invalid lines commit together: a crash mid-way
        leaves no half-registered job. Blank lines are skipped; they are not documents.
        """
        stat = input_path.stat()
        now = time.time()
        total = invalid = 0
        first_problems: list[str] = []
        with self._transaction() as db, input_path.open("rb") as f:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            for line, offset, raw, doc in validated_lines(f, self.max_line_bytes):
                if isinstance(doc, InvalidLine):
                    db.execute("INSERT INTO invalid_lines VALUES (?, ?, ?)", (job_id, line, doc.reason))
                    invalid += 1
                    if len(first_problems) < 3:
                        first_problems.append(doc.message)
                    continue
                inserted = db.execute(
                    "INSERT OR IGNORE INTO documents (job_id, doc_id, line, offset, length) VALUES (?, ?, ?, ?, ?)",
                    (job_id, doc.id, line, offset, len(raw)),
                ).rowcount
                if inserted:
                    total += 1
                    continue
                first = db.execute(
                    "SELECT line FROM documents WHERE job_id = ? AND doc_id = ?", (job_id, doc.id)
                ).fetchone()[0]
                db.execute("INSERT INTO invalid_lines VALUES (?, ?, ?)", (job_id, line, duplicate(doc.id, first)))
                invalid += 1
            if total == 0:
                raise nothing_valid(invalid, first_problems)
            db.execute(
                "INSERT INTO jobs (id, seq, status, source, input_path, input_size, input_mtime_ns, default_style,"
                " total, invalid, created_at, deadline) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, seq, source, str(input_path), stat.st_size, stat.st_mtime_ns, default_style, total, invalid, now,
                 deadline),  # fmt: skip
            )
        JOBS.labels(status="submitted").inc()
        return self.get(job_id)

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self._connect(read_only=True) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job {job_id!r}; GET /jobs lists the jobs this server knows")
            counts = dict(
                db.execute("SELECT status, COUNT(*) FROM documents WHERE job_id = ? GROUP BY status", (job_id,)).fetchall()
            )
        return self._job(row, counts)

    def job_status(self, job_id: str) -> JobStatus:
        """Just the status: the runner checks it between batches to notice a cancel."""
        with self._connect(read_only=True) as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        status: JobStatus = row[0]
        return status

    def all(self) -> list[Job]:
        with self._connect(read_only=True) as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY seq DESC").fetchall()
        return [self._job(row, {}) for row in rows]

    @staticmethod
    def _job(row: tuple[Any, ...], counts: dict[str, int]) -> Job:
        (job_id, _, status, source, input_path, size, mtime, style, total, invalid, created, started, run_started,
         finished, error, *added) = row  # fmt: skip
        # No added columns: an old store file on a volume that was read-only before it could be upgraded.
        deadline = added[0] if added else None
        return Job(job_id, status, source, Path(input_path), size, mtime, style, total, invalid, created, started,
                   run_started, finished, error, deadline, counts)  # fmt: skip

    def status(self, job_id: str) -> dict[str, Any]:
        """What a client polls: progress, rate over the last minute, ETA, the first invalid lines."""
        job = self.get(job_id)
        now = time.time()
        window = rate_window(job, now)
        with self._connect(read_only=True) as db:
            recent = 0
            if window is not None:
                recent = db.execute(
                    "SELECT COUNT(*) FROM documents WHERE job_id = ? AND finished_at >= ?", (job_id, now - window)
                ).fetchone()[0]
            shown = db.execute(
                "SELECT line, error FROM invalid_lines WHERE job_id = ? ORDER BY line LIMIT ?",
                (job_id, SHOWN_INVALID_LINES),
            ).fetchall()
        return status_payload(job, recent / window if window else 0.0, shown, now)

    def results(self, job_id: str) -> Iterator[str]:
        """Finished documents' result lines, in input order, streamed from a cursor in chunks."""
        self.get(job_id)
        with self._connect(read_only=True) as db:
            cursor = db.execute(
                "SELECT result FROM documents WHERE job_id = ? AND result IS NOT NULL ORDER BY line", (job_id,)
            )
            # A chunk per fetch: one line per yield costs a thread hop each in the streamed response.
            while rows := cursor.fetchmany(1000):
                yield "".join(line + "\n" for (line,) in rows)

    def invalid_lines(self, job_id: str) -> Iterator[str]:
        self.get(job_id)
        with self._connect(read_only=True) as db:
            cursor = db.execute("SELECT line, error FROM invalid_lines WHERE job_id = ? ORDER BY line", (job_id,))
            while rows := cursor.fetchmany(1000):
                yield "".join(json.dumps({"line": line, "error": error}) + "\n" for line, error in rows)

    # -- control ----------------------------------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job; finished documents keep their results."""
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status IN ('queued', 'running')",
                (time.time(), job_id),
            ).rowcount
        job = self.get(job_id)
        if changed:
            JOBS.labels(status="cancelled").inc()
        if not changed:
            raise Conflict(f"job {job_id} is already {job.status}; only queued or running jobs can be cancelled")
        return job

    def delete(self, job_id: str) -> None:
        """Forget a finished job, and its uploaded input; a file under the data directory stays."""
        job = self.get(job_id)
        if not job.finished:
            raise Conflict(f"job {job_id} is {job.status}; cancel it before deleting it")
        with self._transaction() as db:
            for table, key in (("documents", "job_id"), ("invalid_lines", "job_id"), ("jobs", "id")):
                db.execute(f"DELETE FROM {table} WHERE {key} = ?", (job_id,))
        if job.input_path is not None and job.input_path.parent == self.inputs:
            job.input_path.unlink(missing_ok=True)

    # -- the runner's side ------------------------------------------------------------------

    def recover(self) -> int:
        """Start-up: claims of a runner that died go back to pending. Returns how many."""
        with self._transaction() as db:
            return db.execute("UPDATE documents SET status = 'pending' WHERE status = 'running'").rowcount

    def next_job(self) -> Job | None:
        """The job to work on: a running one first (resume), else the oldest queued one."""
        with self._connect(read_only=True) as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status IN ('running', 'queued') ORDER BY status = 'queued', seq LIMIT 1"
            ).fetchone()
        return None if row is None else self.get(row[0])

    def input_problem(self, job: Job) -> str | None:
        """Why the job's file can no longer be read by offset, or None if it is as submitted."""
        assert job.input_path is not None
        try:
            stat = job.input_path.stat()
        except OSError as exc:
            return f"the input file {job.input_path.name} cannot be read: {exc.strerror}"
        if (stat.st_size, stat.st_mtime_ns) != (job.input_size, job.input_mtime_ns):
            return f"the input file {job.input_path.name} changed after the job was submitted; submit it again"
        return None

    def read(self, job: Job, claimed: list[Claimed]) -> list[BatchDocument | BadInput]:
        """The claimed documents, read back from the job's file by offset."""
        assert job.input_path is not None
        raws: list[bytes] = []
        with job.input_path.open("rb") as f:
            for claim in claimed:
                f.seek(claim.offset)
                raws.append(f.read(claim.length))
        return parse_claimed(claimed, raws)

    def renew(self, job_id: str) -> None:
        """Claims here last as long as the one runner (recover() frees them at start-up): nothing to renew."""

    def start(self, job_id: str) -> None:
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), run_started_at = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (now, now, job_id),
            )

    def finish(self, job_id: str, status: JobStatus, error: str | None = None) -> None:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ? AND status = 'running'",
                (status, time.time(), error, job_id),
            ).rowcount
        if changed:
            JOBS.labels(status=status).inc()

    def claim(self, job_id: str, limit: int) -> list[Claimed]:
        """Up to `limit` pending documents that are due, in input order, marked running."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT doc_id, line, offset, length, attempts FROM documents"
                " WHERE job_id = ? AND status = 'pending' AND next_attempt_at <= ? ORDER BY line LIMIT ?",
                (job_id, time.time(), limit),
            ).fetchall()
            db.executemany(
                "UPDATE documents SET status = 'running' WHERE job_id = ? AND doc_id = ?",
                [(job_id, row[0]) for row in rows],
            )
        return [Claimed(*row) for row in rows]

    def next_due(self, job_id: str) -> float | None:
        """When the earliest pending document may be tried (None: nothing pending)."""
        with self._connect(read_only=True) as db:
            value = db.execute(
                "SELECT MIN(next_attempt_at) FROM documents WHERE job_id = ? AND status = 'pending'", (job_id,)
            ).fetchone()[0]
        return None if value is None else float(value)

    def record(self, job_id: str, claimed: list[Claimed], results: list[BatchResult], policy: RetryPolicy) -> None:
        """Store a batch's outcomes in one transaction; transient errors go back to pending, later."""
        now = time.time()
        with self._transaction() as db:
            for claim, result in zip(claimed, results, strict=True):
                attempts = claim.attempts + 1
                if result.transient and attempts < policy.max_attempts:
                    JOB_DOCUMENTS.labels(state="retried").inc()
                    db.execute(
                        "UPDATE documents SET status = 'pending', attempts = ?, next_attempt_at = ?"
                        " WHERE job_id = ? AND doc_id = ? AND status = 'running'",
                        (attempts, now + policy.delay(attempts), job_id, claim.doc_id),
                    )
                    continue
                result.line = claim.line
                JOB_DOCUMENTS.labels(state="failed" if result.error else "done").inc()
                db.execute(
                    "UPDATE documents SET status = ?, attempts = ?, finished_at = ?, result = ?"
                    " WHERE job_id = ? AND doc_id = ? AND status = 'running'",
                    ("failed" if result.error else "done", attempts, now, result.to_line(), job_id, claim.doc_id),
                )

    def release(self, job_id: str, claimed: list[Claimed]) -> None:
        """Give claims back unprocessed (the job was cancelled or the runner is stopping)."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE documents SET status = 'pending' WHERE job_id = ? AND doc_id = ? AND status = 'running'",
                [(job_id, c.doc_id) for c in claimed],
            )


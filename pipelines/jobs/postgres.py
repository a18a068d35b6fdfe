"""The job store in PostgreSQL: the same jobs, shared by every replica of the entry service.

What differs from the SQLite store (`pipelines.jobs.store`), and why:

- A submitted file's valid lines are copied into the database (COPY, streamed: memory stays flat
  in the job size), so any replica can work on any document; an upload's spooled file is then
  deleted. Duplicate ids are found by the database, not a set in memory.
- A claim is a lease: `owner` (this store's random id) and `lease_until`. Claims are taken with
  `FOR UPDATE SKIP LOCKED`, so replicas never block on or double-claim a document; the runner
  renews its leases while it works, and a replica that dies holds its documents only until
  they expire, then any replica takes them. A result is recorded only by the lease's owner while
  it still holds it: one result per (job, id), ever, however late a stale replica reports.
- Times come from the database's clock, so replicas whose clocks disagree still agree on leases,
  backoff and the rate.
- Cancel and delete are rows every replica reads between batches.

Faults are the Database's (pipelines/postgres/pool.py): DatabaseUnavailable (503) while PostgreSQL
is down, StorageFull (507) when its disk is full. The runner treats both as the store's fault,
not the documents'.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipelines.batch.core import BatchDocument, BatchResult, InvalidLine
from pipelines.errors import BadInput, Conflict, NotFound
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
from pipelines.postgres.pool import Database

NOW = "extract(epoch from clock_timestamp())"
JOB_COLUMNS = (
    "id, status, source, default_style, total, invalid, created_at, started_at, run_started_at, finished_at, error,"
    " deadline"
)
STREAM_ROWS = 1000


class PostgresJobStore:
    """All job state in `db`; `spool` is a local folder where uploads land before they are copied in."""

    def __init__(self, db: Database, spool: Path, *, max_line_bytes: int = 16_777_216, lease_s: float = 60.0) -> None:
        self.db = db
        self.inputs = spool
        self.max_line_bytes = max_line_bytes
        self.lease_s = lease_s
        self.owner = f"{secrets.token_hex(6)}"  # this process's claims; a restart is a new owner
        self._after: dict[str, int] = {}  # per job, the last line this store claimed
        self._expiry_check_at = 0.0  # monotonic time of the next look for expired leases

    def close(self) -> None:
        """The pool is the service's (the index shares it): nothing of its own to release."""

    # -- submission -------------------------------------------------------------------------

    def new_upload_path(self) -> tuple[str, Path]:
        self.inputs.mkdir(parents=True, exist_ok=True)
        job_id = f"job-{secrets.token_hex(8)}"
        return job_id, self.inputs / f"{job_id}.jsonl"

    def create(
        self, job_id: str, input_path: Path, source: str, default_style: str | None, deadline: float | None = None
    ) -> Job:
        """Register a job and copy its valid lines in: one transaction, so a crash leaves nothing."""
        invalid = 0
        first_problems: list[str] = []
        with self.db.connection() as conn, input_path.open("rb") as f:
            conn.execute(
                f"INSERT INTO jobs (id, status, source, default_style, total, invalid, created_at, deadline)"
                f" VALUES (%s, 'queued', %s, %s, 0, 0, {NOW}, %s)",
                (job_id, source, default_style, deadline),
            )
            conn.execute("CREATE TEMP TABLE job_lines (doc_id text, line integer, body text, error text) ON COMMIT DROP")
            with conn.cursor().copy("COPY job_lines (doc_id, line, body, error) FROM STDIN") as copy:
                for line, _, raw, doc in validated_lines(f, self.max_line_bytes):
                    if isinstance(doc, InvalidLine):
                        copy.write_row((None, line, None, doc.reason))
                        invalid += 1
                        if len(first_problems) < 3:
                            first_problems.append(doc.message)
                    else:
                        copy.write_row((doc.id, line, raw.decode("utf-8"), None))
            total = conn.execute(
                "INSERT INTO job_documents (job_id, doc_id, line, body) SELECT DISTINCT ON (doc_id) %s, doc_id, line, body"
                " FROM job_lines WHERE error IS NULL ORDER BY doc_id, line",
                (job_id,),
            ).rowcount
            if total == 0:
                raise nothing_valid(invalid, first_problems)
            conn.execute("INSERT INTO job_invalid_lines SELECT %s, line, error FROM job_lines WHERE error IS NOT NULL", (job_id,))
            duplicates = conn.execute(
                "SELECT l.line, l.doc_id, d.line FROM job_lines l JOIN job_documents d ON d.job_id = %s AND d.doc_id = l.doc_id"
                " WHERE l.error IS NULL AND l.line <> d.line",
                (job_id,),
            ).fetchall()
            with conn.cursor().copy("COPY job_invalid_lines (job_id, line, error) FROM STDIN") as copy:
                for line, doc_id, first in duplicates:
                    copy.write_row((job_id, line, duplicate(doc_id, first)))
            conn.execute("UPDATE jobs SET total = %s, invalid = %s WHERE id = %s", (total, invalid + len(duplicates), job_id))
        with self.db.connection() as conn:
            # Fresh statistics for the new rows: without them the planner takes the job's
            # documents for a handful and sorts every pending one at each claim (65 ms at 100k,
            # instead of walking the index for 32).
            conn.execute("ANALYZE job_documents")
        if input_path.parent == self.inputs:
            input_path.unlink(missing_ok=True)  # the lines are in the database now
        JOBS.labels(status="submitted").inc()
        return self.get(job_id)

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self.db.connection() as conn:
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job {job_id!r}; GET /jobs lists the jobs this server knows")
            counts = conn.execute(
                "SELECT status, COUNT(*) FROM job_documents WHERE job_id = %s GROUP BY status", (job_id,)
            ).fetchall()
        return _job(row, {str(status): int(n) for status, n in counts})

    def job_status(self, job_id: str) -> JobStatus:
        with self.db.connection() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        status: JobStatus = row[0]
        return status

    def all(self) -> list[Job]:
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY seq DESC").fetchall()
        return [_job(row, {}) for row in rows]

    def status(self, job_id: str) -> dict[str, Any]:
        """Progress, rate and ETA of the whole job: every replica's documents count."""
        job = self.get(job_id)
        with self.db.connection() as conn:
            now = float(conn.execute(f"SELECT {NOW}").fetchone()[0])  # type: ignore[index]
            window = rate_window(job, now)
            recent = 0
            if window is not None:
                recent = conn.execute(
                    "SELECT COUNT(*) FROM job_documents WHERE job_id = %s AND finished_at >= %s", (job_id, now - window)
                ).fetchone()[0]  # type: ignore[index]
            shown = conn.execute(
                "SELECT line, error FROM job_invalid_lines WHERE job_id = %s ORDER BY line LIMIT %s",
                (job_id, SHOWN_INVALID_LINES),
            ).fetchall()
        return status_payload(job, recent / window if window else 0.0, [(int(a), str(b)) for a, b in shown], now)

    def results(self, job_id: str) -> Iterator[str]:
        """Finished documents' result lines, in input order, from a server-side cursor in chunks."""
        self.get(job_id)
        query = "SELECT result FROM job_documents WHERE job_id = %s AND result IS NOT NULL ORDER BY line"
        for rows in self._stream(query, job_id):
            yield "".join(f"{line}\n" for (line,) in rows)

    def invalid_lines(self, job_id: str) -> Iterator[str]:
        self.get(job_id)
        query = "SELECT line, error FROM job_invalid_lines WHERE job_id = %s ORDER BY line"
        for rows in self._stream(query, job_id):
            yield "".join(json.dumps({"line": line, "error": error}) + "\n" for line, error in rows)

    def _stream(self, query: str, job_id: str) -> Iterator[list[tuple[Any, ...]]]:
        with self.db.connection() as conn, conn.cursor(name=f"stream_{secrets.token_hex(4)}") as cursor:
            cursor.execute(query, (job_id,))
            while rows := cursor.fetchmany(STREAM_ROWS):
                yield rows

    # -- control ----------------------------------------------------------------------------

    def cancel(self, job_id: str) -> Job:
        """Stop a queued or running job on every replica: each runner reads the status between batches."""
        with self.db.connection() as conn:
            changed = conn.execute(
                f"UPDATE jobs SET status = 'cancelled', finished_at = {NOW} WHERE id = %s AND status IN ('queued', 'running')",
                (job_id,),
            ).rowcount
        job = self.get(job_id)
        if not changed:
            raise Conflict(f"job {job_id} is already {job.status}; only queued or running jobs can be cancelled")
        JOBS.labels(status="cancelled").inc()
        return job

    def delete(self, job_id: str) -> None:
        """Forget a finished job; its documents and invalid lines go with it (ON DELETE CASCADE)."""
        job = self.get(job_id)
        if not job.finished:
            raise Conflict(f"job {job_id} is {job.status}; cancel it before deleting it")
        with self.db.connection() as conn:
            conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))

    # -- the runner's side ------------------------------------------------------------------

    def recover(self) -> int:
        """This store's own claims go back to pending (after a fault); other replicas' stay theirs."""
        with self.db.connection() as conn:
            return conn.execute(
                "UPDATE job_documents SET status = 'pending', owner = NULL, lease_until = NULL"
                " WHERE owner = %s AND status = 'running'",
                (self.owner,),
            ).rowcount

    def next_job(self) -> Job | None:
        """A running job first (every replica helps with it), else the oldest queued one."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id FROM jobs WHERE status IN ('running', 'queued') ORDER BY status = 'queued', seq LIMIT 1"
            ).fetchone()
        return None if row is None else self.get(row[0])

    def input_problem(self, job: Job) -> str | None:
        """The lines were copied in at submission: nothing on a disk can change under the job."""
        return None

    def read(self, job: Job, claimed: list[Claimed]) -> list[BatchDocument | BadInput]:
        return parse_claimed(claimed, [(c.body or "").encode("utf-8") for c in claimed])

    def start(self, job_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute(
                f"UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, {NOW}),"
                f" run_started_at = CASE WHEN status = 'queued' THEN {NOW} ELSE COALESCE(run_started_at, {NOW}) END"
                " WHERE id = %s AND status IN ('queued', 'running')",
                (job_id,),
            )

    def finish(self, job_id: str, status: JobStatus, error: str | None = None) -> None:
        """Completed only when no document is left pending or claimed by any replica."""
        query = f"UPDATE jobs SET status = %s, finished_at = {NOW}, error = %s WHERE id = %s AND status = 'running'"
        params: tuple[Any, ...] = (status, error, job_id)
        if status == "completed":
            query += " AND NOT EXISTS (SELECT 1 FROM job_documents WHERE job_id = %s AND status IN ('pending', 'running'))"
            params += (job_id,)
        with self.db.connection() as conn:
            changed = conn.execute(query, params).rowcount
        if changed:
            JOBS.labels(status=status).inc()

    def claim(self, job_id: str, limit: int) -> list[Claimed]:
        """Up to `limit` documents in input order: claims whose lease expired (a replica died),
        then pending ones that are due.

        Cheap at any job size: each finished document leaves dead index entries behind it until
        VACUUM, so a scan from the job's first line would grow with the work done. Expired
        leases are looked for only every third of a lease, and pending documents after the last
        line this store claimed first, from the start only when that finds too few (retries and
        released claims, near the end of the job).
        """
        rows: list[tuple[Any, ...]] = []
        after = self._after.get(job_id, 0)
        passes = [f"status = 'pending' AND next_attempt_at <= {NOW} AND line > {int(after)}"]
        if after:
            passes.append(f"status = 'pending' AND next_attempt_at <= {NOW}")
        if time.monotonic() >= self._expiry_check_at:
            self._expiry_check_at = time.monotonic() + self.lease_s / 3
            passes.insert(0, f"status = 'running' AND lease_until < {NOW}")
        with self.db.connection() as conn:
            for due in passes:
                if len(rows) >= limit:
                    break
                rows += conn.execute(
                    f"""
                    WITH picked AS (
                        SELECT doc_id FROM job_documents WHERE job_id = %(job)s AND {due}
                        ORDER BY line LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
                    UPDATE job_documents d SET status = 'running', owner = %(owner)s, lease_until = {NOW} + %(lease)s
                    FROM picked WHERE d.job_id = %(job)s AND d.doc_id = picked.doc_id
                    RETURNING d.doc_id, d.line, d.attempts, d.body
                    """,
                    {"job": job_id, "limit": limit - len(rows), "owner": self.owner, "lease": self.lease_s},
                ).fetchall()
        claimed = sorted((Claimed(doc_id, line, 0, 0, attempts, body) for doc_id, line, attempts, body in rows), key=lambda c: c.line)
        if claimed:
            self._after[job_id] = max(after, claimed[-1].line)
        return claimed

    def renew(self, job_id: str) -> None:
        """Extend this store's leases in the job: it is still working on them."""
        with self.db.connection() as conn:
            conn.execute(
                f"UPDATE job_documents SET lease_until = {NOW} + %s WHERE job_id = %s AND owner = %s AND status = 'running'",
                (self.lease_s, job_id, self.owner),
            )

    def next_due(self, job_id: str) -> float | None:
        """When a pending document may be tried or a claim (another replica's) expires; None: nothing left."""
        with self.db.connection() as conn:
            value = conn.execute(
                "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt_at ELSE lease_until END)"
                " FROM job_documents WHERE job_id = %s AND status IN ('pending', 'running')",
                (job_id,),
            ).fetchone()[0]  # type: ignore[index]
        return None if value is None else float(value)

    def record(self, job_id: str, claimed: list[Claimed], results: list[BatchResult], policy: RetryPolicy) -> None:
        """A batch's outcomes in one transaction, only for the claims this store still holds."""
        retried: list[tuple[Any, ...]] = []
        finished: list[tuple[Any, ...]] = []
        for claim, result in zip(claimed, results, strict=True):
            attempts = claim.attempts + 1
            if result.transient and attempts < policy.max_attempts:
                retried.append((attempts, policy.delay(attempts), job_id, claim.doc_id, self.owner))
                continue
            result.line = claim.line
            state = "failed" if result.error else "done"
            finished.append((state, attempts, result.to_line(), job_id, claim.doc_id, self.owner))
        owned = " WHERE job_id = %s AND doc_id = %s AND owner = %s AND status = 'running'"
        with self.db.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                f"UPDATE job_documents SET status = 'pending', owner = NULL, lease_until = NULL, attempts = %s,"
                f" next_attempt_at = {NOW} + %s" + owned,
                retried,
            )
            cursor.executemany(
                f"UPDATE job_documents SET status = %s, attempts = %s, finished_at = {NOW}, result = %s,"
                " owner = NULL, lease_until = NULL" + owned,
                finished,
            )
        JOB_DOCUMENTS.labels(state="retried").inc(len(retried))
        for state, *_ in finished:
            JOB_DOCUMENTS.labels(state=state).inc()

    def release(self, job_id: str, claimed: list[Claimed]) -> None:
        with self.db.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE job_documents SET status = 'pending', owner = NULL, lease_until = NULL"
                " WHERE job_id = %s AND doc_id = %s AND owner = %s AND status = 'running'",
                [(job_id, c.doc_id, self.owner) for c in claimed],
            )


def _job(row: tuple[Any, ...], counts: dict[str, int]) -> Job:
    (job_id, status, source, style, total, invalid, created, started, run_started, finished, error, deadline) = row
    return Job(job_id, status, source, None, 0, 0, style, total, invalid, created, started, run_started, finished,
               error, deadline, counts)  # fmt: skip


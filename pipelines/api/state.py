"""Where the entry service keeps its state: one setting picks the backend.

SUMMARIZER_DATABASE_URL unset: the job store in SQLite under SUMMARIZER_JOBS_DIR and the knowledge
index in FAISS snapshots under SUMMARIZER_RAG_DIR, on this replica's disk. Set: both in that
PostgreSQL database, shared by every replica (docs/scaling.md). The routes do not know which.
"""

from __future__ import annotations

import logging

from pipelines.jobs.postgres import PostgresJobStore
from pipelines.jobs.records import JobStorage
from pipelines.jobs.store import JobStore
from pipelines.postgres.connection import DatabaseUnavailable
from pipelines.postgres.pool import Database
from pipelines.settings import Settings

log = logging.getLogger("summarizer")


def open_database(settings: Settings) -> Database | None:
    """The shared database, its schema migrated now when it answers.

    A database newer than this code (SchemaTooNew) stops the start; one that does not answer does
    not: the jobs and RAG routes answer 503 until it does, and migrate on their first call then.
    """
    if settings.database_url is None:
        return None
    db = Database(
        settings.database_url.get_secret_value(), pool_size=settings.database_pool_size, timeout_s=settings.database_timeout_s
    )
    try:
        db.migrate()
    except DatabaseUnavailable as err:
        log.warning("%s; the jobs and RAG routes answer 503 until it answers", err.message)
    return db


def open_job_store(settings: Settings, db: Database | None) -> JobStorage:
    if db is None:
        return JobStore(settings.jobs_dir, max_line_bytes=settings.jobs_max_line_bytes)
    # Uploads are spooled on local disk, then copied into the database and deleted.
    return PostgresJobStore(
        db, settings.jobs_dir / "inputs", max_line_bytes=settings.jobs_max_line_bytes, lease_s=settings.jobs_lease_s
    )

"""Migrations against a real PostgreSQL: a database of its own per test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from pipelines.jobs.postgres import PostgresJobStore
from pipelines.postgres.connection import DatabaseUnavailable, sqlalchemy_url
from pipelines.postgres.migrations import SCRIPTS, SchemaTooNew, current, head, migrate
from pipelines.postgres.pool import Database


def test_a_new_database_is_brought_to_the_head(database_url: str) -> None:
    assert current(database_url) is None
    assert migrate(database_url) == head()
    assert current(database_url) == head()
    assert migrate(database_url) == head()  # a second start finds nothing to do


def test_replicas_starting_together_migrate_once(database_url: str) -> None:
    # Without the advisory lock, concurrent first runs race to create alembic_version and fail.
    with ThreadPoolExecutor(max_workers=6) as pool:
        revisions = list(pool.map(lambda _: migrate(database_url), range(6)))
    assert revisions == [head()] * 6
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head(),)]


def test_a_database_newer_than_the_code_is_refused_naming_both(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaTooNew) as raised:
        migrate(database_url)
    assert "'9999'" in raised.value.message and repr(head()) in raised.value.message
    assert current(database_url) == "9999"  # refused, not touched


def test_no_server_is_a_503_that_hides_the_password() -> None:
    url = "postgresql://app:hunter2@127.0.0.1:1/summarizer"  # nothing listens on port 1
    with pytest.raises(DatabaseUnavailable) as raised:
        migrate(url)
    assert raised.value.status_code == 503
    assert "hunter2" not in raised.value.message and "127.0.0.1" in raised.value.message


def test_jobs_from_before_deadlines_read_as_having_none(database_url: str, tmp_path: Path) -> None:
    """0004 adds jobs.deadline to a database that already holds jobs (made at 0003)."""
    engine = sa.create_engine(sqlalchemy_url(database_url), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.commit()
    engine.dispose()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO jobs (id, status, source, total, invalid, created_at) VALUES ('job-old', 'queued', 'upload', 1, 0, 1000)"
        )
        conn.execute("INSERT INTO job_documents (job_id, doc_id, line, body) VALUES ('job-old', 'a', 1, '{}')")
    assert current(database_url) == "0003"
    assert migrate(database_url) == head()
    db = Database(database_url, pool_size=1)
    try:
        old = PostgresJobStore(db, tmp_path).get("job-old")
        assert (old.deadline, old.total, old.counts) == (None, 1, {"pending": 1})
    finally:
        db.close()

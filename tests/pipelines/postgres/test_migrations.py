"""Migrations against a real PostgreSQL: a database of its own per test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from pipelines.postgres.connection import DatabaseUnavailable
from pipelines.postgres.migrations import SchemaTooNew, current, head, migrate


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

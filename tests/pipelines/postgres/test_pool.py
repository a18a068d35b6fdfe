"""The shared connection pool against the real PostgreSQL: faults become our errors (a full disk
and a read-only server 507, a server that refuses connections or a busy pool 503), nothing is
opened before the first call, and the schema is migrated on that call when start-up could not."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from pipelines.errors import StorageFull, StorageReadOnly
from pipelines.postgres.connection import DatabaseUnavailable
from pipelines.postgres.migrations import current, head
from pipelines.postgres.pool import Database
from tests.fixtures.postgres import database_down


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=2, timeout_s=1.0)
    yield database
    database.close()


def test_the_first_call_migrates_a_database_that_was_down_at_start(database_url: str, db: Database) -> None:
    with database_down(database_url), pytest.raises(DatabaseUnavailable):
        db.migrate()  # start-up: a warning in the service, not a stop
    assert current(database_url) is None
    with db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    assert current(database_url) == head()


def test_a_full_disk_is_507_and_rolls_back(database_url: str, db: Database) -> None:
    db.migrate()
    with psycopg.connect(database_url, autocommit=True) as conn:
        # What PostgreSQL raises when it cannot extend a file (SQLSTATE 53100).
        conn.execute(
            "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$"
        )
        conn.execute("CREATE TRIGGER disk_is_full BEFORE INSERT ON job_invalid_lines FOR EACH ROW EXECUTE FUNCTION full_disk()")
    with pytest.raises(StorageFull) as caught, db.connection() as conn:
        conn.execute("INSERT INTO jobs (id, status, source, total, invalid, created_at) VALUES ('j', 'queued', 'x', 1, 1, 0)")
        conn.execute("INSERT INTO job_invalid_lines VALUES ('j', 1, 'bad')")
    assert caught.value.status_code == 507 and "disk is full" in caught.value.message
    with db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)  # the whole transaction


def test_a_read_only_server_is_507(database_url: str, db: Database) -> None:
    db.migrate()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {database_url.rsplit('/', 1)[1]} SET default_transaction_read_only = on")
    with pytest.raises(StorageReadOnly) as caught, db.connection() as conn:
        conn.execute("INSERT INTO jobs (id, status, source, total, invalid, created_at) VALUES ('j', 'queued', 'x', 1, 0, 0)")
    assert caught.value.status_code == 507


def test_a_busy_pool_is_503_after_the_timeout(db: Database) -> None:
    db.migrate()
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with db.connection():
            held.set()
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]  # pool_size=2
    for t in holders:
        t.start()
    try:
        assert held.wait(10)
        with pytest.raises(DatabaseUnavailable, match="no connection within 1 s"), db.connection():
            pass
    finally:
        release.set()
        for t in holders:
            t.join()
    with db.connection() as conn:  # and free again
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_password_stays_out_of_the_error(database_url: str) -> None:
    url = database_url.replace("postgres@", "postgres:pool-secret-9@").replace(":5432/", ":1/")
    db = Database(url, timeout_s=1.0)
    with pytest.raises(DatabaseUnavailable) as caught, db.connection():
        pass
    assert "pool-secret-9" not in caught.value.message and "***" in caught.value.message
    assert "pool-secret-9" not in str(caught.value.to_payload())

"""One PostgreSQL database shared by the job store and the knowledge index: a connection pool,
the schema brought up to date on first use, and PostgreSQL's faults as our errors.

    db = Database(url, pool_size=10, timeout_s=5.0)
    with db.connection() as conn:       # one transaction: committed on exit, rolled back on error
        conn.execute("SELECT 1")

Start-up never waits for the database: `Database` connects on first use, and a call that finds
the schema not yet migrated (PostgreSQL was down) migrates first. So the routes that need it
answer 503 while it is down and recover by themselves once it is back, with no restart.

Faults: not answering, a dropped connection, or no free connection within `timeout_s` raise
DatabaseUnavailable (503, Retry-After); a full disk StorageFull and a read-only server
StorageReadOnly (507), as the SQLite store does for its volume. Messages show the URL only
through `redacted`, so its password never reaches a log or an error body.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from pipelines.errors import StorageFull, StorageReadOnly
from pipelines.postgres.connection import DatabaseUnavailable, check_url, redacted, unavailable

log = logging.getLogger("summarizer.postgres")
FULL = "the database cannot store anything: its disk is full; free space, then retry"
READ_ONLY = "the database cannot store anything: the server is read-only (a standby?)"


class Database:
    """A pool of at most `pool_size` connections to `url`, opened lazily."""

    def __init__(self, url: str, *, pool_size: int = 10, timeout_s: float = 5.0) -> None:
        self.url = check_url(url)
        self.shown = redacted(url)
        self.timeout_s = timeout_s
        self._pool = ConnectionPool(
            url,
            min_size=0,  # nothing is opened before the first call: start-up never waits for PostgreSQL
            max_size=pool_size,
            timeout=timeout_s,
            kwargs={"connect_timeout": max(1, math.ceil(timeout_s))},
            check=ConnectionPool.check_connection,  # a connection dropped while idle is replaced, not handed out
            reconnect_timeout=timeout_s,
            open=False,
            name="summarizer",
        )
        self._revision: str | None = None
        self._lock = threading.Lock()

    def migrate(self) -> str:
        """Bring the schema to this code's head now (start-up); SchemaTooNew or DatabaseUnavailable."""
        from pipelines.postgres.migrations import migrate  # alembic and SQLAlchemy: only with a database

        with self._lock:
            if self._revision is None:
                self._revision = migrate(self.url)
                log.info("database %s: schema at revision %s", self.shown, self._revision)
            return self._revision

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A pooled connection in a transaction, committed when the block ends without error."""
        if self._revision is None:
            self.migrate()
        if self._pool.closed:
            with self._lock:
                if self._pool.closed:
                    self._pool.open(wait=False)
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(
                f"PostgreSQL at {self.shown} gave no connection within {self.timeout_s:g} s "
                "(down, or SUMMARIZER_DATABASE_POOL_SIZE too small for the load)"
            ) from exc
        except pg_errors.DiskFull as exc:
            log.error("database %s: %s", self.shown, type(exc).__name__)
            raise StorageFull(FULL) from exc
        except pg_errors.ReadOnlySqlTransaction as exc:
            raise StorageReadOnly(READ_ONLY) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise unavailable(self.url, exc) from exc

    def close(self) -> None:
        self._pool.close()

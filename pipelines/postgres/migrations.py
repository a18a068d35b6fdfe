"""The schema's versions: Alembic revisions, applied at start-up by every replica, safely at once.

    migrate("postgresql://user@host/db")   # -> the revision the database is at now (the head)

Replicas that start together all call `migrate`. A session-level advisory lock makes them take
turns: the first applies what is missing, the others find nothing to do. A database whose
revision this code does not know was migrated by a newer release; it is refused (SchemaTooNew,
naming both revisions) rather than used with a schema the code cannot read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pipelines.errors import ConfigError
from pipelines.postgres.connection import sqlalchemy_url, unavailable

SCRIPTS = Path(__file__).with_name("migrations")
# Any constant both releases agree on; pg_advisory_lock takes a bigint. ("summ" in ASCII.)
LOCK_KEY = 0x73756D6D


class SchemaTooNew(ConfigError):
    """The database was migrated by a newer release than this one."""


def head() -> str:
    """The newest revision this code knows."""
    revision = _scripts(Config()).get_current_head()
    assert revision is not None, f"no Alembic revisions under {SCRIPTS}"
    return revision


def migrate(url: str) -> str:
    """Bring the database to this code's head revision; returns it. Raises DatabaseUnavailable
    when PostgreSQL does not answer and SchemaTooNew when the database is ahead of the code."""
    with _connect(url) as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        connection.commit()
        try:
            return _upgrade(connection)
        finally:
            connection.rollback()  # a failed revision leaves the transaction aborted
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            connection.commit()


def current(url: str) -> str | None:
    """The database's revision, or None before the first migration."""
    with _connect(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _connect(url: str) -> Iterator[sa.Connection]:
    """One unpooled connection; PostgreSQL not answering becomes DatabaseUnavailable (503)."""
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    except sa.exc.OperationalError as exc:
        raise unavailable(url, exc.orig or exc) from None
    finally:
        engine.dispose()


def _upgrade(connection: sa.Connection) -> str:
    config = Config()
    config.attributes["connection"] = connection
    scripts = _scripts(config)
    newest = scripts.get_current_head()
    assert newest is not None, f"no Alembic revisions under {SCRIPTS}"
    found = MigrationContext.configure(connection).get_current_revision()
    known = {script.revision for script in scripts.walk_revisions()}
    if found is not None and found not in known:
        raise SchemaTooNew(
            f"the database's schema is at revision {found!r}, which this release does not know (its newest is "
            f"{newest!r}): it was migrated by a newer release. Run that release, or point SUMMARIZER_DATABASE_URL "
            "at another database"
        )
    command.upgrade(config, "head")
    connection.commit()
    return newest


def _scripts(config: Config) -> ScriptDirectory:
    config.set_main_option("script_location", str(SCRIPTS))
    return ScriptDirectory.from_config(config)

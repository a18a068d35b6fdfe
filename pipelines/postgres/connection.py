"""The database URL, safe to print, and PostgreSQL's faults as our errors.

A URL carries a password; it must never reach a log, a trace, a metric label or an error body.
Everything that names the database names `redacted(url)`.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

from pipelines.errors import ConfigError, NotReady

SCHEMES = ("postgresql", "postgres")


class DatabaseUnavailable(NotReady):
    """PostgreSQL did not answer or refused the connection: the routes that need it answer 503."""

    public_message = "the database is not available; retry shortly"


def check_url(url: str) -> str:
    """The URL itself when it names a PostgreSQL database; else ConfigError, URL redacted."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.path.strip("/"):
        raise ConfigError(f"the database URL must be postgresql://[user[:password]@]host[:port]/database, got {redacted(url)!r}")
    return url


def redacted(url: str) -> str:
    """The URL with its password (if any) replaced by ***; what logs and messages may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def sqlalchemy_url(url: str) -> str:
    """For SQLAlchemy (Alembic's engine): the psycopg 3 driver named in the scheme."""
    parts = urlsplit(check_url(url))
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def unavailable(url: str, exc: Exception) -> DatabaseUnavailable:
    """A connection fault, with the server's reason but never the password."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = urlsplit(url).password
    if password:
        reason = reason.replace(password, "***")
    return DatabaseUnavailable(f"PostgreSQL at {redacted(url)} is not available: {reason}")

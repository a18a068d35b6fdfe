from __future__ import annotations

import pytest

from pipelines.errors import ConfigError
from pipelines.postgres.connection import check_url, redacted, sqlalchemy_url, unavailable


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db.internal:5432/summarizer", "postgresql://app:***@db.internal:5432/summarizer"),
        ("postgresql://app:s3cret@db/summarizer?sslmode=require", "postgresql://app:***@db/summarizer?sslmode=require"),
        ("postgresql://app@db/summarizer", "postgresql://app@db/summarizer"),
    ],
)
def test_the_password_never_shows(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_a_url_that_is_not_postgresql_is_refused_without_its_password() -> None:
    with pytest.raises(ConfigError) as raised:
        check_url("mysql://app:s3cret@db/summarizer")
    assert "s3cret" not in raised.value.message and "postgresql://" in raised.value.message
    with pytest.raises(ConfigError):
        check_url("postgresql://app@db")  # no database named


def test_sqlalchemy_gets_the_psycopg_driver() -> None:
    assert sqlalchemy_url("postgres://app:pw@db:5432/x") == "postgresql+psycopg://app:pw@db:5432/x"


def test_a_fault_that_quotes_the_password_is_scrubbed() -> None:
    err = unavailable("postgresql://app:s3cret@db/x", OSError('password authentication failed: "s3cret"\nmore'))
    assert err.status_code == 503 and "s3cret" not in err.message and "***" in err.message

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.settings import Settings


def test_defaults() -> None:
    settings = Settings()
    assert settings.engine == "extractive"
    assert settings.encoder_model == "summarizer-encoder:latest"
    assert settings.default_style == "news"


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_ENGINE", "abstractive")
    monkeypatch.setenv("SUMMARIZER_MAX_INPUT_CHARS", "1234")
    settings = Settings()
    assert settings.engine == "abstractive" and settings.max_input_chars == 1234


def test_yaml_file_under_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "summarizer.yaml"
    config.write_text("max_batch_size: 8\nrequest_timeout_s: 5\n")
    monkeypatch.setenv("SUMMARIZER_CONFIG_FILE", str(config))
    monkeypatch.setenv("SUMMARIZER_MAX_BATCH_SIZE", "16")
    settings = Settings()
    assert settings.request_timeout_s == 5 and settings.max_batch_size == 16


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SUMMARIZER_ENGINE": "magic"}, "engine"),
        ({"SUMMARIZER_MAX_INPUT_CHARS": "0"}, "max_input_chars"),
        ({"SUMMARIZER_DEVICE": "tpu"}, "device must be auto, cpu, mps or cuda"),
        ({"SUMMARIZER_STYLES_FILE": "/no/such/file.yaml"}, "styles_file must be an existing YAML file"),
        ({"SUMMARIZER_MAX_BODY_BYTES": "10", "SUMMARIZER_MAX_INPUT_CHARS": "100"}, "max_body_bytes must be >="),
        ({"SUMMARIZER_ROLE": "live"}, "role=live splits live and job work across replicas"),
        ({"SUMMARIZER_ROLE": "jobs"}, "set database_url (PostgreSQL), or use role=all"),
        ({"SUMMARIZER_ROLE": "batch"}, "role"),
        ({"SUMMARIZER_JOBS_MIN_SHARE": "0.5", "SUMMARIZER_LONG_MIN_SHARE": "0.5"}, "live requests need the rest"),
        ({"SUMMARIZER_JOBS_MIN_SHARE": "1.5"}, "jobs_min_share"),
    ],
)
def test_bad_values_fail_with_clear_messages(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert fragment in str(info.value)


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_CONFIG_FILE", "/no/such.yaml")
    with pytest.raises(ValueError, match="SUMMARIZER_CONFIG_FILE must name an existing YAML file"):
        Settings()


def test_unknown_key_in_file_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "summarizer.yaml"
    config.write_text("max_batch_sizes: 8\n")
    monkeypatch.setenv("SUMMARIZER_CONFIG_FILE", str(config))
    with pytest.raises(ValidationError, match="max_batch_sizes"):
        Settings()


def test_redaction_settings_from_json_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_REDACT_ENTITIES", '["EMAIL_ADDRESS", "EMPLOYEE_ID"]')
    monkeypatch.setenv("SUMMARIZER_REDACT_PATTERNS", '{"EMPLOYEE_ID": "\\\\bEMP-\\\\d{6}\\\\b"}')
    monkeypatch.setenv("SUMMARIZER_FOOTER_PATTERNS", '["^Sent via .*$"]')
    monkeypatch.setenv("SUMMARIZER_REDACT", "false")
    settings = Settings()
    assert settings.redact_entities == ["EMAIL_ADDRESS", "EMPLOYEE_ID"]
    assert settings.redact_patterns == {"EMPLOYEE_ID": r"\bEMP-\d{6}\b"}
    assert settings.footer_patterns == ["^Sent via .*$"]
    assert settings.redact is False


def test_the_database_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_DATABASE_URL", "postgresql://app:hunter2-db@db:5432/summarizer")
    settings = Settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value().endswith("@db:5432/summarizer")
    assert "hunter2-db" not in repr(settings) and "hunter2-db" not in str(settings.model_dump())


def test_a_qdrant_index_and_a_database_are_refused_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_DATABASE_URL", "postgresql://app@db/summarizer")
    monkeypatch.setenv("SUMMARIZER_RAG_STORE", "qdrant")
    with pytest.raises(ValidationError, match="database_url is set and the index lives in PostgreSQL"):
        Settings()

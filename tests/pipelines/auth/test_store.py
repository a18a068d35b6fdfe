"""Tokens: issued with a salted hash, checked in constant time, revoked without a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pipelines.auth.store as auth
from pipelines.auth.cli import main
from pipelines.auth.store import Caller, TokenFile, TokenStore
from pipelines.errors import ConfigError


@pytest.fixture(autouse=True)
def reload_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "RELOAD_CHECK_S", 0.0)


def test_the_file_keeps_a_salted_hash_never_the_secret(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    first, token_a = tokens.create("ingest", ["summarize", "batch"])
    second, token_b = tokens.create("reports", ["summarize"])
    stored = (tmp_path / "tokens.json").read_text()
    for token in (token_a, token_b):
        assert token.split("_", 2)[2] not in stored
    assert first.salt != second.salt and first.hash != second.hash
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0


def test_check_names_the_caller_and_its_scopes(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    _, token = tokens.create("ingest", ["summarize", "batch"])
    store = TokenStore(file=tokens.path)
    assert store.check(f"Bearer {token}") == Caller("ingest", frozenset({"summarize", "batch"}))
    assert store.check(f"bearer {token}") == Caller("ingest", frozenset({"summarize", "batch"}))


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Bearer not-a-token", "malformed"),
        ("Bearer smz_000000000000_secret", "unknown"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(tmp_path: Path, header: str | None, verdict: str) -> None:
    TokenFile(tmp_path / "tokens.json").create("ingest", ["summarize"])
    assert TokenStore(file=tmp_path / "tokens.json").check(header) == verdict


def test_a_right_id_with_a_wrong_secret_is_unknown(tmp_path: Path) -> None:
    _, token = TokenFile(tmp_path / "tokens.json").create("ingest", ["summarize"])
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    store = TokenStore(file=tmp_path / "tokens.json")
    assert store.check(f"Bearer {forged}") == "unknown"
    assert isinstance(store.check(f"Bearer {token}"), Caller)
    assert store.check(f"Bearer {forged}") == "unknown", "a cached good token must not vouch for a forged one"


def test_revocation_and_new_tokens_apply_without_a_restart(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    _, token = tokens.create("ingest", ["summarize"])
    store = TokenStore(file=tokens.path)
    assert isinstance(store.check(f"Bearer {token}"), Caller)
    assert tokens.revoke("ingest") == 1
    assert store.check(f"Bearer {token}") == "revoked"
    _, fresh = tokens.create("ingest", ["batch"])
    assert store.check(f"Bearer {fresh}") == Caller("ingest", frozenset({"batch"}))
    assert store.live_count() == 1


def test_a_broken_file_keeps_the_last_good_tokens(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    _, token = tokens.create("ingest", ["summarize"])
    store = TokenStore(file=tokens.path)
    tokens.path.write_text("{half")
    assert isinstance(store.check(f"Bearer {token}"), Caller)


def test_inline_tokens_from_a_secrets_manager(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    _, token = tokens.create("ingest", ["jobs"])
    store = TokenStore(inline=tokens.path.read_text())
    assert store.configured and store.check(f"Bearer {token}") == Caller("ingest", frozenset({"jobs"}))


@pytest.mark.parametrize(
    "raw",
    ["{nope", "[]", json.dumps({"tokens": [{"id": "x"}]}),
     json.dumps({"tokens": [{"id": "x", "name": "n", "scopes": ["root"], "salt": "00", "hash": "00"}]})],
)  # fmt: skip
def test_bad_token_configuration_fails_with_a_message(raw: str) -> None:
    with pytest.raises(ConfigError):
        TokenStore(inline=raw)


def test_create_refuses_unknown_scopes_and_duplicate_live_names(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    with pytest.raises(ConfigError, match="scopes must be"):
        tokens.create("x", ["admin"])
    tokens.create("x", ["summarize"])
    with pytest.raises(ConfigError, match="exists"):
        tokens.create("x", ["summarize"])


def test_the_cli_prints_the_token_once_and_lists_no_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.json"
    assert main(["--file", str(path), "create", "ingest", "--scopes", "summarize,batch"]) == 0
    token = capsys.readouterr().out.strip()
    assert isinstance(TokenStore(file=path).check(f"Bearer {token}"), Caller)
    assert main(["--file", str(path), "list"]) == 0
    listed = capsys.readouterr().out
    assert "ingest\tsummarize,batch\tlive" in listed and token.split("_", 2)[2] not in listed
    assert main(["--file", str(path), "revoke", "ingest"]) == 0
    assert main(["--file", str(path), "revoke", "ingest"]) == 1
    assert main(["--file", str(path), "create", "x", "--scopes", "root"]) == 2


def test_start_up_refuses_to_run_open_when_tokens_are_required(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from pipelines.auth.store import check_auth
    from pipelines.settings import Settings

    log = logging.getLogger("test.auth")
    with pytest.raises(ConfigError, match="auth_required"):
        check_auth(Settings(auth_required=True), TokenStore(), log)
    with pytest.raises(ConfigError, match="auth_required"):
        check_auth(Settings(auth_required=True), TokenStore(file=tmp_path / "none.json"), log)
    with caplog.at_level(logging.WARNING, logger="test.auth"):
        check_auth(Settings(), TokenStore(), log)
    assert "AUTH IS OFF" in caplog.text
    TokenFile(tmp_path / "tokens.json").create("ingest", ["summarize"])
    check_auth(Settings(auth_required=True), TokenStore(file=tmp_path / "tokens.json"), log)


def test_the_fast_check_never_derives_a_key_and_defers_only_what_needs_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    _, token = tokens.create("ingest", ["summarize"])
    store = TokenStore(file=tokens.path)
    derived: list[str] = []
    real_hash = auth.hash_secret

    def counting_hash(secret: str, salt: bytes) -> str:
        derived.append(secret)
        return real_hash(secret, salt)

    monkeypatch.setattr(auth, "hash_secret", counting_hash)
    token_id = token.split("_", 2)[1]
    assert store.check_fast(None) == "missing"
    assert store.check_fast("Basic abc") == "malformed"
    assert store.check_fast(f"Bearer {auth.PREFIX}_nosuchid_secret") == "unknown"
    assert store.check_fast(f"Bearer {auth.PREFIX}_{token_id}_wrong") is None  # only the hash can tell
    assert store.check_fast(f"Bearer {token}") is None
    assert derived == []
    assert store.check(f"Bearer {auth.PREFIX}_{token_id}_wrong") == "unknown"
    assert store.check(f"Bearer {token}") == Caller("ingest", frozenset({"summarize"}))
    assert store.check_fast(f"Bearer {token}") == Caller("ingest", frozenset({"summarize"}))  # verified once
    assert len(derived) == 2

"""Bearer tokens for internal callers: issued by `python -m pipelines.auth`, checked by middleware.

A token reads `smz_<id>_<secret>`. The token file keeps, per id, a name, scopes, a random salt and
the scrypt hash of the secret, never the secret. A check looks the id up and compares hashes in
constant time. The file is re-read when it changes (revocation without a restart); tokens given
as JSON in the environment (a secrets manager) are fixed for the process's life.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.errors import ConfigError
from pipelines.settings import Settings

SCOPES = ("summarize", "batch", "rag", "rag:write", "jobs", "metrics")
PREFIX = "smz"
RELOAD_CHECK_S = 1.0
# scrypt at n=2**14 costs ~20 ms: too slow per request, so verified tokens are cached by hash.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_secret(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT).hex()


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    scopes: tuple[str, ...]
    salt: str
    hash: str
    created_at: str
    revoked: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenRecord:
        try:
            return cls(
                id=str(data["id"]), name=str(data["name"]), scopes=tuple(data["scopes"]), salt=str(data["salt"]),
                hash=str(data["hash"]), created_at=str(data.get("created_at", "")), revoked=bool(data.get("revoked")),
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"token records must have id, name, scopes, salt and hash, got a record without {exc}") from None


@dataclass(frozen=True)
class Caller:
    """Who made a request: the token's name and scopes (never the secret)."""

    name: str
    scopes: frozenset[str]


Verdict = Caller | Literal["missing", "malformed", "unknown", "revoked"]


def parse_records(raw: str, origin: str) -> dict[str, TokenRecord]:
    try:
        data = json.loads(raw) if raw.strip() else {"tokens": []}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{origin} must be JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
        raise ConfigError(f'{origin} must be {{"tokens": [...]}}')
    records = [TokenRecord.from_json(item) for item in data["tokens"]]
    for record in records:
        unknown = set(record.scopes) - set(SCOPES)
        if unknown:
            raise ConfigError(f"token {record.name!r} in {origin} has unknown scopes {sorted(unknown)}; valid: {', '.join(SCOPES)}")
    return {r.id: r for r in records}


@dataclass
class TokenFile:
    """The token file the CLI writes: read, add, revoke, written atomically."""

    path: Path

    def read(self) -> dict[str, TokenRecord]:
        if not self.path.exists():
            return {}
        return parse_records(self.path.read_text(), str(self.path))

    def write(self, records: Iterable[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tokens": [asdict(r) for r in records]}, indent=2) + "\n")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)  # readers see the old file or the new one, never half of one

    def create(self, name: str, scopes: Iterable[str]) -> tuple[TokenRecord, str]:
        """A new token; returns its record and the full token, which is shown once and not stored."""
        scopes = tuple(dict.fromkeys(scopes))
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ConfigError(f"scopes must be some of {', '.join(SCOPES)}, got {', '.join(scopes) or 'none'}")
        records = self.read()
        if any(r.name == name and not r.revoked for r in records.values()):
            raise ConfigError(f"a live token named {name!r} exists; revoke it first or pick another name")
        token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        record = TokenRecord(
            id=token_id, name=name, scopes=scopes, salt=salt.hex(), hash=hash_secret(secret, salt),
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )  # fmt: skip
        self.write([*records.values(), record])
        return record, f"{PREFIX}_{token_id}_{secret}"

    def revoke(self, name: str) -> int:
        records = self.read()
        hit = [r for r in records.values() if r.name == name and not r.revoked]
        self.write([TokenRecord(**{**asdict(r), "revoked": True}) if r in hit else r for r in records.values()])
        return len(hit)


@dataclass
class TokenStore:
    """What the middleware asks: who is this bearer token? Reloads the file when it changes."""

    file: Path | None = None
    inline: str | None = None
    _records: dict[str, TokenRecord] = field(default_factory=dict)
    _stamp: tuple[int, int] | None = None
    _checked: float = 0.0
    _verified: dict[str, str] = field(default_factory=dict)  # token digest -> record id
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._load()

    @property
    def configured(self) -> bool:
        return self.file is not None or self.inline is not None

    def live_count(self) -> int:
        self._maybe_reload()
        return sum(not r.revoked for r in self._records.values())

    def _load(self) -> None:
        records: dict[str, TokenRecord] = {}
        if self.inline is not None:
            records.update(parse_records(self.inline, "SUMMARIZER_AUTH_TOKENS"))
        if self.file is not None:
            try:
                stat = self.file.stat()
                self._stamp = (stat.st_mtime_ns, stat.st_size)
                records.update(parse_records(self.file.read_text(), str(self.file)))
            except FileNotFoundError:
                self._stamp = None
        self._records = records
        self._verified.clear()

    def _maybe_reload(self) -> None:
        if self.file is None or time.monotonic() - self._checked < RELOAD_CHECK_S:
            return
        with self._lock:
            self._checked = time.monotonic()
            try:
                stat = self.file.stat()
                stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                try:
                    self._load()
                except ConfigError:
                    pass  # a half-edited file: keep the last good tokens, try again next time

    def check(self, authorization: str | None) -> Verdict:
        """The caller an Authorization header proves, or why it proves none. May run scrypt
        (~20 ms): callers on an event loop use `check_fast` first and run this in a thread."""
        return self._check(authorization, slow=True) or "unknown"

    def check_fast(self, authorization: str | None) -> Verdict | None:
        """`check` without the key derivation: None when only scrypt can decide (a token seen for
        the first time). Cheap enough for the event loop, so repeated guesses at a known token
        id cannot stall a worker 20 ms each."""
        return self._check(authorization, slow=False)

    def _check(self, authorization: str | None, slow: bool) -> Verdict | None:
        self._maybe_reload()
        if not authorization:
            return "missing"
        scheme, _, token = authorization.partition(" ")
        parts = token.strip().split("_", 2)
        if scheme.lower() != "bearer" or len(parts) != 3 or parts[0] != PREFIX:
            return "malformed"
        record = self._records.get(parts[1])
        if record is None:
            return "unknown"
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        if self._verified.get(digest) != record.id:
            if not slow:
                return None
            if not hmac.compare_digest(hash_secret(parts[2], bytes.fromhex(record.salt)), record.hash):
                return "unknown"
            self._verified[digest] = record.id
        if record.revoked:
            return "revoked"
        return Caller(record.name, frozenset(record.scopes))


def check_auth(settings: Settings, store: TokenStore, log: logging.Logger) -> None:
    """Start-up: refuse to run open when tokens are required; say loudly when it runs open."""
    if store.configured and store.live_count():
        return
    if settings.auth_required:
        raise ConfigError(
            "auth_required is set but no live token is configured; create one with "
            "`python -m pipelines.auth create NAME --scopes ...` and set SUMMARIZER_AUTH_TOKENS_FILE"
        )
    if store.configured:
        log.warning("AUTH: tokens are configured but none is live: every request except probes gets 401")
    else:
        log.warning(
            "AUTH IS OFF: no tokens configured (SUMMARIZER_AUTH_TOKENS_FILE / SUMMARIZER_AUTH_TOKENS); "
            "anyone who reaches this port can use every route. Set SUMMARIZER_AUTH_REQUIRED=true in production."
        )

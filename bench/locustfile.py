"""Locust load for /summarize: ~600-word documents, optionally paced, with a per-status record.

    .venv/bin/python -m locust -f bench/locustfile.py --headless -H http://127.0.0.1:3000 \\
        -u 24 -r 24 -t 30s --rate-per-user 0.25 --outcomes-file out.json --csv out

Run it as `python -m locust` from the repository root, so `bench` and `tests` import. Documents
are the eval set's news articles (../shared/eval/news.jsonl, read in place) unless
`--generated-docs` is given: then they are built from the test texts, which the test suite uses.

`--rate-per-user R` paces each user to R requests/s (offered load = users x R, as long as an
accepted request takes less than 1/R s); 0 is a closed loop. A 429 that carries Retry-After is
load shedding, the expected answer under overload, so it counts as a success in Locust's stats;
`--outcomes-file` writes what Locust's CSV cannot tell apart: counts per status, whether every
429 had Retry-After and our JSON error body, and the latency of accepted (200) requests.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import HttpUser, events, task
from locust.env import Environment
from locust.user.wait_time import constant_throughput

from bench.docs import DEFAULT_DOCS, load_docs
from tests.texts import LEGAL, NEWS

DOCUMENTS = 64
TARGET_WORDS = 600


def generated_docs(count: int = DOCUMENTS, seed: int = 7) -> list[str]:
    """~600-word documents from the test texts, sentences shuffled so no two are the same."""
    sentences = [s for s in (NEWS + "\n" + LEGAL).splitlines() if s.strip()]
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        words = 0
        picked: list[str] = []
        while words < TARGET_WORDS:
            sentence = rng.choice(sentences)
            picked.append(sentence)
            words += len(sentence.split())
        docs.append("\n".join(picked))
    return docs


@events.init_command_line_parser.add_listener
def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs-file", default=str(DEFAULT_DOCS), help="JSONL with a 'document' field per line")
    parser.add_argument("--generated-docs", action="store_true", help="documents built from tests/texts.py")
    parser.add_argument("--rate-per-user", type=float, default=0.0, help="requests/s per user; 0: closed loop")
    parser.add_argument("--outcomes-file", default="", help="write per-status counts and latencies here (JSON)")


@dataclass
class Outcomes:
    """What happened to each request, by HTTP status (0: no response, e.g. connection refused)."""

    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)  # the header's value on each 429
    error_types: Counter[str] = field(default_factory=Counter)  # our JSON error body's type, per status
    exceptions: Counter[str] = field(default_factory=Counter)
    accepted_ms: list[float] = field(default_factory=list)
    accepted_log: list[tuple[float, float]] = field(default_factory=list)  # (start epoch s, ms), for throughput
    first_start: float | None = None

    def add(
        self, status: int, headers: Any, body: bytes, start: float, response_time_ms: float, exception: BaseException | None
    ) -> None:
        self.statuses[status] += 1
        self.first_start = start if self.first_start is None else min(self.first_start, start)
        if status == 200:
            self.accepted_ms.append(response_time_ms)
            self.accepted_log.append((start, response_time_ms))
        if status == 429:
            self.retry_after[headers.get("Retry-After") or "missing"] += 1
        if status >= 400:
            self.error_types[f"{status} {error_type(body)}"] += 1
        if exception is not None and status != 429:
            self.exceptions[type(exception).__name__] += 1

    def summary(self) -> dict[str, Any]:
        ms = sorted(self.accepted_ms)

        def pct(q: float) -> float | None:
            return round(ms[min(len(ms) - 1, int(q * len(ms)))], 1) if ms else None

        return {
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "retry_after": dict(self.retry_after),
            "error_types": dict(self.error_types),
            "exceptions": dict(self.exceptions),
            "accepted": {"count": len(ms), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": pct(1.0)},
            "first_start": self.first_start,
            "accepted_log": sorted((round(t, 3), round(ms, 1)) for t, ms in self.accepted_log),
        }


def error_type(body: bytes) -> str:
    """Our error body is {"error": {"type": ..., "message": ..., "status": ...}}; anything else is 'other'."""
    try:
        payload = json.loads(body)
        kind = payload["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return "other"
    return str(kind)


outcomes = Outcomes()


@events.request.add_listener
def record(
    response_time: float, start_time: float, response: Any = None, exception: BaseException | None = None, **_: Any
) -> None:
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None) or {}
    body = getattr(response, "content", b"") or b""
    outcomes.add(status, headers, body, start_time, response_time, exception)


@events.quitting.add_listener
def write_outcomes(environment: Environment, **_: Any) -> None:
    path = getattr(environment.parsed_options, "outcomes_file", "")
    if path:
        Path(path).write_text(json.dumps(outcomes.summary(), indent=2))


class Summarize(HttpUser):
    """POST /summarize with one document per request; documents rotate per user."""

    docs: list[str] = []

    def on_start(self) -> None:
        options = self.environment.parsed_options
        if not Summarize.docs:
            generated = bool(getattr(options, "generated_docs", False))
            Summarize.docs = generated_docs() if generated else load_docs(Path(getattr(options, "docs_file", DEFAULT_DOCS)))
        rate = float(getattr(options, "rate_per_user", 0.0))
        self._pace = constant_throughput(rate) if rate > 0 else None
        self._next = random.randrange(len(Summarize.docs))
        if rate > 0:
            # Users start together; a random phase spreads their arrivals over the period, so
            # the offered load is a steady rate, not a wave of every user at once.
            time.sleep(random.uniform(0, 1 / rate))  # gevent-patched: yields to the other users

    def wait_time(self) -> float:
        return self._pace(self) if self._pace is not None else 0.0

    @task
    def summarize(self) -> None:
        text = Summarize.docs[self._next % len(Summarize.docs)]
        self._next += 1
        with self.client.post("/summarize", json={"text": text}, name="/summarize", catch_response=True) as response:
            if response.status_code == 200:
                response.success()
            elif response.status_code == 429 and response.headers.get("Retry-After"):
                response.success()  # shed with a hint when to come back: what overload should look like
            elif response.status_code == 429:
                response.failure("429 without Retry-After")
            else:
                response.failure(f"{response.status_code} {error_type(response.content or b'')}")

"""Overload through a real `bentoml serve`, driven by locust (bench/locustfile.py) as a subprocess.

A small admission limit makes "capacity" quick to reach. The test measures capacity (closed loop at
the limit), offers about twice that for 30 s, and then drops back to a closed loop: the server must
shed the excess with 429 + Retry-After (no 5xx, no dropped connections), keep the queue and memory
bounded, and come back to full throughput with no 429s.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.server.conftest import REPO, Server, StartServer, wait_for
from tests.texts import NEWS

pytestmark = [pytest.mark.server, pytest.mark.timeout(420)]
LIMIT = 6  # SUMMARIZER_MAX_CONCURRENCY for this server
REQUEST_TIMEOUT_S = 30
CLOSED_LOOP_S = 14  # capacity and recovery runs ...
WARMUP_S = 4  # ... of which the first seconds are not counted
OVERLOAD_S = 30
OVERLOAD_FACTOR = 2.0
OVERLOAD_USERS = 4 * LIMIT  # enough users that those waiting on accepted requests don't lower the offered rate
STOP_TIMEOUT_S = REQUEST_TIMEOUT_S  # users finish their last request, so nothing is cut by locust itself
RSS_GROWTH_LIMIT_MIB = 300
RECOVERED_FLOOR = 0.8  # of capacity, in the best of ...
RECOVERY_TRIES = 3  # ... closed-loop windows after the overload
MIB = 1024 * 1024


@dataclass
class LocustRun:
    outcomes: dict[str, Any]
    aggregated: dict[str, str]  # the "Aggregated" row of locust's stats CSV
    output: str

    @property
    def statuses(self) -> dict[str, int]:
        statuses: dict[str, int] = self.outcomes["statuses"]
        return statuses

    def closed_loop_per_s(self, users: int, skip_s: float) -> float:
        """Throughput of a closed loop by Little's law: users / mean latency of the requests started
        after `skip_s`. Counting completions in a window would be lumpy: a batch ends many at once."""
        start = float(self.outcomes["first_start"])
        latencies_s = [ms / 1000 for t, ms in self.outcomes["accepted_log"] if t >= start + skip_s]
        assert len(latencies_s) >= users, self.outcomes
        return float(users * len(latencies_s) / sum(latencies_s))

    def accepted_per_s(self) -> float:
        """Accepted (200) documents per second, from the first request sent to the last one served."""
        log = self.outcomes["accepted_log"]
        active_s = max(t + ms / 1000 for t, ms in log) - float(self.outcomes["first_start"])
        return float(len(log) / active_s)


def run_locust(server: Server, prefix: Path, users: int, run_time_s: int, rate_per_user: float = 0.0) -> LocustRun:
    cmd = [
        sys.executable, "-m", "locust", "-f", "bench/locustfile.py", "--headless", "--only-summary",
        "-H", server.url, "-u", str(users), "-r", str(users), "-t", f"{run_time_s}s",
        "--stop-timeout", str(STOP_TIMEOUT_S), "--generated-docs", "--rate-per-user", f"{rate_per_user:.4f}",
        "--outcomes-file", f"{prefix}.json", "--csv", str(prefix),
    ]  # fmt: skip
    # `-m locust` from the repository root, so the locustfile imports `bench` and `tests`.
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=run_time_s + STOP_TIMEOUT_S + 60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"locust failed ({done.returncode}):\n{output[-3000:]}\n{server.log_tail()}"
    with Path(f"{prefix}_stats.csv").open() as f:
        aggregated = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    return LocustRun(json.loads(Path(f"{prefix}.json").read_text()), aggregated, output)


def tree_rss(server: Server) -> int:
    """Resident memory of `bentoml serve` and every worker under it, in bytes."""
    root = psutil.Process(server.proc.pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


@dataclass
class Peaks:
    rss: int = 0
    model_in_progress: float = 0.0
    samples: int = 0


@contextmanager
def sampling(server: Server, every_s: float = 0.5) -> Iterator[Peaks]:
    """Peak tree RSS and model-side queue while the block runs."""
    peaks = Peaks()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every_s):
            peaks.rss = max(peaks.rss, tree_rss(server))
            peaks.model_in_progress = max(peaks.model_in_progress, server.in_progress("summarizer-model"))
            peaks.samples += 1

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path) -> Server:
    return start_server(bentoml_home, max_concurrency=str(LIMIT), request_timeout_s=str(REQUEST_TIMEOUT_S))


def test_overload_is_shed_with_429_and_the_server_recovers(server: Server, tmp_path: Path) -> None:
    # The batcher warms up on its first requests (BENTOML-NOTES); keep that out of the capacity run.
    for _ in range(3):
        assert httpx.post(f"{server.url}/summarize", json={"text": NEWS}, timeout=REQUEST_TIMEOUT_S).status_code == 200

    capacity_run = run_locust(server, tmp_path / "capacity", users=LIMIT, run_time_s=CLOSED_LOOP_S)
    assert capacity_run.statuses == {"200": capacity_run.outcomes["accepted"]["count"]}, capacity_run.outcomes
    capacity = capacity_run.closed_loop_per_s(LIMIT, WARMUP_S)
    print("capacity:", json.dumps({"docs_per_s": round(capacity, 2), "accepted": capacity_run.outcomes["accepted"]}))
    assert capacity > 0.5, capacity_run.outcomes

    rss_before = tree_rss(server)
    offered = OVERLOAD_FACTOR * capacity
    with sampling(server) as peaks:
        overload = run_locust(server, tmp_path / "overload", OVERLOAD_USERS, OVERLOAD_S, offered / OVERLOAD_USERS)
    rss_after = tree_rss(server)
    statuses = overload.statuses
    shed = statuses.get("429", 0)
    sent = sum(statuses.values())
    report = {
        "capacity_docs_per_s": round(capacity, 2), "offered_per_s": round(sent / OVERLOAD_S, 2),
        "accepted_per_s": round(overload.accepted_per_s(), 2), "statuses": statuses,
        "accepted": overload.outcomes["accepted"], "peak_model_in_progress": peaks.model_in_progress,
        "rss_mib": [round(rss_before / MIB), round(peaks.rss / MIB), round(rss_after / MIB)],
    }  # fmt: skip
    print("overload:", json.dumps(report))

    # The test really overloaded the server, and the excess was shed, every time with a hint.
    assert sent / OVERLOAD_S > 1.5 * capacity, report
    assert shed > 0, report
    assert set(statuses) <= {"200", "429"}, report  # no 5xx, no 4xx of another kind, no dropped connection
    assert overload.outcomes["exceptions"] == {}, report
    assert overload.outcomes["retry_after"] == {"2": shed}, overload.outcomes
    assert overload.outcomes["error_types"] == {"429 Overloaded": shed}, overload.outcomes
    assert overload.aggregated["Failure Count"] == "0", overload.aggregated
    # What was accepted was served, within the request timeout, at about the capacity.
    assert overload.outcomes["accepted"]["max_ms"] < REQUEST_TIMEOUT_S * 1000, report
    # A floor against collapse, not a target: with locust (24 users) on the same 2 cores, 7 runs
    # gave 0.58-0.79x capacity (bench.perf, with a lighter client, measures 0.87-1.04x).
    assert overload.accepted_per_s() > 0.5 * capacity, report
    # Bounded: the model never sees more than the admission limit, memory does not run away.
    assert peaks.samples > 10 and 0 < peaks.model_in_progress <= LIMIT, report
    assert peaks.rss - rss_before < RSS_GROWTH_LIMIT_MIB * MIB, report
    assert rss_after - rss_before < RSS_GROWTH_LIMIT_MIB * MIB, report

    # Once the overload ends, nothing stays in flight: every accepted request was answered.
    wait_for(lambda: server.in_progress("summarizer-model") == 0 and server.in_progress("summarizer") == 0, 60)

    # Load back under the limit: full throughput, nothing shed (a leaked admission slot would 429 here).
    # A 10 s window on 2 shared cores varies by about 20%, so a slow window is measured again: a leak
    # or a thread left spinning slows every window, noise does not (one CI run gave 0.80x once).
    recovered = []
    for attempt in range(RECOVERY_TRIES):
        recovery = run_locust(server, tmp_path / f"recovery{attempt}", users=LIMIT, run_time_s=CLOSED_LOOP_S)
        recovered.append(recovery.closed_loop_per_s(LIMIT, WARMUP_S))
        print("recovery:", json.dumps({"docs_per_s": round(recovered[-1], 2), "statuses": recovery.statuses}))
        assert recovery.statuses == {"200": recovery.outcomes["accepted"]["count"]}, recovery.outcomes
        if recovered[-1] >= RECOVERED_FLOOR * capacity:
            break
    assert max(recovered) >= RECOVERED_FLOOR * capacity, (recovered, capacity)

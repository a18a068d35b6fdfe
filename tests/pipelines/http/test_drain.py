from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType

import psutil
import pytest

from pipelines.http.drain import WORKER_MODULE, defer_signal, workers_of

SIG = signal.SIGUSR1


@pytest.fixture
def forwarded() -> Iterator[list[float]]:
    """SIGUSR1 gets a recording handler (the server's, in real life); the original comes back afterwards."""
    calls: list[float] = []

    def record(signum: int, frame: FrameType | None) -> None:
        calls.append(time.monotonic())

    original = signal.signal(SIG, record)
    try:
        yield calls
    finally:
        signal.signal(SIG, original)


def wait_until(condition: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_the_signal_is_passed_on_only_once_the_condition_holds(forwarded: list[float]) -> None:
    entry_gone = False
    assert defer_signal(SIG, lambda: entry_gone, max_delay_s=10, poll_s=0.01)
    os.kill(os.getpid(), SIG)
    time.sleep(0.3)
    assert forwarded == []  # still serving
    entry_gone = True
    gone_at = time.monotonic()
    wait_until(lambda: forwarded, 3)
    assert len(forwarded) == 1 and forwarded[0] - gone_at < 0.5


def test_the_wait_is_bounded_and_a_second_signal_starts_no_second_wait(forwarded: list[float]) -> None:
    defer_signal(SIG, lambda: False, max_delay_s=0.3, poll_s=0.01)
    sent = time.monotonic()
    os.kill(os.getpid(), SIG)
    os.kill(os.getpid(), SIG)
    time.sleep(0.8)
    assert len(forwarded) == 1 and 0.3 <= forwarded[0] - sent < 0.7


def test_a_failing_check_does_not_hold_the_exit_back(forwarded: list[float]) -> None:
    def broken() -> bool:
        raise psutil.AccessDenied()

    defer_signal(SIG, broken, max_delay_s=60, poll_s=0.01)
    os.kill(os.getpid(), SIG)
    wait_until(lambda: forwarded, 3)
    assert len(forwarded) == 1


def test_nothing_to_defer_without_a_python_handler() -> None:
    original = signal.signal(SIG, signal.SIG_DFL)
    try:
        assert not defer_signal(SIG, lambda: True, max_delay_s=1)
        assert signal.getsignal(SIG) is signal.SIG_DFL
    finally:
        signal.signal(SIG, original)


def test_workers_are_found_by_service_name_and_disappear_when_they_exit() -> None:
    def worker(name: str) -> subprocess.Popen[bytes]:
        # The arguments after -c only have to look like BentoML's worker command line.
        args = [sys.executable, "-c", "import time; time.sleep(30)", "-m", WORKER_MODULE, "--service-name", name]
        return subprocess.Popen(args)

    entry, model = worker("summarizer"), worker("summarizer-model")
    try:
        me = psutil.Process()
        wait_until(lambda: len(workers_of(me, "summarizer")) == 1, 5)
        assert [p.pid for p in workers_of(me, "summarizer")] == [entry.pid]
        assert [p.pid for p in workers_of(me, "summarizer-model")] == [model.pid]
        entry.kill()
        entry.wait()
        assert workers_of(me, "summarizer") == []
        assert workers_of(None, "summarizer") == []
    finally:
        for proc in (entry, model):
            proc.kill()
            proc.wait()

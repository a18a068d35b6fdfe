"""The engine thread: lane order, preemption at passes, minimum shares. Counts orderings, not time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from pipelines.scheduling.lanes import Lane
from pipelines.scheduling.scheduler import EngineScheduler, preemption_point

T = TypeVar("T")


class Recorder:
    """Fake model work: `passes` passes, each recorded, with a preemption point between them."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gate = threading.Event()

    def work(
        self, name: str, passes: int = 1, wait_gate: bool = False, pass_s: float = 0.0, until: threading.Event | None = None
    ) -> Callable[[], str]:
        def run() -> str:
            if wait_gate:
                self.gate.wait(5)  # holds the engine until the test has queued everything
            for i in range(passes):
                if until is not None and until.is_set():
                    break
                preemption_point()
                self.log.append(f"{name}{i}")
                if pass_s:
                    threading.Event().wait(pass_s)
            return name

        return run


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_live_work_queued_behind_a_job_runs_first() -> None:
    async def scenario() -> list[str]:
        rec, sched = Recorder(), EngineScheduler({})
        blocker = asyncio.ensure_future(sched.run(Lane.JOB, rec.work("blocker", wait_gate=True)))
        await asyncio.sleep(0.05)
        job = asyncio.ensure_future(sched.run(Lane.JOB, rec.work("job", passes=2)))
        long = asyncio.ensure_future(sched.run(Lane.LONG, rec.work("long", passes=2)))
        live = asyncio.ensure_future(sched.run(Lane.LIVE, rec.work("live")))
        await asyncio.sleep(0.05)
        rec.gate.set()
        assert list(await asyncio.gather(blocker, job, long, live)) == ["blocker", "job", "long", "live"]
        return rec.log

    log = run(scenario())
    # The blocker's first pass let the waiting live work in. The long document is held back while
    # live traffic was seen in the last second (lanes.HOLD_AFTER_LIVE_S); the job lane is not.
    assert log == ["live0", "blocker0", "job0", "job1", "long0", "long1"]


def test_a_long_pass_sequence_is_interleaved_with_live_work_at_every_pass() -> None:
    async def scenario() -> tuple[list[str], int]:
        rec, sched = Recorder(), EngineScheduler({})
        long = asyncio.ensure_future(sched.run(Lane.LONG, rec.work("long", passes=50, pass_s=0.002)))
        lives = []
        for i in range(5):
            await asyncio.sleep(0.01)
            lives.append(asyncio.ensure_future(sched.run(Lane.LIVE, rec.work(f"live{i}-"))))
        await asyncio.gather(long, *lives)
        return rec.log, sched.preemptions[Lane.LIVE]

    log, preemptions = run(scenario())
    # Every live request finished before the long document's last pass: none waited for all of it.
    assert log.index("long49") > max(log.index(f"live{i}-0") for i in range(5))
    assert preemptions >= 4  # at most the first may have arrived before the long work started


def test_a_long_document_gets_its_minimum_share_while_live_traffic_lasts() -> None:
    """Live work arrives every few ms; the long document runs at its minimum share, not in every gap."""

    async def scenario(min_share: float) -> tuple[int, int]:
        rec, sched = Recorder(), EngineScheduler({Lane.LONG: min_share}, window_s=1.0)
        long_stop = threading.Event()
        long = asyncio.ensure_future(sched.run(Lane.LONG, rec.work("long", passes=10_000, pass_s=0.001, until=long_stop)))
        for _ in range(150):  # one client with gaps longer than its work: the engine idles between
            await sched.run(Lane.LIVE, rec.work("live", passes=1, pass_s=0.001))
            await asyncio.sleep(0.004)
        long_stop.set()
        await long
        return sum(e.startswith("long") for e in rec.log), sum(e.startswith("live") for e in rec.log)

    long_passes, live_passes = run(scenario(0.2))
    # Filling every gap would give the long document ~4 passes per live pass; held, about 0.25.
    assert long_passes < 1.5 * live_passes, (long_passes, live_passes)
    assert long_passes > 0.05 * live_passes, (long_passes, live_passes)


def test_a_job_keeps_its_minimum_share_under_endless_live_work() -> None:
    """Live work never stops arriving; with a 0.3 minimum share the job still gets its passes."""

    async def scenario(min_share: float) -> tuple[int, int]:
        rec, sched = Recorder(), EngineScheduler({Lane.JOB: min_share}, window_s=1.0)
        stop, job_stop = asyncio.Event(), threading.Event()
        job = asyncio.ensure_future(sched.run(Lane.JOB, rec.work("job", passes=10_000, pass_s=0.001, until=job_stop)))

        async def live_client() -> None:
            while not stop.is_set():
                await sched.run(Lane.LIVE, rec.work("live", passes=1, pass_s=0.001))

        clients = [asyncio.ensure_future(live_client()) for _ in range(4)]
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*clients)
        job_stop.set()
        await job
        job_passes = sum(entry.startswith("job") for entry in rec.log)
        live_passes = sum(entry.startswith("live") for entry in rec.log)
        return job_passes, live_passes

    job_passes, live_passes = run(scenario(0.3))
    share = job_passes / (job_passes + live_passes)
    assert 0.15 < share < 0.6, (job_passes, live_passes)
    starved_passes, live_only = run(scenario(0.0))
    assert starved_passes / (starved_passes + live_only) < share / 2  # no minimum: live takes nearly all


def test_errors_reach_their_caller_and_the_engine_thread_lives_on() -> None:
    def boom() -> None:
        raise ValueError("bad batch")

    async def scenario() -> str:
        sched = EngineScheduler({})
        with pytest.raises(ValueError, match="bad batch"):
            await sched.run(Lane.LIVE, boom)
        return await sched.run(Lane.LIVE, lambda: "still here")

    assert run(scenario()) == "still here"


def test_work_whose_caller_gave_up_never_runs() -> None:
    async def scenario() -> list[str]:
        rec, sched = Recorder(), EngineScheduler({})
        blocker = asyncio.ensure_future(sched.run(Lane.LIVE, rec.work("blocker", wait_gate=True)))
        await asyncio.sleep(0.05)
        abandoned = asyncio.ensure_future(sched.run(Lane.LIVE, rec.work("abandoned")))
        await asyncio.sleep(0.01)
        abandoned.cancel()
        await asyncio.sleep(0.01)
        rec.gate.set()
        await blocker
        await sched.run(Lane.LIVE, rec.work("after"))
        return rec.log

    assert run(scenario()) == ["blocker0", "after0"]


def test_preemption_point_outside_the_engine_thread_does_nothing() -> None:
    preemption_point()  # the CLI and Ray run engines without a scheduler

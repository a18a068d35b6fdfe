"""One engine thread that runs model work by lane: live first, jobs in what live traffic leaves.

BentoML's batcher is first come, first served, and it hands a batch to the model only when the
previous one is done; a job's chunk in front of a live request made that request wait for the whole
chunk (issue 23: p95 6.7x worse during a job). Here every model call of the worker goes through one
queue per lane, and the engine thread takes the highest lane that has work, minimum shares aside
(pipelines/scheduling/lanes.py).

Work that is already running is preempted between model passes: the encoder (and the generator,
between micro-batches) calls `preemption_point()`, and if higher-lane work waits, it runs right there,
nested on the same thread, before the outer work goes on. So a job's chunk or a 100k-character
document holds the model for one pass (milliseconds), not for its whole length.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pipelines.observe.metrics import LANE_ENGINE_SECONDS, LANE_ITEMS, LANE_PREEMPTIONS, LANE_WAIT
from pipelines.scheduling.lanes import Lane, Usage, choose, held, must_pause

T = TypeVar("T")
_current = threading.local()  # the scheduler whose engine thread this is
PAUSE_S = 0.02  # how often held work looks again whether live traffic has paused


@dataclass
class Work:
    lane: Lane
    fn: Callable[[], Any]
    items: int  # documents or texts, for throughput
    future: Future[Any] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


class EngineScheduler:
    """Runs callables on one thread, by lane. `await run(lane, fn)` from any event loop."""

    def __init__(self, min_shares: Mapping[Lane, float], *, window_s: float = 10.0) -> None:
        self.min_shares = dict(min_shares)
        self.usage = Usage(window_s)
        # Times each lane's work ran inside lower-lane work (also a metric, which tests cannot isolate).
        self.preemptions: Counter[Lane] = Counter()
        self._queues: dict[Lane, deque[Work]] = {lane: deque() for lane in Lane}
        self._ready = threading.Condition()
        self._stack: list[Lane] = []  # lanes of the work running, outermost first
        self._mark = time.monotonic()  # when engine time was last charged to the innermost lane
        self._live_seen = float("-inf")  # when live work was last queued or finished
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    async def run(self, lane: Lane, fn: Callable[[], T], items: int = 1) -> T:
        work = Work(lane, fn, items)
        with self._ready:
            if lane is Lane.LIVE:
                self._live_seen = time.monotonic()
            elif not self._queues[lane] and lane not in self._stack:  # the lane starts after a pause
                self.usage.credit(lane, self.min_shares.get(lane, 0.0), time.monotonic())
            self._queues[lane].append(work)
            self._ready.notify()
        result: T = await asyncio.wrap_future(work.future)
        return result

    def run_waiting(self) -> None:
        """Called by the engine between passes: run any higher-lane work that should go first."""
        running = self._stack[-1]
        while True:
            work, pause = self._take(running)
            if work is not None:
                self.preemptions[work.lane] += 1
                LANE_PREEMPTIONS.labels(work.lane.label).inc()
                self._execute(work)
            elif pause:
                self._pause()
            else:
                return

    def _take(self, running: Lane | None) -> tuple[Work | None, bool]:
        """The work to run now, if any; and whether `running` must pause (a held lane at its share)."""
        with self._ready:
            waiting = [lane for lane, queue in self._queues.items() if queue]
            now = time.monotonic()
            self._charge(now)
            shares = {lane: self.usage.share(lane, now) for lane in Lane}
            holding = held(now - self._live_seen)
            lane = choose(waiting, shares, self.min_shares, running, holding)
            if lane is not None:
                return self._queues[lane].popleft(), False
            return None, running is not None and must_pause(running, shares, self.min_shares, holding)

    def _pause(self) -> None:
        """Wait a moment (or until new work arrives); the wait is nobody's engine time."""
        with self._ready:
            self._charge(time.monotonic())
            self._ready.wait(PAUSE_S)
            self._mark = time.monotonic()

    def _loop(self) -> None:
        _current.scheduler = self
        while True:
            with self._ready:
                self._ready.wait_for(lambda: any(self._queues.values()))
            work, _ = self._take(None)
            if work is not None:
                self._execute(work)
            else:  # only held work waits: look again shortly
                self._pause()

    def _charge(self, now: float) -> None:
        """Engine time since the last mark goes to the innermost running lane (idle time to none)."""
        if self._stack:
            seconds = now - self._mark
            self.usage.charge(self._stack[-1], seconds, now)
            LANE_ENGINE_SECONDS.labels(self._stack[-1].label).inc(max(seconds, 0.0))
        self._mark = now

    def _execute(self, work: Work) -> None:
        if not work.future.set_running_or_notify_cancel():
            return  # its caller gave up (a client went away): no engine time for nobody
        started = time.monotonic()
        with self._ready:
            self._charge(started)
            self._stack.append(work.lane)
        try:
            result = work.fn()
        except BaseException as exc:  # noqa: BLE001 - the caller gets it, the thread lives on
            work.future.set_exception(exc)
        else:
            work.future.set_result(result)
        finally:
            with self._ready:
                self._charge(time.monotonic())
                self._stack.pop()
                if work.lane is Lane.LIVE:
                    self._live_seen = time.monotonic()
            LANE_WAIT.labels(work.lane.label).observe(started - work.queued_at)
            LANE_ITEMS.labels(work.lane.label).inc(work.items)


def preemption_point() -> None:
    """A safe point between model passes; does nothing outside a scheduler's engine thread."""
    scheduler: EngineScheduler | None = getattr(_current, "scheduler", None)
    if scheduler is not None and scheduler._stack:
        scheduler.run_waiting()

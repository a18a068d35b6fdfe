"""Who runs next on the model: the lanes, their order, and the minimum shares that stop starvation.

Plain Python with no clock of its own, so the policy is tested without threads or a model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import IntEnum


class Lane(IntEnum):
    """Work classes, highest priority first (a lower value goes first)."""

    LIVE = 0  # someone waits on the answer: /summarize, /rag, /batch, RAG embeddings
    LONG = 1  # a live document that needs many model passes: it must not hold up short ones
    JOB = 2  # job documents: nobody waits on one document, the job has hours

    @property
    def label(self) -> str:
        return self.name.lower()


class Usage:
    """Engine seconds per lane, decayed exponentially, so shares describe the last `window_s` or so.

    Only engine time counts: a lane with no work neither gains nor loses share while it waits.
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._seconds = dict.fromkeys(Lane, 0.0)
        self._at = 0.0

    def _decay(self, now: float) -> None:
        if now > self._at:
            factor = math.exp(-(now - self._at) / self.window_s)
            for lane in Lane:
                self._seconds[lane] *= factor
            self._at = now

    def charge(self, lane: Lane, seconds: float, now: float) -> None:
        self._decay(now)
        self._seconds[lane] += max(seconds, 0.0)

    def credit(self, lane: Lane, share: float, now: float) -> None:
        """Give a lane that starts work after a pause `share` of recent time, if it has less.

        Otherwise it arrives with a share near 0 and runs alone until it has caught up: a new long
        document took ~2 s of the model in one go, the tail of every short request behind it.
        Credited, it starts at its minimum share and gets exactly that, a pass at a time.
        """
        if not 0 < share < 1:
            return
        self._decay(now)
        others = sum(seconds for other, seconds in self._seconds.items() if other is not lane)
        self._seconds[lane] = max(self._seconds[lane], others * share / (1 - share))

    def share(self, lane: Lane, now: float) -> float:
        """This lane's fraction of recent engine time; 0 when the engine has been idle for long."""
        self._decay(now)
        total = sum(self._seconds.values())
        return self._seconds[lane] / total if total > 1e-9 else 0.0


# Seconds after live work was last seen during which a lane gets only its minimum share, even if
# the engine has nothing else to do. Closed-loop clients leave the engine idle for a few hundred
# milliseconds between batches while the entry prepares their next documents; a 100k-character
# document filling those gaps took the CPU the entry needed and raised short documents' p95 1.9x
# (bench.priority). Jobs do fill gaps: that is the capacity live traffic leaves them.
HOLD_AFTER_LIVE_S = {Lane.LONG: 1.0}


def held(live_idle_s: float) -> frozenset[Lane]:
    """Lanes limited to their minimum share, `live_idle_s` seconds after live work was last seen."""
    return frozenset(lane for lane, hold_s in HOLD_AFTER_LIVE_S.items() if live_idle_s < hold_s)


def choose(
    candidates: Iterable[Lane],
    shares: Mapping[Lane, float],
    min_shares: Mapping[Lane, float],
    running: Lane | None = None,
    holding: frozenset[Lane] = frozenset(),
) -> Lane | None:
    """The lane to run now among those with work, or None: `running` goes on, or (with nothing
    running) nothing may run yet.

    A lane below its minimum share goes first (the highest such lane), so a job keeps moving under
    any live load; otherwise the highest-priority lane, skipping lanes in `holding` (see `held`).
    Running work is suspended only for a higher lane, never for a lower one.
    """
    starved = {lane for lane in Lane if shares.get(lane, 0.0) < min_shares.get(lane, 0.0)}
    # The running lane below its share keeps the engine, whatever waits: that is the guarantee.
    if running is not None and running in starved:
        return None
    pool = sorted(lane for lane in set(candidates) if lane in starved or lane not in holding)
    if running is not None:
        pool = [lane for lane in pool if lane < running]
    starved_pool = [lane for lane in pool if lane in starved]
    ordered = starved_pool or pool
    return ordered[0] if ordered else None


def must_pause(running: Lane, shares: Mapping[Lane, float], min_shares: Mapping[Lane, float], holding: frozenset[Lane]) -> bool:
    """Running work of a held lane above its minimum share waits at its next preemption point."""
    return running in holding and shares.get(running, 0.0) >= min_shares.get(running, 0.0)

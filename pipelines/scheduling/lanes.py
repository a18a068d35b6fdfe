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

    def share(self, lane: Lane, now: float) -> float:
        """This lane's fraction of recent engine time; 0 when the engine has been idle for long."""
        self._decay(now)
        total = sum(self._seconds.values())
        return self._seconds[lane] / total if total > 1e-9 else 0.0


def choose(
    candidates: Iterable[Lane], shares: Mapping[Lane, float], min_shares: Mapping[Lane, float], running: Lane | None = None
) -> Lane | None:
    """The lane to run now among those with work (`running` counts as having work).

    A lane below its minimum share goes first (the highest such lane), so a job keeps moving under
    any live load; otherwise the highest-priority lane. None when `running` should simply go on:
    work is never suspended for a lower lane.
    """
    lanes = sorted(set(candidates) | ({running} if running is not None else set()))
    if not lanes:
        return None
    starved = [lane for lane in lanes if shares.get(lane, 0.0) < min_shares.get(lane, 0.0)]
    # The running lane below its share keeps the engine, whatever waits: that is the guarantee.
    if running is not None and running in starved:
        return None
    pick = starved[0] if starved else lanes[0]
    if running is not None and pick >= running:
        return None
    return pick

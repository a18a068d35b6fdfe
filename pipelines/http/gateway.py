"""How the entry service calls the model service: a deadline, one retry, overload as 429, a dead
model as a fast 503.

The transport's exception types are passed in, so this stays free of BentoML and testable
with plain coroutines. Summarization is idempotent, which is what makes the retry safe.

Why a probe before the retry: BentoML's arbiter holds the model service's listening socket, so
when the model worker dies (killed, out of memory) a new connection is still accepted and waits
in the socket's backlog until a new worker is up: 20-30 s on 2 cores, longer with a big model,
and never inside a container, where BentoML does not respawn workers. A blind retry turns a dead
worker into a 504 after the whole request timeout. A readiness probe with a short timeout tells
a recycled connection (retry) from a dead worker (503 with Retry-After, at once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pipelines.errors import NotReady, Overloaded, UpstreamTimeout

T = TypeVar("T")
log = logging.getLogger("summarizer.gateway")
Probe = Callable[[], Awaitable[bool]]


class ModelHealth:
    """Whether the model service answers, remembered between calls.

    After a dropped connection, `answers()` runs the probe (at most once per `recheck_s`, shared by
    concurrent callers); while the model is down, calls fail fast instead of queueing behind a
    socket nobody serves. The first successful probe clears it.
    """

    def __init__(self, probe: Probe, probe_timeout_s: float = 2.0, recheck_s: float = 1.0) -> None:
        self.probe = probe
        self.probe_timeout_s = probe_timeout_s
        self.recheck_s = recheck_s
        self.down = False
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def answers(self) -> bool:
        async with self._lock:  # one probe at a time; callers that waited reuse its answer
            loop = asyncio.get_running_loop()
            if self.down and loop.time() - self._checked_at < self.recheck_s:
                return False
            try:
                ok = bool(await asyncio.wait_for(self.probe(), timeout=self.probe_timeout_s))
            except Exception as exc:  # no answer of any kind (timeout, refused, reset) means not ready
                log.warning("model readiness probe failed: %s", type(exc).__name__)
                ok = False
            self.down, self._checked_at = not ok, loop.time()
            return ok


async def call_model(
    call: Callable[[], Awaitable[T]],
    *,
    timeout_s: float,
    overload_errors: tuple[type[BaseException], ...],
    connection_errors: tuple[type[BaseException], ...],
    retry_after_s: int,
    retries: int = 1,
    health: ModelHealth | None = None,
) -> T:
    """Run `call` under one deadline for all attempts; map transport failures to our errors.

    - overload (the batcher predicts a missed deadline) -> Overloaded, so clients back off;
    - connection dropped (pool recycling) -> retried when `health` says the model answers;
      a model that does not answer (worker died, restarting) -> NotReady at once;
    - model known to be down (an earlier call saw it) -> probed first, NotReady if still down;
    - deadline passed -> UpstreamTimeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    if health is not None and health.down and not await health.answers():
        raise NotReady()
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise UpstreamTimeout(f"the model did not answer within {timeout_s:g} s")
        try:
            return await asyncio.wait_for(call(), timeout=remaining)
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"the model did not answer within {timeout_s:g} s") from None
        except overload_errors:
            # The Retry-After header itself is set where errors become HTTP (service.error_response).
            raise Overloaded(f"the model service is at capacity; retry after {retry_after_s} s") from None
        except connection_errors as exc:
            attempt += 1
            # The type only: an exception's message can quote what was sent.
            log.warning("model call failed (attempt %d): %s", attempt, type(exc).__name__)
            if attempt > retries or (health is not None and not await health.answers()):
                raise NotReady() from exc

"""How the entry service calls the model service: a deadline, one retry, overload as 429.

The transport's exception types are passed in, so this stays free of BentoML and testable
with plain coroutines. Summarization is idempotent, which is what makes the retry safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pipelines.errors import NotReady, Overloaded, UpstreamTimeout

T = TypeVar("T")


async def call_model(
    call: Callable[[], Awaitable[T]],
    *,
    timeout_s: float,
    overload_errors: tuple[type[BaseException], ...],
    connection_errors: tuple[type[BaseException], ...],
    retry_after_s: int,
    retries: int = 1,
) -> T:
    """Run `call` under one deadline for all attempts; map transport failures to our errors.

    - overload (the batcher predicts a missed deadline) -> Overloaded, so clients back off;
    - connection dropped (pool recycling, worker restart) -> retried, then NotReady;
    - deadline passed -> UpstreamTimeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
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
            if attempt > retries:
                raise NotReady() from exc

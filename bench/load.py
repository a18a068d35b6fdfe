"""Load generators for the benchmarks: closed-loop clients and open-loop arrivals, over aiohttp.

aiohttp rather than httpx: the generator shares the machine's cores with the server it measures,
and aiohttp costs several times less CPU per request.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp


@dataclass
class Sample:
    status: int  # 0: the connection failed or timed out
    seconds: float
    retry_after: bool = False
    admission: bool = False  # a 429 from the admission limit, not from the model's batcher


@dataclass
class LoadResult:
    mode: str  # "closed" or "open"
    level: float  # concurrency (closed) or offered requests/s (open)
    seconds: float
    statuses: dict[str, int]
    ok_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rejected_p95_ms: float | None  # how fast a 429 comes back
    retry_after_share: float | None  # 429s that carried Retry-After
    admission_share: float | None  # 429s from the admission limit (the rest: batcher overload)
    avg_batch: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def quantile_ms(values: Sequence[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def summarize(mode: str, level: float, elapsed: float, samples: list[Sample]) -> LoadResult:
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    ok = [s.seconds for s in samples if s.status == 200]
    rejected = [s for s in samples if s.status == 429]
    return LoadResult(
        mode=mode,
        level=level,
        seconds=round(elapsed, 2),
        statuses=statuses,
        ok_per_s=len(ok) / elapsed,
        p50_ms=quantile_ms(ok, 50),
        p95_ms=quantile_ms(ok, 95),
        p99_ms=quantile_ms(ok, 99),
        rejected_p95_ms=quantile_ms([s.seconds for s in rejected], 95) if rejected else None,
        retry_after_share=sum(s.retry_after for s in rejected) / len(rejected) if rejected else None,
        admission_share=sum(s.admission for s in rejected) / len(rejected) if rejected else None,
    )


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout_s: float) -> Sample:
    started = time.perf_counter()
    try:
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            payload = await response.read()
            status = response.status
            retry_after = "Retry-After" in response.headers
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return Sample(0, time.perf_counter() - started)
    # The admission limit's message says "requests in flight" (pipelines/http/middleware.py ConcurrencyLimit).
    return Sample(status, time.perf_counter() - started, retry_after, status == 429 and b"in flight" in payload)


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, force_close=False))


async def closed_loop(url: str, bodies: Sequence[dict[str, Any]], concurrency: int, seconds: float, timeout_s: float = 120) -> LoadResult:
    """`concurrency` clients, each sending its next request when the last one is answered."""
    samples: list[Sample] = []
    stop = time.perf_counter() + seconds
    async with _session(concurrency) as session:

        async def client(worker: int) -> None:
            i = worker
            while time.perf_counter() < stop:
                samples.append(await _post(session, url, bodies[i % len(bodies)], timeout_s))
                i += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(client(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    return summarize("closed", concurrency, elapsed, samples)


async def open_loop(url: str, bodies: Sequence[dict[str, Any]], rate: float, seconds: float, timeout_s: float = 120) -> LoadResult:
    """Requests arrive at `rate` per second whatever the answers, as real traffic does; throughput
    counts what is answered 200 during the offered window plus the drain of what it accepted."""
    async with _session(10_000) as session:
        tasks = []
        started = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(session, url, bodies[i % len(bodies)], timeout_s)))
        samples = list(await asyncio.gather(*tasks))
        elapsed = time.perf_counter() - started
    result = summarize("open", rate, elapsed, samples)
    result.extra["offered"] = len(samples)
    return result

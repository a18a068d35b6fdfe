"""Model work by lane: the model worker's calls, each queued in its lane (`ModelLanes`, what the
model service's APIs await), and the entry's side, which API a call's documents go to (`split_long`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pipelines.engines.contract import Engine, ItemOutcome, SummaryItem, summarize_isolated
from pipelines.engines.encoder import SentenceEncoder
from pipelines.engines.grouping import check_outputs
from pipelines.observe.traces import batch_spans
from pipelines.scheduling.lanes import Lane
from pipelines.scheduling.scheduler import EngineScheduler


class ModelLanes:
    """One engine and its encoder behind one scheduler. Create it in the model worker's `__init__`."""

    def __init__(self, engine: Engine, encoder: SentenceEncoder, min_shares: Mapping[Lane, float]) -> None:
        self.engine = engine
        self.encoder = encoder
        self.scheduler = EngineScheduler(min_shares)

    async def summarize(self, lane: Lane, items: Sequence[SummaryItem]) -> list[ItemOutcome]:
        """One unit of work for the whole call: the engine still batches it; preemption points between its
        passes are where higher lanes cut in."""
        attributes = {"summarizer.engine": self.engine.name, "summarizer.lane": lane.label}
        with batch_spans("engine", [item.trace for item in items], **attributes):
            return await self.scheduler.run(lane, lambda: summarize_isolated(self.engine, items), len(items))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """RAG chunks and queries: someone waits on them, so the live lane."""
        # .tolist(): the same floats, 3x faster than a loop per value
        vectors: list[list[float]] = await self.scheduler.run(Lane.LIVE, lambda: self.encoder.encode(texts).tolist(), len(texts))
        return vectors


ModelCall = Callable[[list[SummaryItem]], Awaitable[Sequence[Any]]]


def is_long(item: SummaryItem, long_chars: int) -> bool:
    """A document for the long lane (SUMMARIZER_LONG_DOCUMENT_CHARS, after normalization)."""
    return len(item.text) >= long_chars


async def split_long(items: Sequence[SummaryItem], long_chars: int, short: ModelCall, long: ModelCall) -> list[Any]:
    """Short documents to `short` (the batched live API), long ones to `long` (the long lane), both at
    once; outcomes in input order.

    Long documents must not share the batcher with short ones: it runs one batch at a time, so a
    batch holding a 100k-character document would hold every short request queued behind it.
    """
    flags = [is_long(item, long_chars) for item in items]
    if not any(flags):
        return list(await short(list(items)))
    if all(flags):
        return list(await long(list(items)))
    shorts = [item for item, flag in zip(items, flags, strict=True) if not flag]
    longs = [item for item, flag in zip(items, flags, strict=True) if flag]
    short_out, long_out = await asyncio.gather(short(shorts), long(longs))
    short_iter = iter(check_outputs(shorts, short_out, "live lane"))
    long_iter = iter(check_outputs(longs, long_out, "long lane"))
    return [next(long_iter) if flag else next(short_iter) for flag in flags]

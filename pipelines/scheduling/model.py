"""The model worker's calls, each queued in its lane: what the model service's APIs await."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipelines.engines.contract import Engine, ItemOutcome, SummaryItem, summarize_isolated
from pipelines.engines.encoder import SentenceEncoder
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

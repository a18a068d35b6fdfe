"""What every summarization engine promises, and the data that crosses the service boundary.

An engine takes a batch of items and returns one outcome per item, in order: a result, or the
error for that item alone. One bad document must never fail its neighbours in a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from pipelines.engines.grouping import check_outputs
from pipelines.errors import ModelError, SummarizerError, from_payload
from pipelines.styles import Style

logger = logging.getLogger(__name__)


class SummaryItem(BaseModel):
    """One document to summarize, with the resolved style (not just its name)."""

    text: str
    style: Style
    query: list[float] | None = Field(None, description="Optional steering vector (RAG context).")
    # The request's W3C trace context: inside a batch, the model service has no other way to
    # put its spans in each request's trace (pipelines/observe/traces.py).
    trace: dict[str, str] = Field(default_factory=dict, description="W3C trace context headers of the request.")


class SummaryResult(BaseModel):
    summary: str
    input_words: int
    summary_words: int
    chunks: int = 1


class ItemOutcome(BaseModel):
    """A result or an error, as plain data so it crosses the HTTP hop between services.

    It names the engine and the exact model version, so a response can say what produced it.
    """

    engine: str
    model: str
    result: SummaryResult | None = None
    error_type: str | None = None
    error_message: str | None = None

    @classmethod
    def of(cls, value: SummaryResult | SummarizerError, engine: str, model: str) -> ItemOutcome:
        if isinstance(value, SummarizerError):
            return cls(engine=engine, model=model, error_type=type(value).__name__, error_message=value.message)
        return cls(engine=engine, model=model, result=value)

    def unwrap(self) -> SummaryResult:
        """The result, or raise the item's own error on the caller's side."""
        if self.result is None:
            raise from_payload(self.error_type or "ModelError", self.error_message or "")
        return self.result


Outcome = SummaryResult | SummarizerError


@runtime_checkable
class Engine(Protocol):
    name: str
    model_tag: str

    def summarize(self, items: Sequence[SummaryItem]) -> list[Outcome]: ...


def summarize_isolated(engine: Engine, items: Sequence[SummaryItem]) -> list[ItemOutcome]:
    """The model service's batch call: one outcome per item, whatever the engine does.

    Engines isolate item failures themselves; this is the net under them. If a whole batch
    call raises (a bug, a device error), each item is retried alone, so only the items that
    really fail get an error, and the batch never fails as a whole.
    """
    try:
        outcomes = check_outputs(items, engine.summarize(items), f"{engine.name} engine")
    except Exception as exc:
        # The type only: messages and tracebacks can quote the (redacted, but still private) text.
        logger.error("batch of %d failed (%s); retrying items one by one", len(items), type(exc).__name__)
        outcomes = [_summarize_one(engine, item) for item in items]
    return [ItemOutcome.of(o, engine.name, engine.model_tag) for o in outcomes]


def _summarize_one(engine: Engine, item: SummaryItem) -> Outcome:
    try:
        return engine.summarize([item])[0]
    except Exception as exc:
        logger.error("item failed alone: %s", type(exc).__name__)
        return ModelError()

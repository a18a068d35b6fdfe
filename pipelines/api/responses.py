"""The public response of `/summarize`: the shape clients get back (also what docs/api.md shows)."""

from __future__ import annotations

from pydantic import BaseModel

from pipelines.engines.contract import ItemOutcome, SummaryResult
from pipelines.rag.index import Hit
from pipelines.text.prepare import PreparedText


class Timing(BaseModel):
    prepare_ms: float  # normalize + redact
    model_ms: float  # in the model service, queueing and batching included
    total_ms: float

    @classmethod
    def of(cls, started: float, model_started: float, finished: float, prepare_s: float) -> Timing:
        """From perf_counter readings, in milliseconds to 0.1 ms."""
        return cls(
            prepare_ms=_ms(prepare_s), model_ms=_ms(finished - model_started), total_ms=_ms(finished - started)
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Normalization(BaseModel):
    format: str  # "text" or "html", as detected or given
    chars: int  # length of the clean text the model saw
    removed: dict[str, int]  # what was dropped, as counts (never content)


class SummaryResponse(BaseModel):
    summary: str
    style: str
    engine: str
    model: str  # the exact model tag, version included
    input_chars: int
    input_words: int
    summary_words: int
    chunks: int
    normalization: Normalization
    redactions: dict[str, int]  # entity type -> count, e.g. {"EMAIL_ADDRESS": 2}
    timing: Timing

    @classmethod
    def build(
        cls,
        raw_text: str,
        prepared: PreparedText,
        style: str,
        outcome: ItemOutcome,
        result: SummaryResult,
        timing: Timing,
    ) -> SummaryResponse:
        return cls(
            summary=result.summary,
            style=style,
            engine=outcome.engine,
            model=outcome.model,
            input_chars=len(raw_text),
            input_words=result.input_words,
            summary_words=result.summary_words,
            chunks=result.chunks,
            normalization=Normalization(format=prepared.format, chars=len(prepared.text), removed=prepared.removed),
            redactions=prepared.redactions,
            timing=timing,
        )


class Citation(BaseModel):
    document_id: str
    chunk: int
    score: float
    snippet: str

    @classmethod
    def of(cls, hit: Hit) -> Citation:
        return cls(document_id=hit.document_id, chunk=hit.chunk, score=round(hit.score, 4), snippet=hit.snippet)


class RagResponse(SummaryResponse):
    citations: list[Citation]
    # True when the index holds no documents: the summary is a plain one, with no citations.
    index_empty: bool

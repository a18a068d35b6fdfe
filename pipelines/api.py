"""The public request and response of `/summarize`: checks before any model work, and the shape
clients get back (also what the OpenAPI schema and the README show)."""

from __future__ import annotations

from pydantic import BaseModel

from pipelines.engine import ItemOutcome, SummaryResult
from pipelines.errors import BadInput, InputTooLarge


def check_text(text: str, max_input_chars: int) -> str:
    if len(text) > max_input_chars:
        raise InputTooLarge(
            f"text is {len(text)} characters; the limit is {max_input_chars} "
            "(SUMMARIZER_MAX_INPUT_CHARS); split the document or use the batch job"
        )
    if not text.strip():
        raise BadInput("text is empty; send {\"text\": \"...\"} with the document to summarize")
    return text


class Timing(BaseModel):
    model_ms: float  # in the model service, queueing and batching included
    total_ms: float


class SummaryResponse(BaseModel):
    summary: str
    style: str
    engine: str
    model: str  # the exact model tag, version included
    input_chars: int
    input_words: int
    summary_words: int
    chunks: int
    timing: Timing

    @classmethod
    def build(
        cls, text: str, style: str, outcome: ItemOutcome, result: SummaryResult, model_ms: float, total_ms: float
    ) -> SummaryResponse:
        return cls(
            summary=result.summary,
            style=style,
            engine=outcome.engine,
            model=outcome.model,
            input_chars=len(text),
            input_words=result.input_words,
            summary_words=result.summary_words,
            chunks=result.chunks,
            timing=Timing(model_ms=round(model_ms, 1), total_ms=round(total_ms, 1)),
        )

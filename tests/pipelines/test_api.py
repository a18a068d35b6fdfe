from __future__ import annotations

import pytest

from pipelines.errors import BadInput, InputTooLarge
from pipelines.api import SummaryResponse, check_text
from pipelines.engine import ItemOutcome, SummaryResult


def test_accepts_text_at_the_limit() -> None:
    assert check_text("a" * 10, 10) == "a" * 10


def test_rejects_empty_and_oversized() -> None:
    with pytest.raises(BadInput, match="empty"):
        check_text(" \n ", 10)
    with pytest.raises(InputTooLarge, match="11 characters; the limit is 10") as info:
        check_text("a" * 11, 10)
    assert info.value.status_code == 413


def test_response_names_style_engine_model_and_timing() -> None:
    result = SummaryResult(summary="Short.", input_words=3, summary_words=1)
    outcome = ItemOutcome.of(result, "extractive", "enc:v1")
    body = SummaryResponse.build("a b c", "news", outcome, result, model_ms=12.345, total_ms=13.0).model_dump()
    assert body == {
        "summary": "Short.", "style": "news", "engine": "extractive", "model": "enc:v1", "input_chars": 5,
        "input_words": 3, "summary_words": 1, "chunks": 1, "timing": {"model_ms": 12.3, "total_ms": 13.0},
    }  # fmt: skip

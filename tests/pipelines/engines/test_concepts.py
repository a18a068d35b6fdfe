from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from pipelines.engines.concepts import Concepts, sentence_concepts
from pipelines.engines.extractive import preprocess, select
from pipelines.styles import ExtractiveParams
from tests.texts import NEWS


def test_concepts_are_content_words_and_pairs_not_function_words() -> None:
    found = sentence_concepts("The council voted to close the Harbour bridge.")
    assert {"council", "voted", "close", "harbour", "bridge", "harbour bridge", "the council"} <= found
    assert "the" not in found and "to" not in found
    assert "to the" not in sentence_concepts("He went to the shop.")  # two function words: no concept


def test_weights_count_each_sentence_once_and_early_sentences_more() -> None:
    sentences = ["Bridge bridge closed.", "Traffic moved.", "The bridge reopens in May."]
    c = Concepts.build(sentences, rows=[1, 2], decay=0.5)
    assert c.weights["bridge"] == pytest.approx(1.0 + math.exp(-1.0))  # sentences 0 and 2, once each
    assert c.weights["traffic"] == pytest.approx(math.exp(-0.5))
    assert c.per_row == [sentence_concepts(sentences[1]), sentence_concepts(sentences[2])]


def test_gain_is_what_a_sentence_adds_per_word_scaled_to_the_best() -> None:
    sentences = ["Bridge closed for repairs.", "Bridge closed.", "Bridge repairs start soon, officials said on Monday."]
    c = Concepts.build(sentences, rows=[0, 1, 2], decay=0.0)
    lengths = [4, 2, 8]
    fresh = c.gains([0, 1, 2], covered=set(), lengths=lengths)
    assert fresh.max() == pytest.approx(1.0)
    after = c.gains([0, 1, 2], covered=set(c.per_row[0]), lengths=lengths)
    assert after[1] == 0.0  # everything "Bridge closed." says is covered
    assert after[2] == pytest.approx(1.0)  # only the third still adds something
    assert c.gains([], covered=set(), lengths=lengths).size == 0


def test_coverage_picks_the_sentence_that_adds_the_story_not_a_repeat() -> None:
    sentences = [
        "Floods closed the river bridge on Monday.",
        "The river bridge was closed by floods.",  # a reworded repeat, high score
        "Buses now take the Mill Road detour.",
        "Floods hit the river bridge and buses detour via Mill Road.",
    ]
    embeddings = np.eye(4, dtype=np.float32)  # MMR alone sees no redundancy
    scores = np.array([1.0, 0.9, 0.1, 0.2], dtype=np.float32)
    params = ExtractiveParams(target_words=14, max_words=14, max_sentences=2, diversity=0.0)
    assert select(sentences, embeddings, scores, params) == [0, 1]
    concepts = Concepts.build(sentences, rows=[0, 1, 2, 3], decay=0.3)
    covering = params.model_copy(update={"coverage": 0.8})
    assert select(sentences, embeddings, scores, covering, concepts) == [0, 2]


def test_concepts_are_built_only_for_styles_that_weigh_coverage() -> None:
    assert preprocess(NEWS, ExtractiveParams(max_words=20)).concepts is None
    p = preprocess(NEWS, ExtractiveParams(max_words=20, coverage=0.5))
    assert p.concepts is not None and len(p.concepts.per_row) == len(p.candidates)
    with pytest.raises(ValidationError):
        ExtractiveParams(coverage=1.5)

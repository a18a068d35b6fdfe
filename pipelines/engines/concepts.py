"""Concept coverage: which sentences cover most of what the document keeps talking about.

Extractive summarizers that pick sentences for the weighted concepts they add, rather than for
their own score alone (Gillick & Favre 2009, "A scalable global model for summarization"), waste
fewer words on what a chosen sentence already said. Here a concept is a content word or a pair
of adjacent words; its weight is how often sentences mention it, early sentences counting more
(news puts the story first). A sentence's gain is the weight of the concepts it would add,
per word, so a short sentence dense in the story's terms beats a long one that repeats them.

    c = Concepts.build(sentences, rows=[0, 2, 3], decay=0.3)
    c.gains([0, 1, 2], covered=set(), lengths=[20, 12, 30])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\w+")
# Function words carry no topic; a pair of them ("of the") is not a concept either.
STOPWORDS = frozenset(
    "a an the and or but nor of to in on at for with by from as into onto over under about after before "
    "is are was were be been being am it its this that these those there here he she they we i you his her "
    "their our my your him them us me who whom whose which what when where why how not no so if than then "
    "has have had do does did will would can could should may might must shall also just very more most "
    "s t".split()
)


def sentence_concepts(sentence: str) -> frozenset[str]:
    """Content words and adjacent word pairs (not both function words), lower-cased."""
    words = _WORD.findall(sentence.lower())
    unigrams = {w for w in words if w not in STOPWORDS}
    pairs = {f"{a} {b}" for a, b in zip(words, words[1:], strict=False) if a not in STOPWORDS or b not in STOPWORDS}
    return frozenset(unigrams | pairs)


@dataclass
class Concepts:
    per_row: list[frozenset[str]]  # concepts of each candidate sentence (selection's rows)
    weights: dict[str, float]

    @classmethod
    def build(cls, sentences: Sequence[str], rows: Sequence[int], decay: float) -> Concepts:
        """Weights from every sentence of the document (a concept counts once per sentence, by
        exp(-decay * position)); `rows` are the positions of the candidates."""
        per_sentence = [sentence_concepts(s) for s in sentences]
        weights: dict[str, float] = {}
        for position, found in enumerate(per_sentence):
            w = float(np.exp(-decay * position))
            for concept in found:
                weights[concept] = weights.get(concept, 0.0) + w
        return cls([per_sentence[i] for i in rows], weights)

    def gains(self, rows: Sequence[int], covered: set[str], lengths: Sequence[int]) -> np.ndarray:
        """Weight of the concepts each row would add, per word, scaled so the best is 1."""
        gain = np.array(
            [sum(self.weights[c] for c in self.per_row[r] - covered) / max(lengths[r], 1) for r in rows],
            dtype=np.float32,
        )
        top = float(gain.max()) if gain.size else 0.0
        return gain / top if top > 0 else gain

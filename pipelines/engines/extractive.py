"""The default engine: pick the document's own sentences by position, centrality, coverage and diversity.

preprocess  split into sentences, choose and trim candidates, score cue phrases, weigh concepts
            (plain Python, per item)
forward     embed every candidate of every item in one token-capped encoder run (batches)
postprocess score and select with MMR and concept coverage towards the style's word target
            (numpy, per item)

What the weights are and why they are set as they are: docs/quality.md (measured with
`python -m bench.quality` against human references and lead baselines).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.engines.concepts import Concepts
from pipelines.engines.contract import Outcome, SummaryItem, SummaryResult
from pipelines.engines.encoder import SentenceEncoder
from pipelines.engines.grouping import check_outputs
from pipelines.errors import BadInput, ModelError, SummarizerError
from pipelines.styles import ExtractiveParams
from pipelines.text.sentences import SPEAKER, is_heading, split_sentences, word_count

# Cosine similarity above which a sentence repeats one already chosen (a reworded or syndicated
# duplicate): it is never added, whatever its score. MMR only discounts; with a strong lead prior
# that is not enough for a second copy of the lead. On the evaluation sets it changes no summary
# (docs/quality.md): distinct sentences stay below it.
NEAR_DUPLICATE = 0.9
# Trimming never leaves a sentence shorter than this: "But why?" stays as it is.
MIN_TRIMMED_WORDS = 3
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,.;:!?])")
# A sentence's first letter, after a chat turn's "Name: " if there is one.
_FIRST_LETTER = re.compile(r"^(" + SPEAKER + r":\s+)?([a-z])")


@dataclass
class Prepared:
    sentences: list[str]
    candidates: list[int]  # positions in `sentences` worth embedding, in document order
    cues: list[float]  # per candidate: the style's cue score, in [-1, 1]
    input_words: int  # of the text as sent, before any trimming
    concepts: Concepts | None = None  # when the style weighs coverage


def preprocess(text: str, params: ExtractiveParams) -> Prepared:
    sentences = [s for s in split_sentences(text) if any(ch.isalnum() for ch in s)]
    if not sentences:
        raise BadInput("text contains no words to summarize")
    headings = [is_heading(s) for s in sentences]
    body = [i for i, heading in enumerate(headings) if not heading] or list(range(len(sentences)))
    # Headings and fragments ("OK.") are not summary material, unless the text is within the
    # target anyway: then it is kept whole, and a short question keeps its answer company.
    candidates = [i for i in body if word_count(sentences[i]) >= params.min_sentence_words] or body
    if len(body) <= params.max_sentences and sum(word_count(sentences[i]) for i in body) <= params.length_target:
        candidates = body
    input_words = sum(word_count(s) for s in sentences)
    for i in candidates:
        sentences[i] = trim(sentences[i], params.trim)
    sections = _section_headings(sentences, headings)
    cues = [cue_score(f"{sections[i]} {sentences[i]}", params) for i in candidates]
    concepts = Concepts.build(sentences, candidates, params.coverage_decay) if params.coverage else None
    return Prepared(sentences, candidates, cues, input_words, concepts)


def trim(sentence: str, patterns: Sequence[str]) -> str:
    """The sentence without what the style's trim patterns match; as it was if that would
    leave it under MIN_TRIMMED_WORDS. A cut at the start capitalizes what now opens it."""
    if not patterns:
        return sentence
    out = sentence
    for pattern in patterns:
        out = re.sub(pattern, " ", out)
    out = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(out.split()))
    if out == sentence or word_count(out) < MIN_TRIMMED_WORDS:
        return sentence
    return _FIRST_LETTER.sub(lambda m: (m.group(1) or "") + m.group(2).upper(), out, count=1)


def _section_headings(sentences: Sequence[str], headings: Sequence[bool]) -> list[str]:
    """The heading each sentence falls under ("" before the first): a clause of a findings or
    definitions section reads like any other, only its heading says what it is."""
    current, out = "", []
    for sentence, heading in zip(sentences, headings, strict=True):
        current = sentence if heading else current
        out.append(current)
    return out


def cue_score(text: str, params: ExtractiveParams) -> float:
    """Sum of the weights of the style's cue patterns found in `text`, clipped to [-1, 1]."""
    total = sum(weight for pattern, weight in params.cues if re.search(pattern, text))
    return float(min(1.0, max(-1.0, total)))


def fits_whole(p: Prepared, params: ExtractiveParams) -> bool:
    """Every candidate fits the length target, so selection would keep them all, whatever the
    scores: short documents (tickets, chat turns) then need no encoder pass at all."""
    lengths = [word_count(p.sentences[i]) for i in p.candidates]
    return len(lengths) <= params.max_sentences and sum(lengths) <= params.length_target


def _minmax(values: np.ndarray) -> np.ndarray:
    span = float(values.max() - values.min()) if values.size else 0.0
    if span <= 1e-9:
        return np.ones(values.shape, dtype=np.float32)
    return np.asarray((values - values.min()) / span, dtype=np.float32)


def relevance(
    embeddings: np.ndarray, params: ExtractiveParams, cues: Sequence[float] = (), query: np.ndarray | None = None
) -> np.ndarray:
    """Centrality (mean similarity to the rest, as in LexRank's degree) blended with a lead prior
    and the style's cue phrases; rows are the candidates in document order.

    The position prior decays with the candidate's rank (headings and fragments do not count):
    news leads carry the story, so news weighs position heavily; statutes much less (their cue
    phrases say more: "may be cited as", "shall", not "the term ... means").
    """
    n = embeddings.shape[0]
    sims = embeddings @ embeddings.T
    centrality = (sims.sum(axis=1) - 1.0) / max(n - 1, 1)
    prior = np.exp(-params.position_decay * np.arange(n, dtype=np.float32))
    score = (1.0 - params.position_weight) * _minmax(centrality) + params.position_weight * prior
    if len(cues):
        score = score + params.cue_weight * np.asarray(cues, dtype=np.float32)
    if query is not None:
        score = 0.5 * score + 0.5 * _minmax(embeddings @ query)
    return np.asarray(score, dtype=np.float32)


def closer_to_target(words: int, added: int, params: ExtractiveParams) -> bool:
    """Whether adding a sentence of `added` words moves the summary towards the length target
    (and keeps it within the cap). The first sentence is always allowed within the cap."""
    if words + added > params.max_words:
        return False
    target = params.length_target
    return words == 0 or abs(words + added - target) < abs(words - target)


def select(
    sentences: Sequence[str],
    embeddings: np.ndarray,
    scores: np.ndarray,
    params: ExtractiveParams,
    concepts: Concepts | None = None,
) -> list[int]:
    """Maximal marginal relevance towards a word target; indices into `sentences`' candidate rows.

    A sentence joins while it brings the length closer to `target_words`: the summary ends
    within half a sentence of the target, instead of always short of a hard budget. With
    `params.fill` off, selection ends at the first best sentence that would not. With
    `concepts` and `params.coverage`, the concepts a sentence would add count too.
    """
    lengths = [word_count(s) for s in sentences]
    chosen: list[int] = []
    covered: set[str] = set()
    words = 0
    remaining = set(range(len(sentences)))
    while remaining and len(chosen) < params.max_sentences:
        if params.fill:
            fitting = sorted(i for i in remaining if closer_to_target(words, lengths[i], params))
        else:
            fitting = sorted(remaining)
        if chosen and fitting:
            similarity = (embeddings[fitting] @ embeddings[chosen].T).max(axis=1)
            fitting = [i for i, sim in zip(fitting, similarity, strict=True) if sim <= NEAR_DUPLICATE]
            redundancy = similarity[similarity <= NEAR_DUPLICATE]
        else:
            redundancy = np.zeros(len(fitting), dtype=np.float32)
        if not fitting:
            break
        value = (1.0 - params.diversity) * scores[fitting] - params.diversity * redundancy
        if concepts is not None and params.coverage:
            gains = concepts.gains(fitting, covered, lengths)
            value = (1.0 - params.coverage) * value + params.coverage * gains
        best = fitting[int(np.argmax(value))]
        if not closer_to_target(words, lengths[best], params):
            break
        chosen.append(best)
        covered |= concepts.per_row[best] if concepts is not None else set()
        words += lengths[best]
        remaining.discard(best)
    if not chosen:
        # Every sentence is longer than the cap: the best one, cut at the cap, beats nothing.
        chosen = [int(np.argmax(scores))]
    return sorted(chosen)


def _clip_words(sentence: str, max_words: int) -> str:
    words = sentence.split()
    return sentence if len(words) <= max_words else " ".join(words[:max_words]) + " …"


class ExtractiveEngine:
    name = "extractive"

    def __init__(self, encoder: SentenceEncoder, model_tag: str) -> None:
        self.encoder = encoder
        self.model_tag = model_tag

    def summarize(self, items: Sequence[SummaryItem]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(items)
        prepared: dict[int, Prepared] = {}
        for index, item in enumerate(items):
            try:
                p = preprocess(item.text, item.style.extractive)
            except SummarizerError as exc:
                outcomes[index] = exc
                continue
            if fits_whole(p, item.style.extractive):
                outcomes[index] = _result(p, list(range(len(p.candidates))), item.style.extractive)
            else:
                prepared[index] = p
        for index, embeddings in self._forward(prepared).items():
            try:
                outcomes[index] = self._postprocess(items[index], prepared[index], embeddings)
            except SummarizerError as exc:
                outcomes[index] = exc
        return check_outputs(items, [o if o is not None else ModelError() for o in outcomes], "extractive")

    def _forward(self, prepared: dict[int, Prepared]) -> dict[int, np.ndarray | SummarizerError]:
        """One encoder run for the whole batch; if it fails, per item, so one bad item stays alone."""
        texts = [p.sentences[i] for p in prepared.values() for i in p.candidates]
        if not texts:
            return {}
        try:
            flat = self.encoder.encode(texts)
        except Exception:
            return {index: self._forward_one(p) for index, p in prepared.items()}
        out: dict[int, np.ndarray | SummarizerError] = {}
        start = 0
        for index, p in prepared.items():
            out[index] = flat[start : start + len(p.candidates)]
            start += len(p.candidates)
        return out

    def _forward_one(self, p: Prepared) -> np.ndarray | SummarizerError:
        try:
            return self.encoder.encode([p.sentences[i] for i in p.candidates])
        except Exception:
            return ModelError()

    def _postprocess(
        self, item: SummaryItem, p: Prepared, embeddings: np.ndarray | SummarizerError
    ) -> SummaryResult:
        if isinstance(embeddings, SummarizerError):
            raise embeddings
        params = item.style.extractive
        candidates = [p.sentences[i] for i in p.candidates]
        query = np.asarray(item.query, dtype=np.float32) if item.query is not None else None
        scores = relevance(embeddings, params, p.cues, query)
        return _result(p, select(candidates, embeddings, scores, params, p.concepts), params)


def _result(p: Prepared, picked: Sequence[int], params: ExtractiveParams) -> SummaryResult:
    """The summary of `picked` (indices into the candidates), in document order."""
    summary = " ".join(_clip_words(p.sentences[p.candidates[i]], params.max_words) for i in picked)
    return SummaryResult(
        summary=summary, input_words=p.input_words, summary_words=word_count(summary)
    )

"""The default engine: pick the document's own sentences by centrality, position and diversity.

preprocess  split into sentences, choose candidates (plain Python, per item)
forward     embed every candidate of every item in one token-capped encoder run (batches)
postprocess score and select with MMR under the style's word budget (numpy, per item)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.batching import check_outputs
from pipelines.encoder import SentenceEncoder
from pipelines.engine import Outcome, SummaryItem, SummaryResult
from pipelines.errors import BadInput, ModelError, SummarizerError
from pipelines.sentences import split_sentences, word_count
from pipelines.styles import ExtractiveParams


@dataclass
class Prepared:
    sentences: list[str]
    candidates: list[int]  # positions in `sentences` worth embedding


def preprocess(text: str, params: ExtractiveParams) -> Prepared:
    sentences = [s for s in split_sentences(text) if any(ch.isalnum() for ch in s)]
    if not sentences:
        raise BadInput("text contains no words to summarize")
    candidates = [i for i, s in enumerate(sentences) if word_count(s) >= params.min_sentence_words]
    return Prepared(sentences, candidates or list(range(len(sentences))))


def fits_whole(p: Prepared, params: ExtractiveParams) -> bool:
    """Every candidate fits the budget, so selection would keep them all, whatever the scores:
    short documents (tickets, chat turns) then need no encoder pass at all."""
    lengths = [word_count(p.sentences[i]) for i in p.candidates]
    return len(lengths) <= params.max_sentences and sum(lengths) <= params.max_words


def _minmax(values: np.ndarray) -> np.ndarray:
    span = float(values.max() - values.min()) if values.size else 0.0
    if span <= 1e-9:
        return np.ones(values.shape, dtype=np.float32)
    return np.asarray((values - values.min()) / span, dtype=np.float32)


def relevance(
    embeddings: np.ndarray, positions: Sequence[int], params: ExtractiveParams, query: np.ndarray | None = None
) -> np.ndarray:
    """Centrality (mean similarity to the rest, as in LexRank's degree) blended with a lead prior.

    The position prior decays with the sentence's place in the document: news leads carry the
    story, statutes and chats much less so; each style sets the weight and the decay.
    """
    n = embeddings.shape[0]
    sims = embeddings @ embeddings.T
    centrality = (sims.sum(axis=1) - 1.0) / max(n - 1, 1)
    prior = np.exp(-params.position_decay * np.asarray(positions, dtype=np.float32))
    score = (1.0 - params.position_weight) * _minmax(centrality) + params.position_weight * prior
    if query is not None:
        score = 0.5 * score + 0.5 * _minmax(embeddings @ query)
    return np.asarray(score, dtype=np.float32)


def select(
    sentences: Sequence[str], embeddings: np.ndarray, scores: np.ndarray, params: ExtractiveParams
) -> list[int]:
    """Maximal marginal relevance under a word budget; indices into `sentences`' candidate rows."""
    lengths = [word_count(s) for s in sentences]
    chosen: list[int] = []
    words = 0
    remaining = set(range(len(sentences)))
    while remaining and len(chosen) < params.max_sentences:
        fitting = [i for i in remaining if words + lengths[i] <= params.max_words]
        if not fitting:
            break
        if chosen:
            redundancy = (embeddings[fitting] @ embeddings[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(fitting), dtype=np.float32)
        mmr = (1.0 - params.diversity) * scores[fitting] - params.diversity * redundancy
        best = fitting[int(np.argmax(mmr))]
        chosen.append(best)
        words += lengths[best]
        remaining.discard(best)
    if not chosen:
        # Every sentence is longer than the budget: the best one, cut at the budget, beats nothing.
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
        scores = relevance(embeddings, p.candidates, params, query)
        return _result(p, select(candidates, embeddings, scores, params), params)


def _result(p: Prepared, picked: Sequence[int], params: ExtractiveParams) -> SummaryResult:
    """The summary of `picked` (indices into the candidates), in document order."""
    summary = " ".join(_clip_words(p.sentences[p.candidates[i]], params.max_words) for i in picked)
    return SummaryResult(
        summary=summary, input_words=sum(word_count(s) for s in p.sentences), summary_words=word_count(summary)
    )

"""RAG flows the entry service runs: index submitted documents, retrieve context for a document.

Embedding is passed in as an async function (the model service's batched API in production, a
fake in tests), so the flows stay free of BentoML. Text is normalized and redacted before it is
chunked, embedded or stored: redacted PII never reaches the index.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipelines.errors import InputTooLarge
from pipelines.rag.backend import Index
from pipelines.rag.index import Document, Hit
from pipelines.text.chunking import chunk_document, embedding_text
from pipelines.text.normalize import Format
from pipelines.text.prepare import InputPipeline

Embed = Callable[[list[str]], Awaitable[np.ndarray]]
# A long document is represented by its first chunks: enough to say what it is about, and the
# cost of a query stays bounded whatever the document's length.
MAX_QUERY_CHUNKS = 16
EMBED_BATCH = 64


@dataclass
class IndexReport:
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    redactions: dict[str, int] = field(default_factory=dict)


async def embed_all(embed: Embed, texts: list[str]) -> np.ndarray:
    """Embed in slices, so one request never sends the model service an unbounded list."""
    parts = [await embed(texts[i : i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
    return np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)


async def index_documents(
    index: Index,
    inputs: InputPipeline,
    documents: Sequence[tuple[str, str, dict[str, str]]],
    fmt: Format,
    embed: Embed,
    max_documents: int,
) -> IndexReport:
    """(id, raw text, metadata) in; only new or changed documents are embedded."""
    if len(documents) > max_documents:
        raise InputTooLarge(
            f"{len(documents)} documents in one request; the limit is {max_documents}"
            " (SUMMARIZER_RAG_MAX_DOCUMENTS_PER_REQUEST); send several requests or use the CLI"
        )
    prepared = [await asyncio.to_thread(inputs.prepare, text, fmt) for _, text, _ in documents]
    docs = [Document(id=doc_id, text=p.text, metadata=meta) for (doc_id, _, meta), p in zip(documents, prepared)]
    plan = await asyncio.to_thread(index.plan, docs)
    vectors = await embed_all(embed, plan.texts)
    await asyncio.to_thread(index.commit, plan, vectors)
    redactions: Counter[str] = Counter()
    for p in prepared:
        redactions.update(p.redactions)
    return IndexReport(
        indexed=[d.id for d in plan.documents],
        unchanged=list(plan.unchanged),
        chunks_embedded=len(plan.texts),
        redactions=dict(sorted(redactions.items())),
    )


@dataclass
class Context:
    hits: list[Hit]
    steering: list[float] | None  # unit vector of the retrieved chunks, for the extractive engine


async def retrieve(index: Index, text: str, top_k: int, embed: Embed, chunk_words: int) -> Context:
    """The chunks most related to `text` (already prepared), best first, one entry per chunk."""
    if len(index) == 0:
        return Context([], None)
    chunks = chunk_document("query", text, max_words=chunk_words)[:MAX_QUERY_CHUNKS]
    queries = await embed_all(embed, [embedding_text(c) for c in chunks])
    best: dict[tuple[str, int], Hit] = {}
    for vector in queries:
        for hit in await asyncio.to_thread(index.search, vector, top_k):
            key = (hit.document_id, hit.chunk)
            if key not in best or hit.score > best[key].score:
                best[key] = hit
    hits = sorted(best.values(), key=lambda h: h.score, reverse=True)[:top_k]
    if not hits:
        return Context([], None)
    context_vectors = await embed_all(embed, [h.text for h in hits])
    return Context(hits, unit_mean(context_vectors))


def unit_mean(vectors: np.ndarray) -> list[float] | None:
    mean = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return [float(x) for x in mean / norm] if norm > 1e-9 else None

"""What a write to the knowledge index embeds, shared by both backends (files and PostgreSQL).

    plan = plan_documents(documents, {"faq.md": (hash, 120)}, chunk_words=120)
    vectors = embed_in_batches(plan.texts, encoder.encode, dim=384)
    rows = checked_vectors(plan, vectors, dim=384)   # ValueError unless one vector per planned text

Kept out of the backends so "unchanged means no embedding" and the shape contract are one rule,
not two copies that drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from pipelines.rag.documents import Document, InvalidDocument, Plan, content_hash
from pipelines.text.chunking import chunk_document, embedding_text

EMBED_BATCH = 256
Embed = Callable[[list[str]], np.ndarray]


def plan_documents(documents: Sequence[Document], known: Mapping[str, tuple[str, int]], chunk_words: int) -> Plan:
    """New or changed documents, chunked; `known` maps an indexed id to its (content hash, chunk_words).

    A document is unchanged only when both match: other chunk settings mean other chunks."""
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidDocument(f"document ids must be unique, got {twice!r} more than once")
    plan = Plan([], [], [], [])
    for doc in documents:
        entry = known.get(doc.id)
        if entry is not None and entry == (content_hash(doc), chunk_words):
            plan.unchanged.append(doc.id)
            continue
        chunks = chunk_document(doc.id, doc.text, max_words=chunk_words)
        plan.documents.append(doc)
        plan.chunks.extend(chunks)
        plan.texts.extend(embedding_text(c) for c in chunks)
    return plan


def embed_in_batches(texts: list[str], embed: Embed, dim: int, progress: bool = False) -> np.ndarray:
    """One row per text; bounded batches, so a large folder never sends the encoder one huge list."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    with tqdm(total=len(texts), unit="chunk", desc="embedding", disable=None if progress else True) as bar:
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            rows = np.asarray(embed(batch), dtype=np.float32)
            if rows.shape != (len(batch), dim):
                raise ValueError(f"embed returned shape {rows.shape} for {len(batch)} texts, expected ({len(batch)}, {dim})")
            out[start : start + len(batch)] = rows
            bar.update(len(batch))
    return out


def checked_vectors(plan: Plan, vectors: np.ndarray, dim: int) -> np.ndarray:
    """The vectors as float32 rows, one per planned text, or ValueError before anything is written."""
    rows = np.asarray(vectors, dtype=np.float32)
    if rows.size == 0 and not plan.texts:
        rows = rows.reshape(0, dim)  # an empty batch may come back as shape (0, 0)
    if rows.shape != (len(plan.texts), dim) or len(plan.texts) != len(plan.chunks):
        raise ValueError(f"commit needs one {dim}-dim vector per planned text ({len(plan.texts)}), got {rows.shape}")
    return rows

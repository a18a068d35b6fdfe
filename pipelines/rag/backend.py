"""Which knowledge index a process uses, behind one Protocol, so callers never branch on it.

    where = database if settings.database_url else settings.rag_dir     # a Database, or a folder
    index = open_index(where, encoder_tag, dim, chunk_words=settings.rag_chunk_words,
                       store=settings.rag_store, qdrant_location=settings.rag_qdrant_location)
    index = open_recorded(where)    # list/delete: the encoder it was built with, or None when empty

A `Database` (SUMMARIZER_DATABASE_URL set) gives `PostgresIndex`, shared by every replica; a
folder gives `KnowledgeIndex`, FAISS or Qdrant snapshots on that volume. Both have the same
interface and rules (`Index` below); tests/pipelines/rag/test_contract.py runs one suite on both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from pipelines.errors import ConfigError
from pipelines.postgres.pool import Database
from pipelines.rag.documents import Document, DocumentInfo, Hit, Plan
from pipelines.rag.index import KnowledgeIndex, recorded_encoder
from pipelines.rag.postgres import PostgresIndex
from pipelines.rag.postgres import recorded_encoder as recorded_in_database
from pipelines.rag.vectorstore import StoreKind


class Index(Protocol):
    """The knowledge index, wherever it lives; see `pipelines.rag.index` for the semantics."""

    encoder_tag: str
    dim: int
    chunk_words: int

    def check(self) -> None:
        """IndexMismatch (or IndexCorrupt) when unusable: call it at start-up."""
        ...

    def search(self, vector: np.ndarray, k: int) -> list[Hit]: ...

    def documents(self) -> list[DocumentInfo]: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...

    def plan(self, documents: Sequence[Document]) -> Plan: ...

    def commit(self, plan: Plan, vectors: np.ndarray) -> None: ...

    def add(self, documents: Sequence[Document], embed: Callable[[list[str]], np.ndarray], progress: bool = False) -> Plan: ...

    def delete(self, document_ids: Sequence[str]) -> list[str]: ...

    def clear(self) -> None: ...


def open_index(
    where: Path | Database,
    encoder_tag: str,
    dim: int,
    *,
    chunk_words: int = 120,
    store: StoreKind = "faiss",
    qdrant_location: str | None = None,
) -> Index:
    """The index in `where` for this encoder; nothing is read until the first call (check() at start-up)."""
    if isinstance(where, Database):
        if store != "faiss":
            raise ConfigError(
                f"SUMMARIZER_RAG_STORE={store} keeps vectors beside a folder index, but SUMMARIZER_DATABASE_URL is set, "
                "so the index lives in PostgreSQL: unset one of them"
            )
        return PostgresIndex(where, encoder_tag, dim, chunk_words=chunk_words)
    return KnowledgeIndex(Path(where), encoder_tag, dim, store=store, qdrant_location=qdrant_location, chunk_words=chunk_words)


def open_recorded(where: Path | Database, *, qdrant_location: str | None = None) -> Index | None:
    """The index as it was built, whatever the encoder (None if nothing was ever written): tools that embed nothing."""
    if isinstance(where, Database):
        recorded = recorded_in_database(where)
        return PostgresIndex(where, *recorded) if recorded else None
    found = recorded_encoder(Path(where))
    if found is None:
        return None
    tag, dim, store = found
    return KnowledgeIndex(Path(where), tag, dim, store=store, qdrant_location=qdrant_location)

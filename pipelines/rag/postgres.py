"""The knowledge index in PostgreSQL, shared by every replica (SUMMARIZER_DATABASE_URL set).

    index = PostgresIndex(Database(url), encoder_tag, encoder.dim)
    index.check()                                  # at start-up: IndexMismatch
    index.add([Document("faq.md", prepared.text)], encoder.encode)
    index.search(encoder.encode(["how do I reset my password?"])[0], k=5)   # [Hit(...), ...]

The same interface and rules as `KnowledgeIndex` (the files backend); only where the truth lives
differs. The database holds the documents, chunks, content hashes, the encoder tag and the
vectors (tables in `pipelines/postgres/migrations/versions/v0003_knowledge_index.py`). Each
instance searches an exact in-memory copy (FAISS IndexFlatIP, as the files backend does): before
each search, len() or documents() it reads the generation (one row), and when a write through any
replica has bumped it, reloads the documents written since, in one REPEATABLE READ transaction,
so a copy never mixes two versions. A write through one replica is seen by the next query
through any other, with no restart.

Writers serialize on the `rag_meta` row (SELECT ... FOR UPDATE); `add()` holds it while it
embeds, so two runs never embed the same documents twice. Each write is one transaction that
also bumps the generation: readers see all of it or none of it.

Faults: the Database's DatabaseUnavailable (503) and StorageFull / StorageReadOnly (507) pass
through as they are; a stored vector of the wrong length raises IndexCorrupt naming its chunk.
The Database is the caller's (the job store shares its pool): `close()` drops only the copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, cast

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from pipelines.postgres.pool import Database
from pipelines.rag.documents import (
    Document,
    DocumentInfo,
    Hit,
    IndexCorrupt,
    IndexMismatch,
    Plan,
    content_hash,
    hit,
)
from pipelines.rag.planning import checked_vectors, embed_in_batches, plan_documents
from pipelines.rag.snapshots import _Entry
from pipelines.rag.vectorstore import FaissStore
from pipelines.text.chunking import Chunk

REBUILD = "rebuild it with `python -m pipelines.rag index DOCS --rebuild` or point SUMMARIZER_DATABASE_URL elsewhere"
Connection = psycopg.Connection[tuple[Any, ...]]
_FLOAT = np.dtype("<f4")  # how vectors are stored: little-endian float32, whatever this machine is


class _Meta(NamedTuple):
    encoder_tag: str  # "" before the first write
    dim: int
    generation: int
    next_id: int


@dataclass(frozen=True)
class _State:
    """One generation of the index in memory; swapped whole, so a concurrent search sees one version."""

    generation: int = -1  # -1: nothing loaded yet
    encoder_tag: str = ""
    dim: int = 0
    documents: dict[str, _Entry] = field(default_factory=dict)
    chunks: dict[int, Chunk] = field(default_factory=dict)
    store: FaissStore | None = None  # None when the database holds another encoder's vectors (never loaded)


def recorded_encoder(db: Database) -> tuple[str, int] | None:
    """The encoder tag and dim the database's index was built with (None before any write)."""
    with db.connection() as conn:
        meta = _meta(conn)
    return (meta.encoder_tag, meta.dim) if meta.encoder_tag else None


class PostgresIndex:
    def __init__(self, db: Database, encoder_tag: str, dim: int, *, chunk_words: int = 120) -> None:
        if dim < 1 or chunk_words < 1 or not encoder_tag:
            raise ValueError(f"need an encoder tag, dim >= 1, chunk_words >= 1; got {encoder_tag!r}, {dim}, {chunk_words}")
        self.db, self.encoder_tag, self.dim, self.chunk_words = db, encoder_tag, dim, chunk_words
        self._state = _State()
        self._reload_lock = threading.Lock()  # one reload at a time; searches go on with the old copy

    # Reading

    def check(self) -> None:
        """Bring the copy up to date; IndexMismatch when the database holds another encoder's documents."""
        self._refresh()
        state = self._state
        if state.documents and (state.encoder_tag, state.dim) != (self.encoder_tag, self.dim):
            raise self._mismatch(state.encoder_tag, state.dim)

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        """The k chunks nearest to a unit query vector, best first (exact: every vector is scored)."""
        self.check()
        state = self._state
        if state.store is None or not state.chunks or k < 1:
            return []
        return [hit(state.chunks[i], s) for i, s in state.store.search(np.asarray(vector, dtype=np.float32), k)]

    def documents(self) -> list[DocumentInfo]:
        self.check()
        return [e.info(k) for k, e in sorted(self._state.documents.items())]

    def __len__(self) -> int:
        self.check()
        return len(self._state.chunks)

    def close(self) -> None:
        """Drop the in-memory copy; the Database stays open for its owner to close."""
        self._state = _State()

    def _refresh(self) -> None:
        with self.db.connection() as conn:
            generation = int(_one(conn, "SELECT generation FROM rag_meta")[0])
        if generation == self._state.generation:
            return
        with self._reload_lock:
            if self._state.generation == generation:
                return  # another thread reloaded meanwhile
            with self.db.connection() as conn:
                # One snapshot for the meta row, the documents and their chunks: no half-applied write.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                self._state = self._load(conn, self._state)

    def _load(self, conn: Connection, old: _State) -> _State:
        """The state at the database's generation, reading only the chunks of documents written since `old`."""
        meta = _meta(conn)
        rows = {r[0]: r for r in conn.execute("SELECT id, hash, metadata, indexed_at, chunk_words, generation FROM rag_documents")}
        if (meta.encoder_tag, meta.dim) != (self.encoder_tag, self.dim):
            # Another encoder's vectors are never loaded: check() refuses them, or a write takes an empty index over.
            return _State(meta.generation, meta.encoder_tag, meta.dim, {k: _entry(r) for k, r in rows.items()})
        # Generations only grow: a smaller one means the database was restored or replaced, so load it all.
        incremental = old.store is not None and (old.encoder_tag, old.dim) == (self.encoder_tag, self.dim)
        since = old.generation if incremental and old.generation <= meta.generation else -1
        kept = {k: e for k, e in old.documents.items() if k in rows and rows[k][5] <= since}
        chunks = {i: c for i, c in old.chunks.items() if c.document_id in kept}
        store = FaissStore(self.dim)
        if since >= 0 and old.store is not None:
            store = old.store.fork()  # searches go on with the old copy until the swap
            store.remove([i for k, e in old.documents.items() if k not in kept for i in e.chunk_ids])
        documents = {**kept, **{k: _entry(r) for k, r in rows.items() if r[5] > since}}
        store.add(*self._new_chunks(conn, since, documents, chunks))
        return _State(meta.generation, meta.encoder_tag, meta.dim, documents, chunks, store)

    def _new_chunks(self, conn: Connection, since: int, documents: dict[str, _Entry], chunks: dict[int, Chunk]) -> tuple[list[int], np.ndarray]:
        """Read the chunks of documents written after `since` into `documents` and `chunks`; their ids and vectors."""
        ids: list[int] = []
        blobs: list[bytes] = []
        with conn.cursor(binary=True) as cur:  # binary: bytea arrives as bytes, not hex text to decode
            cur.execute(
                "SELECT c.id, c.document_id, c.position, c.heading, c.text, c.vector FROM rag_chunks c "
                "JOIN rag_documents d ON d.id = c.document_id WHERE d.generation > %s ORDER BY c.id",
                [since],
            )
            for chunk_id, doc_id, position, heading, text, vector in cur.fetchall():  # one call, not one per row
                if len(vector) != self.dim * _FLOAT.itemsize:
                    raise IndexCorrupt(
                        f"chunk {chunk_id} of {doc_id!r} in {self.db.shown} holds {len(vector)} bytes, not {self.dim} "
                        f"float32 values; {REBUILD}"
                    )
                chunks[chunk_id] = Chunk(doc_id, position, text, heading)
                documents[doc_id].chunk_ids.append(chunk_id)
                ids.append(chunk_id)
                blobs.append(vector)
        return ids, np.frombuffer(b"".join(blobs), dtype=_FLOAT).reshape(len(ids), self.dim)

    def _mismatch(self, encoder_tag: str, dim: int) -> IndexMismatch:
        return IndexMismatch(
            f"the index in {self.db.shown} was built with encoder {encoder_tag} (dim {dim}); "
            f"this server uses {self.encoder_tag} (dim {self.dim}): {REBUILD}"
        )

    # Writing

    @contextmanager
    def _locked(self) -> Iterator[tuple[Connection, _Meta]]:
        """One transaction holding the writers' lock, with the meta row as it is once granted."""
        with self.db.connection() as conn:
            yield conn, _meta(conn, lock=True)

    def plan(self, documents: Sequence[Document]) -> Plan:
        """What add() would embed: new or changed documents only."""
        with self.db.connection() as conn:
            return plan_documents(documents, self._known(conn, _meta(conn)), self.chunk_words)

    def commit(self, plan: Plan, vectors: np.ndarray) -> None:
        """Store the plan's chunks with their vectors (one row per plan.texts), replacing changed documents."""
        if not plan.documents:
            return  # all unchanged: nothing to write, no new generation
        rows = checked_vectors(plan, vectors, self.dim)
        with self._locked() as (conn, meta):
            self._writable(conn, meta)
            self._write(conn, meta, plan, rows)

    def add(self, documents: Sequence[Document], embed: Callable[[list[str]], np.ndarray], progress: bool = False) -> Plan:
        """Plan, embed the new chunks in batches, commit; holds the writers' lock throughout."""
        with self._locked() as (conn, meta):
            plan = plan_documents(documents, self._known(conn, meta), self.chunk_words)
            if plan.documents:
                self._write(conn, meta, plan, checked_vectors(plan, embed_in_batches(plan.texts, embed, self.dim, progress), self.dim))
        return plan

    def delete(self, document_ids: Sequence[str]) -> list[str]:
        """Remove documents and their chunks; returns the ids that were in the index."""
        with self._locked() as (conn, _):
            gone = {r[0] for r in conn.execute("DELETE FROM rag_documents WHERE id = ANY(%s) RETURNING id", [list(document_ids)])}
            if gone:
                conn.execute("UPDATE rag_meta SET generation = generation + 1")
        return [i for i in dict.fromkeys(document_ids) if i in gone]

    def clear(self) -> None:
        """Remove every document, whatever encoder built them (the CLI's --rebuild); this encoder takes the index."""
        with self._locked() as (conn, _):
            conn.execute("DELETE FROM rag_documents")  # chunks go with them (ON DELETE CASCADE)
            conn.execute("UPDATE rag_meta SET encoder_tag = %s, dim = %s, generation = generation + 1", [self.encoder_tag, self.dim])

    def _writable(self, conn: Connection, meta: _Meta) -> None:
        """IndexMismatch when the database holds documents of another encoder (an empty index may be taken over)."""
        if (meta.encoder_tag, meta.dim) != (self.encoder_tag, self.dim):
            if conn.execute("SELECT EXISTS (SELECT 1 FROM rag_documents)").fetchone() == (True,):
                raise self._mismatch(meta.encoder_tag, meta.dim)

    def _known(self, conn: Connection, meta: _Meta) -> dict[str, tuple[str, int]]:
        """Each indexed document's (content hash, chunk_words), for planning."""
        self._writable(conn, meta)
        if (meta.encoder_tag, meta.dim) != (self.encoder_tag, self.dim):
            return {}
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, hash, chunk_words FROM rag_documents")}

    def _write(self, conn: Connection, meta: _Meta, plan: Plan, rows: np.ndarray) -> None:
        """Replace the plan's documents and bump the generation, in the caller's locked transaction."""
        generation, first = meta.generation + 1, meta.next_id
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        conn.execute("DELETE FROM rag_documents WHERE id = ANY(%s)", [[d.id for d in plan.documents]])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO rag_documents (id, hash, metadata, indexed_at, chunk_words, generation) VALUES (%s, %s, %s, %s, %s, %s)",
                [(d.id, content_hash(d), Jsonb(d.metadata), now, self.chunk_words, generation) for d in plan.documents],
            )
            # Binary: vectors go as raw bytes, not hex text that doubles their size.
            with cur.copy("COPY rag_chunks (id, document_id, position, heading, text, vector) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bigint", "text", "integer", "text", "text", "bytea"])
                for chunk_id, chunk, vector in zip(range(first, first + len(plan.chunks)), plan.chunks, rows, strict=True):
                    copy.write_row((chunk_id, chunk.document_id, chunk.index, chunk.heading, chunk.text, vector.astype(_FLOAT).tobytes()))
        conn.execute(
            "UPDATE rag_meta SET encoder_tag = %s, dim = %s, generation = %s, next_id = %s",
            [self.encoder_tag, self.dim, generation, first + len(plan.chunks)],
        )


def _entry(row: tuple[Any, ...]) -> _Entry:
    """A document row as its in-memory record; chunk ids are filled in as its chunks are read."""
    _, digest, metadata, indexed_at, chunk_words, _ = row
    return _Entry(str(digest), [], {str(a): str(b) for a, b in metadata.items()}, str(indexed_at), int(chunk_words))


def _one(conn: Connection, query: str) -> tuple[Any, ...]:
    row = conn.execute(cast(Any, query)).fetchone()
    if row is None:
        raise IndexCorrupt(f"{query!r} found no row: the rag_meta row is missing; run the migrations again")
    return row


def _meta(conn: Connection, *, lock: bool = False) -> _Meta:
    query = "SELECT encoder_tag, dim, generation, next_id FROM rag_meta" + (" FOR UPDATE" if lock else "")
    tag, dim, generation, next_id = _one(conn, query)
    return _Meta(str(tag), int(dim), int(generation), int(next_id))

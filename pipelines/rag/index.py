"""The knowledge index: the user's own documents, chunked and embedded, for summaries that use them.

Layout under `directory` (a volume): `manifest.json` names the live version, the encoder that
embedded it and each document's content hash and chunk ids; `snap-000042/` holds that version's
`chunks.jsonl` (chunk texts) and, for FAISS, `vectors.faiss`. A commit writes a new snapshot
completely, then swaps the manifest with `os.replace`, so readers see the old index or the new one,
never half of one. Writers (the CLI, a server) serialize on `flock(directory/.lock)`; readers take
no lock and reload when the manifest changes (one stat per call). The last 2 snapshots are kept, so
a reader that has just read the manifest can still open its snapshot.

    index = KnowledgeIndex(Path("rag-index"), encoder_tag, encoder.dim)
    index.check()                                  # at start-up: IndexCorrupt / IndexMismatch
    index.add([Document("faq.md", prepared.text, {"format": "text"})], encoder.encode)
    index.search(encoder.encode(["how do I reset my password?"])[0], k=5)   # [Hit(...), ...]

Vectors of two encoders never mix: once it holds documents, an index built with another encoder
tag or dimension raises IndexMismatch; `python -m pipelines.rag index DOCS --rebuild` (which
calls `clear()`) starts it again. Qdrant's local mode allows one KnowledgeIndex per folder at a time.

Faults: a full or read-only volume makes a write raise StorageFull or StorageReadOnly (507) with
nothing changed (a partial snapshot is removed; the manifest still names the last complete one,
which stays searchable); a file changed on disk raises IndexCorrupt at load, naming it, because
the manifest records every snapshot file's sha256 (and its own).

This module holds `KnowledgeIndex` (locking, versions, the in-memory state); the value types and
errors live in `pipelines.rag.documents` and the file formats in `pipelines.rag.snapshots`, to keep each
module small. Import the public names from here: `__all__` re-exports them.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipelines.errors import storage_error
from pipelines.rag.documents import (
    MAX_ID_CHARS,
    SNIPPET_CHARS,
    Document,
    DocumentInfo,
    Hit,
    IndexCorrupt,
    IndexMismatch,
    InvalidDocument,
    KnowledgeIndexError,
    Plan,
    content_hash,
    hit,
    snippet,
)
from pipelines.rag.planning import EMBED_BATCH, checked_vectors, embed_in_batches, plan_documents
from pipelines.rag.snapshots import (
    _REBUILD,
    CHUNKS,
    LOCK,
    MANIFEST,
    _Entry,
    _fsync,
    _Manifest,
    _read_manifest,
    _snapshot_sums,
    _verify_snapshot,
    _write_chunks,
    _write_manifest,
    recorded_encoder,
)

# Called through this module's globals, so a test can patch `rag._read_chunks`; the alias exports it.
from pipelines.rag.snapshots import _read_chunks as _read_chunks
from pipelines.rag.vectorstore import FAISS_FILE, FaissStore, QdrantStore, StoreKind, VectorStore, open_store
from pipelines.text.chunking import Chunk

__all__ = [
    "CHUNKS",
    "EMBED_BATCH",
    "LOCK",
    "MANIFEST",
    "MAX_ID_CHARS",
    "SNIPPET_CHARS",
    "Document",
    "DocumentInfo",
    "Hit",
    "IndexCorrupt",
    "IndexMismatch",
    "InvalidDocument",
    "KnowledgeIndex",
    "KnowledgeIndexError",
    "Plan",
    "content_hash",
    "recorded_encoder",
    "snippet",
]

WHAT = "the knowledge index"
log = logging.getLogger("summarizer.rag")
_Stamp = tuple[int, int, int] | None  # the manifest's inode, mtime_ns and size: a cheap "changed?"


@dataclass(frozen=True)
class _State:
    """What one version of the index holds in memory; swapped whole, so a concurrent search sees one version."""

    manifest: _Manifest | None = None
    chunks: dict[int, Chunk] = field(default_factory=dict)
    store: VectorStore | None = None
    stamp: _Stamp = None


class KnowledgeIndex:
    def __init__(
        self,
        directory: Path,
        encoder_tag: str,
        dim: int,
        *,
        store: StoreKind = "faiss",
        qdrant_location: str | None = None,
        chunk_words: int = 120,
    ) -> None:
        if dim < 1 or chunk_words < 1 or store not in ("faiss", "qdrant") or not encoder_tag:
            raise ValueError(f"need an encoder tag, dim >= 1, chunk_words >= 1, store faiss|qdrant; got "
                             f"{encoder_tag!r}, {dim}, {chunk_words}, {store!r}")  # fmt: skip
        self.directory, self.encoder_tag, self.dim, self.store_kind = Path(directory), encoder_tag, dim, store
        self.qdrant_location = qdrant_location or str(self.directory / "qdrant")
        self.chunk_words = chunk_words
        self._state = _State()
        self._reload_lock = threading.Lock()  # one reload at a time (Qdrant's local mode allows one client)

    # Reading

    def check(self) -> None:
        """Load (or reload) the live version; IndexCorrupt or IndexMismatch when it is unusable."""
        self._refresh()
        m = self._state.manifest
        if m is not None and m.documents and (m.encoder_tag, m.dim, m.store) != (self.encoder_tag, self.dim, self.store_kind):
            raise IndexMismatch(
                f"index at {self.directory} was built with encoder {m.encoder_tag} (dim {m.dim}, {m.store} store); "
                f"this server uses {self.encoder_tag} (dim {self.dim}, {self.store_kind} store): {_REBUILD}"
            )

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        """The k chunks nearest to a unit query vector, best first."""
        self.check()
        state = self._state
        if state.store is None or not state.chunks or k < 1:
            return []
        # A crashed Qdrant commit can leave points no manifest names: ask for a few extra.
        pairs = state.store.search(np.asarray(vector, dtype=np.float32), k + (8 if state.store.shared else 0))
        return [hit(state.chunks[i], s) for i, s in pairs if i in state.chunks][:k]

    def documents(self) -> list[DocumentInfo]:
        self.check()
        docs = self._state.manifest.documents if self._state.manifest else {}
        return [e.info(k) for k, e in sorted(docs.items())]

    def __len__(self) -> int:
        self.check()
        return len(self._state.chunks)

    def close(self) -> None:
        """Release the store (Qdrant's local mode holds a folder lock until then)."""
        self._install(_State())

    def _stat(self) -> _Stamp:
        try:
            st = (self.directory / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self, force: bool = False) -> None:
        if self._stat() == self._state.stamp and not force:
            return
        with self._reload_lock:
            for attempt in range(3):
                stamp = self._stat()
                if stamp == self._state.stamp and not force:
                    return  # another thread reloaded meanwhile
                manifest = _read_manifest(self.directory / MANIFEST)
                current = self._state.manifest
                if manifest is None or (current is not None and manifest.version == current.version):
                    self._install(replace(self._state, stamp=stamp) if manifest else _State())
                    return
                try:
                    chunks, store = self._load(manifest)
                    self._install(_State(manifest, chunks, store, stamp))
                    return
                except FileNotFoundError as exc:
                    # A writer swapped the manifest and pruned this snapshot since we read it: read again.
                    if attempt == 2:
                        raise IndexCorrupt(f"{exc.filename} is missing: the manifest names a snapshot that is gone; {_REBUILD}") from exc

    def _load(self, m: _Manifest) -> tuple[dict[int, Chunk], VectorStore | None]:
        folder = self.directory / m.snapshot
        _verify_snapshot(folder, m.files)
        chunks = _read_chunks(folder / CHUNKS)
        if m.store == "qdrant":
            current = self._state.store
            if isinstance(current, QdrantStore) and current.collection == m.collection:
                return chunks, current
            if current is not None:
                self._install(_State())  # local mode: one client per folder, so close first
            if not m.collection:
                return chunks, None
            return chunks, open_store("qdrant", m.dim, None, qdrant_location=self.qdrant_location, collection=m.collection)
        vectors = folder / FAISS_FILE
        if not vectors.is_file():
            raise FileNotFoundError(errno.ENOENT, "no vectors", str(vectors))
        try:
            return chunks, open_store("faiss", m.dim, folder)
        except RuntimeError as exc:  # faiss reports unreadable files as RuntimeError
            raise IndexCorrupt(f"{vectors} is not a readable FAISS index ({exc}); {_REBUILD}") from exc

    def _install(self, state: _State) -> None:
        old, self._state = self._state.store, state
        if old is not None and old is not state.store:
            old.close()

    # Writing

    @contextmanager
    def _locked(self, *, tolerate_corrupt: bool = False) -> Iterator[None]:
        with self._storage_errors():
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = (self.directory / LOCK).open("a")  # write access: a read-only volume stops here
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, even if this process dies
            try:
                self._refresh(force=True)  # another writer may have committed while we waited
            except IndexCorrupt:
                if not tolerate_corrupt:
                    raise
                self._install(_State())
            yield

    def plan(self, documents: Sequence[Document]) -> Plan:
        """What add() would embed: new or changed documents only."""
        with self._locked():
            return self._plan(documents)

    def _plan(self, documents: Sequence[Document]) -> Plan:
        self.check()
        m = self._state.manifest
        entries = m.documents if m is not None and m.encoder_tag == self.encoder_tag else {}
        return plan_documents(documents, {k: (e.hash, e.chunk_words) for k, e in entries.items()}, self.chunk_words)

    def commit(self, plan: Plan, vectors: np.ndarray) -> None:
        """Store the plan's chunks with their vectors (one row per plan.texts), replacing changed documents."""
        with self._locked():
            self._commit(plan, vectors)

    def add(self, documents: Sequence[Document], embed: Callable[[list[str]], np.ndarray], progress: bool = False) -> Plan:
        """Plan, embed the new chunks in batches, commit; holds the write lock throughout."""
        with self._locked():
            plan = self._plan(documents)
            if plan.documents:
                self._commit(plan, embed_in_batches(plan.texts, embed, self.dim, progress))
        return plan

    def _commit(self, plan: Plan, vectors: np.ndarray) -> None:
        self.check()
        if not plan.documents:
            return  # all unchanged: no new version
        rows = checked_vectors(plan, vectors, self.dim)
        state = self._state
        m, store = state.manifest, state.store
        if m is None or (m.encoder_tag, m.dim, m.store) != (self.encoder_tag, self.dim, self.store_kind):
            # Empty (check() passed), so this encoder takes it over; a Qdrant folder allows one client.
            m, store, state = self._empty(m), None, _State()
            self._install(state)
        if store is None:
            m = replace(m, collection=f"summarizer-rag-{uuid.uuid4().hex[:12]}" if m.store == "qdrant" else "")
            store = open_store(m.store, m.dim, None, qdrant_location=self.qdrant_location, collection=m.collection)
        else:
            store = store.fork()
        new_ids = list(range(m.next_id, m.next_id + len(plan.chunks)))
        store.add(new_ids, rows)
        documents, chunks = dict(m.documents), dict(state.chunks)
        stale = [i for d in plan.documents if d.id in documents for i in documents[d.id].chunk_ids]
        for i in stale:
            del chunks[i]
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        by_doc: dict[str, list[int]] = {d.id: [] for d in plan.documents}
        for chunk_id, chunk in zip(new_ids, plan.chunks, strict=True):
            by_doc[chunk.document_id].append(chunk_id)
            chunks[chunk_id] = chunk
        for doc in plan.documents:
            documents[doc.id] = _Entry(content_hash(doc), by_doc[doc.id], dict(doc.metadata), now, self.chunk_words)
        self._publish(replace(m, next_id=m.next_id + len(new_ids), documents=documents), chunks, store, stale)

    def delete(self, document_ids: Sequence[str]) -> list[str]:
        """Remove documents and their chunks; returns the ids that were in the index."""
        with self._locked():
            state = self._state
            m = state.manifest
            found = list(dict.fromkeys(i for i in document_ids if m is not None and i in m.documents))
            if m is None or not found:
                return []
            documents = {k: v for k, v in m.documents.items() if k not in found}
            stale = [i for k in found for i in m.documents[k].chunk_ids]
            chunks = {i: c for i, c in state.chunks.items() if c.document_id in documents}
            store = state.store.fork() if state.store is not None else None
            self._publish(replace(m, documents=documents), chunks, store, stale)
        return found

    def clear(self) -> None:
        """Remove every document, whatever encoder built them (the CLI's --rebuild); works on a corrupt index."""
        with self._locked(tolerate_corrupt=True):
            m = self._state.manifest
            self._publish(self._empty(m), {}, FaissStore(self.dim) if self.store_kind == "faiss" else None, [])
            if m is not None and m.collection:
                # Publishing closed the old client; drop the collection that no manifest names any more.
                dropped = QdrantStore(m.dim, self.qdrant_location, m.collection)
                dropped.drop()
                dropped.close()

    def _empty(self, m: _Manifest | None) -> _Manifest:
        """No documents, this encoder; ids continue, so none is ever reused."""
        return _Manifest(m.version if m else 0, self.encoder_tag, self.dim, self.store_kind, "", m.next_id if m else 0, {})

    @contextmanager
    def _storage_errors(self) -> Iterator[None]:
        """OSErrors of the volume become StorageFull / StorageReadOnly / StorageError, logged with the folder."""
        try:
            yield
        except OSError as exc:
            err = storage_error(exc, WHAT)
            log.error("knowledge index %s: %s (%s)", self.directory, err.message, exc)
            raise err from exc

    def _publish(self, m: _Manifest, chunks: dict[int, Chunk], store: VectorStore | None, stale: list[int]) -> None:
        """Write a new snapshot completely, swap the manifest in, then drop what only old versions used."""
        previous = self._state.manifest.snapshot if self._state.manifest else ""
        on_disk = [int(p.name[5:]) for p in self.directory.glob("snap-*") if p.name[5:].isdigit()]
        m = replace(m, version=max([m.version, *on_disk]) + 1)  # past any snapshot a crashed commit left
        if store is not None and not store.shared:
            store.remove(stale)  # into the new snapshot only; readers keep the old one
        folder, live = self.directory / m.snapshot, self._stat()
        with self._storage_errors():
            try:
                m = self._write_snapshot(folder, m, chunks, store)
                _write_manifest(self.directory, m)  # the commit point: os.replace, then fsync the folder
            except BaseException:
                if self._stat() == live:  # not swapped in: free what the snapshot took, so a retry has room
                    shutil.rmtree(folder, ignore_errors=True)
                raise
        with self._reload_lock:  # so a reader's reload, begun before the swap, cannot land after it
            self._install(_State(m, chunks, store, self._stat()))
        if store is not None and store.shared:
            store.remove(stale)  # only now does no manifest name them
        for old in self.directory.glob("snap-*"):
            if old.name not in (m.snapshot, previous):  # keep 2: a reader may have just read the last manifest
                shutil.rmtree(old, ignore_errors=True)

    def _write_snapshot(self, folder: Path, m: _Manifest, chunks: dict[int, Chunk], store: VectorStore | None) -> _Manifest:
        """The snapshot's files, synced; the manifest to publish, with their checksums."""
        folder.mkdir()
        _write_chunks(folder / CHUNKS, chunks)
        if store is not None:
            store.save(folder)
        for path in [*folder.iterdir(), folder]:
            _fsync(path)
        return replace(m, files=_snapshot_sums(folder))

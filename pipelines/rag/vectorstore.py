"""Where chunk vectors live: a FAISS file per index snapshot, or a Qdrant collection.

Vectors are unit length, so cosine similarity is the inner product. `FaissStore` is exact
(brute force) search: about 1M chunks of 384 floats (1.5 GB) still answer in tens of ms on a
CPU; beyond that, swap IndexFlatIP for IndexHNSWFlat (the knob: M, efSearch), or use Qdrant.
`QdrantStore` talks to a Qdrant server ("http(s)://host:6333", the path to scale out) or, given
anything else, opens a local folder (qdrant-client's local mode: one process at a time).

    store = open_store("faiss", 384, snapshot_folder)
    store.add([7, 8], vectors)
    store.search(query_vector, k=5)   # [(8, 0.83), (7, 0.41)]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import faiss
import numpy as np

StoreKind = Literal["faiss", "qdrant"]
FAISS_FILE = "vectors.faiss"
_QDRANT_BATCH = 512  # points per upsert request: bounded request bodies for a server


class VectorStore(Protocol):
    # True when vectors live outside the snapshot folder (a Qdrant collection): writes show at
    # once, so the index adds before and removes after its manifest swap.
    shared: bool

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Sequence[int]) -> None: ...

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(id, cosine) pairs, best first, at most k."""
        ...

    def count(self) -> int: ...

    def save(self, folder: Path) -> None: ...

    def fork(self) -> VectorStore:
        """The store a writer changes: a copy for snapshot stores, the store itself when shared."""
        ...

    def close(self) -> None: ...


def _rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise ValueError(f"vectors must have shape (n, {dim}), got {tuple(vectors.shape)}")
    return rows


class FaissStore:
    shared = False

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def load(cls, folder: Path) -> FaissStore:
        index = faiss.read_index(str(folder / FAISS_FILE))
        return cls(int(index.d), index)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        rows = _rows(vectors, self.dim)
        if len(ids) != len(rows):
            raise ValueError(f"got {len(ids)} ids for {len(rows)} vectors")
        if len(ids):
            self.index.add_with_ids(rows, np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            # faiss's Python wrapper takes an id array here; its stub only knows IDSelector.
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k < 1 or self.index.ntotal == 0:
            return []
        scores, ids = self.index.search(_rows(vector, self.dim)[:1], min(k, int(self.index.ntotal)))
        # faiss pads with id -1 when fewer than k vectors exist.
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def count(self) -> int:
        return int(self.index.ntotal)

    def save(self, folder: Path) -> None:
        # Through a Python file: a full or read-only volume then raises OSError with its errno,
        # where faiss's own writer gives a RuntimeError with the reason in prose.
        with (folder / FAISS_FILE).open("wb") as out:
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(out.write))  # type: ignore[attr-defined]

    def fork(self) -> FaissStore:
        return FaissStore(self.dim, faiss.clone_index(self.index))

    def close(self) -> None:
        pass


class QdrantStore:
    shared = True

    def __init__(self, dim: int, location: str, collection: str) -> None:
        from qdrant_client import QdrantClient, models  # a second of imports that FAISS users skip

        self.dim = dim
        self.collection = collection
        self._models = models
        if location.startswith(("http://", "https://")):
            self.client = QdrantClient(url=location)
        else:
            Path(location).mkdir(parents=True, exist_ok=True)
            try:
                self.client = QdrantClient(path=location)
            except RuntimeError as exc:  # the folder lock of local mode
                raise RuntimeError(
                    f"the Qdrant folder {location} is open in another process or index; local mode allows one "
                    "at a time: close it, or set SUMMARIZER_RAG_QDRANT_LOCATION to a Qdrant server URL"
                ) from exc
        if not self.client.collection_exists(collection):
            params = models.VectorParams(size=dim, distance=models.Distance.COSINE)
            self.client.create_collection(collection, vectors_config=params)

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        rows = _rows(vectors, self.dim)
        if len(ids) != len(rows):
            raise ValueError(f"got {len(ids)} ids for {len(rows)} vectors")
        for start in range(0, len(ids), _QDRANT_BATCH):
            batch = self._models.Batch(
                ids=[int(i) for i in ids[start : start + _QDRANT_BATCH]],
                vectors=rows[start : start + _QDRANT_BATCH].tolist(),
            )
            self.client.upsert(self.collection, points=batch, wait=True)

    def remove(self, ids: Sequence[int]) -> None:
        for start in range(0, len(ids), _QDRANT_BATCH):
            selector = self._models.PointIdsList(points=[int(i) for i in ids[start : start + _QDRANT_BATCH]])
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k < 1:
            return []
        query = _rows(vector, self.dim)[0].tolist()
        points = self.client.query_points(self.collection, query=query, limit=k).points
        return [(int(p.id), float(p.score)) for p in points]

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def save(self, folder: Path) -> None:
        pass  # the server (or the local folder) persists every write itself

    def fork(self) -> QdrantStore:
        return self

    def drop(self) -> None:
        """Delete the whole collection (a rebuilt index gets a new one)."""
        self.client.delete_collection(self.collection)

    def close(self) -> None:
        self.client.close()


def open_store(
    kind: StoreKind, dim: int, snapshot: Path | None, *, qdrant_location: str = "", collection: str = ""
) -> VectorStore:
    """The store of one index version: FAISS loads the snapshot's file (empty when None)."""
    if kind == "faiss":
        return FaissStore.load(snapshot) if snapshot is not None else FaissStore(dim)
    if kind == "qdrant":
        return QdrantStore(dim, qdrant_location, collection)
    raise ValueError(f"store must be 'faiss' or 'qdrant', got {kind!r}")

"""The knowledge index's files: the manifest's format and the snapshot's chunk table, read and written.

Kept apart from `pipelines.rag.index` so the on-disk format (field names, `"format": 1`, what counts as
corrupt) lives in one place, its reader next to its writer, while `KnowledgeIndex` keeps the
locking, versioning and in-memory state. The layout and commit protocol are described in
`pipelines.rag.index`; what is named `_` here is for that module only (and `_Entry`, a document's
record, for the PostgreSQL backend's in-memory copy too).

Damage is detected, not trusted: the manifest carries the sha256 of its own content and of every
file of its snapshot, and a reader checks them before loading (IndexCorrupt names the file).
Manifests written before these checksums existed load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.rag.documents import DocumentInfo, IndexCorrupt
from pipelines.rag.vectorstore import StoreKind
from pipelines.text.chunking import Chunk

MANIFEST, CHUNKS, LOCK = "manifest.json", "chunks.jsonl", ".lock"
_REBUILD = "rebuild it with `python -m pipelines.rag index DOCS --rebuild` or point SUMMARIZER_RAG_DIR elsewhere"


@dataclass
class _Entry:
    hash: str
    chunk_ids: list[int]
    metadata: dict[str, str]
    indexed_at: str
    chunk_words: int  # re-chunk when the setting changes, even if the text did not

    def info(self, document_id: str) -> DocumentInfo:
        return DocumentInfo(document_id, len(self.chunk_ids), self.hash, dict(self.metadata), self.indexed_at)


@dataclass
class _Manifest:
    version: int
    encoder_tag: str
    dim: int
    store: StoreKind
    collection: str  # the Qdrant collection; "" for FAISS or before the first commit
    next_id: int  # chunk ids are never reused, so a stale vector can never pass for a new chunk
    documents: dict[str, _Entry]
    files: dict[str, str] = field(default_factory=dict)  # snapshot file name -> sha256

    @property
    def snapshot(self) -> str:
        return f"snap-{self.version:06d}"


def _read_manifest(path: Path) -> _Manifest | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        recorded = raw.pop("sha256", None)
        if recorded is not None and recorded != _body_sha256(raw):
            raise ValueError("its content does not match its sha256: it was changed or damaged on disk")
        if raw["format"] != 1 or raw["store"] not in ("faiss", "qdrant"):
            raise ValueError(f"unknown format {raw['format']!r} or store {raw['store']!r}")
        docs = {
            str(k): _Entry(str(v["hash"]), [int(i) for i in v["chunk_ids"]], {str(a): str(b) for a, b in v["metadata"].items()},
                           str(v["indexed_at"]), int(v["chunk_words"]))
            for k, v in raw["documents"].items()
        }  # fmt: skip
        files = {str(k): str(v) for k, v in raw.get("files", {}).items()}
        return _Manifest(int(raw["version"]), str(raw["encoder_tag"]), int(raw["dim"]), raw["store"],
                         str(raw["collection"]), int(raw["next_id"]), docs, files)  # fmt: skip
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexCorrupt(f"{path} is not a valid index manifest ({type(exc).__name__}: {exc}); {_REBUILD}") from exc


def recorded_encoder(directory: Path) -> tuple[str, int, StoreKind] | None:
    """The encoder tag, dim and store an index was built with (None if there is none): for tools that embed nothing."""
    m = _read_manifest(Path(directory) / MANIFEST)
    return (m.encoder_tag, m.dim, m.store) if m is not None else None


def _write_manifest(directory: Path, m: _Manifest) -> None:
    """Swap in a new manifest: written and synced beside the live one, then renamed over it."""
    tmp = directory / (MANIFEST + ".tmp")
    body = {"format": 1, **asdict(m), "snapshot": m.snapshot}
    try:
        _write_synced(tmp, json.dumps({**body, "sha256": _body_sha256(body)}, ensure_ascii=False, indent=1))
        os.replace(tmp, directory / MANIFEST)  # the commit point
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep a half-written manifest around
        raise
    _fsync(directory)


def _body_sha256(body: dict[str, object]) -> str:
    """The manifest's own checksum: over a canonical form, so indentation and key order do not matter."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _snapshot_sums(folder: Path) -> dict[str, str]:
    """What the manifest records of a snapshot just written: each file's sha256."""
    return {p.name: _file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _verify_snapshot(folder: Path, sums: dict[str, str]) -> None:
    """IndexCorrupt naming the first file whose content is not what the manifest recorded.

    A missing file raises FileNotFoundError: a writer may have pruned the snapshot meanwhile."""
    for name, expected in sorted(sums.items()):
        path = folder / name
        actual = _file_sha256(path)
        if actual != expected:
            raise IndexCorrupt(
                f"{path} does not match the sha256 the manifest recorded for it (changed or damaged on disk: "
                f"expected {expected[:12]}..., found {actual[:12]}...); {_REBUILD}"
            )


def _read_chunks(path: Path) -> dict[int, Chunk]:
    """The snapshot's chunk table; FileNotFoundError passes through (a writer may have pruned it)."""
    chunks: dict[int, Chunk] = {}
    with path.open(encoding="utf-8") as lines:
        try:
            for line in lines:
                row = json.loads(line)
                chunks[int(row["id"])] = Chunk(str(row["document"]), int(row["index"]), str(row["text"]), str(row["heading"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"{path} is not a valid chunk file ({type(exc).__name__}: {exc}); {_REBUILD}") from exc
    return chunks


def _write_chunks(path: Path, chunks: dict[int, Chunk]) -> None:
    """The snapshot's chunk table, one JSON object per line in id order, synced."""
    rows = ({"id": i, "document": c.document_id, "index": c.index, "heading": c.heading, "text": c.text}
            for i, c in sorted(chunks.items()))  # fmt: skip
    _write_synced(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

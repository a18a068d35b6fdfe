"""What the knowledge index takes and gives back: documents, hits, plans, and its errors.

Kept apart from `pipelines.rag.index` (the index itself) and `pipelines.rag.snapshots` (its files), so code
that only passes documents or hits around needs neither. Import these names from `pipelines.rag.index`,
which re-exports them all. The errors, under `pipelines.errors.SummarizerError`:

    BadInput (400)
    └── InvalidDocument           a bad document id or metadata; also a ValueError
    KnowledgeIndexError (503)     an operator's problem; the detail goes to the log
    ├── IndexMismatch             built with another encoder tag, dimension or store
    └── IndexCorrupt              the manifest or a snapshot file cannot be read
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field

from pipelines.errors import BadInput, SummarizerError
from pipelines.text.chunking import Chunk

SNIPPET_CHARS = 240
MAX_ID_CHARS = 256


class KnowledgeIndexError(SummarizerError):
    """An operator's problem (a mismatched or damaged index), not the client's: 503, and the
    detailed message goes to the log, not to clients."""

    status_code = 503
    public_message = "the knowledge index is unavailable; the server log says why"


class IndexMismatch(KnowledgeIndexError):
    """The index on disk was built with another encoder tag, dimension or store kind."""


class IndexCorrupt(KnowledgeIndexError):
    """The manifest or a snapshot file cannot be read; the message names the file."""


class InvalidDocument(BadInput, ValueError):
    """A bad document id or metadata: a ValueError for library callers, a 400 for the service."""


@dataclass(frozen=True)
class Document:
    id: str  # e.g. the file's path relative to the indexed folder
    text: str  # already normalized and redacted by the caller: stored and quoted back as is
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or len(self.id) > MAX_ID_CHARS:
            raise InvalidDocument(f"document id must be a non-empty string of at most {MAX_ID_CHARS} characters, got {self.id!r}")
        if any(unicodedata.category(ch).startswith("C") for ch in self.id):
            raise InvalidDocument(f"document id must not contain control characters, got {self.id!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.metadata.items()):
            raise InvalidDocument(f"document metadata must map strings to strings, got {self.metadata!r} for {self.id!r}")
        if any("\x00" in k or "\x00" in v for k, v in self.metadata.items()):
            # PostgreSQL stores no NUL in text or jsonb: refused for both backends, so they accept the same documents.
            raise InvalidDocument(f"document metadata must not contain NUL characters, got {self.metadata!r} for {self.id!r}")


@dataclass(frozen=True)
class Hit:
    document_id: str
    chunk: int
    score: float  # cosine similarity
    snippet: str
    text: str
    heading: str


@dataclass(frozen=True)
class DocumentInfo:
    id: str
    chunks: int
    content_hash: str
    metadata: dict[str, str]
    indexed_at: str


@dataclass
class Plan:
    documents: list[Document]  # new or changed: their chunks are (re)embedded
    chunks: list[Chunk]
    texts: list[str]  # embedding_text(c) for c in chunks: what to embed, in order
    unchanged: list[str]  # ids skipped because their content hash is already indexed


def content_hash(document: Document) -> str:
    """sha256 of the text and the sorted metadata: equal hashes need no new embedding."""
    payload = json.dumps([document.text, sorted(document.metadata.items())], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The text cut on a word boundary, for result lists."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:-") + "…"


def hit(chunk: Chunk, score: float) -> Hit:
    """A stored chunk as a search result: the snippet for result lists, the whole text for prompts."""
    return Hit(chunk.document_id, chunk.index, score, snippet(chunk.text), chunk.text, chunk.heading)

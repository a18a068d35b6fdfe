"""One contract, both backends: what `pipelines.rag.backend.Index` promises, run on the files
backend (`KnowledgeIndex`) and on PostgreSQL (`PostgresIndex`). What only one backend has (its
snapshots, its database) is tested beside it, in test_index.py and test_postgres.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest

from pipelines.postgres.pool import Database
from pipelines.rag.backend import Index, open_index
from pipelines.rag.index import Document, IndexMismatch, InvalidDocument, content_hash, recorded_encoder
from pipelines.rag.postgres import recorded_encoder as recorded_in_database
from tests.pipelines.rag.fakes import DIM, DOCS, TAG, FakeEmbed, query, vectors


class Backend:
    """One store (a folder or a database) that opens as many indexes as a test wants, as separate
    replicas would: each PostgreSQL index gets a connection pool of its own."""

    def __init__(self, kind: str, place: str) -> None:
        self.kind, self.place = kind, place
        self.hint = "SUMMARIZER_RAG_DIR" if kind == "files" else "SUMMARIZER_DATABASE_URL"
        self._databases: list[Database] = []

    def open(self, tag: str = TAG, dim: int = DIM, chunk_words: int = 120) -> Index:
        return open_index(self._where(), tag, dim, chunk_words=chunk_words)

    def recorded(self) -> tuple[str, int] | None:
        """The encoder the store says its index was built with."""
        where = self._where()
        if isinstance(where, Database):
            return recorded_in_database(where)
        found = recorded_encoder(where)
        return found[:2] if found else None

    def version(self) -> int:
        """The manifest's version or the database's generation: what every write moves on."""
        if self.kind == "files":
            manifest = Path(self.place) / "manifest.json"
            return int(json.loads(manifest.read_text())["version"]) if manifest.exists() else 0
        with psycopg.connect(self.place) as conn:
            row = conn.execute("SELECT generation FROM rag_meta").fetchone()
        return int(row[0]) if row else 0

    def _where(self) -> Path | Database:
        if self.kind == "files":
            return Path(self.place)
        self._databases.append(Database(self.place, pool_size=2))
        return self._databases[-1]

    def close(self) -> None:
        for db in self._databases:
            db.close()


@pytest.fixture(params=["files", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    place = str(tmp_path / "rag") if request.param == "files" else request.getfixturevalue("database_url")
    backend = Backend(request.param, place)
    yield backend
    backend.close()


@pytest.fixture
def index(backend: Backend) -> Iterator[Index]:
    ix = backend.open()
    yield ix
    ix.close()


@pytest.fixture
def embed() -> FakeEmbed:
    return FakeEmbed()


def test_an_empty_store_is_an_empty_index(backend: Backend, index: Index) -> None:
    index.check()
    assert len(index) == 0 and index.documents() == [] and index.search(query("cats"), 3) == []
    assert backend.recorded() is None


def test_add_then_search(index: Index, embed: FakeEmbed) -> None:
    plan = index.add(DOCS, embed)
    assert [d.id for d in plan.documents] == ["cats.md", "dogs.md", "tax.txt"] and plan.unchanged == []
    assert plan.texts[0] == "Cats: Cats purr when they are content. Cats hunt mice at night."
    assert len(index) == len(plan.chunks) == 3
    hits = index.search(query("why do cats purr"), k=2)
    assert [h.document_id for h in hits][0] == "cats.md" and len(hits) == 2
    assert hits[0].heading == "Cats" and hits[0].chunk == 0 and hits[0].snippet == hits[0].text
    assert hits[0].score >= hits[1].score
    assert index.search(query("late invoices fee"), k=1)[0].document_id == "tax.txt"
    assert len(index.search(query("cats"), k=50)) == 3
    assert index.search(query("cats"), k=0) == []


def test_snippets_are_cut_on_a_word_boundary(index: Index, embed: FakeEmbed) -> None:
    text = " ".join(f"Sentence number {i} talks about the garden shed." for i in range(12))
    index.add([Document("long.txt", text)], embed)
    hit = index.search(query("garden shed"), k=1)[0]
    assert hit.snippet.endswith("…") and len(hit.snippet) <= 241
    assert hit.text.startswith(hit.snippet[:-1]) and hit.text[len(hit.snippet) - 1] == " "


def test_unchanged_documents_cost_no_embedding(backend: Backend, index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    version = backend.version()
    calls = len(embed.calls)
    plan = index.add(DOCS, embed)
    assert plan.unchanged == ["cats.md", "dogs.md", "tax.txt"] and plan.texts == [] and plan.documents == []
    assert len(embed.calls) == calls  # not even an empty call
    assert backend.version() == version  # nothing to commit, no new version
    # Metadata is part of the content hash.
    plan = index.add([Document("dogs.md", DOCS[1].text, {"team": "pets"})], embed)
    assert [d.id for d in plan.documents] == ["dogs.md"] and len(embed.calls) == calls + 1
    assert backend.version() == version + 1
    # So is the chunk size: other settings mean other chunks.
    assert len(backend.open(chunk_words=50).plan(DOCS).documents) == 3


def test_a_changed_document_replaces_its_chunks(index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    plan = index.add([Document("cats.md", "# Cats\n\nCats sleep sixteen hours a day."), DOCS[1]], embed)
    assert [d.id for d in plan.documents] == ["cats.md"] and plan.unchanged == ["dogs.md"]
    assert embed.calls[-1] == ["Cats: Cats sleep sixteen hours a day."]
    assert len(index) == 3
    texts = [h.text for h in index.search(query("cats purr hunt mice sleep"), k=10)]
    assert "Cats sleep sixteen hours a day." in texts and not any("purr" in t for t in texts)


def test_delete_returns_what_was_there(index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    assert index.delete(["dogs.md", "nope.md", "dogs.md"]) == ["dogs.md"]
    assert index.delete(["nope.md"]) == []
    assert len(index) == 2 and [d.id for d in index.documents()] == ["cats.md", "tax.txt"]
    assert all(h.document_id != "dogs.md" for h in index.search(query("dogs bark fetch"), k=10))


def test_documents_lists_hash_metadata_and_time(index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    docs = index.documents()
    assert [(d.id, d.chunks, d.metadata) for d in docs] == [("cats.md", 1, {"team": "pets"}), ("dogs.md", 1, {}), ("tax.txt", 1, {})]
    assert docs[0].content_hash == content_hash(DOCS[0]) and len(docs[0].content_hash) == 64
    assert datetime.fromisoformat(docs[0].indexed_at).tzinfo is not None


def test_a_new_instance_sees_everything(backend: Backend, index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    again = backend.open()
    assert [d.id for d in again.documents()] == ["cats.md", "dogs.md", "tax.txt"] and len(again) == 3
    assert again.documents() == index.documents()
    assert again.search(query("cats purr"), 3) == index.search(query("cats purr"), 3)
    assert backend.recorded() == (TAG, DIM)


def test_a_reader_sees_another_instances_commit_without_restart(backend: Backend, index: Index, embed: FakeEmbed) -> None:
    reader = backend.open()
    assert len(reader) == 0
    index.add(DOCS[:1], embed)
    assert [h.document_id for h in reader.search(query("cats purr"), 3)] == ["cats.md"]
    index.add(DOCS[1:], embed)
    index.delete(["cats.md"])
    assert [d.id for d in reader.documents()] == ["dogs.md", "tax.txt"]
    # And a writer re-reads under its lock: this delete sees the documents the other instance added.
    assert reader.delete(["tax.txt"]) == ["tax.txt"] and [d.id for d in index.documents()] == ["dogs.md"]


def test_writers_wait_for_each_other(backend: Backend, index: Index) -> None:
    other = backend.open()
    embedding, release = threading.Event(), threading.Event()
    deleted: list[str] = []

    def slow_embed(texts: list[str]) -> np.ndarray:
        embedding.set()
        assert release.wait(10)
        return vectors(texts)

    writer = threading.Thread(target=lambda: index.add(DOCS, slow_embed))
    writer.start()
    assert embedding.wait(10)
    # Started while the first writer holds the lock, so it must run after that commit and see its documents.
    deleter = threading.Thread(target=lambda: deleted.extend(other.delete(["cats.md"])))
    deleter.start()
    release.set()
    writer.join(10)
    deleter.join(10)
    assert deleted == ["cats.md"] and [d.id for d in index.documents()] == ["dogs.md", "tax.txt"]


def test_another_encoder_is_refused_until_cleared(backend: Backend, index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    for tag, dim in (("summarizer-encoder:bbb", DIM), (TAG, 16)):
        other = backend.open(tag, dim)
        with pytest.raises(IndexMismatch) as caught:
            other.search(np.ones(dim, dtype=np.float32), 3)
        assert f"built with encoder {TAG} (dim {DIM}" in caught.value.message
        assert f"uses {tag} (dim {dim}" in caught.value.message and "--rebuild" in caught.value.message
        assert backend.hint in caught.value.message
        with pytest.raises(IndexMismatch):
            other.plan(DOCS)
        with pytest.raises(IndexMismatch):
            other.add(DOCS, lambda texts: np.ones((len(texts), dim), dtype=np.float32))
    other = backend.open("summarizer-encoder:bbb", DIM)
    other.clear()
    assert other.documents() == [] and backend.recorded() == ("summarizer-encoder:bbb", DIM)
    assert len(other.add(DOCS, FakeEmbed()).texts) == 3
    with pytest.raises(IndexMismatch):
        index.search(query("cats"), 1)  # the old instance now holds the wrong encoder


def test_an_empty_index_is_taken_over_by_another_encoder(backend: Backend, index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS[:1], embed)
    index.delete(["cats.md"])
    other = backend.open("summarizer-encoder:bbb", 16)
    other.add(DOCS[:1], lambda texts: np.ones((len(texts), 16), dtype=np.float32) / 4)
    assert backend.recorded() == ("summarizer-encoder:bbb", 16) and len(other) == 1


def test_clear_removes_everything(backend: Backend, index: Index, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    index.clear()
    assert len(index) == 0 and index.documents() == [] and index.search(query("cats"), 3) == []
    assert backend.open().documents() == []
    assert index.add(DOCS, embed).unchanged == []  # cleared documents are embedded again


def test_contracts_are_checked(index: Index, embed: FakeEmbed) -> None:
    with pytest.raises(InvalidDocument, match="unique"):
        index.plan([DOCS[0], DOCS[0]])
    plan = index.plan(DOCS)
    with pytest.raises(ValueError, match="one 32-dim vector per planned text"):
        index.commit(plan, vectors(plan.texts)[:-1])
    with pytest.raises(ValueError, match="embed returned shape"):
        index.add(DOCS, lambda texts: np.zeros((1, DIM), dtype=np.float32))
    assert len(index) == 0
    index.commit(plan, vectors(plan.texts))  # the plan/commit pair the service uses
    assert len(index) == 3
    empty = index.plan([Document("blank.md", "   ")])
    index.commit(empty, np.zeros((0, 0), dtype=np.float32))  # an empty batch may come back shapeless
    assert [d.chunks for d in index.documents() if d.id == "blank.md"] == [0]


@pytest.mark.parametrize(
    ("doc_id", "metadata"),
    [("", {}), ("x" * 257, {}), ("a\nb", {}), ("a\x00b", {}), ("ok.md", {"n": 1}), ("ok.md", {"title": "a\x00b"})],
)
def test_bad_documents_are_refused(doc_id: str, metadata: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="document"):
        Document(doc_id, "Text.", metadata)  # type: ignore[arg-type]

"""The knowledge index: incremental adds, snapshots that readers can trust, encoder safety, both stores."""

from __future__ import annotations

import json
import os
import shutil
import threading
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from models.store import default_encoder_folder
from pipelines.errors import StorageError
from pipelines.rag import index as rag
from pipelines.rag.index import (
    Document,
    IndexCorrupt,
    IndexMismatch,
    InvalidDocument,
    KnowledgeIndex,
    content_hash,
    recorded_encoder,
)
from pipelines.text.chunking import Chunk

DIM = 32
TAG = "summarizer-encoder:aaa"
DOCS = [
    Document("cats.md", "# Cats\n\nCats purr when they are content. Cats hunt mice at night.", {"team": "pets"}),
    Document("dogs.md", "# Dogs\n\nDogs bark at strangers. Dogs fetch sticks in the park."),
    Document("tax.txt", "Invoices are due within thirty days. Late invoices incur a fee."),
]


class FakeEmbed:
    """Bag of words hashed into 32 dims (crc32: stable across processes), unit length; counts calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return vectors(texts)


def vectors(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().replace(".", " ").replace(":", " ").split():
            out[row, zlib.crc32(word.encode()) % DIM] += 1.0
    unit: np.ndarray = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return unit


def query(text: str) -> np.ndarray:
    row: np.ndarray = vectors([text])[0]
    return row


@pytest.fixture
def embed() -> FakeEmbed:
    return FakeEmbed()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[KnowledgeIndex]:
    ix = KnowledgeIndex(tmp_path / "rag", TAG, DIM)
    yield ix
    ix.close()


def manifest(directory: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((directory / "manifest.json").read_text())
    return data


def test_an_empty_directory_is_an_empty_index(tmp_path: Path) -> None:
    index = KnowledgeIndex(tmp_path / "nothing-yet", TAG, DIM)
    assert len(index) == 0 and index.documents() == [] and index.search(query("cats"), 3) == []
    assert not (tmp_path / "nothing-yet").exists()  # readers create nothing
    assert recorded_encoder(tmp_path / "nothing-yet") is None


def test_add_then_search(index: KnowledgeIndex, embed: FakeEmbed) -> None:
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


def test_snippets_are_cut_on_a_word_boundary(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    text = " ".join(f"Sentence number {i} talks about the garden shed." for i in range(12))
    index.add([Document("long.txt", text)], embed)
    hit = index.search(query("garden shed"), k=1)[0]
    assert hit.snippet.endswith("…") and len(hit.snippet) <= 241
    assert hit.text.startswith(hit.snippet[:-1]) and hit.text[len(hit.snippet) - 1] == " "


def test_unchanged_documents_cost_no_embedding(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    version = manifest(index.directory)["version"]
    calls = len(embed.calls)
    plan = index.add(DOCS, embed)
    assert plan.unchanged == ["cats.md", "dogs.md", "tax.txt"] and plan.texts == [] and plan.documents == []
    assert len(embed.calls) == calls  # not even an empty call
    assert manifest(index.directory)["version"] == version  # nothing to commit, no new version
    # Metadata is part of the content hash.
    plan = index.add([Document("dogs.md", DOCS[1].text, {"team": "pets"})], embed)
    assert [d.id for d in plan.documents] == ["dogs.md"] and len(embed.calls) == calls + 1
    # So is the chunk size: other settings mean other chunks.
    assert len(KnowledgeIndex(index.directory, TAG, DIM, chunk_words=50).plan(DOCS).documents) == 3


def test_a_changed_document_replaces_its_chunks(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    plan = index.add([Document("cats.md", "# Cats\n\nCats sleep sixteen hours a day."), DOCS[1]], embed)
    assert [d.id for d in plan.documents] == ["cats.md"] and plan.unchanged == ["dogs.md"]
    assert embed.calls[-1] == ["Cats: Cats sleep sixteen hours a day."]
    assert len(index) == 3
    texts = [h.text for h in index.search(query("cats purr hunt mice sleep"), k=10)]
    assert "Cats sleep sixteen hours a day." in texts and not any("purr" in t for t in texts)


def test_delete_returns_what_was_there(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    assert index.delete(["dogs.md", "nope.md", "dogs.md"]) == ["dogs.md"]
    assert index.delete(["nope.md"]) == []
    assert len(index) == 2 and [d.id for d in index.documents()] == ["cats.md", "tax.txt"]
    assert all(h.document_id != "dogs.md" for h in index.search(query("dogs bark fetch"), k=10))


def test_documents_lists_hash_metadata_and_time(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    docs = index.documents()
    assert [(d.id, d.chunks, d.metadata) for d in docs] == [("cats.md", 1, {"team": "pets"}), ("dogs.md", 1, {}), ("tax.txt", 1, {})]
    assert docs[0].content_hash == content_hash(DOCS[0]) and len(docs[0].content_hash) == 64
    assert datetime.fromisoformat(docs[0].indexed_at).tzinfo is not None


def test_a_new_instance_sees_everything(tmp_path: Path, index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    again = KnowledgeIndex(index.directory, TAG, DIM)
    assert [d.id for d in again.documents()] == ["cats.md", "dogs.md", "tax.txt"] and len(again) == 3
    assert again.search(query("cats purr"), 3) == index.search(query("cats purr"), 3)
    assert recorded_encoder(index.directory) == (TAG, DIM, "faiss")


def test_a_reader_reloads_after_another_instance_commits(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    reader = KnowledgeIndex(index.directory, TAG, DIM)
    assert len(reader) == 0
    index.add(DOCS[:1], embed)
    assert [h.document_id for h in reader.search(query("cats purr"), 3)] == ["cats.md"]
    index.add(DOCS[1:], embed)
    index.delete(["cats.md"])
    assert [d.id for d in reader.documents()] == ["dogs.md", "tax.txt"]
    # And a writer re-reads under its lock: this delete sees the documents the other instance added.
    assert reader.delete(["tax.txt"]) == ["tax.txt"] and [d.id for d in index.documents()] == ["dogs.md"]


def test_a_reader_retries_when_its_snapshot_is_pruned_under_it(
    index: KnowledgeIndex, embed: FakeEmbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.add(DOCS, embed)
    real, reads = rag._read_chunks, []

    def pruned_once(path: Path) -> dict[int, Chunk]:
        reads.append(path)
        if len(reads) == 1:  # as if a writer swapped the manifest and pruned this snapshot meanwhile
            raise FileNotFoundError(2, "pruned by a writer", str(path))
        return real(path)

    monkeypatch.setattr(rag, "_read_chunks", pruned_once)
    assert len(KnowledgeIndex(index.directory, TAG, DIM)) == 3 and len(reads) == 2


def test_writers_wait_for_each_other(index: KnowledgeIndex) -> None:
    other = KnowledgeIndex(index.directory, TAG, DIM)
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


def test_another_encoder_is_refused_until_cleared(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    for tag, dim in (("summarizer-encoder:bbb", DIM), (TAG, 16)):
        other = KnowledgeIndex(index.directory, tag, dim)
        with pytest.raises(IndexMismatch) as caught:
            other.search(np.ones(dim, dtype=np.float32), 3)
        assert f"built with encoder {TAG} (dim {DIM}" in caught.value.message
        assert f"uses {tag} (dim {dim}" in caught.value.message and "--rebuild" in caught.value.message
        assert "SUMMARIZER_RAG_DIR" in caught.value.message
        with pytest.raises(IndexMismatch):
            other.plan(DOCS)
    other = KnowledgeIndex(index.directory, "summarizer-encoder:bbb", DIM)
    other.clear()
    assert other.documents() == [] and recorded_encoder(index.directory) == ("summarizer-encoder:bbb", DIM, "faiss")
    assert len(other.add(DOCS, FakeEmbed()).texts) == 3
    with pytest.raises(IndexMismatch):
        index.search(query("cats"), 1)  # the old instance now holds the wrong encoder


def test_an_empty_index_is_taken_over_by_another_encoder(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS[:1], embed)
    index.delete(["cats.md"])
    other = KnowledgeIndex(index.directory, "summarizer-encoder:bbb", 16)
    other.add(DOCS[:1], lambda texts: np.ones((len(texts), 16), dtype=np.float32) / 4)
    assert recorded_encoder(index.directory) == ("summarizer-encoder:bbb", 16, "faiss") and len(other) == 1


def test_clear_removes_everything(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    index.clear()
    assert len(index) == 0 and index.documents() == [] and index.search(query("cats"), 3) == []
    assert KnowledgeIndex(index.directory, TAG, DIM).documents() == []
    assert index.add(DOCS, embed).unchanged == []  # cleared documents are embedded again


def test_old_snapshots_are_pruned(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    for i in range(5):
        index.add([Document("n.txt", f"Version {i} of the note.")], embed)
    snapshots = sorted(p.name for p in index.directory.glob("snap-*"))
    assert snapshots == ["snap-000004", "snap-000005"] and manifest(index.directory)["snapshot"] == "snap-000005"


def test_a_crash_before_the_manifest_swap_leaves_the_old_index(
    index: KnowledgeIndex, embed: FakeEmbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.add(DOCS[:2], embed)

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", crash)  # the manifest swap is the only os.replace in a commit
        # A crash runs no clean-up: without this, the failed commit would remove its snapshot.
        patched.setattr(shutil, "rmtree", lambda *args, **kwargs: None)
        with pytest.raises(StorageError, match="could not read or write its volume") as raised:
            index.add([Document("cats.md", "Cats changed."), DOCS[2]], embed)
        assert isinstance(raised.value.__cause__, OSError)
        assert (index.directory / "snap-000002" / "chunks.jsonl").is_file()  # written, never published
    for reader in (index, KnowledgeIndex(index.directory, TAG, DIM)):
        assert [d.id for d in reader.documents()] == ["cats.md", "dogs.md"]
        assert "purr" in reader.search(query("cats purr"), 1)[0].text
    plan = index.add([Document("cats.md", "Cats changed."), DOCS[2]], embed)
    assert len(plan.documents) == 2 and [d.id for d in index.documents()] == ["cats.md", "dogs.md", "tax.txt"]
    assert sorted(p.name for p in index.directory.glob("snap-*")) == ["snap-000001", "snap-000003"]


def test_a_corrupt_manifest_is_named(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    path = index.directory / "manifest.json"
    path.write_text('{"format": 1, "version": ')
    fresh = KnowledgeIndex(index.directory, TAG, DIM)
    with pytest.raises(IndexCorrupt, match="manifest.json is not a valid index manifest"):
        fresh.documents()
    with pytest.raises(IndexCorrupt, match=str(path)):
        fresh.add(DOCS, embed)
    fresh.clear()  # --rebuild repairs it
    assert fresh.documents() == [] and len(fresh.add(DOCS, embed).documents) == 3


def test_a_missing_snapshot_file_is_named(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    os.remove(index.directory / "snap-000001" / "chunks.jsonl")
    with pytest.raises(IndexCorrupt, match="chunks.jsonl is missing"):
        KnowledgeIndex(index.directory, TAG, DIM).documents()


@pytest.mark.parametrize(
    ("doc_id", "metadata"),
    [("", {}), ("x" * 257, {}), ("a\nb", {}), ("a\x00b", {}), ("ok.md", {"n": 1})],
)
def test_bad_documents_are_refused(doc_id: str, metadata: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="document"):
        Document(doc_id, "Text.", metadata)  # type: ignore[arg-type]


def test_contracts_are_checked(index: KnowledgeIndex, embed: FakeEmbed) -> None:
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


def test_qdrant_local_mode(tmp_path: Path, embed: FakeEmbed) -> None:
    index = KnowledgeIndex(tmp_path / "rag", TAG, DIM, store="qdrant")
    try:
        index.add(DOCS, embed)
        assert index.search(query("cats purr"), 1)[0].document_id == "cats.md" and len(index) == 3
        index.add([Document("cats.md", "Cats sleep all day.")], embed)
        assert index.delete(["dogs.md"]) == ["dogs.md"]
        hits = index.search(query("cats purr dogs bark"), 10)
        assert {h.document_id for h in hits} == {"cats.md", "tax.txt"} and not any("purr" in h.text for h in hits)
    finally:
        index.close()  # local mode: one client per folder at a time
    again = KnowledgeIndex(tmp_path / "rag", TAG, DIM, store="qdrant")
    try:
        assert [d.id for d in again.documents()] == ["cats.md", "tax.txt"]
        assert again.search(query("cats sleep"), 1)[0].text == "Cats sleep all day."
        again.clear()
        assert again.search(query("cats sleep"), 1) == [] and recorded_encoder(tmp_path / "rag") == (TAG, DIM, "qdrant")
        assert len(again.add(DOCS, embed).texts) == 3 and len(again.search(query("cats"), 10)) == 3
    finally:
        again.close()


def test_real_encoder_retrieves_by_meaning(tmp_path: Path) -> None:
    from pipelines.engines.encoder import SentenceEncoder

    encoder = SentenceEncoder(default_encoder_folder())
    docs = [
        Document("vpn.md", "# VPN\n\nConnect to the office network from home with the WireGuard client and your token."),
        Document("leave.md", "# Holidays\n\nEmployees get 25 days of paid vacation a year; request time off in the HR portal."),
        Document("printer.md", "# Printers\n\nThe third-floor printer jams with thick paper; use the tray for envelopes."),
        Document("expenses.md", "# Expenses\n\nSubmit receipts for travel costs within 30 days to be reimbursed."),
    ]
    index = KnowledgeIndex(tmp_path / "rag", "summarizer-encoder:real", encoder.dim)
    index.add(docs, encoder.encode)
    for question, expected in [
        ("How many days off do I have for annual leave?", "leave.md"),
        ("how do I get my money back for a train ticket", "expenses.md"),
        ("working remotely, can't reach internal servers", "vpn.md"),
    ]:
        assert index.search(encoder.encode([question])[0], 1)[0].document_id == expected, question

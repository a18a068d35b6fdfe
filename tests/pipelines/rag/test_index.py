"""The files backend (`KnowledgeIndex`): snapshots that readers can trust, what happens on disk,
the Qdrant store. What both backends promise is tested once for both, in test_contract.py."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.store import default_encoder_folder
from pipelines.errors import StorageError
from pipelines.rag import index as rag
from pipelines.rag.index import Document, IndexCorrupt, IndexMismatch, KnowledgeIndex, recorded_encoder
from pipelines.text.chunking import Chunk
from tests.pipelines.rag.fakes import DIM, DOCS, TAG, FakeEmbed, query


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


def test_the_manifest_records_the_store_and_another_store_is_refused(index: KnowledgeIndex, embed: FakeEmbed) -> None:
    index.add(DOCS, embed)
    assert recorded_encoder(index.directory) == (TAG, DIM, "faiss")
    with pytest.raises(IndexMismatch) as caught:
        KnowledgeIndex(index.directory, TAG, DIM, store="qdrant").check()
    assert f"(dim {DIM}, faiss store)" in caught.value.message and f"(dim {DIM}, qdrant store)" in caught.value.message


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
    from pipelines.engines.torch_encoder import TorchEncoder

    encoder = TorchEncoder(default_encoder_folder())
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

"""The RAG flows with a fake, deterministic embedder (the real encoder is covered elsewhere)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import InputTooLarge
from pipelines.rag.index import KnowledgeIndex
from pipelines.rag.retrieval import index_documents, retrieve, unit_mean
from pipelines.settings import Settings
from pipelines.styles import StyleRegistry, with_context
from pipelines.text.prepare import InputPipeline

DIM = 64


def bag_of_words(texts: list[str]) -> np.ndarray:
    vectors = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            vectors[row, int(hashlib.md5(word.strip(".,?!").encode()).hexdigest(), 16) % DIM] += 1.0
    return np.asarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9), dtype=np.float32)


calls: list[int] = []


async def fake_embed(texts: list[str]) -> np.ndarray:
    calls.append(len(texts))
    return bag_of_words(texts)


DOCS: list[tuple[str, str, dict[str, str]]] = [
    ("refunds", "Refunds are paid back to the card within seven days. Ask billing for a refund form.", {"team": "billing"}),
    ("passwords", "Reset a forgotten password from the login page. The reset link expires after one hour.", {}),
]


@pytest.fixture
def index(tmp_path: Path) -> KnowledgeIndex:
    return KnowledgeIndex(tmp_path / "rag", "fake:1", DIM)


@pytest.fixture(scope="module")
def inputs() -> InputPipeline:
    return InputPipeline.from_settings(Settings())


def test_index_then_retrieve_by_topic(index: KnowledgeIndex, inputs: InputPipeline) -> None:
    report = asyncio.run(index_documents(index, inputs, DOCS, "text", fake_embed, 10))
    assert sorted(report.indexed) == ["passwords", "refunds"] and report.chunks_embedded == 2
    refund = asyncio.run(retrieve(index, "I want a refund to my card please.", 1, fake_embed, 120))
    assert [h.document_id for h in refund.hits] == ["refunds"] and refund.steering is not None
    login = asyncio.run(retrieve(index, "My password reset link expired, how do I login?", 1, fake_embed, 120))
    assert [h.document_id for h in login.hits] == ["passwords"]


def test_unchanged_documents_cost_no_embedding(index: KnowledgeIndex, inputs: InputPipeline) -> None:
    asyncio.run(index_documents(index, inputs, DOCS, "text", fake_embed, 10))
    calls.clear()
    report = asyncio.run(index_documents(index, inputs, DOCS, "text", fake_embed, 10))
    assert report.indexed == [] and sorted(report.unchanged) == ["passwords", "refunds"] and calls == []


def test_pii_is_redacted_before_indexing(index: KnowledgeIndex, inputs: InputPipeline, tmp_path: Path) -> None:
    docs: list[tuple[str, str, dict[str, str]]] = [("contact", "Write to private.person@example.com for a refund of your card payment.", {})]
    report = asyncio.run(index_documents(index, inputs, docs, "text", fake_embed, 10))
    assert report.redactions == {"EMAIL_ADDRESS": 1}
    stored = b"".join(p.read_bytes() for p in (tmp_path / "rag").rglob("*") if p.is_file())
    assert b"private.person" not in stored and b"<EMAIL_ADDRESS>" in stored


def test_empty_index_retrieves_nothing_without_embedding(index: KnowledgeIndex) -> None:
    calls.clear()
    context = asyncio.run(retrieve(index, "anything at all", 5, fake_embed, 120))
    assert context.hits == [] and context.steering is None and calls == []


def test_context_reaches_chat_instructions_only_when_there_is_some() -> None:
    style = StyleRegistry.load().get("news")
    assert with_context(style, []) is style

    class Hit:
        text = "Refunds take seven days."

    steered = with_context(style, [Hit()])
    assert steered.instruction.startswith(style.instruction) and "[1] Refunds take seven days." in steered.instruction
    assert steered.batch_key() != style.batch_key()  # never batched with context-free items


def test_unit_mean() -> None:
    assert unit_mean(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)) == pytest.approx([2**-0.5, 2**-0.5])
    assert unit_mean(np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)) is None


def test_too_many_documents_in_one_call_is_413(index: KnowledgeIndex, inputs: InputPipeline) -> None:
    with pytest.raises(InputTooLarge, match="2 documents in one request; the limit is 1"):
        asyncio.run(index_documents(index, inputs, DOCS, "text", fake_embed, 1))

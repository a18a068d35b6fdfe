"""RAG through a real server: index documentation, get summaries that cite it, survive a restart."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipelines.rag.index import Document, KnowledgeIndex
from tests.server.conftest import Server, StartServer

pytestmark = pytest.mark.server

DOCS = {
    "billing/refunds.md": """# Refunds and billing

Customers can ask for a refund within 30 days of purchase. Refunds go back to the original payment card and take five to seven business days.

## Invoices

Invoices are sent by e-mail on the first day of each month. Billing questions go to billing.team.rag@example.com.
""",
    "account/security.md": """# Account security

If you cannot log in, reset your password from the sign-in page. The reset link expires after one hour.

## Two-factor authentication

Two-factor authentication protects the account with a code from an authenticator app. Lost devices can be removed from the security settings.
""",
    "shipping/delivery.txt": """Shipping and delivery

Orders ship from our warehouse within two business days. Standard delivery takes three to five days; express delivery arrives the next day.

Tracking numbers are e-mailed when the parcel leaves the warehouse. Delayed parcels can be reported to the carrier after seven days.
""",
}

QUERIES = {
    "billing/refunds.md": "Hello, I bought the premium plan two weeks ago and I was charged twice on my card. "
    "I would like my money back for the second payment please. How long will the refund take?",
    "account/security.md": "Hi, since this morning I cannot log in to my account. The password reset e-mail link "
    "says it has expired and my authenticator app was on my old phone. Please help me get back in.",
    "shipping/delivery.txt": "My parcel was supposed to arrive on Monday with express delivery but the tracking "
    "number shows it has not left the warehouse yet. When will my order be delivered?",
}


@pytest.fixture(scope="module")
def rag_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rag-index")


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path, rag_dir: Path) -> Server:
    return start_server(bentoml_home, rag_dir=str(rag_dir), rag_max_documents_per_request="5")


def post(server: Server, route: str, body: Mapping[str, object], style: str | None = None) -> httpx.Response:
    headers = {"X-Summary-Style": style} if style else {}
    return httpx.post(f"{server.url}{route}", json=body, headers=headers, timeout=120)


def index_body() -> dict[str, object]:
    return {"documents": [{"id": k, "text": v, "metadata": {"team": k.split("/")[0]}} for k, v in DOCS.items()]}


def test_empty_index_gives_a_plain_summary_with_a_flag(server: Server) -> None:
    body = post(server, "/rag", {"text": QUERIES["billing/refunds.md"]}).json()
    assert body["index_empty"] is True and body["citations"] == [] and body["summary"]


def test_index_then_summaries_cite_the_relevant_documents(server: Server, rag_dir: Path) -> None:
    report = post(server, "/rag/index", index_body()).json()
    assert sorted(report["indexed"]) == sorted(DOCS) and report["unchanged"] == []
    # The small NER model also takes the heading "Refunds" for a name: redactions beyond the e-mail
    # are its (docs/normalization.md measures its precision); the e-mail must be there.
    assert report["chunks_embedded"] >= 3 and report["redactions"]["EMAIL_ADDRESS"] == 1
    listing = post(server, "/rag/documents", {}).json()
    assert sorted(d["id"] for d in listing["documents"]) == sorted(DOCS)
    assert {d["id"]: d["metadata"]["team"] for d in listing["documents"]}["account/security.md"] == "account"

    for expected, query in QUERIES.items():
        body = post(server, "/rag", {"text": query, "top_k": 3}, style="casual").json()
        assert body["index_empty"] is False and body["style"] == "casual"
        citations = body["citations"]
        assert 1 <= len(citations) <= 3
        assert citations[0]["document_id"] == expected, (query, citations)
        assert citations == sorted(citations, key=lambda c: c["score"], reverse=True)
        assert all(set(c) == {"document_id", "chunk", "score", "snippet"} for c in citations)
        assert citations[0]["snippet"] and body["summary"]
    # Redacted before storage: the e-mail in the billing document is nowhere in the index files.
    for path in rag_dir.rglob("*"):
        assert not (path.is_file() and b"billing.team.rag@example.com" in path.read_bytes()), path


def test_reindexing_unchanged_documents_embeds_nothing(server: Server) -> None:
    report = post(server, "/rag/index", index_body()).json()
    assert report["indexed"] == [] and sorted(report["unchanged"]) == sorted(DOCS) and report["chunks_embedded"] == 0


def test_bad_index_requests(server: Server) -> None:
    too_many = {"documents": [{"id": f"d{i}", "text": "Some text here."} for i in range(6)]}
    assert post(server, "/rag/index", too_many).status_code == 413
    assert post(server, "/rag/index", {"documents": [{"id": "", "text": "x"}]}).status_code == 400
    assert post(server, "/rag/index", {"documents": []}).status_code == 400
    assert post(server, "/rag", {"text": "  "}).status_code == 400
    assert post(server, "/rag", {"text": "hello there", "top_k": 0}).status_code == 400


def test_index_survives_a_restart_and_delete_works(
    server: Server, start_server: StartServer, bentoml_home: Path, rag_dir: Path
) -> None:
    restarted = start_server(bentoml_home, rag_dir=str(rag_dir))
    listing = post(restarted, "/rag/documents", {}).json()
    assert sorted(d["id"] for d in listing["documents"]) == sorted(DOCS)
    body = post(restarted, "/rag", {"text": QUERIES["shipping/delivery.txt"]}).json()
    assert body["citations"][0]["document_id"] == "shipping/delivery.txt"
    deleted = post(restarted, "/rag/delete", {"ids": ["shipping/delivery.txt", "nope"]}).json()
    assert deleted["deleted"] == ["shipping/delivery.txt"] and deleted["not_found"] == ["nope"]
    body = post(restarted, "/rag", {"text": QUERIES["shipping/delivery.txt"]}).json()
    assert all(c["document_id"] != "shipping/delivery.txt" for c in body["citations"])
    # The first server sees the other process's change too (it reloads a newer manifest).
    listing = post(server, "/rag/documents", {}).json()
    assert "shipping/delivery.txt" not in [d["id"] for d in listing["documents"]]


def test_an_index_from_another_encoder_is_a_503_not_mixed_vectors(
    start_server: StartServer, bentoml_home: Path, tmp_path: Path
) -> None:
    other = KnowledgeIndex(tmp_path / "other", "another-encoder:v1", 384)
    other.add([Document("doc", "Some documentation text that was indexed long ago.", {})], fake_embed)
    mismatched = start_server(bentoml_home, rag_dir=str(tmp_path / "other"))
    response = post(mismatched, "/rag", {"text": QUERIES["billing/refunds.md"]})
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "the knowledge index is unavailable; the server log says why"
    assert "another-encoder:v1" in mismatched.log.read_text()


def fake_embed(texts: list[str]) -> np.ndarray:
    return np.full((len(texts), 384), 1 / np.sqrt(384), dtype=np.float32)

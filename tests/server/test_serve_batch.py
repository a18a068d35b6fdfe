"""`POST /batch` through a real `bentoml serve`: per-document results and errors, in order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, StartServer
from tests.texts import DIALOGUE, LEGAL, NEWS

pytestmark = pytest.mark.server
MAX_INPUT_CHARS = 20_000
MAX_DOCUMENTS = 8


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path) -> Server:
    return start_server(
        bentoml_home,
        max_input_chars=str(MAX_INPUT_CHARS),
        batch_max_documents=str(MAX_DOCUMENTS),
        max_body_bytes="100000",
        batch_max_body_bytes="300000",
        max_latency_ms="20000",
    )


def post(server: Server, documents: Sequence[Mapping[str, object]], style: str | None = None) -> httpx.Response:
    headers = {"X-Summary-Style": style} if style else {}
    return httpx.post(f"{server.url}/batch", json={"documents": documents}, headers=headers, timeout=120)


def single(server: Server, text: str, style: str) -> str:
    response = httpx.post(f"{server.url}/summarize", json={"text": text}, headers={"X-Summary-Style": style}, timeout=120)
    assert response.status_code == 200, response.text
    return str(response.json()["summary"])


def test_good_and_bad_documents_each_get_their_own_result_in_order(server: Server) -> None:
    documents: list[dict[str, object]] = [
        {"id": "news", "text": NEWS},
        {"id": "empty", "text": "   "},
        {"id": "legal", "text": LEGAL, "style": "legal"},
        {"id": "bad-style", "text": NEWS, "style": "haiku"},
        {"id": "too-large", "text": "word " * (MAX_INPUT_CHARS // 4)},
        {"id": "chat", "text": DIALOGUE, "metadata": {"source": "support", "n": 3}},
    ]
    response = post(server, documents, style="casual")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == [d["id"] for d in documents]
    by_id = {r["id"]: r for r in results}
    # Good documents: the same summary /summarize gives, in the style each one asked for.
    assert by_id["news"]["summary"] == single(server, NEWS, "casual")
    assert by_id["news"]["style"] == "casual"
    assert by_id["legal"]["summary"] == single(server, LEGAL, "legal")
    assert by_id["legal"]["style"] == "legal"
    assert by_id["chat"]["metadata"] == {"source": "support", "n": 3}
    for good in ("news", "legal", "chat"):
        assert "error" not in by_id[good]
        assert 0 < by_id[good]["summary_words"] < by_id[good]["input_words"]
    # Bad ones: their own error, with the status /summarize would give.
    assert by_id["empty"]["error"]["status"] == 400
    assert by_id["bad-style"]["error"]["type"] == "UnknownStyle"
    assert "legal" in by_id["bad-style"]["error"]["message"]
    assert by_id["too-large"]["error"]["status"] == 413
    for bad in ("empty", "bad-style", "too-large"):
        assert "summary" not in by_id[bad]


def test_redaction_applies_per_document(server: Server) -> None:
    text = NEWS + " Reach the desk at press.office@example.org for comment on the vote."
    results = post(server, [{"id": "a", "text": text}]).json()["results"]
    assert results[0]["redactions"].get("EMAIL_ADDRESS") == 1
    assert "press.office@example.org" not in results[0]["summary"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"documents": [{"id": str(i), "text": NEWS} for i in range(MAX_DOCUMENTS + 1)]}, 413, "BATCH_MAX_DOCUMENTS"),
        ({"documents": [{"id": "x", "text": NEWS}, {"id": "x", "text": LEGAL}]}, 400, "unique"),
        ({"documents": []}, 400, ""),
        ({"documents": [{"id": "x"}]}, 400, ""),
        ({"documents": [{"id": "", "text": NEWS}]}, 400, ""),
    ],
)
def test_whole_request_errors_are_json(server: Server, body: dict[str, object], status: int, needle: str) -> None:
    response = httpx.post(f"{server.url}/batch", json=body, timeout=60)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_an_unknown_style_header_fails_the_call(server: Server) -> None:
    response = post(server, [{"id": "a", "text": NEWS}], style="haiku")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "UnknownStyle"


def test_the_batch_route_has_its_own_body_limit(server: Server) -> None:
    # 8 documents of 19k characters: over the 100 kB single-document body limit, under the
    # batch route's 300 kB one.
    documents = [{"id": str(i), "text": "word " * 3_800} for i in range(MAX_DOCUMENTS)]
    response = post(server, documents)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == MAX_DOCUMENTS
    single_body = httpx.post(f"{server.url}/summarize", json={"text": "word " * 25_000}, timeout=60)
    assert single_body.status_code == 413
    too_big = [{"id": str(i), "text": "word " * 15_000} for i in range(5)]
    response = post(server, too_big)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "InputTooLarge"

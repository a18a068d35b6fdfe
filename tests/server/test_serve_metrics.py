"""Our metrics on BentoML's `/metrics`, counted from real requests to a real `bentoml serve`."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, StartServer
from tests.texts import LEGAL, NEWS

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path) -> Server:
    return start_server(bentoml_home)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples whose labels include `labels`; 0 when none (a counter that never moved)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line) or re.match(rf"^{name} (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) if match.lastindex == 2 else {}
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(match.lastindex or 1))
    return total


def test_custom_metrics_count_what_was_served(server: Server) -> None:
    before = httpx.get(f"{server.url}/metrics", timeout=30).text
    mail = " Write to clerk.office@example.org or desk@example.com for the minutes."
    for text, style in ((NEWS + mail, "news"), (NEWS, "news"), (LEGAL, "legal")):
        response = httpx.post(f"{server.url}/summarize", json={"text": text}, headers={"X-Summary-Style": style}, timeout=120)
        assert response.status_code == 200, response.text
    assert httpx.post(f"{server.url}/summarize", json={"text": "   "}, timeout=60).status_code == 400
    batch = {"documents": [{"id": "a", "text": NEWS, "style": "casual"}, {"id": "b", "text": ""}]}
    assert httpx.post(f"{server.url}/batch", json=batch, timeout=120).status_code == 200
    after = httpx.get(f"{server.url}/metrics", timeout=30).text

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("summarizer_documents_total", style="news", engine="extractive", outcome="ok") == 2
    assert delta("summarizer_documents_total", style="legal", engine="extractive", outcome="ok") == 1
    assert delta("summarizer_documents_total", style="casual", engine="extractive", outcome="ok") == 1
    assert delta("summarizer_documents_total", outcome="error") == 2  # the empty /summarize and batch "b"
    assert delta("summarizer_redactions_total", entity="EMAIL_ADDRESS") == 2
    for stage in ("normalize", "redact"):
        assert delta("summarizer_stage_seconds_count", stage=stage) == 4  # 3 + batch "a"; empty texts stop earlier
    assert delta("summarizer_stage_seconds_count", stage="model") == 4  # 3 calls + 1 batch chunk
    assert delta("summarizer_summary_words_count") == 4
    assert delta("summarizer_input_chars_count") == 4
    assert "clerk.office" not in after and "example.org" not in after

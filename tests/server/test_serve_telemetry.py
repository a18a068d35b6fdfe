"""Traces and request logs from a real `bentoml serve`: spans arrive at a local OTLP/HTTP receiver
started here, one trace per request across both services; the JSON request log joins them by
trace id; neither carries text, PII or the raw path.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, StartServer, wait_for
from tests.server.otlp import Receiver
from tests.texts import LEGAL, NEWS

pytestmark = pytest.mark.server

MAIL = "clerk.office@example.org"
SECRET_WORD = "Harbour"  # in NEWS: must never reach a span or a log line


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path, receiver: Receiver) -> Server:
    return start_server(bentoml_home, trace_otlp_endpoint=receiver.endpoint, trace_sample_rate="1.0")


def test_one_trace_per_request_with_stage_spans_from_both_services(server: Server, receiver: Receiver) -> None:
    # Concurrent requests, so the model service batches them: its spans must still land in each
    # request's own trace, not in the trace of whichever request opened the batcher.
    jobs = [(f"sum-{i}", NEWS + f" Write to {MAIL}." if i % 2 else LEGAL, "news" if i % 2 else "legal") for i in range(6)]

    def post(job: tuple[str, str, str]) -> httpx.Response:
        rid, text, style = job
        headers = {"X-Request-Id": rid, "X-Summary-Style": style}
        return httpx.post(f"{server.url}/summarize", json={"text": text}, headers=headers, timeout=120)

    with ThreadPoolExecutor(len(jobs)) as pool:
        responses = list(pool.map(post, jobs))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert [r.headers["x-request-id"] for r in responses] == [rid for rid, _, _ in jobs]
    batch = {"documents": [{"id": "a", "text": NEWS}, {"id": "b", "text": LEGAL}, {"id": "c", "text": ""}]}
    assert httpx.post(f"{server.url}/batch", json=batch, headers={"X-Request-Id": "batch-1"}, timeout=120).status_code == 200

    wait_for(lambda: {*(rid for rid, _, _ in jobs), "batch-1"} <= server.request_logs().keys())
    logs = server.request_logs()
    trace_ids = {rid: logs[rid]["trace_id"] for rid, _, _ in jobs}
    assert len(set(trace_ids.values())) == len(jobs), "each request has a trace of its own"

    def complete(trace_id: str, model_calls: int) -> bool:
        names = [(s.service, s.name) for s in receiver.trace(trace_id)]
        return names.count(("summarizer-model", "engine")) >= model_calls and ("summarizer", "model") in names

    wait_for(lambda: all(complete(t, 1) for t in trace_ids.values()) and complete(logs["batch-1"]["trace_id"], 1))
    time.sleep(2)  # late spans of the same export round

    for rid, trace_id in trace_ids.items():
        spans = receiver.trace(trace_id)
        entry = [s.name for s in spans if s.service == "summarizer"]
        for stage in ("normalize", "redact", "model"):
            assert entry.count(stage) == 1, (rid, entry)
        assert any(s.name.startswith("POST /summarize") for s in spans if s.service == "summarizer")
        assert any(s.name.startswith("POST /summarize") for s in spans if s.service == "summarizer-model"), "BentoML's span"
        (model,) = [s for s in spans if s.service == "summarizer" and s.name == "model"]
        engines = [s for s in spans if s.name == "engine"]
        assert len(engines) == 1 and engines[0].service == "summarizer-model"
        assert engines[0].parent_id == model.span_id
        assert engines[0].attributes["summarizer.batch_size"].int_value >= 1
        assert engines[0].attributes["summarizer.engine"].string_value == "extractive"
    sizes = [s.attributes["summarizer.batch_size"].int_value for t in trace_ids.values() for s in receiver.trace(t) if s.name == "engine"]
    assert max(sizes) > 1, f"the concurrent requests were never batched ({sizes}): the test proves nothing"

    batch_spans = [s.name for s in receiver.trace(logs["batch-1"]["trace_id"])]
    assert batch_spans.count("normalize") == 2 and batch_spans.count("redact") == 2  # "c" is empty: refused before
    assert "engine" in batch_spans

    assert SECRET_WORD.encode() not in receiver.raw and MAIL.encode() not in receiver.raw


def test_request_log_records_are_structured_and_private(server: Server) -> None:
    httpx.post(f"{server.url}/summarize", json={"text": NEWS + f" Mail {MAIL}."}, headers={"X-Request-Id": "log-ok"}, timeout=120)
    bad_style = {"X-Request-Id": "log-style", "X-Summary-Style": f"<{MAIL}>"}
    assert httpx.post(f"{server.url}/summarize", json={"text": NEWS}, headers=bad_style, timeout=60).status_code == 400
    assert httpx.get(f"{server.url}/jobs/{MAIL}?q={SECRET_WORD}", headers={"X-Request-Id": "log-404"}, timeout=30).status_code == 404
    too_big = "x" * 2_000_000
    assert httpx.post(f"{server.url}/summarize", content=too_big, headers={"X-Request-Id": "log-413"}, timeout=60).status_code == 413
    unsafe_id = httpx.post(f"{server.url}/summarize", json={"text": LEGAL}, headers={"X-Request-Id": f"id {MAIL}"}, timeout=120)
    generated = unsafe_id.headers["x-request-id"]
    assert MAIL not in generated and len(generated) == 32

    wait_for(lambda: {"log-ok", "log-style", "log-404", "log-413", generated} <= server.request_logs().keys())
    logs = server.request_logs()
    ok = logs["log-ok"]
    assert (ok["route"], ok["method"], ok["status"], ok["style"], ok["documents"], ok["failed_documents"]) == ("/summarize", "POST", 200, "news", 1, 0)
    assert ok["level"] == "INFO" and ok["logger"] == "summarizer.request"
    assert set(ok["stages_ms"]) == {"normalize", "redact", "model"} and all(v > 0 for v in ok["stages_ms"].values())
    assert ok["duration_ms"] >= ok["stages_ms"]["model"]
    assert ok["request_bytes"] > len(NEWS) and ok["response_bytes"] > 0
    assert len(ok["trace_id"]) == 32
    assert (logs["log-style"]["status"], logs["log-style"]["style"]) == (400, "invalid")
    assert (logs["log-404"]["status"], logs["log-404"]["route"]) == (404, "/jobs/{job_id}")
    assert (logs["log-413"]["status"], logs["log-413"]["request_bytes"] <= 2_000_000) == (413, True)
    assert logs[generated]["status"] == 200

    text = server.log.read_text(errors="replace")
    assert MAIL not in text and SECRET_WORD not in text, "text or PII in the server log"

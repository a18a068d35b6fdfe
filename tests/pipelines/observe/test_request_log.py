from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipelines.http.middleware import BodySizeLimit
from pipelines.observe import request_log
from pipelines.observe.log_format import configure_logging
from pipelines.observe.request_log import RequestLog, RouteNames
from pipelines.observe.stages import observe_document, stage

ROUTES = ["/summarize", "/batch", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/results"]
MAIL = "someone@example.org"


async def summarize(request: Request) -> JSONResponse:
    await request.body()
    with stage("normalize"):
        pass
    with stage("model"):
        pass
    observe_document("news", "extractive", 10, ok=True)
    observe_document("news", None, None, ok=False)
    return JSONResponse({"ok": True})


async def crash(request: Request) -> JSONResponse:
    raise RuntimeError(f"bug while handling {MAIL}")


async def job(request: Request) -> JSONResponse:
    return JSONResponse({"error": "no such job"}, status_code=404)


def app() -> RequestLog:
    inner = Starlette(routes=[Route("/summarize", summarize, methods=["POST"]), Route("/batch", crash, methods=["POST"]), Route("/jobs/{job_id}", job)])
    return RequestLog(BodySizeLimit(inner, max_body_bytes=1000), routes=ROUTES, styles={"news", "legal"}, default_style="news")


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    caught: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    handler = Collect()
    logger = logging.getLogger("summarizer.request")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield caught
    logger.removeHandler(handler)


async def call(method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return await c.request(method, path, **kwargs)  # type: ignore[arg-type]


def test_route_names_are_templates_or_other() -> None:
    names = RouteNames(ROUTES)
    assert names.name("/summarize") == "/summarize"
    assert names.name("/jobs/job-1/results") == "/jobs/{job_id}/results"
    assert names.name(f"/jobs/{MAIL}") == "/jobs/{job_id}"
    assert names.name("/jobs/a/b/c") == "other" and names.name("/summarize/x") == "other"


@pytest.mark.anyio
async def test_a_request_is_logged_with_stages_documents_and_sizes(records: list[logging.LogRecord]) -> None:
    response = await call("POST", "/summarize", content=b'{"text": "hello"}', headers={"X-Request-Id": "r-1", "X-Summary-Style": " Legal "})
    assert response.status_code == 200 and response.headers["x-request-id"] == "r-1"
    (record,) = records
    fields = record.__dict__
    assert (fields["request_id"], fields["route"], fields["status"], fields["style"]) == ("r-1", "/summarize", 200, "legal")
    assert (fields["documents"], fields["failed_documents"], fields["request_bytes"]) == (2, 1, 17)
    assert fields["response_bytes"] == len(response.content)
    assert set(fields["stages_ms"]) == {"normalize", "model"}
    assert record.levelno == logging.INFO and record.getMessage().startswith("POST /summarize 200 ")
    assert request_log.current() is None  # reset after the request


@pytest.mark.anyio
async def test_unsafe_values_never_reach_the_log(records: list[logging.LogRecord]) -> None:
    response = await call("GET", f"/jobs/{MAIL}?q={MAIL}", headers={"X-Request-Id": f"id {MAIL}", "X-Summary-Style": MAIL})
    assert response.status_code == 404
    assert len(response.headers["x-request-id"]) == 32  # generated: the client's was not plain
    (record,) = records
    assert (record.__dict__["route"], record.__dict__["style"]) == ("/jobs/{job_id}", "invalid")
    assert MAIL not in json.dumps({k: v for k, v in record.__dict__.items() if k not in ("args", "exc_info")}, default=str)


@pytest.mark.anyio
async def test_refusals_and_crashes_are_logged(records: list[logging.LogRecord]) -> None:
    assert (await call("POST", "/summarize", content=b"x" * 2000)).status_code == 413
    assert (await call("POST", "/batch", content=b"{}")).status_code == 500
    assert [(r.__dict__["status"], r.levelno) for r in records] == [(413, logging.INFO), (500, logging.ERROR)]
    assert records[0].__dict__["style"] == "news"  # no header: the default


@pytest.mark.anyio
async def test_probes_are_not_logged(records: list[logging.LogRecord]) -> None:
    await call("GET", "/readyz")
    assert records == []


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    logger = configure_logging("json")
    try:
        logging.getLogger("summarizer.request").info("GET /x 200", extra={"route": "/x", "status": 200})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert (record["level"], record["logger"], record["message"], record["route"], record["status"]) == ("INFO", "summarizer.request", "GET /x 200", "/x", 200)
        assert "time" in record
        configure_logging("text")
        logging.getLogger("summarizer.request").info("GET /x 200")
        assert capsys.readouterr().err.strip().endswith("INFO summarizer.request: GET /x 200")
        assert len(logger.handlers) == 1  # reconfiguring replaces the handler
    finally:
        logger.handlers, logger.propagate = [], True

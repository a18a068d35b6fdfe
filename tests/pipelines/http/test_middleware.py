from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pipelines.http.middleware import BodySizeLimit, ConcurrencyLimit, ErrorShape, MediaTypeCheck, reshape_error


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


def client(limit: int) -> httpx.AsyncClient:
    app = BodySizeLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_body_bytes=limit)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.anyio
async def test_small_body_passes() -> None:
    async with client(100) as c:
        response = await c.post("/", content=b"x" * 100)
    assert response.status_code == 200 and response.json() == {"size": 100}


@pytest.mark.anyio
async def test_declared_large_body_is_413() -> None:
    async with client(100) as c:
        response = await c.post("/", content=b"x" * 101)
    assert response.status_code == 413
    assert json.loads(response.content)["error"]["type"] == "InputTooLarge"
    assert response.headers["connection"] == "close"  # the unread body must not be read on


@pytest.mark.anyio
async def test_streamed_large_body_is_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 50

    async with client(100) as c:
        response = await c.post("/", content=chunks())
    assert response.status_code == 413
    assert response.headers["connection"] == "close"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def limited(max_in_flight: int, gate: asyncio.Event) -> tuple[ConcurrencyLimit, httpx.AsyncClient]:
    async def slow(request: Request) -> JSONResponse:
        await gate.wait()
        return JSONResponse({"ok": True})

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    routes = [Route("/work", slow, methods=["POST"]), Route("/readyz", ready)]
    app = ConcurrencyLimit(Starlette(routes=routes), max_in_flight=max_in_flight, retry_after_s=7)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.anyio
async def test_requests_over_the_limit_get_429_with_retry_after_and_probes_stay_open() -> None:
    gate = asyncio.Event()
    app, client = limited(2, gate)
    async with client as c:
        held = [asyncio.create_task(c.post("/work")) for _ in range(2)]
        async with asyncio.timeout(10):
            while app.in_flight < 2:
                await asyncio.sleep(0.01)
        rejected = await c.post("/work")
        assert rejected.status_code == 429
        assert rejected.headers["retry-after"] == "7"
        assert rejected.json()["error"]["type"] == "Overloaded"
        assert (await c.get("/readyz")).status_code == 200
        gate.set()
        assert [(await t).status_code for t in held] == [200, 200]
        assert app.in_flight == 0
        assert (await c.post("/work")).status_code == 200  # capacity is given back


def media_client() -> httpx.AsyncClient:
    app = MediaTypeCheck(Starlette(routes=[Route("/json", echo, methods=["POST"]), Route("/raw", echo, methods=["POST"])]), ["/json"])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/json", {"content-type": "application/json"}, 200),
        ("/json", {"content-type": "Application/JSON; charset=utf-8"}, 200),
        ("/json", {}, 200),  # no Content-Type: BentoML reads JSON too
        ("/json", {"content-type": "text/plain"}, 415),
        ("/json", {"content-type": "application/x-www-form-urlencoded"}, 415),  # curl -d without -H
        ("/json", {"content-type": "multipart/form-data; boundary=x"}, 415),
        ("/raw", {"content-type": "application/x-ndjson"}, 200),
        ("/raw", {"content-type": "application/x-ndjson", "content-encoding": "gzip"}, 415),
        ("/json", {"content-type": "application/json", "content-encoding": "br"}, 415),
        ("/json", {"content-type": "application/json", "content-encoding": "identity"}, 200),
    ],
)
async def test_bodies_the_routes_would_misread_are_415(path: str, headers: dict[str, str], status: int) -> None:
    async with media_client() as c:
        response = await c.post(path, content=b"{}", headers=headers)
    assert response.status_code == status, response.text
    if status == 415:
        error = response.json()["error"]
        assert (error["type"], error["status"]) == ("UnsupportedMediaType", 415)
        assert "uncompressed" in error["message"] or "application/json" in error["message"]
        assert response.headers["connection"] == "close"


def shaped_client(response: Response) -> httpx.AsyncClient:
    async def respond(request: Request) -> Response:
        return response

    routes = [Route("/x", respond, methods=["POST"]), Route("/readyz", respond)]
    app = ErrorShape(Starlette(routes=routes))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


VALIDATION = {
    "error": "2 validation errors for SummarizeInput",
    "detail": [
        {"type": "string_type", "loc": ["text"], "msg": "Input should be a valid string"},
        {"type": "literal_error", "loc": ["format"], "msg": "Input should be 'auto', 'text' or 'html'"},
    ],
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "kind", "message"),
    [
        (JSONResponse(VALIDATION, 400), "BadInput",
         "invalid request body: text: Input should be a valid string; format: Input should be 'auto', 'text' or 'html'"),
        (JSONResponse({"error": "x", "detail": [{"loc": [], "msg": "Invalid JSON: EOF"}]}, 400), "BadInput", "invalid request body: Invalid JSON: EOF"),
        (JSONResponse([{"error": "pickle is not allowed"}], 415), "UnsupportedMediaType", "pickle is not allowed"),
        (PlainTextResponse("Not Found", 404), "NotFound", "Not Found"),
        (PlainTextResponse("Method Not Allowed", 405), "MethodNotAllowed", "Method Not Allowed"),
        (JSONResponse({"error": "Traceback: secret internals"}, 500), "SummarizerError", "internal server error"),
        (Response(b"", 400), "BadInput", "Bad Request"),
    ],
)  # fmt: skip
async def test_foreign_errors_get_our_shape(response: Response, kind: str, message: str) -> None:
    async with shaped_client(response) as c:
        got = await c.post("/x")
    assert got.status_code == response.status_code
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {"error": {"type": kind, "message": message, "status": response.status_code}}
    assert int(got.headers["content-length"]) == len(got.content)


@pytest.mark.anyio
async def test_many_validation_problems_are_summarised() -> None:
    detail = [{"loc": ["documents", i, "id"], "msg": "Field required"} for i in range(40)]
    async with shaped_client(JSONResponse({"error": "40 validation errors", "detail": detail}, 400)) as c:
        message = (await c.post("/x")).json()["error"]["message"]
    assert message == (
        "invalid request body: documents.0.id: Field required; documents.1.id: Field required; "
        "documents.2.id: Field required (and 37 more)"
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "response",
    [
        JSONResponse({"error": {"type": "UnknownStyle", "message": "m", "status": 400}}, 400, headers={"x-a": "1"}),
        JSONResponse({"summary": "fine"}, 200),
        PlainTextResponse("x" * 100_000, 400),  # too large to be an error body we rewrite
    ],
)
async def test_our_errors_successes_and_large_bodies_pass_untouched(response: Response) -> None:
    async with shaped_client(response) as c:
        got = await c.post("/x")
    assert (got.status_code, got.content) == (response.status_code, response.body)
    assert got.headers["content-type"] == response.headers["content-type"]


@pytest.mark.anyio
async def test_probes_are_not_reshaped() -> None:
    async with shaped_client(PlainTextResponse("not ready", 503)) as c:
        got = await c.get("/readyz")
    assert (got.status_code, got.text) == (503, "not ready")


def test_reshape_keeps_ours_and_never_echoes_5xx() -> None:
    ours = json.dumps({"error": {"type": "BadInput", "message": "m", "status": 400}}).encode()
    assert reshape_error(400, ours) is None
    assert json.loads(reshape_error(504, b"took 65 s in /x") or b"")["error"] == {
        "type": "UpstreamTimeout", "message": "gateway timeout", "status": 504,
    }  # fmt: skip

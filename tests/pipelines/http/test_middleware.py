from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pipelines.http.middleware import (
    DISCARD_MAX_BYTES,
    ASGIApp,
    BodySizeLimit,
    ConcurrencyLimit,
    ErrorShape,
    MediaTypeCheck,
    Message,
    discard_body,
    reshape_error,
)


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


# -- discarding the unread body before an answer that closes the connection ---------------------


class Peer:
    """The client end of a plain ASGI call: a body of `chunks` chunks of `size` bytes (None: one
    that never ends), and a log of what the app read and sent, in order."""

    def __init__(self, chunks: int | None, size: int = 1000) -> None:
        self.left, self.size = chunks, size
        self.read = 0
        self.log: list[str] = []
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        assert self.left != 0, "read after the end of the body"  # a server would wait for a disconnect here
        if self.left is not None:
            self.left -= 1
        self.read += self.size
        self.log.append("read")
        return {"type": "http.request", "body": b"x" * self.size, "more_body": self.left != 0}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.start":
            self.log.append(f"answer {message['status']}")

    def answer(self) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
        start, body = self.sent
        return start["status"], dict(start["headers"]), json.loads(body["body"])


def http_scope(headers: dict[str, str] | None = None, method: str = "POST") -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": "/", "raw_path": b"/", "root_path": "", "query_string": b"", "headers": raw,
            "server": ("test", 80), "client": ("127.0.0.1", 1)}  # fmt: skip


async def unreachable(scope: object, receive: object, send: object) -> None:
    raise AssertionError("the app was called")


@pytest.mark.anyio
async def test_discard_body_reads_to_the_end() -> None:
    peer = Peer(5)
    assert await discard_body(peer.receive) is True
    assert peer.read == 5000 and peer.left == 0


@pytest.mark.anyio
async def test_discard_body_stops_at_the_byte_bound() -> None:
    peer = Peer(None)
    assert await discard_body(peer.receive, max_bytes=10_000) is False
    assert 10_000 <= peer.read <= 11_000


@pytest.mark.anyio
async def test_discard_body_stops_when_the_client_sends_nothing() -> None:
    async def silent() -> Message:
        await asyncio.Event().wait()
        raise AssertionError

    started = time.monotonic()
    assert await discard_body(silent, idle_s=0.1) is False
    assert time.monotonic() - started < 1.0


@pytest.mark.anyio
async def test_discard_body_stops_at_the_time_bound_however_the_client_trickles() -> None:
    async def trickle() -> Message:
        await asyncio.sleep(0.01)
        return {"type": "http.request", "body": b"x", "more_body": True}

    started = time.monotonic()
    assert await discard_body(trickle, timeout_s=0.3, idle_s=1.0) is False
    assert 0.25 < time.monotonic() - started < 1.0


@pytest.mark.anyio
async def test_discard_body_stops_when_the_client_goes_away() -> None:
    messages: list[Message] = [{"type": "http.request", "body": b"x" * 10, "more_body": True}, {"type": "http.disconnect"}]

    async def leaving() -> Message:
        return messages.pop(0)  # a third read would fail: nothing is read after the disconnect

    assert await discard_body(leaving) is True
    assert messages == []


@pytest.mark.anyio
async def test_a_declared_large_body_is_read_to_its_end_before_the_413() -> None:
    peer = Peer(5)
    await BodySizeLimit(unreachable, max_body_bytes=100)(http_scope({"content-length": "5000"}), peer.receive, peer.send)
    assert peer.log == ["read"] * 5 + ["answer 413"]
    status, headers, body = peer.answer()
    assert status == 413 and headers[b"connection"] == b"close" and body["error"] == {
        "type": "InputTooLarge", "message": "request body is larger than the 100 byte limit", "status": 413}  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"content-length": "5000", "expect": "100-continue"},  # reading would send 100 Continue, and the client the body
        {"content-length": str(DISCARD_MAX_BYTES + 1)},  # past the bound: the close resets it either way
    ],
)
async def test_a_413_is_at_once_for_a_client_waiting_to_send_or_a_body_past_the_bound(headers: dict[str, str]) -> None:
    peer = Peer(None)
    await BodySizeLimit(unreachable, max_body_bytes=100)(http_scope(headers), peer.receive, peer.send)
    assert peer.log == ["answer 413"]


@pytest.mark.anyio
async def test_a_streamed_body_past_the_limit_is_read_to_its_end_before_the_413() -> None:
    peer = Peer(10, size=50)
    app = BodySizeLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_body_bytes=100)
    await app(http_scope({"transfer-encoding": "chunked"}), peer.receive, peer.send)
    assert peer.log == ["read"] * 10 + ["answer 413"]
    assert peer.answer()[2]["error"]["type"] == "InputTooLarge"


@pytest.mark.anyio
async def test_a_streamed_body_that_never_ends_is_discarded_up_to_the_bound() -> None:
    peer = Peer(None, size=1 << 20)
    app = BodySizeLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_body_bytes=100)
    await app(http_scope({"transfer-encoding": "chunked"}), peer.receive, peer.send)
    assert peer.log[-1] == "answer 413"
    assert DISCARD_MAX_BYTES < peer.read <= DISCARD_MAX_BYTES + (2 << 20)


async def refuse_after_one_chunk(request: Request) -> Response:
    """Like the /jobs app refusing an upload: its own 413, with the rest of the body unread."""
    async for _ in request.stream():
        break
    error = {"error": {"type": "InputTooLarge", "message": "line 1 is too long", "status": 413}}
    return JSONResponse(error, 413, headers={"Connection": "close"})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("inner", "headers", "status", "message"),
    [
        (Starlette(routes=[Route("/", refuse_after_one_chunk, methods=["POST"])]), {}, 413, "line 1 is too long"),
        (MediaTypeCheck(unreachable, ["/"]), {"content-type": "text/plain"}, 415,
         "send the body as JSON with Content-Type: application/json, not 'text/plain'"),
    ],
)  # fmt: skip
async def test_an_answer_from_inside_that_closes_waits_for_the_rest_of_the_body(
    inner: ASGIApp, headers: dict[str, str], status: int, message: str
) -> None:
    peer = Peer(5)
    await BodySizeLimit(inner, max_body_bytes=10_000)(http_scope({**headers, "content-length": "5000"}), peer.receive, peer.send)
    assert peer.log == ["read"] * 5 + [f"answer {status}"]
    got, response_headers, body = peer.answer()
    assert (got, response_headers[b"connection"], body["error"]["message"]) == (status, b"close", message)


async def read_all_then_close(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())}, headers={"Connection": "close"})


async def keep_alive_refusal(request: Request) -> Response:
    return JSONResponse({"error": {"type": "Overloaded", "message": "busy", "status": 429}}, 429)


@pytest.mark.anyio
@pytest.mark.parametrize(("endpoint", "reads"), [(read_all_then_close, 5), (keep_alive_refusal, 0)])
async def test_nothing_more_is_read_after_the_body_ended_or_for_an_answer_that_keeps_the_connection(
    endpoint: Callable[[Request], Awaitable[Response]], reads: int
) -> None:
    """Reading past the end would wait for a disconnect; a kept-alive connection is the server's to read on."""
    peer = Peer(5)
    app = BodySizeLimit(Starlette(routes=[Route("/", endpoint, methods=["POST"])]), max_body_bytes=10_000)
    await app(http_scope({"content-length": "5000"}), peer.receive, peer.send)
    assert peer.log == ["read"] * reads + [f"answer {peer.sent[0]['status']}"]


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

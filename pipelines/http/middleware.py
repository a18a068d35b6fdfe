"""ASGI middleware for the limits BentoML lacks or answers in its own format.

- BodySizeLimit: BentoML reads and parses any body, however large; this rejects a declared
  Content-Length at once and stops a streamed (chunked) body as soon as it passes the cap (413).
- MediaTypeCheck: BentoML parses any Content-Type it does not know as JSON and form types as
  forms, and never decompresses; a body it would misread is a 415 that says what to send.
- ConcurrencyLimit: admission control in front of the model queue, so overload is a fast 429
  with Retry-After and our JSON error body, instead of a queue that grows until timeouts.
- ErrorShape: BentoML's own errors (malformed JSON, wrong types, 404, 405) in our error shape.

Responses sent before the body is read close the connection: the server would otherwise go on
reading (and discarding) a body that may never end, to keep the connection alive. Closed at once,
though, a socket with unread bytes is reset, and a client still writing its body (urllib, browsers:
they read only once all is sent) gets ECONNRESET or EPIPE instead of the answer. So BodySizeLimit,
outermost of these, reads and discards the rest of the body first (`discard_body`, bounded in bytes
and time) for its own 413s and for every answer from inside it that says `Connection: close`
(MediaTypeCheck's 415, the /jobs app's 413s). A client that sends more than the bound still gets a
reset; one that asked for `Expect: 100-continue` is answered at once (it sends nothing until told).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Mapping, MutableMapping

from pipelines.errors import InputTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Probes and scrapes must work exactly when the service is busiest.
EXEMPT_PATHS = frozenset({"/readyz", "/livez", "/healthz", "/metrics"})

# The bound on the body discarded before an early answer (see the module doc). 64 MiB covers the
# bodies a client plausibly writes whole (a 50 MB upload to an 8 MB limit) and costs little: 0.07 s
# on localhost, ~0.6 s at 1 Gbit/s. 10 s caps how long a slow or trickling client holds the
# connection; 2 s without a byte means the client is not writing but waiting for us (a declared
# length, then nothing), so it is answered then. Nothing discarded is kept: one chunk at a time.
DISCARD_MAX_BYTES = 64 << 20
DISCARD_MAX_S = 10.0
DISCARD_IDLE_S = 2.0


class BodyTooLarge(InputTooLarge):
    """Raised inside the app's `receive`; an InputTooLarge, so route handlers that answer our
    errors (the /jobs app) do so quietly. The 413 sent is BodySizeLimit's own either way."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    value: bytes | None = dict(scope.get("headers") or []).get(name)
    return value


def error_body(status: int, kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message, "status": status}}).encode()


async def discard_body(
    receive: Receive, max_bytes: int = DISCARD_MAX_BYTES, timeout_s: float = DISCARD_MAX_S, idle_s: float = DISCARD_IDLE_S
) -> bool:
    """Read the rest of a request body and throw it away, so that an answer sent next, and the
    close after it, reach a client that writes its whole body before reading (see the module doc).

    Stops after `max_bytes`, after `timeout_s` in all, or after `idle_s` without a message; True
    when nothing is left unread: the body ended, or the client went away (`http.disconnect`).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    discarded = 0
    while discarded <= max_bytes:
        wait_s = min(idle_s, deadline - loop.time())
        if wait_s <= 0:
            return False
        try:
            async with asyncio.timeout(wait_s):
                message = await receive()
        except TimeoutError:
            return False
        if message["type"] != "http.request":
            return True
        discarded += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def send_error(
    send: Send, status: int, kind: str, message: str, headers: dict[str, str] | None = None, *, close: bool = False
) -> None:
    """Our JSON error body, for responses made before the request reaches BentoML.

    `close`: the body was not read, so the connection must not be kept alive; BodySizeLimit, around
    the other middleware, discards the unread body first (see the module doc).
    """
    body = error_body(status, kind, message)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        raw_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """`max_body_bytes` for every route, except the path prefixes in `limits` (batches, job uploads).

    Also the one place that discards an unread body before an answer that closes the connection:
    its own 413s, and any response from the app with `Connection: close` (see the module doc).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limits = dict(limits or {})

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._discard_rest(scope, receive, 0)
            await self._reject(send, limit)
            return
        seen = 0
        exceeded = started = ended = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded, ended
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                ended = not message.get("more_body", False)
                if seen > limit:
                    exceeded = True
                    raise BodyTooLarge()
            else:
                ended = True  # http.disconnect: nothing more will come
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, ended
            if exceeded:
                return  # the app's own error page for our exception; the 413 below replaces it
            if message["type"] == "http.response.start":
                if not started and not ended and _closes(message):
                    await self._discard_rest(scope, receive, seen)
                    ended = True
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            if not ended:
                await self._discard_rest(scope, receive, seen)
            await self._reject(send, limit)

    @staticmethod
    async def _discard_rest(scope: Scope, receive: Receive, read: int) -> None:
        """Discard the unread body (`read` bytes of it are gone), unless the client waits for
        100 Continue (reading would send it) or declared more than the bound (a reset either way)."""
        if (_header(scope, b"expect") or b"").strip().lower() == b"100-continue":
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) - read > DISCARD_MAX_BYTES:
            return
        await discard_body(receive)

    async def _reject(self, send: Send, limit: int) -> None:
        message = f"request body is larger than the {limit} byte limit"
        await send_error(send, 413, "InputTooLarge", message, close=True)


def _closes(start: Message) -> bool:
    """Whether a response start says `Connection: close`."""
    return any(k.lower() == b"connection" and b"close" in v.lower() for k, v in start.get("headers") or [])


class ConcurrencyLimit:
    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_s: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0  # one event loop per worker: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            message = f"{self.in_flight} requests in flight, the limit is {self.max_in_flight}; retry after {self.retry_after_s} s"
            await send_error(send, 429, "Overloaded", message, {"Retry-After": str(self.retry_after_s)})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class MediaTypeCheck:
    """415 for a body the routes would misread: compressed (nothing here decompresses, so gzip
    would reach the parser as garbage, and a "zip bomb" never expands), or, on `json_paths`, any
    Content-Type but JSON (BentoML would parse form types as a form: `curl -d` without a JSON
    header got "text is empty"). No Content-Type at all is taken as JSON, as BentoML does.
    """

    def __init__(self, app: ASGIApp, json_paths: Collection[str]) -> None:
        self.app = app
        self.json_paths = frozenset(json_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            problem = self.problem(scope)
            if problem is not None:
                await send_error(send, 415, "UnsupportedMediaType", problem, close=True)
                return
        await self.app(scope, receive, send)

    def problem(self, scope: Scope) -> str | None:
        encoding = (_header(scope, b"content-encoding") or b"identity").decode("latin-1").strip().lower()
        if encoding not in ("", "identity"):
            return f"Content-Encoding {encoding[:40]!r} is not supported; send the body uncompressed"
        content_type = _header(scope, b"content-type")
        if scope["path"] not in self.json_paths or content_type is None:
            return None
        media_type = content_type.decode("latin-1").split(";")[0].strip().lower()
        if media_type == "application/json":
            return None
        return f"send the body as JSON with Content-Type: application/json, not {media_type[:60]!r}"


# Types for errors BentoML or Starlette made, by status; 5xx keep a fixed message (never internals).
_KINDS = {400: "BadInput", 404: "NotFound", 405: "MethodNotAllowed", 413: "InputTooLarge", 415: "UnsupportedMediaType",
          422: "BadInput", 429: "Overloaded", 503: "NotReady", 504: "UpstreamTimeout"}  # fmt: skip
_MAX_ERROR_BODY = 65_536  # error bodies are small; anything larger passes through untouched
_SHOWN_PROBLEMS = 3


def reshape_error(status: int, body: bytes) -> bytes | None:
    """`body` of an error response in our shape, or None when it already is ours."""
    try:
        data: Any = json.loads(body)
    except ValueError:  # plain text, e.g. Starlette's "Not Found"
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return None
    kind = _KINDS.get(status, "SummarizerError" if status >= 500 else "BadInput")
    if status >= 500:
        return error_body(status, kind, _phrase(status).lower())
    return error_body(status, kind, _message(data, body) or _phrase(status))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _message(data: Any, body: bytes) -> str:
    # BentoML: {"error": "1 validation error for X", "detail": [pydantic errors]} for bad bodies,
    # [{"error": msg}] for its own 4xx. Pydantic's details carry no input (BentoML leaves it out).
    if isinstance(data, dict) and isinstance(data.get("detail"), list):
        problems = [_problem(e) for e in data["detail"] if isinstance(e, dict)]
        more = f" (and {len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
        return "invalid request body: " + "; ".join(problems[:_SHOWN_PROBLEMS]) + more
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        return str(data.get("error", ""))[:500]
    return body.decode("utf-8", "replace").strip()[:200] if data is None else ""


def _problem(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc") or ())
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))


class ErrorShape:
    """Rewrites error responses that are not in our shape (`{"error": {"type", "message",
    "status"}}`): BentoML's validation and exception bodies, Starlette's plain-text 404 and 405.
    Only responses of status >= 400 are buffered, and only up to a small size.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def shaping_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body shows whose error it is
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            size = sum(map(len, chunks))
            if message.get("more_body", False) and size <= _MAX_ERROR_BODY:
                return
            held, start = start, None
            body = b"".join(chunks)
            chunks.clear()
            shaped = reshape_error(held["status"], body) if size <= _MAX_ERROR_BODY else None
            if shaped is None:
                await send(held)
                await send({**message, "body": body})
                return
            keep = [(k, v) for k, v in held.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(shaped)).encode()), *keep]
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": shaped})

        await self.app(scope, receive, shaping_send)

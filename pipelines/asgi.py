"""ASGI middleware for the limits BentoML lacks or answers in its own format.

- BodySizeLimit: BentoML reads and parses any body, however large; this rejects a declared
  Content-Length at once and stops a streamed (chunked) body as soon as it passes the cap (413).
- ConcurrencyLimit: admission control in front of the model queue, so overload is a fast 429
  with Retry-After and our JSON error body, instead of a queue that grows until timeouts.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Mapping, MutableMapping

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Probes and scrapes must work exactly when the service is busiest.
EXEMPT_PATHS = frozenset({"/readyz", "/livez", "/healthz", "/metrics"})


class BodyTooLarge(Exception):
    pass


async def send_error(send: Send, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
    """Our JSON error body, for responses made before the request reaches BentoML."""
    body = json.dumps({"error": {"type": kind, "message": message, "status": status}}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """`max_body_bytes` for every route, except the path prefixes in `limits` (batches, job uploads)."""

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
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        seen = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's own error page for our exception; the 413 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        message = f"request body is larger than the {limit} byte limit"
        await send_error(send, 413, "InputTooLarge", message)


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

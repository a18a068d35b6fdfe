"""One structured log record per request on the entry service, made as ASGI middleware so that
requests refused before BentoML (401, 413, 429) are logged like the rest.

A record holds what an operator needs and nothing a client wrote freely: the route as a template
(never the raw path or query), the style only when it is a configured one, the caller's token
name (never the token), sizes in bytes, stage timings and document counts. Never text or PII.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from pipelines.http.middleware import EXEMPT_PATHS, ASGIApp, Message, Receive, Scope, Send
from pipelines.styles import STYLE_HEADER

REQUEST_ID_HEADER = "x-request-id"
# A client's own id is kept only when it is short and plain: it goes into logs verbatim.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger("summarizer.request")


@dataclass
class RequestRecord:
    """Filled in while the request runs: stages add their time, documents their outcome."""

    request_id: str
    method: str
    route: str
    style: str | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)
    documents: int = 0
    failed_documents: int = 0

    def add_stage(self, stage: str, seconds: float) -> None:
        # Concurrent stages (a batch's documents) add up: this is work done, not wall time.
        self.stages_ms[stage] = round(self.stages_ms.get(stage, 0.0) + seconds * 1000, 3)

    def add_document(self, ok: bool) -> None:
        self.documents += 1
        self.failed_documents += 0 if ok else 1


_current: ContextVar[RequestRecord | None] = ContextVar("summarizer_request", default=None)


def current() -> RequestRecord | None:
    """The record of the request this code runs for (threads from asyncio.to_thread included)."""
    return _current.get()


def note_style(name: str) -> None:
    """The style a route chose, for the record: a body's `style` field is invisible to the
    middleware, which only sees the header."""
    record = _current.get()
    if record is not None:
        record.style = name


class RouteNames:
    """Maps a path to its route template ("/jobs/{job_id}"), or "other": bounded, PII-free names."""

    def __init__(self, templates: Iterable[str]) -> None:
        self.exact = {t for t in templates if "{" not in t}
        self.patterns = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$"), t) for t in templates if "{" in t
        ]

    def name(self, path: str) -> str:
        if path in self.exact:
            return path
        return next((template for pattern, template in self.patterns if pattern.match(path)), "other")


class RequestLog:
    """Logs each request once it is answered; echoes (or assigns) X-Request-Id on the response."""

    def __init__(self, app: ASGIApp, routes: Iterable[str], styles: Collection[str], default_style: str) -> None:
        self.app = app
        self.routes = RouteNames(routes)
        self.styles = styles
        self.default_style = default_style

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:  # probes and scrapes: noise
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        record = RequestRecord(
            request_id=self._request_id(headers.get(REQUEST_ID_HEADER.encode())),
            method=scope["method"],
            route=self.routes.name(scope["path"]),
            style=self._style(headers.get(STYLE_HEADER.lower().encode())),
        )
        started = time.perf_counter()
        request_bytes = response_bytes = 0
        status = 500  # what the client sees if the app dies before answering

        async def counting_receive() -> Message:
            nonlocal request_bytes
            message = await receive()
            request_bytes += len(message.get("body", b""))
            return message

        async def recording_send(message: Message) -> None:
            nonlocal status, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), record.request_id.encode())]
            elif message["type"] == "http.response.body":
                response_bytes += len(message.get("body", b""))
            await send(message)

        token = _current.set(record)
        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            _current.reset(token)
            self._log(record, scope, status, time.perf_counter() - started, request_bytes, response_bytes)

    def _request_id(self, given: bytes | None) -> str:
        text = given.decode("latin-1") if given else ""
        return text if _CLIENT_ID.fullmatch(text) else uuid.uuid4().hex

    def _style(self, header: bytes | None) -> str:
        if header is None or not header.strip():
            return self.default_style
        name = header.decode("latin-1").strip().lower()
        return name if name in self.styles else "invalid"

    def _log(self, record: RequestRecord, scope: Scope, status: int, seconds: float, request_bytes: int, response_bytes: int) -> None:
        span = trace.get_current_span().get_span_context()
        fields: dict[str, Any] = {
            "request_id": record.request_id,
            "method": record.method,
            "route": record.route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "style": record.style,
            "caller": (scope.get("state") or {}).get("caller"),
            "documents": record.documents,
            "failed_documents": record.failed_documents,
            "stages_ms": record.stages_ms,
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
        }
        level = logging.ERROR if status >= 500 else logging.INFO
        log.log(level, "%s %s %d %.1f ms", record.method, record.route, status, seconds * 1000, extra=fields)

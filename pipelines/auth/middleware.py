"""Token auth as ASGI middleware on the entry service: 401 without a known token, 403 without
the route's scope. Probes, CORS preflight and the /ui page's static files stay open; `/metrics`
is open unless configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping

from pipelines.auth.store import Caller, TokenStore
from pipelines.http.middleware import EXEMPT_PATHS, ASGIApp, Receive, Scope, Send, send_error
from pipelines.observe.metrics import AUTH_FAILURES

log = logging.getLogger("summarizer.auth")

# Route prefix -> the scope it needs; the longest matching prefix wins. Routes not listed need a
# valid token and no particular scope.
ROUTE_SCOPES: Mapping[str, str] = {
    "/summarize": "summarize",
    "/styles": "summarize",
    "/batch": "batch",
    "/rag": "rag",
    "/rag/index": "rag:write",
    "/rag/delete": "rag:write",
    "/jobs": "jobs",
    "/metrics": "metrics",
}


def required_scope(path: str) -> str | None:
    matches = [p for p in ROUTE_SCOPES if path == p or path.startswith(p + "/")]
    return ROUTE_SCOPES[max(matches, key=len)] if matches else None


class TokenAuth:
    """`open_prefixes`: path prefixes served without a token, for static pages with no data in
    them (the /ui page: a browser cannot send a bearer header when it navigates)."""

    def __init__(
        self, app: ASGIApp, store: TokenStore, protect_metrics: bool = False, open_prefixes: Collection[str] = ()
    ) -> None:
        self.app = app
        self.store = store
        self.open_paths = EXEMPT_PATHS - ({"/metrics"} if protect_metrics else set())
        self.open_prefixes = tuple(open_prefixes)

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or any(path == p or path.startswith(p + "/") for p in self.open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.is_open(scope["path"]) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        authorization = header.decode("latin-1") if header is not None else None
        fast = self.store.check_fast(authorization)  # scrypt, when needed, runs off the event loop
        verdict = fast if fast is not None else await asyncio.to_thread(self.store.check, authorization)
        if not isinstance(verdict, Caller):
            log.warning("auth failed on %s: %s token", scope["path"], verdict)  # never the token itself
            AUTH_FAILURES.labels(reason=verdict).inc()
            message = {"missing": "send Authorization: Bearer <token>"}.get(verdict, f"the token is {verdict}")
            await send_error(send, 401, "Unauthorized", message, {"WWW-Authenticate": "Bearer"})
            return
        scope.setdefault("state", {})["caller"] = verdict.name  # for the request log, refused or not
        needed = required_scope(scope["path"])
        if needed is not None and needed not in verdict.scopes:
            AUTH_FAILURES.labels(reason="scope").inc()
            await send_error(send, 403, "Forbidden", f"token {verdict.name!r} lacks the {needed!r} scope for {scope['path']}")
            return
        await self.app(scope, receive, send)

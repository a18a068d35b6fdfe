"""The auth middleware in front of a plain Starlette app: 401, 403, and what stays open."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pipelines.auth.middleware import TokenAuth, required_scope
from pipelines.auth.store import TokenFile, TokenStore


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


PATHS = ["/summarize", "/batch", "/rag", "/rag/index", "/jobs", "/jobs/job-1/results", "/readyz", "/livez", "/metrics", "/styles"]


PAGE_PATHS = ["/ui", "/ui/app.js", "/uix"]


def client(store: TokenStore, protect_metrics: bool = False, open_prefixes: tuple[str, ...] = ()) -> httpx.AsyncClient:
    routes = [Route(p, ok, methods=["GET", "POST", "OPTIONS"]) for p in [*PATHS, *PAGE_PATHS]]
    app = TokenAuth(Starlette(routes=routes), store, protect_metrics=protect_metrics, open_prefixes=open_prefixes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_scopes_follow_the_longest_route_prefix() -> None:
    assert required_scope("/rag") == "rag"
    assert required_scope("/rag/index") == "rag:write"
    assert required_scope("/jobs/job-1/cancel") == "jobs"
    assert required_scope("/ragged") is None


@pytest.mark.anyio
async def test_401_403_200_and_open_probes(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    _, summarize_only = tokens.create("a", ["summarize"])
    _, everything = tokens.create("b", ["summarize", "batch", "rag", "rag:write", "jobs", "metrics"])
    async with client(TokenStore(file=tokens.path)) as http:
        missing = await http.post("/summarize")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["type"] == "Unauthorized"
        bad = await http.post("/summarize", headers={"Authorization": "Bearer smz_x_y"})
        assert bad.status_code == 401 and "smz_x_y" not in bad.text
        assert (await http.post("/summarize", headers={"Authorization": f"Bearer {summarize_only}"})).status_code == 200
        forbidden = await http.post("/batch", headers={"Authorization": f"Bearer {summarize_only}"})
        assert forbidden.status_code == 403 and "'batch' scope" in forbidden.json()["error"]["message"]
        for path in ["/batch", "/rag", "/rag/index", "/jobs/job-1/results"]:
            assert (await http.post(path, headers={"Authorization": f"Bearer {everything}"})).status_code == 200
        for path in ["/readyz", "/livez", "/metrics"]:
            assert (await http.get(path)).status_code == 200
        assert (await http.options("/summarize")).status_code == 200


@pytest.mark.anyio
async def test_metrics_can_be_protected(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "tokens.json")
    _, reader = tokens.create("prometheus", ["metrics"])
    async with client(TokenStore(file=tokens.path), protect_metrics=True) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": f"Bearer {reader}"})).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


@pytest.mark.anyio
async def test_open_prefixes_open_their_own_paths_only(tmp_path: Path) -> None:
    """The /ui page's files need no token; nothing else is opened by the prefix."""
    tokens = TokenFile(tmp_path / "tokens.json")
    tokens.create("a", ["summarize"])
    async with client(TokenStore(file=tokens.path), open_prefixes=("/ui",)) as http:
        assert (await http.get("/ui")).status_code == 200
        assert (await http.get("/ui/app.js")).status_code == 200
        assert (await http.get("/uix")).status_code == 401
        assert (await http.post("/summarize")).status_code == 401
    async with client(TokenStore(file=tokens.path)) as http:
        assert (await http.get("/ui")).status_code == 401  # open only where the service says so

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipelines.asgi import BodySizeLimit, ConcurrencyLimit


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


@pytest.mark.anyio
async def test_streamed_large_body_is_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 50

    async with client(100) as c:
        response = await c.post("/", content=chunks())
    assert response.status_code == 413


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

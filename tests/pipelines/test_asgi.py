from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipelines.asgi import BodySizeLimit


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

"""The naive peer: what a team writes first. FastAPI, the same pipeline, one model call per request.

    BENTOML_HOME=... uvicorn bench.naive:app --host 127.0.0.1 --port 8000

Same models, same normalize and redact, same engine code and settings as the service; no
batching across requests, no admission limit, no separate model process. FastAPI runs the sync
handler in its thread pool, so concurrent requests run concurrent model calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipelines.batch.core import BatchDocument
from pipelines.batch.inprocess import LocalPipeline

state: dict[str, LocalPipeline] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state["pipeline"] = LocalPipeline()
    yield


app = FastAPI(lifespan=lifespan)


class Body(BaseModel):
    text: str


@app.get("/readyz")
def readyz() -> dict[str, bool]:
    return {"ready": True}


@app.post("/summarize")
def summarize(body: Body) -> Any:
    (result,) = state["pipeline"].run([BatchDocument(id="request", text=body.text)])
    if result.error is not None:
        return JSONResponse(result.error.model_dump(), status_code=result.error.status)
    return {"summary": result.summary}

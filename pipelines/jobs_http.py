"""The `/jobs` routes, as a small Starlette app the entry service mounts.

BentoML API routes are POST-only and read the whole body; jobs need GET for status and results,
a streamed upload of a large JSONL file, and a streamed download. Hence a plain ASGI app:

    POST   /jobs                  submit: a JSONL body, or {"path": ...} of a file under the data dir
    GET    /jobs                  list jobs, newest first
    GET    /jobs/{id}             status: progress, rate, ETA, invalid lines
    GET    /jobs/{id}/results     result lines (JSONL, input order), so far or final
    GET    /jobs/{id}/invalid     every invalid input line with its error (JSONL)
    POST   /jobs/{id}/cancel      stop a queued or running job
    DELETE /jobs/{id}             forget a finished job (and its uploaded file)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pipelines.errors import BadInput, InputTooLarge, SummarizerError
from pipelines.jobs import JobStore
from pipelines.styles import STYLE_HEADER, StyleRegistry

log = logging.getLogger("summarizer.jobs")
JSON_BODY_LIMIT = 65_536  # a {"path": ...} submission is tiny


@dataclass
class JobsBackend:
    """What the routes need from the service that mounts them."""

    store: JobStore
    styles: StyleRegistry
    data_dir: Path | None  # where {"path": ...} submissions may point; None disables them
    max_upload_bytes: int
    wake: Callable[[], None]  # tell the runner a job arrived or was cancelled


Handler = Callable[[Request], Awaitable[Response]]


def _json_errors(handler: Callable[[Request, JobsBackend], Awaitable[Response]], get: Callable[[], JobsBackend]) -> Handler:
    """Every error becomes the same JSON body the BentoML routes give."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request, get())
        except SummarizerError as err:
            return JSONResponse(err.to_payload(), status_code=err.status_code)
        except Exception as exc:
            log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
            internal = SummarizerError()
            return JSONResponse(internal.to_payload(), status_code=internal.status_code)

    return endpoint


def resolve_data_path(data_dir: Path | None, given: object) -> Path:
    """A submitted path, only if it names a file inside the data directory (no escaping it)."""
    if data_dir is None:
        raise BadInput("submitting by path is disabled; set SUMMARIZER_JOBS_DATA_DIR, or upload the JSONL as the body")
    if not isinstance(given, str) or not given.strip():
        raise BadInput('send {"path": "file.jsonl"} with a path relative to the data directory, or upload the JSONL')
    if "\x00" in given:
        raise BadInput("path must not contain NUL characters")
    root = data_dir.resolve()
    path = (root / given).resolve()
    if not path.is_relative_to(root):
        raise BadInput(f"path {given!r} is outside the data directory")
    if not path.is_file():
        raise BadInput(f"no file {given!r} in the data directory")
    return path


async def _receive_upload(request: Request, target: Path, limit: int) -> None:
    """Stream the body to disk; never more than `limit` bytes, never the whole body in memory."""
    size = 0
    partial = target.with_suffix(".part")
    try:
        with partial.open("wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise InputTooLarge(
                        f"the upload is larger than {limit} bytes (SUMMARIZER_JOBS_MAX_UPLOAD_BYTES); "
                        "put the file under the data directory and submit its path"
                    )
                f.write(chunk)
        if size == 0:
            raise BadInput("the upload is empty; send the JSONL file as the request body")
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)


async def submit(request: Request, jobs: JobsBackend) -> Response:
    style_name = request.query_params.get("style") or request.headers.get(STYLE_HEADER)
    default_style = jobs.styles.resolve(style_name).name if style_name else None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > JSON_BODY_LIMIT:
                raise InputTooLarge("a JSON submission only names a file; upload JSONL with Content-Type application/x-ndjson")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            raise BadInput('the body is not valid JSON; send {"path": "file.jsonl"}') from None
        if not isinstance(body, dict):
            raise BadInput('send {"path": "file.jsonl"}')
        path = resolve_data_path(jobs.data_dir, body.get("path"))
        if body.get("style") is not None:
            default_style = jobs.styles.resolve(str(body["style"])).name
        job_id, _ = jobs.store.new_upload_path()
        source = f"path:{body['path']}"
        created = False
    else:
        job_id, path = jobs.store.new_upload_path()
        await _receive_upload(request, path, jobs.max_upload_bytes)
        source, created = "upload", True
    try:
        await asyncio.to_thread(jobs.store.create, job_id, path, source, default_style)
    except BaseException:
        if created:
            path.unlink(missing_ok=True)
        raise
    jobs.wake()
    status = await asyncio.to_thread(jobs.store.status, job_id)
    return JSONResponse(status, status_code=201, headers={"Location": f"/jobs/{job_id}"})


async def list_jobs(request: Request, jobs: JobsBackend) -> Response:
    listed = await asyncio.to_thread(jobs.store.all)
    return JSONResponse(
        {
            "jobs": [
                {"id": j.id, "status": j.status, "source": j.source, "total": j.total, "invalid_lines": j.invalid}
                for j in listed
            ]
        }
    )


async def job_status(request: Request, jobs: JobsBackend) -> Response:
    return JSONResponse(await asyncio.to_thread(jobs.store.status, request.path_params["job_id"]))


async def results(request: Request, jobs: JobsBackend) -> Response:
    job = await asyncio.to_thread(jobs.store.get, request.path_params["job_id"])
    # Starlette iterates a sync iterator in a thread pool: the cursor never blocks the event loop.
    return StreamingResponse(
        jobs.store.results(job.id), media_type="application/x-ndjson", headers={"X-Job-Status": job.status}
    )


async def invalid(request: Request, jobs: JobsBackend) -> Response:
    job = await asyncio.to_thread(jobs.store.get, request.path_params["job_id"])
    return StreamingResponse(jobs.store.invalid_lines(job.id), media_type="application/x-ndjson")


async def cancel(request: Request, jobs: JobsBackend) -> Response:
    job = await asyncio.to_thread(jobs.store.cancel, request.path_params["job_id"])
    jobs.wake()
    return JSONResponse(await asyncio.to_thread(jobs.store.status, job.id))


async def delete(request: Request, jobs: JobsBackend) -> Response:
    await asyncio.to_thread(jobs.store.delete, request.path_params["job_id"])
    return JSONResponse({"deleted": request.path_params["job_id"]})


def build_app(get: Callable[[], JobsBackend]) -> Starlette:
    """`get` returns the live backend: the app is built at import, the service later."""

    def route(path: str, handler: Callable[[Request, JobsBackend], Awaitable[Response]], method: str) -> Route:
        return Route(path, _json_errors(handler, get), methods=[method])

    return Starlette(
        routes=[
            route("/jobs", submit, "POST"),
            route("/jobs", list_jobs, "GET"),
            route("/jobs/{job_id}", job_status, "GET"),
            route("/jobs/{job_id}", delete, "DELETE"),
            route("/jobs/{job_id}/results", results, "GET"),
            route("/jobs/{job_id}/invalid", invalid, "GET"),
            route("/jobs/{job_id}/cancel", cancel, "POST"),
        ]
    )


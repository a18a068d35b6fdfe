"""The `/jobs` routes, as a small Starlette app the entry service mounts.

BentoML API routes are POST-only and read the whole body; jobs need GET for status and results,
a streamed upload of a large JSONL file, and a streamed download. Hence a plain ASGI app:

    POST   /jobs                  submit: a JSONL body, or {"path": ...} of a file under the data dir;
                                  optionally a deadline (?deadline=, or "deadline" in the JSON body)
    GET    /jobs                  list jobs, newest first
    GET    /jobs/{id}             status: progress, rate, ETA, invalid lines
    GET    /jobs/{id}/results     result lines (JSONL, input order), so far or final
    GET    /jobs/{id}/invalid     every invalid input line with its error (JSONL)
    POST   /jobs/{id}/cancel      stop a queued or running job
    DELETE /jobs/{id}             forget a finished job (and its uploaded file)
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pipelines.errors import BadInput, InputTooLarge, SummarizerError, storage_error
from pipelines.jobs.records import JobStorage, iso_utc
from pipelines.styles import STYLE_HEADER, StyleRegistry

log = logging.getLogger("summarizer.jobs")
JSON_BODY_LIMIT = 65_536  # a {"path": ...} submission is tiny
# The status shows a deadline as an ISO 8601 timestamp (time.gmtime): years 1 to 9999 only.
LATEST_DEADLINE = 253_402_300_799.0  # 9999-12-31T23:59:59Z
_EPOCH = re.compile(r"[0-9]+(\.[0-9]+)?")
_DEADLINE_FORMS = "an ISO 8601 timestamp with a timezone (2026-12-07T06:00:00Z) or seconds since the epoch"


@dataclass
class JobsBackend:
    """What the routes need from the service that mounts them."""

    store: JobStorage
    styles: StyleRegistry
    data_dir: Path | None  # where {"path": ...} submissions may point; None disables them
    max_upload_bytes: int
    wake: Callable[[], None]  # tell the runner a job arrived or was cancelled
    retry_after_s: int = 2  # sent with a 503 (the database is down): when to try again


Handler = Callable[[Request], Awaitable[Response]]


def _json_errors(handler: Callable[[Request, JobsBackend], Awaitable[Response]], get: Callable[[], JobsBackend]) -> Handler:
    """Every error becomes the same JSON body the BentoML routes give."""

    async def endpoint(request: Request) -> Response:
        backend = get()
        try:
            return await handler(request, backend)
        except SummarizerError as err:
            # A refused upload stops being read: close, or the server reads the rest to keep alive.
            # BodySizeLimit (pipelines/http/middleware.py), around this app, discards the rest of
            # the body (bounded) before this answer goes out, so a client still writing gets it.
            headers = err.headers(backend.retry_after_s)
            if isinstance(err, InputTooLarge):
                headers["Connection"] = "close"
            return JSONResponse(err.to_payload(), status_code=err.status_code, headers=headers)
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
    shown = repr(given) if len(given) <= 200 else repr(given[:200]) + "..."
    try:
        path = (root / given).resolve()
        inside = path.is_relative_to(root)
        is_file = inside and path.is_file()
    except OSError as exc:  # a name too long for the file system, say: no file it could name
        raise BadInput(f"path {shown} cannot name a file ({errno.errorcode.get(exc.errno or 0, 'OSError')})") from None
    if not inside:
        raise BadInput(f"path {shown} is outside the data directory")
    if not is_file:
        raise BadInput(f"no file {shown} in the data directory")
    return path


class LineGuard:
    """Counts the bytes of the line being streamed in; InputTooLarge once one passes `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.line = 1  # 1-based number of the line being read
        self.length = 0  # its bytes so far

    def feed(self, chunk: bytes) -> None:
        end = chunk.find(b"\n")
        if end < 0:
            self._check(self.length + len(chunk))
            self.length += len(chunk)
            return
        self._check(self.length + end)
        if len(chunk) > self.limit:  # a whole line inside one chunk could be too long too
            for i, line in enumerate(chunk.split(b"\n")[1:-1], start=1):
                self._check(len(line), self.line + i)
        self.line += chunk.count(b"\n")
        self.length = len(chunk) - chunk.rfind(b"\n") - 1
        self._check(self.length)

    def _check(self, length: int, line: int | None = None) -> None:
        if length > self.limit:
            raise InputTooLarge(
                f"line {line or self.line} of the upload is longer than {self.limit} bytes "
                "(SUMMARIZER_JOBS_MAX_LINE_BYTES); each line holds one document"
            )


async def _receive_upload(request: Request, target: Path, limit: int, max_line_bytes: int) -> None:
    """Stream the body to disk; never more than `limit` bytes, never the whole body in memory."""
    size = 0
    lines = LineGuard(max_line_bytes)
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
                lines.feed(chunk)
                f.write(chunk)
        if size == 0:
            raise BadInput("the upload is empty; send the JSONL file as the request body")
        partial.rename(target)
    except OSError as exc:  # a full or read-only volume: 507 naming it, not a bare 500
        log.error("upload to %s failed: %s", partial, exc.strerror)
        raise storage_error(exc, "the job store") from exc
    finally:
        if partial.exists():  # on a read-only volume even unlinking a missing file fails (EROFS)
            partial.unlink()


def parse_deadline(given: object, now: float) -> float:
    """A submitted deadline as seconds since the epoch. A timestamp without a timezone is refused,
    not guessed: the server's zone is rarely the client's."""
    if isinstance(given, bool) or not isinstance(given, (str, int, float)):
        raise BadInput(f"deadline must be {_DEADLINE_FORMS}")
    shown = repr(given)
    shown = shown if len(shown) <= 48 else shown[:40] + "..."
    if isinstance(given, str) and _EPOCH.fullmatch(given.strip()) is None:
        try:
            parsed = datetime.fromisoformat(given.strip())
        except ValueError:
            raise BadInput(f"deadline {shown} is not {_DEADLINE_FORMS}") from None
        if parsed.utcoffset() is None:
            raise BadInput(f"deadline {shown} has no timezone; add one (Z for UTC, or an offset like +01:00)")
        try:
            deadline = parsed.timestamp()
        except OverflowError:  # year 1 with a positive offset: before what a datetime can hold
            deadline = -math.inf
    else:
        try:
            deadline = float(given)
        except OverflowError:  # an integer beyond any float
            deadline = math.inf
    if math.isnan(deadline) or deadline > LATEST_DEADLINE:
        raise BadInput(f"deadline {shown} is not a time before the year 10000")
    if deadline <= now:
        raise BadInput(f"deadline {shown} is in the past; the server's time is {iso_utc(now)}")
    return deadline


def _parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise BadInput(f'the body is not valid JSON ({type(exc).__name__}); send {{"path": "file.jsonl"}}') from None
    except RecursionError:
        raise BadInput('the body is not valid JSON (nested too deeply); send {"path": "file.jsonl"}') from None


async def submit(request: Request, jobs: JobsBackend) -> Response:
    style_name = request.query_params.get("style") or request.headers.get(STYLE_HEADER)
    default_style = jobs.styles.resolve(style_name).name if style_name else None
    # Checked before an upload is read: a bad deadline must not cost a streamed corpus.
    given = request.query_params.get("deadline")
    deadline = None if given is None else parse_deadline(given, time.time())
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > JSON_BODY_LIMIT:
                raise InputTooLarge("a JSON submission only names a file; upload JSONL with Content-Type application/x-ndjson")
        body = _parse_json(raw)
        if not isinstance(body, dict):
            raise BadInput('send {"path": "file.jsonl"}')
        path = resolve_data_path(jobs.data_dir, body.get("path"))
        if body.get("style") is not None:
            default_style = jobs.styles.resolve(str(body["style"])).name
        if body.get("deadline") is not None:
            deadline = parse_deadline(body["deadline"], time.time())
        job_id, _ = jobs.store.new_upload_path()
        source = f"path:{body['path']}"
        created = False
    else:
        job_id, path = jobs.store.new_upload_path()
        # The store's own line cap, enforced while the upload streams in: it would otherwise read
        # an over-long line whole (with the default upload limit, one line could be 4 GB).
        await _receive_upload(request, path, jobs.max_upload_bytes, jobs.store.max_line_bytes)
        source, created = "upload", True
    try:
        await asyncio.to_thread(jobs.store.create, job_id, path, source, default_style, deadline)
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


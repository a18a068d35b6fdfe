"""How `summarize-batch` gets a batch summarized: in this process (LocalBackend) or by a running
server's POST /batch (HttpBackend). Both answer one result per document or fail the whole batch with
RequestFailed (retry later), BodyTooLarge (split it) or CliError (stop); the retrying, splitting and
writing is the caller's (`pipelines.batch.cli.Run`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import httpx

from models import ModelImportError
from pipelines.batch.core import BatchDocument, BatchResult, ErrorBody
from pipelines.errors import NotReady, SummarizerError, UpstreamTimeout
from pipelines.settings import Settings, get_settings
from pipelines.styles import STYLE_HEADER, StyleRegistry

# Statuses for a whole request that say "later", not "never". Other 5xx (a crashed worker) too.
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})

T = TypeVar("T")


class CliError(Exception):
    """Printed as one line on stderr; exit status 2."""


class RequestFailed(Exception):
    """A whole request failed in a way worth retrying; `error` is what its documents get if it keeps failing."""

    def __init__(self, error: ErrorBody, retry_after_s: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after_s = retry_after_s


class BodyTooLarge(Exception):
    """413 for the whole request: too many bytes in one batch. Halving it is the fix, not waiting."""

    def __init__(self, error: ErrorBody) -> None:
        super().__init__(error.message)
        self.error = error


class Backend(Protocol):
    max_in_flight: int

    async def send(self, docs: list[BatchDocument]) -> list[BatchResult]:
        """One result per document, in order; RequestFailed, BodyTooLarge or CliError for the whole batch."""
        ...

    async def aclose(self) -> None: ...


class Pipeline(Protocol):
    def run(self, docs: Sequence[BatchDocument], default_style: str | None = None) -> list[BatchResult]: ...


PipelineFactory = Callable[[Settings], Pipeline]


def _error(err: SummarizerError) -> ErrorBody:
    return ErrorBody.model_validate(err.to_payload()["error"])


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, SummarizerError) else str(exc)


async def _in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking model work off the event loop in a daemon thread. A thread cannot be stopped:
    after Ctrl-C and the grace period an unfinished batch must not keep the process from exiting,
    and asyncio.to_thread's pool threads are joined at exit."""
    result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        if result.set_running_or_notify_cancel():
            try:
                result.set_result(fn(*args))
            except BaseException as exc:  # handed to the awaiting task as is
                result.set_exception(exc)

    threading.Thread(target=work, name="summarize-batch", daemon=True).start()
    return await asyncio.wrap_future(result)


class LocalBackend:
    """The whole service in this process (`LocalPipeline`), one batch at a time: its model and
    tokenizers are not shared between threads. Loaded on the first batch, so a rerun over a
    finished output loads nothing."""

    max_in_flight = 1

    def __init__(self, style: str | None, factory: PipelineFactory | None = None) -> None:
        try:
            self.settings = get_settings()
            if style:  # a bad --style is a usage error, not 100k error lines; styles load without the model
                StyleRegistry.load(self.settings.styles_file, self.settings.default_style).resolve(style)
        except (ValueError, SummarizerError) as exc:  # pydantic's ValidationError is a ValueError
            raise CliError(_message(exc)) from None
        self.style = style
        self.factory = factory
        self.pipeline: Pipeline | None = None

    def _load(self) -> Pipeline:
        if self.factory is not None:
            return self.factory(self.settings)
        from pipelines.batch.inprocess import LocalPipeline  # torch and the NER stack: only when needed

        return LocalPipeline(self.settings)

    async def send(self, docs: list[BatchDocument]) -> list[BatchResult]:
        if self.pipeline is None:
            try:
                self.pipeline = await _in_daemon_thread(self._load)
            except (ModelImportError, SummarizerError) as exc:
                raise CliError(_message(exc)) from None
        try:
            return await _in_daemon_thread(self.pipeline.run, docs, self.style)
        except SummarizerError as err:  # whole-batch failure: each document's error, retried if transient
            raise RequestFailed(_error(err)) from None

    async def aclose(self) -> None:
        pass


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:  # absent, or an HTTP date (our server sends seconds): plain backoff
        return None


def _error_of(response: httpx.Response) -> ErrorBody:
    """The server's JSON error, or one made from the status when something else answered (a proxy)."""
    try:
        return ErrorBody.model_validate(response.json()["error"])
    except (ValueError, KeyError, TypeError):  # not JSON, or not ours (pydantic's ValidationError is a ValueError)
        return ErrorBody(type="HTTPError", message=f"HTTP {response.status_code} {response.reason_phrase}",
                         status=response.status_code)  # fmt: skip


class HttpBackend:
    """A running server's POST /batch, with the default style and token as headers."""

    def __init__(
        self, url: str, style: str | None, token: str | None, concurrency: int, timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:  # fmt: skip
        headers = {STYLE_HEADER: style} if style else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/") + "/batch"
        self.timeout_s = timeout_s
        self.max_in_flight = concurrency
        self.client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0), transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )  # fmt: skip

    async def send(self, docs: list[BatchDocument]) -> list[BatchResult]:
        body = {"documents": [doc.model_dump(exclude_none=True) for doc in docs]}
        try:
            response = await self.client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise RequestFailed(_error(UpstreamTimeout(f"no answer from {self.url} within {self.timeout_s:g} s"))) from None
        except httpx.TransportError as exc:  # refused, reset, DNS: the server is down or restarting
            raise RequestFailed(_error(NotReady(f"could not reach {self.url}: {type(exc).__name__}"))) from None
        if response.status_code == 200:
            return self._results(response, docs)
        error = _error_of(response)
        if response.status_code == 413:
            raise BodyTooLarge(error)
        if response.status_code in TRANSIENT_STATUSES or response.status_code >= 500:
            raise RequestFailed(error, _retry_after(response))
        # 400 (batch too big for the server, bad header style), 401/403, 404 (no /batch there):
        # every later request would get the same answer.
        raise CliError(f"{self.url} refused the request: {response.status_code} {error.type}: {error.message}")

    def _results(self, response: httpx.Response, docs: list[BatchDocument]) -> list[BatchResult]:
        try:
            results = [BatchResult.model_validate(r) for r in response.json()["results"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{self.url} answered 200 without a results list ({type(exc).__name__})") from None
        if [r.id for r in results] != [d.id for d in docs]:
            raise CliError(f"{self.url} answered {len(results)} results that do not match the {len(docs)} documents sent")
        return results

    async def aclose(self) -> None:
        await self.client.aclose()

"""HTTP surface: the entry service (routes, headers, limits) and the model service (batched model).

    bentoml serve service:Summarizer          # both services, one process tree

Only BentoML glue lives here; the work is in `pipelines/` and `models/`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from typing import IO, Any, Literal

import aiohttp
import bentoml
import numpy as np
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.marshal.dispatcher import CorkDispatcher
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse

with bentoml.importing():
    from models.refs import resolve
    from pipelines.api.openapi import docs_route
    from pipelines.api.responses import Citation, RagResponse, SummaryResponse, Timing
    from pipelines.api.state import open_database, open_job_store
    from pipelines.auth.middleware import TokenAuth
    from pipelines.auth.store import TokenStore, check_auth
    from pipelines.batch.core import BatchDocument, BatchResult, DocumentPreparer, check_batch, summarize_documents, unavailable
    from pipelines.engines.contract import ItemOutcome, SummaryItem
    from pipelines.engines.device import set_threads
    from pipelines.engines.factory import build_engine, load_encoder
    from pipelines.engines.grouping import dispatcher_tick_s
    from pipelines.engines.lanes import ModelLanes, is_long, split_long
    from pipelines.engines.runtime import choose_runtime, exported_ref
    from pipelines.errors import NotServedHere, SummarizerError
    from pipelines.http.drain import stop_after
    from pipelines.http.gateway import ModelHealth, call_model
    from pipelines.http.middleware import BodySizeLimit, ConcurrencyLimit, ErrorShape, MediaTypeCheck
    from pipelines.jobs.app import JobsBackend, build_app
    from pipelines.jobs.records import RetryPolicy
    from pipelines.jobs.runner import JobRunner, acquire_runner_lock
    from pipelines.observe.log_format import configure_logging
    from pipelines.observe.request_log import RequestLog, note_style
    from pipelines.observe.stages import observe_document, stage
    from pipelines.observe.traces import carrier, install, tracing_config
    from pipelines.rag.backend import Index, open_index
    from pipelines.rag.index import KnowledgeIndexError
    from pipelines.rag.retrieval import Context, index_documents, retrieve
    from pipelines.scheduling.lanes import Lane
    from pipelines.settings import get_settings
    from pipelines.styles import STYLE_HEADER, Style, StyleRegistry, with_context
    from pipelines.text.normalize import Format
    from pipelines.text.prepare import InputPipeline, PreparedText
    from pipelines.ui.app import PATH as UI_PATH
    from pipelines.ui.app import PageConfig
    from pipelines.ui.app import routes as ui_routes

# Read at import, so bad settings or a bad styles file stop `bentoml serve` (and `bentoml build`)
# at once with their message, instead of failing in a worker.
settings = get_settings()
# BentoML deletes the model service's Unix socket the moment SIGTERM arrives, before any worker
# has drained, so the calls the entry service still makes then fail. A TCP socket on 127.0.0.1
# lives until the last worker exits (pipelines/http/drain.py is the other half). `bentoml serve` reads
# this after importing this file, when it lays out the services.
os.environ.setdefault("BENTOML_NO_UDS", "1")
styles = StyleRegistry.load(settings.styles_file, settings.default_style)
InputPipeline.check_settings(settings)
# Our own handler: BentoML's root logger is WARNING and text; job progress and request logs are INFO.
log = configure_logging(settings.log_format, settings.log_level)
tokens = TokenStore(file=settings.auth_tokens_file, inline=settings.auth_tokens)
check_auth(settings, tokens, log)
# Migrated at import too, so a database newer than this code (SchemaTooNew) stops `bentoml serve`
# with its message instead of failing every worker start; one that is down is only a warning.
database = open_database(settings)
EXPORTED_ENCODER = exported_ref(settings.encoder_model, settings.encoder_runtime)
# A job's model call waits in the job lane while live traffic goes first, so it gets longer than a
# live request; the model service's own deadline must cover it.
JOB_CALL_TIMEOUT_S = settings.request_timeout_s * 5
# A long document yields to short ones, so under load it is slower: it gets twice the deadline.
LONG_CALL_TIMEOUT_S = settings.request_timeout_s * 2
MIN_SHARES = {Lane.LONG: settings.long_min_share, Lane.JOB: settings.jobs_min_share}


@bentoml.service(
    name="summarizer-model",
    workers=1,  # one model copy per GPU; batching, not workers, gives throughput
    resources={"gpu": 1, "gpu_type": settings.gpu_type},
    traffic={"timeout": JOB_CALL_TIMEOUT_S + 5},
    tracing=tracing_config(settings),
    # The default pool recycling closes connections under in-flight calls (BENTOML-NOTES).
    runner_connection={"max_requests": 1_000_000_000, "max_age": 86_400.0},
)
class SummarizerModel:
    encoder = bentoml.models.BentoModel(settings.encoder_model)
    if EXPORTED_ENCODER:  # the ONNX export that encoder_runtime auto or onnx* runs on CPU
        exported_encoder = bentoml.models.BentoModel(EXPORTED_ENCODER)
    if settings.engine == "abstractive":
        generator = bentoml.models.BentoModel(settings.abstractive_model)

    def __init__(self) -> None:
        install(BentoMLContainer.tracer_provider.get())
        # SIGTERM reaches both services at once; the entry's requests still being prepared need
        # this worker after that, so it stops once the entry workers are gone (pipelines/http/drain.py).
        stop_after("summarizer", max_delay_s=LONG_CALL_TIMEOUT_S + 15)
        runtime = choose_runtime(settings.encoder_runtime, settings.device)
        if runtime == "torch" or settings.engine == "abstractive":
            set_threads(settings.torch_threads)
        generator_model = resolve(type(self).generator) if settings.engine == "abstractive" else None
        self.encoder_tag, self.encoder = load_encoder(
            settings, runtime, resolve(type(self).encoder),
            lambda: resolve(type(self).exported_encoder) if EXPORTED_ENCODER else None,
        )  # fmt: skip
        # A class attribute BentoML reads at every poll; this worker has only our dispatchers.
        CorkDispatcher.TICKET_INTERVAL = dispatcher_tick_s(settings.dispatcher_tick_ms, self.encoder.device_type)
        self.engine = build_engine(
            settings,
            encoder=self.encoder,
            encoder_tag=self.encoder_tag,
            generator_dir=generator_model.path if generator_model else None,
            generator_tag=generator_model.tag if generator_model else None,
        )
        # Every model call below runs on this one engine thread, live lane first (docs/scheduling.md).
        self.lanes = ModelLanes(self.engine, self.encoder, MIN_SHARES)

    @bentoml.api(batchable=True, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms)
    async def summarize(self, items: list[SummaryItem]) -> list[ItemOutcome]:
        """Live documents, batched across requests."""
        return await self.lanes.summarize(Lane.LIVE, items)

    @bentoml.api
    async def summarize_lane(self, items: list[SummaryItem], lane: Literal["live", "long", "job"]) -> list[ItemOutcome]:
        """Long live documents and job chunks: not through the batcher, which runs one batch at a time."""
        return await self.lanes.summarize(Lane[lane.upper()], items)

    @bentoml.api(batchable=True, max_batch_size=settings.max_batch_size * 8, max_latency_ms=settings.max_latency_ms)
    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length sentence embeddings (RAG chunks and queries), batched across requests."""
        return await self.lanes.embed(texts)

    @bentoml.api
    def encoder_info(self) -> dict[str, Any]:
        """What a knowledge index must record: vectors from another encoder must never mix."""
        return {"tag": self.encoder_tag, "dim": self.encoder.dim}


# BentoML logs request-validation errors with their input; every input model hides it.
_PRIVATE = ConfigDict(hide_input_in_errors=True)
STYLE_FIELD = f"The style, for clients that cannot set the {STYLE_HEADER} header; both must agree when both are sent."


class SummarizeInput(bentoml.IODescriptor):
    """The /summarize body. BentoML logs validation errors with the offending input, which would
    put a document's PII in the server log; `hide_input_in_errors` keeps values out."""

    model_config = _PRIVATE

    text: str = ""
    format: Literal["auto", "text", "html"] = "auto"
    style: str | None = Field(None, max_length=64, description=STYLE_FIELD)


class DocumentInput(BaseModel):
    model_config = _PRIVATE

    id: str = Field(min_length=1, max_length=256)
    text: str
    metadata: dict[str, str] = {}

    @field_validator("metadata", mode="before")
    @classmethod
    def _string_values(cls, value: object) -> object:
        # One error for the whole dict: a per-value error's location names the key, which the
        # client chose (it may be an e-mail address), and BentoML logs validation errors.
        if isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
            raise ValueError("metadata values must be strings")
        return value


class IndexInput(bentoml.IODescriptor):
    model_config = _PRIVATE

    documents: list[DocumentInput] = Field(min_length=1)
    format: Literal["auto", "text", "html"] = "auto"


class DeleteInput(bentoml.IODescriptor):
    model_config = _PRIVATE

    ids: list[str] = Field(min_length=1)


class BatchInput(bentoml.IODescriptor):
    model_config = _PRIVATE

    documents: list[BatchDocument] = Field(min_length=1)


class RagInput(bentoml.IODescriptor):
    model_config = _PRIVATE

    text: str = ""
    format: Literal["auto", "text", "html"] = "auto"
    style: str | None = Field(None, max_length=64, description=STYLE_FIELD)
    top_k: int = Field(settings.rag_top_k, gt=0, le=50)


def error_response(ctx: bentoml.Context, err: SummarizerError) -> JSONResponse:
    """The one place errors become HTTP. BentoML overwrites the status with ctx's, so set both."""
    headers = err.headers(settings.retry_after_s)
    ctx.response.status_code = err.status_code
    for name, value in headers.items():
        ctx.response.headers[name] = value
    return JSONResponse(err.to_payload(), status_code=err.status_code, headers=headers)


# GET routes and streamed bodies, which BentoML APIs lack; the live backend is the service's.
jobs_app = build_app(lambda: bentoml.get_current_service().jobs)


@bentoml.asgi_app(jobs_app, path="/")
@bentoml.service(
    name="summarizer",
    # Admission control is ConcurrencyLimit below (429 with Retry-After and a JSON body).
    traffic={"timeout": LONG_CALL_TIMEOUT_S + 5},  # the backstop; each model call has its own deadline
    tracing=tracing_config(settings),
    # BentoML's access log prints raw paths and queries, where clients can put anything; our
    # request log (pipelines/observe/request_log.py) replaces it with route templates.
    logging={"access": {"enabled": False}},
)
class Summarizer:
    model = bentoml.depends(SummarizerModel)
    if settings.ner_model:
        ner = bentoml.models.BentoModel(settings.ner_model)

    def __init__(self) -> None:
        install(BentoMLContainer.tracer_provider.get())
        self.styles = styles
        ner_dir = resolve(type(self).ner).path if settings.ner_model else None
        self.inputs = InputPipeline.from_settings(settings, ner_dir)
        self._index: Index | None = None
        self._index_lock = asyncio.Lock()
        self.preparer = DocumentPreparer(self.inputs, self.styles)
        self.database = database  # None: SQLite and FAISS files on this replica's disk
        store = open_job_store(settings, self.database)
        policy = RetryPolicy(settings.jobs_max_attempts, settings.jobs_retry_backoff_s, settings.jobs_retry_backoff_max_s)
        self.runner = JobRunner(
            store, self._summarize_job_documents, batch_documents=settings.jobs_batch_documents,
            concurrency=settings.jobs_concurrency, policy=policy, renew_s=settings.jobs_lease_s / 3,
        )  # fmt: skip
        self.jobs = JobsBackend(
            store, self.styles, settings.jobs_data_dir, settings.jobs_max_upload_bytes, self.runner.wake, settings.retry_after_s
        )
        self._runner_task: asyncio.Task[None] | None = None
        self._runner_lock: IO[bytes] | None = None  # held open for the worker's life
        self.model_health = ModelHealth(self._model_ready)

    @bentoml.on_startup
    async def start_jobs(self) -> None:
        """Resume unfinished jobs. SQLite: only the worker holding the store's lock runs them;
        PostgreSQL: every worker of every replica does, on leases (live replicas excepted)."""
        if settings.role == "live":
            return
        if self.database is None:
            self._runner_lock = acquire_runner_lock(settings.jobs_dir)
        if self.database is not None or self._runner_lock is not None:
            self._runner_task = asyncio.create_task(self.runner.run_forever())

    @bentoml.on_shutdown
    async def stop_jobs(self) -> None:
        """Claimed documents are released; they are pending again for the next start."""
        if self._runner_task is not None:
            self._runner_task.cancel()
            await asyncio.gather(self._runner_task, return_exceptions=True)

    async def _guarded(self, ctx: bentoml.Context, work: Coroutine[Any, Any, Any]) -> Any:
        """Run a route's work; every error becomes our JSON error response."""
        try:
            if settings.role == "jobs":
                work.close()  # never started: no "never awaited" warning
                raise NotServedHere()
            return await work
        except SummarizerError as err:
            return error_response(ctx, err)
        except Exception as exc:
            # A bug or an unexpected model-service failure. Only the type is logged: messages of
            # validation errors can quote the document. The client gets a fixed JSON 500.
            log.error("%s failed: %s", ctx.request.url.path, type(exc).__name__)
            return error_response(ctx, SummarizerError())

    async def _call(self, call: Callable[[], Awaitable[Any]], timeout_s: float = settings.request_timeout_s) -> Any:
        return await call_model(
            call,
            timeout_s=timeout_s,
            overload_errors=(bentoml.exceptions.ServiceUnavailable,),
            connection_errors=(aiohttp.ClientConnectionError, ConnectionError),
            retry_after_s=settings.retry_after_s,
            health=self.model_health,
        )

    async def _model_ready(self) -> bool:
        # Served, the dependency is a client with is_ready; in-process (--development) it is the
        # instance itself, which cannot be down.
        probe = getattr(self.model, "is_ready", None)
        return True if probe is None else bool(await probe(timeout=2))

    async def _summarize_items(self, items: list[SummaryItem], job_lane: Lane | None = None) -> list[ItemOutcome]:
        """Live items: short ones batched, long ones in the long lane. Job items: straight to `job_lane`
        (the job lane, or the live lane for a job behind its deadline), with a job's longer deadline."""

        def in_lane(lane: Lane) -> Callable[[list[SummaryItem]], Awaitable[list[ItemOutcome]]]:
            return lambda chunk: self.model.to_async.summarize_lane(chunk, lane.label)

        with stage("model") as span:
            span.set_attribute("summarizer.items", len(items))
            headers = carrier()
            traced = [item.model_copy(update={"trace": headers}) for item in items]
            if job_lane is not None:
                outcomes: list[ItemOutcome] = await self._call(lambda: in_lane(job_lane)(traced), JOB_CALL_TIMEOUT_S)
            else:
                short, long_chars = self.model.to_async.summarize, settings.long_document_chars
                deadline = LONG_CALL_TIMEOUT_S if any(is_long(item, long_chars) for item in traced) else settings.request_timeout_s
                outcomes = await self._call(lambda: split_long(traced, long_chars, short, in_lane(Lane.LONG)), deadline)
        return outcomes

    async def _summarize_documents(self, docs: list[BatchDocument], default_style: str | None) -> list[BatchResult]:
        return await summarize_documents(self.preparer, docs, self._summarize_items, default_style)

    async def _summarize_job_documents(self, docs: list[BatchDocument], default_style: str | None, urgent: bool) -> list[BatchResult]:
        lane = functools.partial(self._summarize_items, job_lane=Lane.LIVE if urgent else Lane.JOB)
        return await summarize_documents(self.preparer, docs, lane, default_style)

    async def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = await self._call(lambda: self.model.to_async.embed(texts))
        return np.asarray(vectors, dtype=np.float32)

    async def _knowledge(self) -> Index:
        """Opened on first use: the index records the encoder, which the model service knows."""
        async with self._index_lock:
            if self._index is None:
                info = await self._call(lambda: self.model.to_async.encoder_info())
                index = await asyncio.to_thread(
                    open_index, self.database or settings.rag_dir, info["tag"], int(info["dim"]),
                    store=settings.rag_store, qdrant_location=settings.rag_qdrant_location,
                    chunk_words=settings.rag_chunk_words,
                )  # fmt: skip
                try:
                    await asyncio.to_thread(index.check)
                except KnowledgeIndexError as err:
                    log.error("knowledge index unavailable: %s", err.message)  # paths and tags, no content
                    raise
                self._index = index
            return self._index

    async def _summarize(
        self, ctx: bentoml.Context, text: str, format: Format, style_field: str | None,
        with_rag: Index | None = None, top_k: int = 0,
    ) -> tuple[PreparedText, Style, ItemOutcome, Timing, Context | None]:  # fmt: skip
        """Resolve the style, prepare the text, retrieve context when asked, call the model."""
        started = time.perf_counter()
        style = self.styles.choose(ctx.request.headers.get(STYLE_HEADER), style_field)
        note_style(style.name)
        try:
            # CPU work off the event loop, so deadlines and other requests keep running.
            prepared = await asyncio.to_thread(self.inputs.prepare, text, format)
            context = None
            if with_rag is not None:
                with stage("retrieve"):
                    context = await retrieve(with_rag, prepared.text, top_k, self._embed, settings.rag_chunk_words)
            item = SummaryItem(
                text=prepared.text,
                style=with_context(style, context.hits) if context else style,
                query=context.steering if context else None,
            )
            model_started = time.perf_counter()
            outcome = ItemOutcome.model_validate((await self._summarize_items([item]))[0])
            result = outcome.unwrap()
        except SummarizerError:
            observe_document(style.name, None, None, ok=False)
            raise
        observe_document(style.name, outcome.engine, result.summary_words, ok=True)
        timing = Timing.of(started, model_started, time.perf_counter(), prepare_s=model_started - started)
        return prepared, style, outcome, timing, context

    @bentoml.api(route="/summarize", input_spec=SummarizeInput)
    async def summarize(self, ctx: bentoml.Context, text: str = "", format: Format = "auto", style: str | None = None) -> Any:
        """Summarize one document. Style from the X-Summary-Style header or the `style` field, else the default.

        The text is normalized (HTML to main content, e-mail quotes and signatures dropped) and
        redacted before the model sees it; `format` says what it is, or `auto` detects it.
        """

        async def work() -> dict[str, Any]:
            prepared, chosen, outcome, timing, _ = await self._summarize(ctx, text, format, style)
            return SummaryResponse.build(text, prepared, chosen.name, outcome, outcome.unwrap(), timing).model_dump()

        return await self._guarded(ctx, work())

    @bentoml.api(route="/batch", input_spec=BatchInput)
    async def batch(self, ctx: bentoml.Context, documents: list[BatchDocument]) -> Any:
        """Summarize up to SUMMARIZER_BATCH_MAX_DOCUMENTS documents; one result each, in order.

        A document's own problem (unknown style, empty, too large, the model failed on it) is its
        result's `error`; it never fails the others. For whole corpora, submit a job (/jobs).
        """

        async def work() -> dict[str, Any]:
            check_batch(documents, settings.batch_max_documents)
            header = ctx.request.headers.get(STYLE_HEADER)
            default = self.styles.resolve(header).name if header else None  # a bad header fails the call
            results = await self._summarize_documents(documents, default)
            error = unavailable(results)
            if error is not None:
                raise error
            return {"results": [r.model_dump(exclude_none=True) for r in results]}

        return await self._guarded(ctx, work())

    @bentoml.api(route="/rag", input_spec=RagInput)
    async def rag(
        self, ctx: bentoml.Context, text: str = "", format: Format = "auto", style: str | None = None,
        top_k: int = settings.rag_top_k,
    ) -> Any:  # fmt: skip
        """Summarize a document in the light of the indexed documentation, citing what informed it.

        `timing.prepare_ms` includes retrieval here (normalize, redact, embed, search)."""

        async def work() -> dict[str, Any]:
            index = await self._knowledge()
            prepared, chosen, outcome, timing, context = await self._summarize(ctx, text, format, style, index, top_k)
            base = SummaryResponse.build(text, prepared, chosen.name, outcome, outcome.unwrap(), timing)
            citations = [Citation.of(hit) for hit in context.hits] if context else []
            empty = await asyncio.to_thread(len, index) == 0  # may reload a newer snapshot: off the loop
            return RagResponse(**base.model_dump(), citations=citations, index_empty=empty).model_dump()

        return await self._guarded(ctx, work())

    @bentoml.api(route="/rag/index", input_spec=IndexInput)
    async def rag_index(self, ctx: bentoml.Context, documents: list[DocumentInput], format: Format = "auto") -> Any:
        """Add or update documentation; unchanged documents cost no embedding work."""

        async def work() -> dict[str, Any]:
            index = await self._knowledge()
            raw = [(d.id, d.text, d.metadata) for d in documents]
            report = await index_documents(
                index, self.inputs, raw, format, self._embed, settings.rag_max_documents_per_request
            )
            listing = await asyncio.to_thread(index.documents)
            return {**asdict(report), "documents": len(listing), "chunks": await asyncio.to_thread(len, index)}

        return await self._guarded(ctx, work())

    @bentoml.api(route="/rag/documents")
    async def rag_documents(self, ctx: bentoml.Context) -> Any:
        """The indexed documents: id, chunks, content hash, metadata, when indexed."""

        async def work() -> dict[str, Any]:
            index = await self._knowledge()
            documents = await asyncio.to_thread(index.documents)
            return {"documents": [asdict(d) for d in documents], "chunks": await asyncio.to_thread(len, index)}

        return await self._guarded(ctx, work())

    @bentoml.api(route="/rag/delete", input_spec=DeleteInput)
    async def rag_delete(self, ctx: bentoml.Context, ids: list[str]) -> Any:
        """Remove documents from the index; ids not in it are reported, not an error."""

        async def work() -> dict[str, Any]:
            index = await self._knowledge()
            deleted = await asyncio.to_thread(index.delete, ids)
            chunks = await asyncio.to_thread(len, index)
            return {"deleted": deleted, "not_found": [i for i in ids if i not in deleted], "chunks": chunks}

        return await self._guarded(ctx, work())

    @bentoml.api(route="/styles")
    def list_styles(self) -> dict[str, Any]:
        """The styles this deployment knows, and the default one."""
        return {
            "default": self.styles.default,
            "header": STYLE_HEADER,
            "styles": {name: self.styles.get(name).description for name in self.styles.names},
        }


# /docs.json with our bodies, errors, auth and /jobs (pipelines/api/openapi.py); BentoML routes this
# mounted app before its own /docs.json.
jobs_app.router.routes.append(
    docs_route(
        lambda: Summarizer.openapi_spec.asdict(),  # type: ignore[attr-defined]
        styles=styles.names, auth=tokens.configured, protect_metrics=settings.auth_protect_metrics,
    )  # fmt: skip
)
# The playground page at /ui (pipelines/ui/): static files, open without a token.
jobs_app.router.routes += ui_routes(
    PageConfig(auth=tokens.configured, max_body_bytes=settings.max_body_bytes, jobs_max_upload_bytes=settings.jobs_max_upload_bytes)
)
# The decorator turns the class into a bentoml.Service; mypy still sees the plain class.
# The first middleware added is the outermost: the request log sees every refusal below it.
Summarizer.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestLog,
    routes=[api.route for api in Summarizer.apis.values()] + [route.path for route in jobs_app.routes],  # type: ignore[attr-defined]
    styles=styles.names,
    default_style=styles.default,
)
Summarizer.add_asgi_middleware(  # type: ignore[attr-defined]
    BodySizeLimit,
    max_body_bytes=settings.max_body_bytes,
    limits={"/batch": settings.batch_max_body_bytes, "/jobs": settings.jobs_max_upload_bytes},
)
Summarizer.add_asgi_middleware(  # type: ignore[attr-defined]
    ConcurrencyLimit, max_in_flight=settings.max_concurrency, retry_after_s=settings.retry_after_s
)
# BentoML would read a form or a compressed body as garbage; its own errors get our shape.
Summarizer.add_asgi_middleware(MediaTypeCheck, json_paths=[api.route for api in Summarizer.apis.values()])  # type: ignore[attr-defined]
Summarizer.add_asgi_middleware(ErrorShape)  # type: ignore[attr-defined]
if tokens.configured:
    Summarizer.add_asgi_middleware(  # type: ignore[attr-defined]
        TokenAuth, store=tokens, protect_metrics=settings.auth_protect_metrics, open_prefixes=[UI_PATH]
    )

"""HTTP surface: the entry service (routes, headers, limits) and the model service (batched model).

    bentoml serve service:Summarizer          # both services, one process tree

Only BentoML glue lives here; the work is in `pipelines/` and `models/`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

import aiohttp
import bentoml
from pydantic import ConfigDict
from starlette.responses import JSONResponse

with bentoml.importing():
    from models.refs import resolve
    from pipelines.api import SummaryResponse, Timing
    from pipelines.asgi import BodySizeLimit, ConcurrencyLimit
    from pipelines.engine import ItemOutcome, SummaryItem, summarize_isolated
    from pipelines.engines import build_encoder, build_engine
    from pipelines.errors import Overloaded, SummarizerError
    from pipelines.gateway import call_model
    from pipelines.prepare import InputPipeline
    from pipelines.settings import get_settings
    from pipelines.styles import STYLE_HEADER, StyleRegistry

# Read at import, so bad settings or a bad styles file stop `bentoml serve` (and `bentoml build`)
# at once with their message, instead of failing in a worker.
settings = get_settings()
styles = StyleRegistry.load(settings.styles_file, settings.default_style)
InputPipeline.check_settings(settings)
log = logging.getLogger("summarizer")


@bentoml.service(
    name="summarizer-model",
    workers=1,  # one model copy per GPU; batching, not workers, gives throughput
    resources={"gpu": 1, "gpu_type": settings.gpu_type},
    traffic={"timeout": settings.request_timeout_s * 2},
    # The default pool recycling closes connections under in-flight calls (BENTOML-NOTES).
    runner_connection={"max_requests": 1_000_000_000, "max_age": 86_400.0},
)
class SummarizerModel:
    encoder = bentoml.models.BentoModel(settings.encoder_model)
    if settings.engine == "abstractive":
        generator = bentoml.models.BentoModel(settings.abstractive_model)

    def __init__(self) -> None:
        encoder_model = resolve(type(self).encoder)
        generator_model = resolve(type(self).generator) if settings.engine == "abstractive" else None
        self.engine = build_engine(
            settings,
            encoder=build_encoder(settings, encoder_model.path),
            encoder_tag=encoder_model.tag,
            generator_dir=generator_model.path if generator_model else None,
            generator_tag=generator_model.tag if generator_model else None,
        )

    @bentoml.api(batchable=True, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms)
    def summarize(self, items: list[SummaryItem]) -> list[ItemOutcome]:
        return summarize_isolated(self.engine, items)


class SummarizeInput(bentoml.IODescriptor):
    """The /summarize body. BentoML logs validation errors with the offending input, which would
    put a document's PII in the server log; `hide_input_in_errors` keeps values out."""

    model_config = ConfigDict(hide_input_in_errors=True)

    text: str = ""
    format: Literal["auto", "text", "html"] = "auto"


def error_response(ctx: bentoml.Context, err: SummarizerError) -> JSONResponse:
    """The one place errors become HTTP. BentoML overwrites the status with ctx's, so set both."""
    headers = {"Retry-After": str(err.retry_after_s)} if isinstance(err, Overloaded) else {}
    ctx.response.status_code = err.status_code
    for name, value in headers.items():
        ctx.response.headers[name] = value
    return JSONResponse(err.to_payload(), status_code=err.status_code, headers=headers)


@bentoml.service(
    name="summarizer",
    # Admission control is ConcurrencyLimit below (429 with Retry-After and a JSON body).
    traffic={"timeout": settings.request_timeout_s + 5},
)
class Summarizer:
    model = bentoml.depends(SummarizerModel)
    if settings.redact_ner_model:
        ner = bentoml.models.BentoModel(settings.redact_ner_model)

    def __init__(self) -> None:
        self.styles = styles
        ner_dir = resolve(type(self).ner).path if settings.redact_ner_model else None
        self.inputs = InputPipeline.from_settings(settings, ner_dir)

    @bentoml.api(route="/summarize", input_spec=SummarizeInput)
    async def summarize(
        self, ctx: bentoml.Context, text: str = "", format: Literal["auto", "text", "html"] = "auto"
    ) -> Any:
        """Summarize one document. Style from the X-Summary-Style header, else the default.

        The text is normalized (HTML to main content, e-mail quotes and signatures dropped) and
        redacted before the model sees it; `format` says what it is, or `auto` detects it.
        """
        started = time.perf_counter()
        try:
            style = self.styles.resolve(ctx.request.headers.get(STYLE_HEADER))
            # CPU work off the event loop, so deadlines and other requests keep running.
            prepared = await asyncio.to_thread(self.inputs.prepare, text, format)
            item = SummaryItem(text=prepared.text, style=style)
            model_started = time.perf_counter()
            outcomes = await call_model(
                lambda: self.model.to_async.summarize([item]),
                timeout_s=settings.request_timeout_s,
                overload_errors=(bentoml.exceptions.ServiceUnavailable,),
                connection_errors=(aiohttp.ClientConnectionError, ConnectionError),
                retry_after_s=settings.retry_after_s,
            )
            outcome = ItemOutcome.model_validate(outcomes[0])
            result = outcome.unwrap()
        except SummarizerError as err:
            return error_response(ctx, err)
        except Exception as exc:
            # A bug or an unexpected model-service failure. Only the type is logged: messages of
            # validation errors can quote the document. The client gets a fixed JSON 500.
            log.error("summarize failed: %s", type(exc).__name__)
            return error_response(ctx, SummarizerError())
        timing = Timing.of(started, model_started, time.perf_counter(), prepare_s=model_started - started)
        return SummaryResponse.build(text, prepared, style.name, outcome, result, timing).model_dump()

    @bentoml.api(route="/styles")
    def list_styles(self) -> dict[str, Any]:
        """The styles this deployment knows, and the default one."""
        return {
            "default": self.styles.default,
            "header": STYLE_HEADER,
            "styles": {name: self.styles.get(name).description for name in self.styles.names},
        }


# The decorator turns the class into a bentoml.Service; mypy still sees the plain class.
Summarizer.add_asgi_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)  # type: ignore[attr-defined]
Summarizer.add_asgi_middleware(  # type: ignore[attr-defined]
    ConcurrencyLimit, max_in_flight=settings.max_concurrency, retry_after_s=settings.retry_after_s
)

"""OpenTelemetry spans for our stages, on BentoML's tracer provider, so they join its request spans.

BentoML opens a server span per HTTP request in both services and propagates the W3C trace
context from the entry service to the model service. Two gaps are closed here:

- Our spans reach an exporter only through a global tracer provider, which BentoML never sets:
  `install` registers BentoML's (call it in each service's `__init__`).
- Inside a batched model API the current context is not the request's: the batcher runs every
  batch in a task created under the first request it ever saw. So each item carries its request's
  trace context (`carrier`), and `batch_spans` opens one span per request the batch served, with
  the batch's real start and end, under that request's context.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode, TracerProvider

from pipelines.settings import Settings

TRACER = "summarizer"


def tracing_config(settings: Settings) -> dict[str, Any]:
    """The `tracing=` argument of both services: OTLP over HTTP when an endpoint is configured."""
    if not settings.trace_otlp_endpoint:
        return {"sample_rate": 0.0}
    return {
        "exporter_type": "otlp",
        "sample_rate": settings.trace_sample_rate,
        "otlp": {
            "protocol": "http",
            "endpoint": settings.trace_otlp_endpoint,
            "http": {"headers": dict(settings.trace_otlp_headers)},
        },
    }


def install(provider: TracerProvider) -> None:
    """Make BentoML's provider the global one; the first call in a process wins (OTel allows one)."""
    if trace.get_tracer_provider() is not provider:
        trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER)


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (empty when there is no sampled span)."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


@contextmanager
def batch_spans(name: str, parents: Sequence[Mapping[str, str]], **attributes: Any) -> Iterator[None]:
    """One `name` span per distinct parent context among a batch's items, timed as the batch.

    Items without a context (a caller that does not trace) share one span in a trace of its own."""
    start = time_ns()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        end = time_ns()
        groups: dict[tuple[tuple[str, str], ...], int] = {}
        for parent in parents:
            key = tuple(sorted(parent.items()))
            groups[key] = groups.get(key, 0) + 1
        for key, count in groups.items():
            # An explicit context, never the current one: in a batch that is someone else's.
            parent_context = propagate.extract(dict(key)) if key else otel_context.Context()
            span = tracer().start_span(
                name,
                context=parent_context,
                start_time=start,
                attributes={**attributes, "summarizer.batch_size": len(parents), "summarizer.request_items": count},
            )
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end(end_time=end)

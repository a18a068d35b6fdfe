from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pipelines.observe.stages import stage
from pipelines.observe.traces import batch_spans, carrier, tracer, tracing_config
from pipelines.settings import Settings


def test_no_endpoint_means_no_traces() -> None:
    assert tracing_config(Settings()) == {"sample_rate": 0.0}


def test_endpoint_configures_otlp_over_http() -> None:
    settings = Settings(trace_otlp_endpoint="http://collector:4318/v1/traces", trace_sample_rate=0.25, trace_otlp_headers={"x-key": "k"})
    assert tracing_config(settings) == {
        "exporter_type": "otlp",
        "sample_rate": 0.25,
        "otlp": {"protocol": "http", "endpoint": "http://collector:4318/v1/traces", "http": {"headers": {"x-key": "k"}}},
    }


def test_sample_rate_is_checked() -> None:
    with pytest.raises(ValueError):
        Settings(trace_sample_rate=1.5)


def test_batch_spans_land_in_each_requests_trace_not_the_current_one(spans: InMemorySpanExporter) -> None:
    contexts = []
    for name in ("request-a", "request-b"):
        with tracer().start_as_current_span(name):
            contexts.append(carrier())
    # The batcher's own context belongs to some unrelated request: it must not become the parent.
    with tracer().start_as_current_span("unrelated"):
        with batch_spans("engine", [contexts[0], contexts[1], contexts[1]], **{"summarizer.engine": "x"}):
            pass
    finished = {s.name: s for s in spans.get_finished_spans() if s.name != "engine"}
    engines = [s for s in spans.get_finished_spans() if s.name == "engine"]
    assert len(engines) == 2
    by_parent = {s.parent.span_id: s for s in engines if s.parent is not None}
    a, b = finished["request-a"].context, finished["request-b"].context
    assert by_parent.keys() == {a.span_id, b.span_id}
    assert by_parent[a.span_id].context.trace_id == a.trace_id
    assert by_parent[b.span_id].attributes == {"summarizer.engine": "x", "summarizer.batch_size": 3, "summarizer.request_items": 2}
    assert all(s.start_time == engines[0].start_time and s.end_time == engines[0].end_time for s in engines)


def test_items_without_context_get_a_root_span_and_errors_mark_it(spans: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError):
        with tracer().start_as_current_span("unrelated"):
            with batch_spans("engine", [{}, {}]):
                raise RuntimeError("boom")
    (engine,) = [s for s in spans.get_finished_spans() if s.name == "engine"]
    assert engine.parent is None
    assert engine.status.status_code == StatusCode.ERROR and engine.status.description == "RuntimeError"


def test_carrier_is_empty_without_a_span() -> None:
    token = otel_context.attach(otel_context.Context())
    try:
        assert carrier() == {}
    finally:
        otel_context.detach(token)


def test_stage_is_a_child_span_of_the_current_one(spans: InMemorySpanExporter) -> None:
    with tracer().start_as_current_span("request") as parent:
        with stage("normalize"):
            pass
    (normalize,) = [s for s in spans.get_finished_spans() if s.name == "normalize"]
    assert normalize.parent is not None and normalize.parent.span_id == parent.get_span_context().span_id

"""A stage or a document is recorded three ways at once: the Prometheus metric, a span in the
request's trace, and the request's log record. One call site each, so the three never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import Span

from pipelines.observe import request_log
from pipelines.observe.metrics import DOCUMENTS, STAGE_SECONDS, SUMMARY_WORDS
from pipelines.observe.traces import tracer


@contextmanager
def stage(name: str) -> Iterator[Span]:
    """Time a pipeline stage (normalize, redact, retrieve, model) inside its own span."""
    started = time.perf_counter()
    with tracer().start_as_current_span(name) as span:
        try:
            yield span
        finally:
            elapsed = time.perf_counter() - started
            STAGE_SECONDS.labels(stage=name).observe(elapsed)
            record = request_log.current()
            if record is not None:
                record.add_stage(name, elapsed)


def observe_document(style: str | None, engine: str | None, summary_words: int | None, ok: bool) -> None:
    DOCUMENTS.labels(style=style or "none", engine=engine or "none", outcome="ok" if ok else "error").inc()
    if ok and summary_words is not None:
        SUMMARY_WORDS.observe(summary_words)
    record = request_log.current()
    if record is not None:
        record.add_document(ok)

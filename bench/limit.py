"""The in-process limit: the served pipeline's own code in one process, no HTTP, no queue.

    python -m bench.limit --docs FILE --seconds 8 --batches 1,8,32      # prints one JSON object

Run by bench.perf in a process of its own (BENTOML_HOME and SUMMARIZER_* from its environment),
so its threads and memory never mix with the load generator's. For each batch size: documents/s
of the whole pipeline (normalize, redact, engine: `LocalPipeline.run`) and of the engine alone on
already prepared items.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from bench.docs import DEFAULT_DOCS, load_docs
from pipelines.batch.core import BatchDocument, PreparedDocument
from pipelines.batch.inprocess import LocalPipeline
from pipelines.engines.contract import summarize_isolated


def rate(step: Callable[[int], object], batch: int, seconds: float) -> float:
    """Documents/s over whole batches for at least `seconds` (after one warm-up batch)."""
    step(0)
    done, started, i = 0, time.perf_counter(), 1
    while time.perf_counter() - started < seconds:
        step(i)
        done, i = done + batch, i + 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batches", default="1,8,32")
    args = parser.parse_args()
    texts = load_docs(args.docs)
    pipeline = LocalPipeline()
    docs = [BatchDocument(id=str(i), text=t) for i, t in enumerate(texts)]
    items = [p.item for p in pipeline.preparer.prepare_all(docs) if isinstance(p, PreparedDocument)]
    result: dict[str, dict[str, float]] = {"pipeline": {}, "engine": {}}
    for batch in (int(b) for b in args.batches.split(",")):

        def window(i: int, size: int = batch) -> slice:
            start = (i * size) % len(docs)
            return slice(start, start + size)

        result["pipeline"][str(batch)] = rate(lambda i: pipeline.run(docs[window(i)]), batch, args.seconds)
        result["engine"][str(batch)] = rate(lambda i: summarize_isolated(pipeline.engine, items[window(i)]), batch, args.seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

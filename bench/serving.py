"""Served throughput vs. the in-process limit, measured in one run (ratios are the result).

    .venv/bin/python -m bench.serving [--docs ../shared/eval/news.jsonl] [--seconds 15]

1. the limit: the extractive engine in-process, batch 1 and batch 16, documents/s;
2. input preparation (normalize + redact) in-process, documents/s, as text and as HTML pages;
3. our server: `bentoml serve` (both services, production mode) with closed-loop clients at
   concurrency 1 and 16: documents/s, p50/p95 latency, status codes, average adaptive batch,
   and the share of request time spent preparing the input.
Writes bench/results/serving.json. Absolute numbers on a shared 2-core machine are noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from models.store import default_encoder_folder
from pipelines.encoder import SentenceEncoder
from pipelines.engine import SummaryItem
from pipelines.extractive import ExtractiveEngine
from pipelines.prepare import InputPipeline
from pipelines.settings import Settings
from pipelines.styles import StyleRegistry
from tests.server.conftest import free_port, base_env, run_models_cli
from tests.texts import NEWS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DOCS = REPO.parent / "shared" / "eval" / "news.jsonl"


def load_docs(path: Path, count: int = 64) -> list[str]:
    """~600-word documents: the eval set when present, else the test article repeated."""
    if path.is_file():
        docs = [json.loads(line)["document"] for line in path.open() if line.strip()]
        docs = [d for d in docs if 300 <= len(d.split()) <= 1200]
        if docs:
            return (docs * (count // len(docs) + 1))[:count]
    return [NEWS * 2] * count


def in_process(docs: list[str], batch: int, seconds: float) -> float:
    engine = ExtractiveEngine(SentenceEncoder(default_encoder_folder()), "bench")
    style = StyleRegistry.load().get("news")
    done, started, i = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        chunk = [SummaryItem(text=docs[(i + k) % len(docs)], style=style) for k in range(batch)]
        engine.summarize(chunk)
        done, i = done + batch, i + batch
    return done / (time.perf_counter() - started)


def as_html(doc: str) -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in doc.split("\n") if p.strip())
    chrome = "<nav><a href='/'>Home</a> <a href='/world'>World</a></nav><div class='cookie'>We use cookies.</div>"
    return f"<!doctype html><html><head><script>var t=1;</script></head><body>{chrome}<article>{paragraphs}</article><footer>Copyright</footer></body></html>"


def prepare_rate(docs: list[str], seconds: float) -> float:
    pipeline = InputPipeline.from_settings(Settings())
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        pipeline.prepare(docs[done % len(docs)])
        done += 1
    return done / (time.perf_counter() - started)


def batch_stats(url: str) -> tuple[float, float]:
    total = count = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if 'method_name="summarize"' in line and line.startswith("bentoml_service_adaptive_batch_size_"):
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("bentoml_service_adaptive_batch_size_sum"):
                total += value
            elif line.startswith("bentoml_service_adaptive_batch_size_count"):
                count += value
    return total, count


@dataclass
class Served:
    concurrency: int
    docs_per_s: float
    p50_ms: float
    p95_ms: float
    statuses: dict[int, int]
    avg_batch: float
    prepare_share: float  # mean prepare_ms / mean total_ms over successful requests


async def closed_loop(url: str, docs: list[str], concurrency: int, seconds: float) -> Served:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    prepare_ms: list[float] = []
    total_ms: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(worker: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            i = worker
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                response = await http.post("/summarize", json={"text": docs[i % len(docs)]})
                latencies.append(time.perf_counter() - t0)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    timing = response.json()["timing"]
                    prepare_ms.append(timing["prepare_ms"])
                    total_ms.append(timing["total_ms"])
                i += concurrency

    before = batch_stats(url)
    started = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    after = batch_stats(url)
    ok = statuses.get(200, 0)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    batches = after[1] - before[1]
    return Served(
        concurrency=concurrency,
        docs_per_s=ok / elapsed,
        p50_ms=quantiles[49] * 1000,
        p95_ms=quantiles[94] * 1000,
        statuses=statuses,
        avg_batch=(after[0] - before[0]) / batches if batches else 0.0,
        prepare_share=sum(prepare_ms) / sum(total_ms) if total_ms else 0.0,
    )


def serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "bentoml"), "serve", "service:Summarizer", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=REPO, env=base_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    docs = load_docs(args.docs)
    words = statistics.mean(len(d.split()) for d in docs)
    limit_1 = in_process(docs, 1, args.seconds)
    limit_16 = in_process(docs, 16, args.seconds)
    prep_text = prepare_rate(docs, args.seconds / 3)
    prep_html = prepare_rate([as_html(d) for d in docs], args.seconds / 3)
    best = max(limit_1, limit_16)
    print(f"documents: {len(docs)}, mean {words:.0f} words")
    print(f"in-process limit: batch 1 {limit_1:.2f} docs/s, batch 16 {limit_16:.2f} docs/s")
    print(
        f"normalize + redact in-process: text {prep_text:.1f} docs/s ({prep_text / best:.0f}x the engine), "
        f"HTML pages {prep_html:.1f} docs/s ({prep_html / best:.0f}x the engine)"
    )
    with tempfile.TemporaryDirectory() as home:
        run_models_cli(base_env(Path(home)), "import-default")
        proc, url = serve(Path(home))
        try:
            asyncio.run(closed_loop(url, docs, 16, 5))  # warm-up: the batcher learns its latency first
            served = [asyncio.run(closed_loop(url, docs, c, args.seconds)) for c in (1, 16)]
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
    for row in served:
        print(
            f"served c={row.concurrency:>2}: {row.docs_per_s:.2f} docs/s "
            f"({row.docs_per_s / best:.2f}x the in-process limit), p50 {row.p50_ms:.0f} ms, "
            f"p95 {row.p95_ms:.0f} ms, avg batch {row.avg_batch:.1f}, statuses {row.statuses}, "
            f"normalize+redact {row.prepare_share:.1%} of request time"
        )
    result = {
        "docs": len(docs), "mean_words": words, "limit_batch1": limit_1, "limit_batch16": limit_16,
        "prepare_text_docs_per_s": prep_text, "prepare_html_docs_per_s": prep_html,
        "served": [asdict(row) for row in served],
    }  # fmt: skip
    out = REPO / "bench" / "results" / "serving.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()

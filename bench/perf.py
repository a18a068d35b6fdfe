"""The performance suite, in one run: the in-process limit, our server, the naive peer, overload,
cold start and memory, per engine. Ratios are the result; absolute numbers here are noise.

    .venv/bin/python -m bench.perf                       # both engines, CPU, ~20 minutes here
    .venv/bin/python -m bench.perf --engines extractive --seconds 5
    .venv/bin/python -m bench.perf --device cuda --dtype bfloat16 --abstractive-model ./bart-large-cnn
    .venv/bin/python -m bench.perf --engines extractive --runtimes torch,onnx,onnx-int8 --no-naive

For each engine:
1. the limit: `bench.limit` in a process of its own: the pipeline (normalize, redact, engine) at
   batch 1, 8 and 32 on ~600-word documents, and the engine alone;
2. ours: `bentoml serve` (both services, adaptive batching), closed-loop clients at each
   concurrency: throughput, p50/p95/p99, status codes, average adaptive batch;
3. naive: the same pipeline behind FastAPI, one model call per request (bench/naive.py), same load;
4. overload: open-loop arrivals at 1.5x and 3x our measured capacity;
5. cold start (process start to /readyz 200) and resident memory of every process.
With --runtimes, the extractive engine runs once per encoder runtime (pipelines/engines/runtime.py)
and a table compares them: the limit against PyTorch's, served at 32 clients against its own
limit, cold start, and the model worker's peak memory; written to perf_runtimes.json unless --out.
Writes bench/results/perf.json and perf.png. The abstractive engine runs a tiny random BART
unless --abstractive-model names a real checkpoint folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.docs import DEFAULT_DOCS, load_docs
from bench.load import LoadResult, closed_loop, open_loop
from bench.plot import plot
from bench.profile import profile
from bench.servers import REPO, Running, adaptive_batch, server_env, start_naive, start_ours
from tests.server.conftest import base_env, run_models_cli

RESULTS = REPO / "bench" / "results"


def prepare_home(home: Path, engine: str, abstractive_model: Path | None) -> None:
    run_models_cli(base_env(home), "import-default")
    if engine == "abstractive":
        folder = abstractive_model
        if folder is None:
            from tests.fixtures.tiny_models import build_tiny_bart

            folder = build_tiny_bart(home / "tiny-bart", max_positions=1024)  # BART-large's window
        run_models_cli(base_env(home), "import", str(folder), "--name", "summarizer-abstractive")


def limit(home: Path, settings: dict[str, str], docs: Path, seconds: float) -> dict[str, dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.limit", "--docs", str(docs), "--seconds", str(seconds)],
        cwd=REPO, env=server_env(home, settings), capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def load_levels(server: Running, bodies: list[dict[str, Any]], levels: list[int], seconds: float, best: float) -> list[LoadResult]:
    """Closed loop at each level, each long enough for every client to get a few answers."""
    url = f"{server.url}/summarize"
    asyncio.run(closed_loop(url, bodies, max(levels[len(levels) // 2], 4), min(seconds, 8)))  # warm-up
    rows = []
    for level in levels:
        before = adaptive_batch(server.url) if server.name == "ours" else None
        row = asyncio.run(closed_loop(url, bodies, level, max(seconds, 3 * level / best)))
        if before is not None:
            after = adaptive_batch(server.url)
            batches = after[1] - before[1]
            row.avg_batch = (after[0] - before[0]) / batches if batches else None
        print(f"  {server.name:5} c={level:<3} {row.ok_per_s:7.2f} docs/s  p50 {row.p50_ms:8.0f}  p95 {row.p95_ms:8.0f}  "
              f"p99 {row.p99_ms:8.0f} ms  batch {row.avg_batch or 0:5.1f}  {row.statuses}", flush=True)  # fmt: skip
        rows.append(row)
    return rows


def overload(server: Running, bodies: list[dict[str, Any]], capacity: float, factors: list[float], seconds: float) -> list[LoadResult]:
    rows = []
    for factor in factors:
        row = asyncio.run(open_loop(f"{server.url}/summarize", bodies, capacity * factor, seconds))
        row.extra["factor"] = factor
        print(f"  {server.name:5} {factor}x capacity ({capacity * factor:.1f}/s offered): {row.ok_per_s:.2f} ok/s  "
              f"p99 {row.p99_ms:.0f} ms  429 p95 {row.rejected_p95_ms or 0:.0f} ms  {row.statuses}", flush=True)  # fmt: skip
        rows.append(row)
    return rows


def profiled(server: Running, bodies: list[dict[str, Any]], level: int, seconds: float, folder: Path) -> dict[str, dict[str, float]]:
    """CPU time by bucket in each worker process, sampled under closed-loop load at `level`."""
    workers = {label: p for label, p in server.processes().items() if label != "arbiter"}

    async def run() -> dict[str, dict[str, float]]:
        load = asyncio.create_task(closed_loop(f"{server.url}/summarize", bodies, level, seconds + 4))
        await asyncio.sleep(2)
        shares = await asyncio.to_thread(profile, workers, seconds, folder)
        await load
        return shares

    shares = asyncio.run(run())
    for label, buckets in shares.items():
        print(f"  {server.name} {label}: " + ", ".join(f"{k} {v:.0%}" for k, v in buckets.items()), flush=True)
    return shares


def bench_engine(engine: str, args: argparse.Namespace, bodies: list[dict[str, Any]], runtime: str | None = None) -> dict[str, Any]:
    settings = {"engine": engine, "device": args.device, "dtype": args.dtype, **dict(args.set)}
    if runtime:
        settings["encoder_runtime"] = runtime
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        prepare_home(home, engine, args.abstractive_model)
        label = f"{engine} ({runtime})" if runtime else engine
        print(f"{label}: in-process limit", flush=True)
        lim = limit(home, settings, args.docs, args.seconds)
        print(f"  pipeline {lim['pipeline']}  engine {lim['engine']}", flush=True)
        result: dict[str, Any] = {"engine": label, "runtime": runtime, "limit": lim}
        servers = (("ours", start_ours), ("naive", start_naive)) if args.naive else (("ours", start_ours),)
        for name, starter in servers:
            server_settings = {**settings, "jobs_dir": str(home / f"jobs-{name}")}
            server = starter(home, server_settings)
            try:
                print(f"  {name}: ready in {server.cold_start_s:.1f} s", flush=True)
                best = max(lim["pipeline"].values())
                rows = load_levels(server, bodies, args.concurrency, args.seconds, best)
                entry: dict[str, Any] = {"cold_start_s": server.cold_start_s, "closed": [r.row() for r in rows]}
                if name == "ours":
                    capacity = max(r.ok_per_s for r in rows)
                    entry["capacity"] = capacity
                    entry["overload"] = [r.row() for r in overload(server, bodies, capacity, args.overload, args.overload_seconds)]
                entry["rss_mib"] = server.rss_mib()
                entry["peak_mib"] = server.peak_mib()
                if args.profile:
                    entry["profile"] = profiled(server, bodies, 32, args.seconds, home / f"profile-{name}")
            finally:
                server.stop()
            result[name] = entry
    return result


def ratios(result: dict[str, Any], levels: list[int]) -> dict[str, Any]:
    """The targets' ratios: served / limit and ours / naive at each concurrency, p95 / ideal."""
    best = max(result["limit"]["pipeline"].values())
    ours = {int(r["level"]): r for r in result["ours"]["closed"]}
    naive = {int(r["level"]): r for r in result["naive"]["closed"]} if "naive" in result else {}
    single = ours[min(ours)]["p95_ms"]  # p95 against p95: documents differ in length, so one alone varies
    return {
        "limit_docs_per_s": best,
        "served_over_limit": {str(c): ours[c]["ok_per_s"] / best for c in levels},
        "ours_over_naive": {str(c): ours[c]["ok_per_s"] / naive[c]["ok_per_s"] for c in levels if c in naive and naive[c]["ok_per_s"]},
        "p95_over_ideal": {str(c): ours[c]["p95_ms"] / max(c / best * 1000, single) for c in levels},
    }


def report(results: list[dict[str, Any]]) -> str:
    """The tables of docs/performance.md: one row per server and concurrency, ratios against the limit and naive."""
    lines = []
    for result in results:
        r = result["ratios"]
        lim = result["limit"]
        lines += [
            f"**{result['engine']}**: in-process limit {r['limit_docs_per_s']:.2f} documents/s "
            f"(pipeline at batch 1/8/32: {', '.join(f'{v:.2f}' for v in lim['pipeline'].values())}; "
            f"engine alone: {', '.join(f'{v:.2f}' for v in lim['engine'].values())})",
            "",
            "| server | clients | documents/s | x limit | x naive | p50 ms | p95 ms | p99 ms | p95 / ideal | avg batch | statuses |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in [n for n in ("ours", "naive") if n in result]:
            for row in result[name]["closed"]:
                c = int(row["level"])
                vs_naive = f"{r['ours_over_naive'][str(c)]:.2f}" if name == "ours" and r["ours_over_naive"].get(str(c)) else ""
                ideal = f"{r['p95_over_ideal'][str(c)]:.2f}" if name == "ours" else ""
                batch = f"{row['avg_batch']:.1f}" if row.get("avg_batch") else ""
                lines.append(
                    f"| {name} | {c} | {row['ok_per_s']:.2f} | {row['ok_per_s'] / r['limit_docs_per_s']:.2f} | {vs_naive} | "
                    f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {ideal} | {batch} | {row['statuses']} |"
                )
        lines += ["", "| overload (open loop) | offered/s | accepted documents/s | x capacity | accepted p99 ms | 429 p95 ms | 429 with Retry-After | statuses |", "|---|---|---|---|---|---|---|---|"]
        capacity = result["ours"]["capacity"]
        for row in result["ours"]["overload"]:
            rejected = f"{row['rejected_p95_ms']:.0f}" if row["rejected_p95_ms"] is not None else ""
            retry = f"{row['retry_after_share']:.0%}" if row["retry_after_share"] is not None else ""
            lines.append(
                f"| {row['extra']['factor']}x capacity | {row['level']:.1f} | {row['ok_per_s']:.2f} | {row['ok_per_s'] / capacity:.2f} | "
                f"{row['p99_ms']:.0f} | {rejected} | {retry} | {row['statuses']} |"
            )
        names = [n for n in ("ours", "naive") if n in result]
        starts = ", ".join(f"{name} {result[name]['cold_start_s']:.1f} s" for name in names)
        memory = "; ".join(f"{name}: " + ", ".join(f"{k} {v:.0f}" for k, v in result[name]["rss_mib"].items()) for name in names)
        lines += ["", f"Cold start (process start to /readyz 200): {starts}. RSS MiB after the load: {memory}.", ""]
    return "\n".join(lines)


def runtime_table(results: list[dict[str, Any]]) -> str:
    """One row per encoder runtime, against the first (PyTorch): the figures issue 22 asked for."""
    base = results[0]["ratios"]["limit_docs_per_s"]
    lines = [
        "| runtime | limit documents/s | x torch | served c=32 documents/s | x own limit | cold start s | model worker peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        r, ours = result["ratios"], result["ours"]
        c32 = next((row for row in ours["closed"] if int(row["level"]) == 32), ours["closed"][-1])
        peak = ours.get("peak_mib", {}).get("model worker", 0.0)
        lines.append(
            f"| {result['runtime']} | {r['limit_docs_per_s']:.2f} | {r['limit_docs_per_s'] / base:.2f} | {c32['ok_per_s']:.2f} "
            f"| {c32['ok_per_s'] / r['limit_docs_per_s']:.2f} | {ours['cold_start_s']:.1f} | {peak:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--engines", default="extractive,abstractive")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--seconds", type=float, default=10.0, help="per load level")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 32, 64])
    parser.add_argument("--overload", type=lambda s: [float(x) for x in s.split(",")], default=[1.5, 3.0])
    parser.add_argument("--overload-seconds", type=float, default=15.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--set", action="append", default=[], type=lambda s: tuple(s.split("=", 1)), metavar="KEY=VALUE",
                        help="a setting for both servers and the limit, e.g. max_latency_ms=10000 (repeatable)")
    parser.add_argument("--abstractive-model", type=Path, help="a real checkpoint folder (default: a tiny random BART)")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the py-spy window")
    parser.add_argument("--runtimes", type=lambda s: s.split(","), help="extractive once per encoder runtime, e.g. torch,onnx-int8")
    parser.add_argument("--no-naive", dest="naive", action="store_false", help="skip the naive peer")
    parser.add_argument("--out", type=Path, help="default: perf.json, or perf_runtimes.json with --runtimes")
    parser.add_argument("--report", action="store_true", help="redo the ratios, plot and tables of the run stored in --out, and exit")
    args = parser.parse_args()
    args.out = args.out or RESULTS / ("perf_runtimes.json" if args.runtimes else "perf.json")
    if args.report:  # recomputes the ratios, so a change to `ratios` applies to a stored run
        stored = json.loads(args.out.read_text())
        for result in stored["engines"]:
            result["ratios"] = ratios(result, [int(r["level"]) for r in result["ours"]["closed"]])
        args.out.write_text(json.dumps(stored, indent=2))
        plot(stored["engines"], args.out.with_suffix(".png"))
        print(report(stored["engines"]))
        return
    texts = load_docs(args.docs)
    bodies = [{"text": t} for t in texts]
    print(f"{len(texts)} documents, mean {statistics.mean(len(t.split()) for t in texts):.0f} words", flush=True)
    results = []
    runs = [("extractive", r) for r in args.runtimes] if args.runtimes else [(e, None) for e in args.engines.split(",")]
    for engine, runtime in runs:
        result = bench_engine(engine, args, bodies, runtime)
        result["ratios"] = ratios(result, args.concurrency)
        print(json.dumps(result["ratios"], indent=1), flush=True)
        results.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": args.device, "dtype": args.dtype, "settings": dict(args.set), "seconds": args.seconds, "documents": len(texts)}
    args.out.write_text(json.dumps({**meta, "engines": results}, indent=2))
    plot(results, args.out.with_suffix(".png"))
    print(report(results))
    if args.runtimes:
        print(runtime_table(results))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}: the figures of docs/performance.md")


if __name__ == "__main__":
    main()

"""A/B of server settings at one concurrency, against the in-process limit measured in the same run.

    .venv/bin/python -m bench.knobs --engine extractive --variant dispatcher_tick_ms=1 --variant dispatcher_tick_ms=10

Each variant is a fresh `bentoml serve` with those settings; variants are interleaved round by round
(A B A B ...) so drift on a shared machine hits them alike. Prints each run and the mean ratio to
the limit per variant; writes bench/results/knobs-<engine>.json. This is how the batching knobs'
defaults were chosen (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.docs import DEFAULT_DOCS, load_docs
from bench.perf import RESULTS, limit, load_levels, prepare_home
from bench.servers import start_ours


def parse_variant(text: str) -> dict[str, str]:
    """`a=1,b=2` -> {"a": "1", "b": "2"}; an empty string is the defaults."""
    return dict(pair.split("=", 1) for pair in text.split(",") if pair)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="extractive")
    parser.add_argument("--variant", action="append", type=parse_variant, required=True, help="settings, e.g. a=1,b=2 (repeat)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    args = parser.parse_args()

    bodies = [{"text": text} for text in load_docs(args.docs)]
    base = {"engine": args.engine, "device": "cpu", "dtype": "auto"}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        prepare_home(home, args.engine, None)
        limits = []
        for round_ in range(args.rounds):
            # The limit is measured every round and the best kept: other load only ever slows it.
            limits.append(limit(home, base, args.docs, args.seconds))
            best = max(max(lim["pipeline"].values()) for lim in limits)
            print(f"{args.engine}: limit {max(limits[-1]['pipeline'].values()):.2f} documents/s this round, best {best:.2f}", flush=True)
            for i, variant in enumerate(args.variant):
                server = start_ours(home, {**base, **variant, "jobs_dir": str(home / f"jobs-{round_}-{i}")})
                try:
                    row = load_levels(server, bodies, [args.concurrency], args.seconds, best)[0]
                finally:
                    server.stop()
                runs.append({"variant": variant, "round": round_, **row.row()})
                print(f"  {variant}: {row.ok_per_s:.2f} documents/s", flush=True)
    best = max(max(lim["pipeline"].values()) for lim in limits)
    summary = []
    for variant in args.variant:
        ratios = [run["ok_per_s"] / best for run in runs if run["variant"] == variant]
        summary.append({"variant": variant, "mean_x_limit": statistics.mean(ratios), "runs": ratios})
        print(f"{variant}: mean {statistics.mean(ratios):.3f}x the best limit ({best:.2f} documents/s) over {len(ratios)} runs", flush=True)
    out = RESULTS / f"knobs-{args.engine}.json"
    out.write_text(json.dumps({"engine": args.engine, "concurrency": args.concurrency, "limit": best, "limits": limits, "summary": summary, "runs": runs}, indent=2))
    print(f"wrote {out}: the figures of docs/performance.md")


if __name__ == "__main__":
    main()

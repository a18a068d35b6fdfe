"""The in-process limit per encoder runtime, alternating runtimes round by round.

    .venv/bin/python -m bench.limit_runtimes [--runtimes torch onnx-int8] [--rounds 3] [--seconds 6]

`bench.limit` (the served pipeline in one process: normalize, redact, engine; batches of 1, 8 and
32 news articles of ~600 words) once per runtime per round, in a process of its own each time;
the runtimes alternate so that drift on a shared machine hits them alike. Reports each runtime's
median over rounds of its best pipeline figure, and the ratio to the first runtime's (the target
of issue 22: the CPU default at least 1.6x PyTorch). Writes bench/results/limit_runtimes.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.docs import DEFAULT_DOCS
from bench.perf import RESULTS, limit, prepare_home


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx-int8"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "limit_runtimes.json")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, dict[str, float]]]] = {r: [] for r in args.runtimes}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        prepare_home(home, "extractive", None)
        for _ in range(args.rounds):
            for runtime in args.runtimes:
                settings = {"engine": "extractive", "device": "cpu", "encoder_runtime": runtime}
                runs[runtime].append(limit(home, settings, DEFAULT_DOCS, args.seconds))
                print(f"{runtime}: {runs[runtime][-1]}", flush=True)
    median = {r: statistics.median(max(run["pipeline"].values()) for run in rs) for r, rs in runs.items()}
    engine = {r: statistics.median(max(run["engine"].values()) for run in rs) for r, rs in runs.items()}
    first = args.runtimes[0]
    for runtime in args.runtimes:
        print(f"{runtime}: pipeline limit {median[runtime]:.2f} documents/s ({median[runtime] / median[first]:.2f}x {first}), "
              f"engine alone {engine[runtime]:.2f} ({engine[runtime] / engine[first]:.2f}x)")  # fmt: skip
    record = {"command": "python -m bench.limit_runtimes", "runs": runs, "pipeline_median": median, "engine_median": engine,
              f"pipeline_x_{first}": {r: round(v / median[first], 3) for r, v in median.items()}}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

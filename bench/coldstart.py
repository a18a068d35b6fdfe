"""Cold start, broken down: what `bentoml serve` waits for between process start and /readyz 200.

    .venv/bin/python -m bench.coldstart [--runtimes torch,onnx,onnx-int8] [--starts 3]

The arbiter imports service.py to lay out the services, then starts the entry worker and the model
worker, which import it again and load their models side by side (2 cores here). So: (1) the
import of service.py, per top-level package (`python -X importtime`, self time); (2) what each
worker does after it, each in a fresh process: the entry worker's redaction stack (Presidio,
spaCy and the NER pipeline), the model worker's encoder per runtime; (3) the served cold start per
runtime, median of `--starts`, with the model worker's peak memory. Writes bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.servers import start_ours
from tests.server.conftest import base_env, run_models_cli

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "coldstart.json"

# Each step in a fresh interpreter, timed from inside, after `import service` (the workers' start).
STEPS = {
    "entry: redaction stack (Presidio, spaCy, NER model)": (
        "import service, time; t = time.perf_counter()\n"
        "from pipelines.batch.inprocess import input_pipeline; input_pipeline(service.settings).prepare('Mail Ann Lee at a@b.co')\n"
        "print(time.perf_counter() - t)"
    ),
    **{
        f"model: encoder, {runtime}": (
            "import os, time; os.environ['SUMMARIZER_ENCODER_RUNTIME'] = '%s'\n"
            "import service; t = time.perf_counter()\n"
            "from pipelines.batch.inprocess import load_encoder; load_encoder(service.settings)[1].encode(['warm'])\n"
            "print(time.perf_counter() - t)" % runtime
        )
        for runtime in ("torch", "onnx", "onnx-int8")
    },
}


def import_breakdown(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import service"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    by_package: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if found:
            by_package[found[2].split(".")[0]] += int(found[1])
    total = sum(by_package.values()) / 1e6
    return {"total_s": round(total, 2), "top": {k: round(v / 1e6, 2) for k, v in by_package.most_common(10)}}


def step_seconds(code: str, env: dict[str, str]) -> float:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return round(float(done.stdout.strip().splitlines()[-1]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runtimes", type=lambda s: s.split(","), default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = base_env(home)
        run_models_cli(env, "import-default")
        result["import_service"] = import_breakdown(env)
        print(f"import service: {result['import_service']['total_s']} s; by package: {result['import_service']['top']}", flush=True)
        result["after_import_s"] = {name: step_seconds(code, env) for name, code in STEPS.items()}
        for name, seconds in result["after_import_s"].items():
            print(f"  {name}: {seconds} s", flush=True)
        served: dict[str, Any] = {}
        for runtime in args.runtimes:
            starts, peaks = [], []
            for i in range(args.starts):
                server = start_ours(home, {"encoder_runtime": runtime, "jobs_dir": str(home / f"jobs-{runtime}-{i}")})
                try:
                    starts.append(round(server.cold_start_s, 2))
                    peaks.append(server.peak_mib().get("model worker", 0.0))
                finally:
                    server.stop()
            served[runtime] = {"cold_start_s": starts, "median_s": statistics.median(starts), "model_worker_peak_mib": max(peaks)}
            print(f"served, {runtime}: cold start {starts} s (median {served[runtime]['median_s']} s); "
                  f"model worker peak {max(peaks):.0f} MiB", flush=True)  # fmt: skip
        result["served"] = served
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python -m bench.coldstart", **result}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

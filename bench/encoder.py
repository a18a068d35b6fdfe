"""Encoder runtimes against PyTorch fp32: how close their vectors are, and how fast they encode.

    .venv/bin/python -m bench.encoder [--eval-dir ../shared/eval] [--runtimes torch onnx onnx-int8]

Every sentence of the eval documents (news, legal, dialogue; split by the summarizer's own splitter)
is encoded by each runtime. For each runtime: the cosine similarity of each sentence's vector to
PyTorch's (minimum, mean, 1st percentile) and the gate a CPU default must pass (mean at least
GATE_MEAN_COS), then sentences/s on the first `--speed-sentences` sentences, best of `--rounds`,
the runtimes alternating so that drift on a shared machine hits all alike. Writes
bench/results/encoder.json. bench.quality --runtimes and bench.rag --runtimes hold the other gates.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.batch.inprocess import load_encoder
from pipelines.engines.runtime import RUNTIMES, Runtime
from pipelines.settings import Settings
from pipelines.text.sentences import split_sentences

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "encoder.json"
GATE_MEAN_COS = 0.99


def eval_sentences(folder: Path) -> list[str]:
    sentences = []
    for name in ("news.jsonl", "legal.jsonl", "dialogue.jsonl"):
        for line in (folder / name).read_text().splitlines():
            sentences.extend(split_sentences(json.loads(line)["document"]))
    return sentences


def encoder_for(runtime: Runtime, settings: Settings) -> Any:
    """The encoder the service would load for `runtime`, from the same model store."""
    return load_encoder(settings.model_copy(update={"encoder_runtime": runtime}))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--speed-sentences", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every runtime")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    settings = Settings(device="cpu", torch_threads=args.threads)
    if "torch" in args.runtimes:
        from pipelines.engines.device import set_threads

        set_threads(args.threads)
    sentences = eval_sentences(args.eval_dir)
    encoders = {runtime: encoder_for(runtime, settings) for runtime in ["torch", *[r for r in args.runtimes if r != "torch"]]}
    reference = encoders["torch"].encode(sentences)
    results: dict[str, Any] = {}
    for runtime, encoder in encoders.items():
        cosines = np.sum(encoder.encode(sentences) * reference, axis=1)
        results[runtime] = {
            "min_cos": round(float(cosines.min()), 4), "p1_cos": round(float(np.percentile(cosines, 1)), 4),
            "mean_cos": round(float(cosines.mean()), 4), "gate_passed": bool(cosines.mean() >= GATE_MEAN_COS),
        }  # fmt: skip
    speed = sentences[: args.speed_sentences]
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(args.rounds):
        for runtime, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(speed)
            best[runtime] = min(best[runtime], time.perf_counter() - started)
    for runtime in encoders:
        results[runtime]["sentences_per_s"] = round(len(speed) / best[runtime], 1)
        results[runtime]["x_torch"] = round(best["torch"] / best[runtime], 2)
        r = results[runtime]
        print(f"{runtime:10} cosine to torch: min {r['min_cos']:.4f}, 1st pct {r['p1_cos']:.4f}, mean {r['mean_cos']:.4f} "
              f"(gate mean >= {GATE_MEAN_COS}: {'passed' if r['gate_passed'] else 'FAILED'}); "
              f"{r['sentences_per_s']:.0f} sentences/s, {r['x_torch']:.2f}x torch")  # fmt: skip
    record = {"command": "python -m bench.encoder", "sentences": len(sentences), "speed_sentences": len(speed),
              "threads": args.threads, "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

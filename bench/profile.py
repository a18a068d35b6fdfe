"""Where the CPU time of a served request goes: py-spy samples each server process under load and
the stacks are put in buckets (model, tokenizer, our pipeline stages, serialization, HTTP).

Only on-CPU samples count (py-spy leaves idle threads out), so the shares are of work done.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil

PY_SPY = Path(sys.executable).parent / "py-spy"
# The first bucket whose marker appears anywhere in a stack takes the sample (most specific first).
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("tokenizer", ("tokenization_", "tokenizers", "_batch_encode_plus", "_encode_plus")),
    ("model forward (torch)", ("torch/nn/", "forward (transformers/", "generate (transformers/")),
    ("extractive selection", ("pipelines/engines/extractive.py",)),
    ("sentence split", ("pipelines/text/sentences.py",)),
    ("normalize", ("pipelines/text/normalize.py", "trafilatura", "lxml")),
    ("redact", ("pipelines/text/redact.py", "presidio", "spacy", "phonenumbers")),
    ("serialization (pydantic, json)", ("pydantic", "json/", "orjson", "model_dump", "model_validate")),
    ("telemetry (metrics, traces, logs)", ("prometheus_client", "opentelemetry", "pipelines/observe/", "logging/")),
    ("HTTP and event loop", ("aiohttp", "uvicorn", "starlette", "h11", "httptools", "asyncio", "anyio", "_bentoml_impl", "bentoml/")),
]


def record(processes: dict[str, psutil.Process], seconds: float, folder: Path) -> dict[str, subprocess.Popen[bytes]]:
    """Start one py-spy per process; they stop by themselves after `seconds`."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        label: subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(p.pid), "--duration", str(int(seconds)), "--rate", "50",
             "--format", "raw", "--nonblocking", "-o", str(folder / f"{label.replace(' ', '-')}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for label, p in processes.items()
    }


def buckets(raw: Path) -> dict[str, float]:
    """Share of samples per bucket, from py-spy's collapsed stacks ("frame;frame;frame count")."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        name = next((b for b, markers in BUCKETS if any(m in stack for m in markers)), "other")
        counts[name] += int(n)
    total = sum(counts.values())
    return {name: round(count / total, 3) for name, count in counts.most_common()} if total else {}


def profile(processes: dict[str, psutil.Process], seconds: float, folder: Path) -> dict[str, dict[str, float]]:
    """Record every process for `seconds` (the caller keeps the load running) and bucket the samples."""
    spies = record(processes, seconds, folder)
    for spy in spies.values():
        spy.wait(timeout=seconds + 60)
    return {label: buckets(folder / f"{label.replace(' ', '-')}.txt") for label in spies}

"""bench/results/perf.png: throughput and p95 against concurrency, ours vs. naive vs. the limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display here or in CI
import matplotlib.pyplot as plt  # noqa: E402


def plot(results: list[dict[str, Any]], out: Path) -> None:
    fig, axes = plt.subplots(2, len(results), figsize=(6 * len(results), 8), squeeze=False)
    for column, result in enumerate(results):
        best = max(result["limit"]["pipeline"].values())
        top, bottom = axes[0][column], axes[1][column]
        for name, style in (("ours", "o-"), ("naive", "s--")):
            if name not in result:  # bench.perf --no-naive
                continue
            rows = result[name]["closed"]
            levels = [r["level"] for r in rows]
            top.plot(levels, [r["ok_per_s"] for r in rows], style, label=name)
            bottom.plot(levels, [r["p95_ms"] / 1000 for r in rows], style, label=name)
        levels = [r["level"] for r in result["ours"]["closed"]]
        top.axhline(best, color="grey", linestyle=":", label="in-process limit")
        single = result["ours"]["closed"][0]["p95_ms"] / 1000
        bottom.plot(levels, [max(c / best, single) for c in levels], ":", color="grey", label="queueing ideal")
        top.set_title(f"{result['engine']}: throughput")
        top.set_ylabel("documents/s")
        bottom.set_title(f"{result['engine']}: p95 latency")
        bottom.set_ylabel("seconds")
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(levels, [str(c) for c in levels])
            ax.set_xlabel("concurrent clients")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)

"""Summary quality against human references: ROUGE of the served engine beside lead-k baselines.

    .venv/bin/python -m bench.quality [--data ../shared/eval] [--styles news legal casual] [--limit N]

For each style, the documents of its file (news.jsonl -> news, legal.jsonl -> legal,
dialogue.jsonl -> casual; JSONL lines `{"id", "document", "summary"}`, reference sentences
separated by newlines) go through `LocalPipeline`, the served code path: normalization,
redaction, then the configured engine (`SUMMARIZER_ENGINE`, so an imported abstractive model is
measured by the same command). Lead-1/2/3 baselines are the first sentences of the same prepared
(normalized and redacted) text, split by the same splitter, so both sides see identical input;
"lead, same length rule" takes first sentences under the style's own length rule (its word
target), to tell what selection adds beyond position at an equal length.
ROUGE-1/2/Lsum F1 (`rouge-score`, Porter stemming, Lsum over one sentence per line) is computed
on that redacted output against the untouched references; the JSON records how many documents
had anything redacted, the placeholders per entity type (`redactions`, summed over documents) and
how many documents had each type (`documents_with`); `SUMMARIZER_REDACT_NER_MODEL=` measures
with name redaction off. Documents are also reported in two fixed halves (by a hash of their id):
`tune` is what the extractive settings were tuned on, `heldout` checks they carry over.
Writes bench/results/quality.json and prints a Markdown table.

`--runtimes torch onnx onnx-int8` summarizes the same documents with each encoder runtime
(pipelines/engines/runtime.py) and checks the gate a CPU default must pass: every style's ROUGE-1,
ROUGE-2 and ROUGE-Lsum within GATE_POINTS of the first runtime's (PyTorch). Writes
bench/results/quality_runtimes.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rouge_score import rouge_scorer

from pipelines.batch.core import BatchDocument, PreparedDocument
from pipelines.batch.inprocess import LocalPipeline, load_engine
from pipelines.engines.contract import summarize_isolated
from pipelines.engines.extractive import closer_to_target
from pipelines.engines.runtime import RUNTIMES
from pipelines.styles import ExtractiveParams
from pipelines.text.sentences import split_sentences, word_count

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "eval"
DEFAULT_OUT = REPO / "bench" / "results" / "quality.json"
RUNTIMES_OUT = REPO / "bench" / "results" / "quality_runtimes.json"
GATE_POINTS = 0.3
FILE_STYLES = {"news": "news", "legal": "legal", "dialogue": "casual"}
# The baseline each style must beat: lead-3 is the classic news baseline; a chat summary is
# about two turns long, so lead-2 there.
BASELINE_K = {"news": 3, "legal": 3, "casual": 2}
LEAD_KS = (1, 2, 3)
METRICS = ("rouge1", "rouge2", "rougeLsum")
CHUNK_DOCUMENTS = 16  # items per engine call, as the model service's batches would hold


@dataclass(frozen=True)
class Pair:
    id: str
    document: str
    reference: str


def load_pairs(path: Path, limit: int | None = None) -> list[Pair]:
    pairs = []
    for line in path.open(encoding="utf-8"):
        if line.strip():
            row = json.loads(line)
            pairs.append(Pair(str(row["id"]), row["document"], row["summary"]))
    return pairs[:limit] if limit else pairs


def datasets(data: Path, styles: Sequence[str] | None) -> list[tuple[str, Path]]:
    """(style, file) pairs: a folder's known files, or one file (its style by name or --styles)."""
    if data.is_file():
        style = FILE_STYLES.get(data.stem)
        if styles and len(styles) == 1:
            style = styles[0]
        if style is None:
            raise SystemExit(f"cannot tell the style of {data}: name it news/legal/dialogue.jsonl or pass one --styles")
        return [(style, data)]
    found = [(style, data / f"{stem}.jsonl") for stem, style in FILE_STYLES.items() if (data / f"{stem}.jsonl").is_file()]
    if styles:
        found = [(style, path) for style, path in found if style in styles]
    if not found:
        raise SystemExit(f"no evaluation files ({', '.join(f'{s}.jsonl' for s in FILE_STYLES)}) in {data}")
    return found


def half(doc_id: str) -> str:
    """A fixed split that does not depend on file order."""
    return "tune" if hashlib.sha1(doc_id.encode()).digest()[0] % 2 == 0 else "heldout"


def usable_sentences(text: str) -> list[str]:
    """Sentences as the extractive engine sees them (the splitter, minus punctuation-only pieces)."""
    return [s for s in split_sentences(text) if any(ch.isalnum() for ch in s)]


def lead(text: str, k: int) -> str:
    return " ".join(usable_sentences(text)[:k])


def lead_to_target(text: str, params: ExtractiveParams) -> str:
    """The first sentences, under the style's length rule: lead at the summary's own length."""
    picked: list[str] = []
    words = 0
    for sentence in usable_sentences(text):
        if len(picked) == params.max_sentences or not closer_to_target(words, word_count(sentence), params):
            break
        picked.append(sentence)
        words += word_count(sentence)
    return " ".join(picked)


def as_lines(summary: str) -> str:
    """One sentence per line, as rougeLsum expects."""
    return "\n".join(split_sentences(summary))


class Rouge:
    def __init__(self) -> None:
        self.scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)

    def __call__(self, reference: str, prediction: str) -> dict[str, float]:
        scores = self.scorer.score(reference, as_lines(prediction))
        return {m: 100.0 * scores[m].fmeasure for m in METRICS}


@dataclass
class DocScores:
    id: str
    half: str
    system: dict[str, float]
    leads: dict[int, dict[str, float]]
    lead_target: dict[str, float]
    system_words: int
    lead_words: dict[int, int]
    lead_target_words: int
    reference_words: int
    redacted: bool
    redactions: dict[str, int]


def summarize_pairs(
    pipeline: LocalPipeline, pairs: Sequence[Pair], style: str
) -> tuple[list[PreparedDocument | None], list[str | None], str]:
    """Prepared document and summary per pair (None where that step failed), and the model tag."""
    docs = [BatchDocument(id=p.id, text=p.document, format="text") for p in pairs]
    prepared = [p if isinstance(p, PreparedDocument) else None for p in pipeline.preparer.prepare_all(docs, style)]
    ready = [p for p in prepared if p is not None]
    summaries_ok: list[str | None] = []
    model = ""
    for start in range(0, len(ready), CHUNK_DOCUMENTS):
        for outcome in summarize_isolated(pipeline.engine, [p.item for p in ready[start : start + CHUNK_DOCUMENTS]]):
            summaries_ok.append(outcome.result.summary if outcome.result else None)
            model = outcome.model
    pending = iter(summaries_ok)
    return prepared, [next(pending) if p is not None else None for p in prepared], model


def score_pairs(
    pairs: Sequence[Pair], prepared: Sequence[PreparedDocument | None], summaries: Sequence[str | None], rouge: Rouge,
    params: ExtractiveParams,
) -> list[DocScores]:
    scored = []
    for pair, prep, summary in zip(pairs, prepared, summaries, strict=True):
        if prep is None or summary is None:
            continue  # counted as failures by the caller
        leads = {k: lead(prep.text.text, k) for k in LEAD_KS}
        same_length = lead_to_target(prep.text.text, params)
        scored.append(
            DocScores(
                id=pair.id, half=half(pair.id), system=rouge(pair.reference, summary),
                leads={k: rouge(pair.reference, v) for k, v in leads.items()},
                lead_target=rouge(pair.reference, same_length), system_words=word_count(summary),
                lead_words={k: word_count(v) for k, v in leads.items()}, lead_target_words=word_count(same_length),
                reference_words=word_count(pair.reference), redacted=bool(prep.text.redactions),
                redactions=dict(prep.text.redactions),
            )
        )  # fmt: skip
    return scored


def paired_interval(system: np.ndarray, baseline: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(system - baseline) over documents (paired: same documents)."""
    diff = system - baseline
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(rounds, len(diff)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def aggregate(rows: Sequence[DocScores], baseline_k: int) -> dict[str, Any]:
    def mean(values: Sequence[float]) -> float:
        return round(statistics.fmean(values), 2) if values else 0.0

    out: dict[str, Any] = {
        "documents": len(rows),
        "system": {m: mean([r.system[m] for r in rows]) for m in METRICS},
        "leads": {
            **{f"lead-{k}": {m: mean([r.leads[k][m] for r in rows]) for m in METRICS} for k in LEAD_KS},
            "lead-target": {m: mean([r.lead_target[m] for r in rows]) for m in METRICS},
        },
        "words": {
            "system": mean([r.system_words for r in rows]),
            **{f"lead-{k}": mean([r.lead_words[k] for r in rows]) for k in LEAD_KS},
            "lead-target": mean([r.lead_target_words for r in rows]),
            "reference": mean([r.reference_words for r in rows]),
        },
    }
    if len(rows) > 1:
        out[f"vs_lead-{baseline_k}_95ci"] = {
            m: [round(x, 2) for x in paired_interval(np.array([r.system[m] for r in rows]), np.array([r.leads[baseline_k][m] for r in rows]))]
            for m in METRICS
        }  # fmt: skip
    return out


def evaluate(pipeline: LocalPipeline, style: str, pairs: Sequence[Pair], rouge: Rouge) -> dict[str, Any]:
    started = time.perf_counter()
    prepared, summaries, model = summarize_pairs(pipeline, pairs, style)
    seconds = time.perf_counter() - started
    params = pipeline.preparer.styles.get(style).extractive
    rows = score_pairs(pairs, prepared, summaries, rouge, params)
    k = BASELINE_K.get(style, 3)
    return {
        "style": style, "engine": pipeline.engine.name, "model": model, "baseline": f"lead-{k}",
        "failed": len(pairs) - len(rows), "redacted_documents": sum(r.redacted for r in rows),
        "redactions": dict(sorted(sum((Counter(r.redactions) for r in rows), Counter()).items())),
        "documents_with": {
            entity: sum(entity in r.redactions for r in rows) for entity in sorted({e for r in rows for e in r.redactions})
        },
        "summarize_s": round(seconds, 1),
        "extractive_params": params.model_dump(),
        "all": aggregate(rows, k),
        "tune": aggregate([r for r in rows if r.half == "tune"], k),
        "heldout": aggregate([r for r in rows if r.half == "heldout"], k),
    }  # fmt: skip


def table(results: Sequence[dict[str, Any]], part: str = "all") -> str:
    lines = [
        "| style (documents) | summary | R-1 | R-2 | R-Lsum | words (reference) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        agg = r[part]
        label = f"{r['style']} ({agg['documents']})"
        s = agg["system"]
        lines.append(
            f"| {label} | **{r['engine']}** | **{s['rouge1']:.2f}** | **{s['rouge2']:.2f}** | **{s['rougeLsum']:.2f}** "
            f"| {agg['words']['system']:.1f} ({agg['words']['reference']:.1f}) |"
        )
        for name in [f"lead-{k}" for k in LEAD_KS] + ["lead-target"]:
            b = agg["leads"][name]
            label = "lead, same length rule" if name == "lead-target" else name
            label += " (baseline)" if r["baseline"] == name else ""
            lines.append(
                f"| | {label} | {b['rouge1']:.2f} | {b['rouge2']:.2f} | {b['rougeLsum']:.2f} | {agg['words'][name]:.1f} |"
            )
    return "\n".join(lines)


def run_styles(pipeline: LocalPipeline, args: argparse.Namespace, rouge: Rouge) -> list[dict[str, Any]]:
    results = []
    for style, path in datasets(args.data, args.styles):
        pairs = load_pairs(path, args.limit)
        result = evaluate(pipeline, style, pairs, rouge)
        result["file"] = path.name
        results.append(result)
        s, b = result["all"]["system"], result["all"]["leads"][result["baseline"]]
        ci = result["all"].get(f"vs_{result['baseline']}_95ci", {})
        print(
            f"{style}: {len(pairs)} documents, {result['engine']} ({result['model']}) R-1/2/Lsum "
            f"{s['rouge1']:.2f}/{s['rouge2']:.2f}/{s['rougeLsum']:.2f} vs {result['baseline']} "
            f"{b['rouge1']:.2f}/{b['rouge2']:.2f}/{b['rougeLsum']:.2f}; difference 95% CI {ci} "
            f"({result['summarize_s']} s)",
            file=sys.stderr,
        )
    return results


def runtime_gate(by_runtime: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each runtime's ROUGE minus the first runtime's, per style and metric, and whether all are within the gate."""
    reference, *others = by_runtime
    gate: dict[str, Any] = {"reference": reference, "max_points": GATE_POINTS, "runtimes": {}}
    for runtime in others:
        deltas = {
            ref["style"]: {m: round(got["all"]["system"][m] - ref["all"]["system"][m], 2) for m in METRICS}
            for ref, got in zip(by_runtime[reference], by_runtime[runtime], strict=True)
        }
        worst = max(abs(d) for style in deltas.values() for d in style.values())
        gate["runtimes"][runtime] = {"deltas": deltas, "worst": worst, "passed": worst <= GATE_POINTS}
    return gate


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of news/legal/dialogue.jsonl, or one JSONL file")
    parser.add_argument("--styles", nargs="+", help="only these styles (with one file: the style to use for it)")
    parser.add_argument("--limit", type=int, help="first N documents of each file (quick checks)")
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, help="compare encoder runtimes; the first is the reference")
    parser.add_argument("--out", type=Path, help=f"default: {DEFAULT_OUT.name}, or {RUNTIMES_OUT.name} with --runtimes")
    args = parser.parse_args(argv)

    pipeline = LocalPipeline()
    rouge = Rouge()
    record: dict[str, Any] = {
        "command": " ".join(["python -m bench.quality", *(argv or sys.argv[1:])]),
        "ner_model": pipeline.settings.ner_model,  # None: names, places and organizations not redacted
    }
    if args.runtimes:
        by_runtime = {}
        for runtime in args.runtimes:
            pipeline.engine = load_engine(pipeline.settings.model_copy(update={"encoder_runtime": runtime}))
            by_runtime[runtime] = run_styles(pipeline, args, rouge)
        record |= {"results": by_runtime, "gate": runtime_gate(by_runtime)}
        for runtime, verdict in record["gate"]["runtimes"].items():
            print(f"{runtime}: worst ROUGE difference to {args.runtimes[0]} {verdict['worst']:.2f} points "
                  f"(gate {GATE_POINTS}): {'passed' if verdict['passed'] else 'FAILED'}; {verdict['deltas']}")  # fmt: skip
    else:
        results = run_styles(pipeline, args, rouge)
        for part in ("all", "tune", "heldout"):
            print(f"\n{part}:\n{table(results, part)}")
        record["results"] = results
    out = args.out or (RUNTIMES_OUT if args.runtimes else DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"\nwrote {out}: the figures of docs/quality.md")


if __name__ == "__main__":
    main()

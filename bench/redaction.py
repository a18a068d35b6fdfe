"""Recall and precision of PII redaction per entity type, with the NER model on and off, and what it costs.

    .venv/bin/python -m bench.redaction [--per-entity 300] [--seed 1] [--eval-data ../shared/eval] [--eval-limit N]

The labelled set is generated (tests/fixtures/pii.py, `wide`): pattern entities and names, places and
organizations in plain sentences, e-mail threads, chat dialogue, court prose, support tickets and
form fields, plus negatives (bills with 9-digit numbers that are no SSN, prose full of capitalized
words that are no names). Its figures say how well the recognizers handle what it generates, not how
real documents behave. A value counts as found when a span of its type overlaps it; a span that
overlaps no value of its type is a false positive; "full" is the share of values left with no letter
or digit unredacted (the rule is `evaluate`'s, in the fixture).

Both set-ups are built the way the service builds them, `InputPipeline.from_settings`:

- NER off: the pattern recognizers alone (`redact_ner_model` unset, no model folder);
- NER on: the defaults plus the folder of `summarizer-ner:latest` from the model store
  (`python -m models import-default` puts it there). Missing, or not loadable, the bench says so
  and measures NER off only.

Cost: `InputPipeline.prepare` (normalize + redact) timed per document, both set-ups on each document
in turn, over the labelled set and over the real documents of `--eval-data` (their text is read,
timed and dropped: nothing of it is written). Writes bench/results/redaction.json.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipelines.errors import BadInput, InputTooLarge
from pipelines.settings import REDACTABLE_ENTITIES, Settings
from pipelines.text.prepare import InputPipeline
from pipelines.text.redact import Span
from tests.fixtures.pii import (
    NAME_ENTITIES,
    TITLES,
    Document,
    Gold,
    Tally,
    evaluate,
    labelled_documents,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVAL = REPO.parent / "shared" / "eval"
DEFAULT_OUT = REPO / "bench" / "results" / "redaction.json"
NER_MODEL = "summarizer-ner:latest"
ENTITIES = tuple(dict.fromkeys([*REDACTABLE_ENTITIES, *NAME_ENTITIES]))
WARMUP = 5


def pipeline_off() -> InputPipeline:
    defaults = Settings()
    patterns = [e for e in defaults.redact_entities if e not in NAME_ENTITIES]
    return InputPipeline.from_settings(Settings(redact_ner_model=None, redact_entities=patterns), None)


def pipeline_on() -> tuple[InputPipeline | None, str]:
    """The service's defaults plus the store's NER model, or None and why not."""
    import bentoml

    try:
        model = bentoml.models.get(NER_MODEL)
    except bentoml.exceptions.NotFound:
        return None, f"no {NER_MODEL} in the model store (python -m models import-default adds it)"
    try:
        pipeline = InputPipeline.from_settings(Settings(), Path(model.path))
    except Exception as exc:  # noqa: BLE001 - any failure to load is reported, the off half still runs
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return None, f"{model.tag} is in the store but InputPipeline.from_settings cannot load it: {type(exc).__name__}: {first}"
    missing = [e for e in NAME_ENTITIES if e not in pipeline.redactor.entities]
    if missing:
        return pipeline, f"{model.tag} loaded, but the redactor does not ask for {', '.join(missing)}"
    return pipeline, f"{model.tag} loaded"


def cached_find(pipeline: InputPipeline, docs: Sequence[Document]) -> Callable[[str], list[Span]]:
    """Each text analysed once, so the per-kind tables below cost nothing more."""
    found = {d.text: pipeline.redactor.find(d.text) for d in docs}
    return found.__getitem__


def row(t: Tally) -> dict[str, Any]:
    return {
        "values": t.tp + t.fn,
        "tp": t.tp,
        "fn": t.fn,
        "fp": t.fp,
        "full": t.full,
        "recall": round(t.recall, 4),
        "full_recall": round(t.full_recall, 4),
        "precision": round(t.precision, 4) if t.tp + t.fp else None,  # None: nothing predicted
    }


def table(find: Callable[[str], list[Span]], docs: Sequence[Document]) -> dict[str, dict[str, Any]]:
    tallies = evaluate(find, docs)
    return {e: row(tallies.get(e, Tally())) for e in [*ENTITIES, *sorted(set(tallies) - set(ENTITIES))]}


def by_kind(find: Callable[[str], list[Span]], docs: Sequence[Document]) -> dict[str, dict[str, Any]]:
    kinds = sorted({d.kind for d in docs})
    out = {}
    for kind in kinds:
        tallies = evaluate(find, [d for d in docs if d.kind == kind])
        out[kind] = {e: row(t) for e, t in sorted(tallies.items())}
    return out


def person_form(text: str, g: Gold) -> str:
    """How a PERSON value is written, read back from the value and what precedes it."""
    if ", " in g.value:
        return "Last, First"
    if " " not in g.value:
        return "first name alone"
    if re.search(r" [A-Z]\. ", g.value):
        return "middle initial"
    if text[: g.start].endswith(tuple(f"{title} " for title in TITLES)):
        return "after a title"
    return "First Last"


def by_person_form(find: Callable[[str], list[Span]], docs: Sequence[Document]) -> dict[str, dict[str, Any]]:
    """PERSON recall per way of writing a name (false positives are not per form: left out)."""
    forms = sorted({person_form(d.text, g) for d in docs for g in d.gold if g.entity == "PERSON"})
    out = {}
    for form in forms:
        subset = [(d.text, [g for g in d.gold if g.entity == "PERSON" and person_form(d.text, g) == form]) for d in docs]
        t = evaluate(find, subset, entities=("PERSON",)).get("PERSON", Tally())
        out[form] = {"values": t.tp + t.fn, "recall": round(t.recall, 4), "full_recall": round(t.full_recall, 4)}
    return out


def time_prepare(pipelines: dict[str, InputPipeline], texts: Sequence[str]) -> dict[str, Any]:
    """Per document, each pipeline in turn (so both meet the same load on a shared machine)."""
    for text in texts[:WARMUP]:
        for pipeline in pipelines.values():
            pipeline.prepare(text)
    seconds: dict[str, list[float]] = {name: [] for name in pipelines}
    skipped = 0
    for text in texts:
        took = {}
        try:
            for name, pipeline in pipelines.items():
                start = time.perf_counter()
                pipeline.prepare(text)
                took[name] = time.perf_counter() - start
        except (BadInput, InputTooLarge):  # empty after normalization, over a limit: not what is timed here
            skipped += 1
            continue
        for name, spent in took.items():
            seconds[name].append(spent)
    timed = len(seconds["off"])
    result: dict[str, Any] = {"documents": timed, "skipped": skipped, "mean_chars": round(statistics.fmean(len(t) for t in texts), 1)}
    for name, times in seconds.items():
        ordered = sorted(times)
        result[name] = {
            "median_ms": round(statistics.median(times) * 1000, 3),
            "p90_ms": round(ordered[math.ceil(0.9 * len(ordered)) - 1] * 1000, 3),  # nearest rank
            "mean_ms": round(statistics.fmean(times) * 1000, 3),
            "docs_per_s": round(len(times) / sum(times), 1),
        }
    if "on" in seconds and "off" in seconds:
        result["on_over_off_median"] = round(result["on"]["median_ms"] / result["off"]["median_ms"], 2)
        result["on_over_off_mean"] = round(result["on"]["mean_ms"] / result["off"]["mean_ms"], 2)
    return result


def eval_texts(data: Path, limit: int | None) -> dict[str, list[str]]:
    """The `document` of each JSONL line, per file (news, legal, dialogue), for timing only."""
    texts: dict[str, list[str]] = {}
    for path in sorted(data.glob("*.jsonl")):
        docs = [json.loads(line)["document"] for line in path.open(encoding="utf-8") if line.strip()]
        texts[path.stem] = docs[:limit] if limit else docs
    return texts


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(tables: dict[str, dict[str, dict[str, Any]]]) -> None:
    names = list(tables)
    head = f"{'entity':<15} {'values':>6}" + "".join(f" | {f'NER {n}: recall':>15} {'full':>5} {'precision':>9}" for n in names)
    print(head)
    print("-" * len(head))
    for entity in tables[names[0]]:
        first = tables[names[0]][entity]
        line = f"{entity:<15} {first['values']:>6}"
        for n in names:
            r = tables[n].get(entity, {})
            line += f" | {fmt(r.get('recall')):>15} {fmt(r.get('full_recall')):>5} {fmt(r.get('precision')):>9}"
        print(line)


def print_by_kind(name: str, kinds: dict[str, dict[str, Any]]) -> None:
    """Recall per context (false positives for the negatives, which hold no value)."""
    entities = [e for e in ENTITIES if any(e in rows for rows in kinds.values())]
    print(f"NER {name}, recall by context (negatives: false positives)")
    print(f"{'context':<21}" + "".join(f" {e:>13}" for e in entities))
    for kind, rows in kinds.items():
        cells = [rows.get(e) for e in entities]
        if kind.startswith("negative"):
            line = "".join(f" {(c['fp'] if c else 0):>13}" for c in cells)
        else:
            line = "".join(f" {fmt(c['recall'] if c and c['values'] else None):>13}" for c in cells)
        print(f"{kind:<21}{line}")


def print_cost(label: str, cost: dict[str, Any]) -> None:
    parts = [f"{label}: {cost['documents']} documents, {cost['mean_chars']:.0f} chars on average"]
    for name in ("off", "on"):
        if name in cost:
            c = cost[name]
            parts.append(f"NER {name} {c['median_ms']:.2f} ms median ({c['p90_ms']:.2f} p90), {c['docs_per_s']:.1f} docs/s")
    if "on_over_off_mean" in cost:
        parts.append(f"on/off {cost['on_over_off_median']:.1f}x median, {cost['on_over_off_mean']:.1f}x mean")
    print("; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--per-entity", type=int, default=300, help="values of each entity type (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--eval-data", type=Path, default=DEFAULT_EVAL, help="folder of JSONL files with a `document` field, timed only")
    parser.add_argument("--eval-limit", type=int, default=None, help="documents per file of --eval-data (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    docs = labelled_documents(ENTITIES, per_entity=args.per_entity, seed=args.seed, wide=True)
    kinds = Counter(d.kind for d in docs)
    values = Counter(g.entity for d in docs for g in d.gold)
    print(f"labelled set: seed {args.seed}, {len(docs)} documents ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")

    pipelines = {"off": pipeline_off()}
    on, status = pipeline_on()
    print(f"NER on: {status}" + ("" if on else "; measuring NER off only"))
    if on is not None:
        pipelines["on"] = on

    tables, kind_tables, form_tables = {}, {}, {}
    for name, pipeline in pipelines.items():
        find = cached_find(pipeline, docs)
        tables[name] = table(find, docs)
        kind_tables[name] = by_kind(find, docs)
        form_tables[name] = by_person_form(find, docs)
    print_table(tables)
    for name, kinds_of_name in kind_tables.items():
        print_by_kind(name, kinds_of_name)
    for name, forms in form_tables.items():
        print(f"NER {name}, PERSON recall (full) by form: " + "; ".join(f"{f} {r['recall']:.3f} ({r['full_recall']:.3f}) of {r['values']}" for f, r in forms.items()))

    cost = {"labelled_set": time_prepare(pipelines, [d.text for d in docs])}
    print_cost("prepare() on the labelled set", cost["labelled_set"])
    if args.eval_data.is_dir():
        for stem, texts in eval_texts(args.eval_data, args.eval_limit).items():
            cost[f"eval/{stem}"] = time_prepare(pipelines, texts)
            print_cost(f"prepare() on {args.eval_data.name}/{stem}.jsonl", cost[f"eval/{stem}"])
    else:
        print(f"no {args.eval_data}: prepare() timed on the labelled set only")

    result = {
        "seed": args.seed,
        "per_entity": args.per_entity,
        "documents": len(docs),
        "documents_by_kind": dict(sorted(kinds.items())),
        "values": {e: values[e] for e in ENTITIES},
        "ner_model": NER_MODEL,
        "ner": status,
        "rule": "found: a predicted span of the same type overlaps the value; false positive: a predicted span overlapping "
        "no value of its type; full: every letter and digit of the value inside predicted spans of its type",
        "entities": tables,
        "by_kind": kind_tables,
        "person_by_form": form_tables,
        "cost": cost,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}: the figures of docs/normalization.md")


if __name__ == "__main__":
    main()

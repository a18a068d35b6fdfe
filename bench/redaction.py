"""Recall and precision of PII redaction per entity type, on a Faker-generated labelled set.

    .venv/bin/python -m bench.redaction [--per-entity 300] [--seed 1]

The set is generated (tests/fixtures/pii.py), so these figures say how well the recognizers
handle the formats it produces, not how real documents behave. Writes bench/results/redaction.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.settings import REDACTABLE_ENTITIES
from pipelines.text.redact import RedactionConfig, Redactor
from tests.fixtures.pii import evaluate, labelled_set

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--per-entity", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    docs = labelled_set(REDACTABLE_ENTITIES, per_entity=args.per_entity, seed=args.seed)
    tallies = evaluate(Redactor.build(RedactionConfig()).find, docs)
    rows = {}
    print(f"{'entity':<15} {'values':>6} {'recall':>7} {'precision':>9}")
    for entity in REDACTABLE_ENTITIES:
        t = tallies[entity]
        rows[entity] = {"values": t.tp + t.fn, "tp": t.tp, "fn": t.fn, "fp": t.fp, "recall": t.recall, "precision": t.precision}
        print(f"{entity:<15} {t.tp + t.fn:>6} {t.recall:>7.3f} {t.precision:>9.3f}")
    out = REPO / "bench" / "results" / "redaction.json"
    out.write_text(json.dumps({"seed": args.seed, "per_entity": args.per_entity, "entities": rows}, indent=2))
    print(f"wrote {out.relative_to(REPO)}: the figures of docs/normalization.md")


if __name__ == "__main__":
    main()

"""The documents the speed benchmarks send: ~600-word news articles from the eval set (read in
place from ../shared/eval/, never copied into the repo), or a test article when it is absent."""

from __future__ import annotations

import json
from pathlib import Path

from tests.texts import NEWS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DOCS = REPO.parent / "shared" / "eval" / "news.jsonl"


def load_docs(path: Path, count: int = 64) -> list[str]:
    if path.is_file():
        docs = [json.loads(line)["document"] for line in path.open() if line.strip()]
        docs = [d for d in docs if 300 <= len(d.split()) <= 1200]
        if docs:
            return (docs * (count // len(docs) + 1))[:count]
    return [NEWS * 2] * count

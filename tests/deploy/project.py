"""A scratch copy of the project, with the clutter a real checkout has, to build Bentos from.

Tests change files in the copy (never in the repo) and check what a Bento packs: the decoys are
files that must never reach one (a venv, caches, data, secrets); `tests/` comes with the copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Not copied: version control, the real venv, caches, local data and scratch space.
_SKIPPED = (".git", ".venv", ".tmp", ".mypy_cache", ".pytest_cache", ".bentoml-home", "__pycache__", "rag-index",
            "jobs", "tokens.json")  # fmt: skip
DECOYS = (
    ".venv/lib/python3.11/site-packages/decoy.py",
    "pipelines/__pycache__/styles.cpython-311.pyc",
    "models/__pycache__/bento.cpython-311.pyc",
    "rag-index/manifest.json",
    "jobs/jobs.sqlite3",
    "tokens.json",
    ".tmp/scratch.py",
)
# The image's unprivileged user (BentoML's Dockerfile template); the Kubernetes pod runs as it.
BENTO_UID = 1034


def copy_project(dest: Path) -> Path:
    """Copy the working tree (what a clone has, plus local edits) to `dest`, then add the decoys."""
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*_SKIPPED))
    for rel in DECOYS:
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("decoy: must never be packed\n")
    return dest

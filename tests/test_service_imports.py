"""`import service` stays light: the `bentoml serve` arbiter and both workers import it before
anything else, one after the other, so every heavy package it pulls in is paid twice on the
critical path of a cold start (docs/performance.md, "Cold start"). Each worker imports what it
needs in its own __init__: the entry worker the redaction stack, the model worker its runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "presidio_analyzer", "spacy", "sqlalchemy", "alembic", "onnxruntime")


def test_importing_the_service_loads_no_model_library(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUMMARIZER_")}
    env.update(BENTOML_HOME=str(tmp_path), BENTOML_DO_NOT_TRACK="True")
    code = f"import sys, service; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import service loaded {done.stdout.strip()}"

"""Resolve the services' class-level model references to folders, with a fix-it message if absent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bentoml

from models import ModelImportError


@dataclass(frozen=True)
class ResolvedModel:
    tag: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)  # what the importer or exporter recorded


def resolve(ref: bentoml.models.BentoModel) -> ResolvedModel:
    """The stored model behind `ref`. Never falls back to a remote registry (no network at run time)."""
    stored = ref.stored
    if stored is None:
        raise ModelImportError(
            f"model {ref.tag} is not in the BentoML model store; import it first: "
            "`python -m models import-default` for the encoder, its ONNX exports and the NER pipeline, "
            "`python -m models import SOURCE --name NAME` for a generator or another NER model"
        )
    return ResolvedModel(tag=str(stored.tag), path=Path(stored.path), metadata=dict(stored.info.metadata))

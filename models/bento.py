"""A Bento version that is a content hash: the same sources, config and models give the same tag.

BentoML gives every `bentoml build` a random version, so a tag says nothing about what is inside
and two builds of one commit differ. `bento_version` hashes what a build packs from the project:
the files the bentofile's include/exclude rules select (with BentoML's own matcher), the bentofile,
the files it names (requirements, the image setup script) and the exact tags of the models the
configured engine needs. Tests, docs, the venv and data leave the version alone.

`build` runs `bentoml build --version <hash>` with the bentofile's `SUMMARIZER_*` settings and
none from the shell, so the models packed are the ones the image's settings serve; an existing
tag is not rebuilt (it holds the same thing).

    python -m models bento-version [-f bentofile.gpu.yaml]
    python -m models bento-build [-f bentofile.gpu.yaml]     # what `make bento` runs
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import yaml
from bentoml.exceptions import NotFound

from models.store import stored_tag
from pipelines.engines.runtime import exported_ref
from pipelines.settings import Settings

SETTINGS_PREFIX = "SUMMARIZER_"
VERSION_CHARS = 16
# Bentofile keys naming a project file that shapes the Bento or its image.
FILE_KEYS = (("python", "requirements_txt"), ("docker", "setup_script"), ("docker", "dockerfile_template"))


class BentoError(Exception):
    """A bentofile that cannot be used, or a build that failed; the message says which and why."""


@dataclass(frozen=True)
class BentoFile:
    """A bentofile and the project folder (build context) it is built from."""

    path: Path
    root: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path, root: Path | None = None) -> BentoFile:
        root = (root or path.parent).resolve()
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise BentoError(f"cannot read bentofile {path}: {exc}") from exc
        if not isinstance(data, dict) or not data.get("name"):
            raise BentoError(f"{path} is not a bentofile with a `name`")
        return cls(path.resolve(), root, data)

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def envs(self) -> dict[str, str]:
        """The image's environment as the bentofile sets it (entries without a value are left out)."""
        return {str(e["name"]): str(e["value"]) for e in self.data.get("envs") or [] if e.get("value") is not None}

    @property
    def settings_env(self) -> dict[str, str]:
        return {k: v for k, v in self.envs.items() if k.startswith(SETTINGS_PREFIX)}

    def named_files(self) -> dict[str, Path]:
        """Project files the bentofile names, by key (`python.requirements_txt`, ...)."""
        found: dict[str, Path] = {}
        for section, key in FILE_KEYS:
            value = (self.data.get(section) or {}).get(key)
            if value:
                found[f"{section}.{key}"] = (self.root / str(value)).resolve()
        return found


def included_sources(bentofile: BentoFile) -> list[str]:
    """Relative paths of the project files `bentoml build` copies into the Bento's `src/`.

    BentoML's own matcher (include, exclude, `.bentoignore`, its built-in .git/.venv/__pycache__
    exclusions) decides; folders that an exclude or a built-in rule covers are not walked.
    """
    from bentoml._internal.bento.build_config import BentoPathSpec

    specs = BentoPathSpec(bentofile.data.get("include") or ["*"], bentofile.data.get("exclude") or [], str(bentofile.root))
    found: list[str] = []
    for folder, dirs, files in os.walk(bentofile.root):
        rel = os.path.relpath(folder, bentofile.root).replace(os.sep, "/")
        dirs[:] = [
            d for d in dirs
            if not (specs.extra.match_file(f"{rel}/{d}/") or specs.exclude.match_file(f"{rel}/{d}/"))
        ]  # fmt: skip
        found.extend(f"{rel}/{f}".removeprefix("./") for f in files if specs.includes(f"{rel}/{f}"))
    return sorted(found)


def model_refs(settings: Settings) -> list[str]:
    """The model references the services declare under these settings (see service.py).

    A test builds a Bento and checks these against the models BentoML actually packed.
    """
    refs = [settings.encoder_model]
    exported = exported_ref(settings.encoder_model, settings.encoder_runtime)
    if exported:
        refs.append(exported)
    if settings.engine == "abstractive":
        refs.append(settings.abstractive_model)
    if settings.ner_model:
        refs.append(settings.ner_model)
    return refs


@contextmanager
def _settings_environment(values: dict[str, str]) -> Iterator[None]:
    """`SUMMARIZER_*` taken from `values` only, for the duration; the caller's are restored."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(SETTINGS_PREFIX)}
    try:
        for name in saved:
            del os.environ[name]
        os.environ.update(values)
        yield
    finally:
        for name in [k for k in os.environ if k.startswith(SETTINGS_PREFIX)]:
            del os.environ[name]
        os.environ.update(saved)


def build_settings(bentofile: BentoFile) -> Settings:
    """The settings `bentoml build` sees under `build`: the bentofile's, nothing from the shell."""
    with _settings_environment(bentofile.settings_env):
        return Settings()


def build_environment(bentofile: BentoFile) -> dict[str, str]:
    """This process's environment with `SUMMARIZER_*` replaced by the bentofile's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIX)}
    env.update(bentofile.settings_env)
    return env


def model_tags(bentofile: BentoFile) -> list[str]:
    """Exact tags (`name:version`) of the models a build of `bentofile` packs, from the model store."""
    return [stored_tag(ref) for ref in model_refs(build_settings(bentofile))]


def bento_version(bentofile: BentoFile, tags: Iterable[str]) -> str:
    """Hash of the packed sources, the bentofile, the files it names, and the model tags."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    for rel in included_sources(bentofile):
        add(f"src/{rel}", (bentofile.root / rel).read_bytes())
    add("bentofile", bentofile.path.read_bytes())
    for key, path in sorted(bentofile.named_files().items()):
        try:
            add(key, path.read_bytes())
        except OSError as exc:
            raise BentoError(f"{bentofile.path.name}: {key} names {path}, which cannot be read: {exc}") from exc
    for tag in sorted(set(tags)):
        add("model", tag.encode())
    return digest.hexdigest()[:VERSION_CHARS]


def _bento_exists(tag: str) -> bool:
    try:
        bentoml.bentos.get(tag)
    except NotFound:
        return False
    return True


@dataclass(frozen=True)
class BuildResult:
    tag: str
    built: bool  # False: a Bento with this tag (so this content) was already in the store


def build(bentofile: BentoFile) -> BuildResult:
    """`bentoml build` at the content version, unless that tag exists already."""
    tag = f"{bentofile.name}:{bento_version(bentofile, model_tags(bentofile))}"
    if _bento_exists(tag):
        return BuildResult(tag, built=False)
    args = ["build", "-f", str(bentofile.path), "--version", tag.partition(":")[2], str(bentofile.root)]
    print("$ bentoml", *args, file=sys.stderr, flush=True)
    # Its banner goes to our stderr (fd 2): stdout carries only the result, for scripts.
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", *args], env=build_environment(bentofile), cwd=bentofile.root, stdout=2, check=False
    )
    if done.returncode != 0:
        raise BentoError(f"bentoml build failed with exit status {done.returncode} (its output is above)")
    return BuildResult(tag, built=True)

"""The Bento end to end: `make bento`'s command on a copy of the project, offline.

What it packs, the Dockerfile `bentoml containerize` would hand to Docker (no daemon needed for
that part), the GPU variant, and the user's way to move a Bento between machines: `bentoml
export`, `bentoml import` into a fresh BentoML home, `bentoml serve TAG` with no source checkout
and, where `unshare` works, no network. One build per variant per module; one server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.bento import BentoFile, included_sources
from tests.deploy.project import BENTO_UID, DECOYS, REPO, copy_project
from tests.fixtures.tiny_models import build_tiny_bart
from tests.server.conftest import BIN, Server, base_env, new_bentoml_home, run_models_cli

pytestmark = pytest.mark.server

SERVE_TIMEOUT_S = 420
PROBE_STYLE = f"probe-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Built:
    project: Path
    home: Path
    tag: str

    @property
    def path(self) -> Path:
        name, _, version = self.tag.partition(":")
        return self.home / "bentos" / name / version

    @cached_property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = yaml.safe_load((self.path / "bento.yaml").read_text())
        return info

    @property
    def model_tags(self) -> set[str]:
        return {str(m["tag"]) for service in self.info["services"] for m in service["models"]}


def models_cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m models ...` run in `cwd` (the project copy: its own `models` package is used)."""
    return subprocess.run(
        [sys.executable, "-m", "models", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def bento_build(project: Path, home: Path, bentofile: str) -> Built:
    done = models_cli(project, base_env(home), "bento-build", "-f", bentofile)
    assert done.returncode == 0, done.stderr[-4000:]
    return Built(project, home, done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with its clutter, plus a style that only this copy has: served, it proves that
    the code and config came from the Bento, not from the checkout the test runs in."""
    root = copy_project(tmp_path_factory.mktemp("build") / "project")
    with (root / "pipelines" / "styles.yaml").open("a") as fh:
        fh.write(f"\n{PROBE_STYLE}:\n  description: Only in the copy the test Bento is built from.\n")
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build machine's own BentoML home: builds and the GPU variant's model stay out of the shared one."""
    return new_bentoml_home(tmp_path_factory)


@pytest.fixture(scope="module")
def cpu(project: Path, home: Path) -> Built:
    return bento_build(project, home, "bentofile.yaml")


@pytest.fixture(scope="module")
def gpu(project: Path, home: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The GPU variant needs the abstractive model in the store: a tiny random BART stands in."""
    folder = build_tiny_bart(tmp_path_factory.mktemp("tiny-bart"))
    run_models_cli(base_env(home), "import", str(folder), "--name", "summarizer-abstractive")
    return bento_build(project, home, "bentofile.gpu.yaml")


def stored_tag(home: Path, name: str) -> str:
    """`name:latest` in that store, as BentoML resolves it (the version its `latest` file names)."""
    return f"{name}:{(home / 'models' / name / 'latest').read_text().strip()}"


def encoder_tag(home: Path) -> str:
    return stored_tag(home, "summarizer-encoder")


def default_tags(home: Path) -> set[str]:
    """The default deployment's models: the encoder, its int8 export (the CPU runtime), and the NER
    pipeline redaction uses."""
    return {encoder_tag(home), stored_tag(home, "summarizer-encoder-onnx-int8"), stored_tag(home, "summarizer-ner")}


@dataclass(frozen=True)
class Containerfile:
    dockerfile: str
    context: list[str]


def containerfile(built: Built, out: Path) -> Containerfile:
    done = subprocess.run(
        [sys.executable, "-m", "tests.deploy.containerfile", built.tag, str(out)],
        cwd=REPO, env=base_env(built.home), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return Containerfile((out / "Dockerfile").read_text(), (out / "context.txt").read_text().split())


def test_the_bento_packs_the_sources_and_nothing_else(cpu: Built) -> None:
    src = sorted(p.relative_to(cpu.path / "src").as_posix() for p in (cpu.path / "src").rglob("*") if p.is_file())
    assert src == sorted([*included_sources(BentoFile.load(cpu.project / "bentofile.yaml")), "bentofile.yaml"])
    assert {p.split("/")[0] for p in src} == {"service.py", "pipelines", "models", "bentofile.yaml"}
    assert not [p for p in src if p.startswith(("tests/", ".venv/", "bench/")) or "__pycache__" in p or p in DECOYS]
    assert "pipelines/styles.yaml" in src and "models/bento.py" in src
    assert {"pipelines/ui/static/index.html", "pipelines/ui/static/app.js", "pipelines/ui/static/style.css"} <= set(src)
    everything = [p.relative_to(cpu.path).as_posix() for p in cpu.path.rglob("*") if p.is_file()]
    assert not [p for p in everything if re.search(r"(^|/)(test_\w+|\w+_test|conftest)\.py$|\.(pyc|sqlite3)$", p)]
    assert sum(p.stat().st_size for p in cpu.path.rglob("*") if p.is_file()) < 5_000_000  # no data, no venv


def test_the_bento_holds_the_configured_engines_models(cpu: Built) -> None:
    assert cpu.tag.startswith("summarizer:")
    assert cpu.model_tags == default_tags(cpu.home)
    # The engine's models in the model service (the encoder and the int8 export its default CPU
    # runtime loads); the NER pipeline where redaction runs, the entry service.
    models = {s["name"]: {str(m["tag"]).partition(":")[0] for m in s["models"]} for s in cpu.info["services"]}
    assert models == {"summarizer-model": {"summarizer-encoder", "summarizer-encoder-onnx-int8"}, "summarizer": {"summarizer-ner"}}
    assert {e["name"]: e["value"] for e in cpu.info["envs"]}["SUMMARIZER_ENGINE"] == "extractive"


def test_the_version_is_the_content_hash_and_a_rebuild_is_a_no_op(cpu: Built) -> None:
    env = base_env(cpu.home)
    version = models_cli(cpu.project, env, "bento-version")
    assert version.returncode == 0 and version.stdout.strip() == cpu.tag.partition(":")[2]
    again = models_cli(cpu.project, env, "bento-build")
    assert again.returncode == 0 and again.stdout.strip() == cpu.tag
    assert "already in the store" in again.stderr and "bentoml build" not in again.stderr
    shell = {**env, "SUMMARIZER_ENGINE": "abstractive", "SUMMARIZER_MAX_BATCH_SIZE": "3"}
    assert models_cli(cpu.project, shell, "bento-version").stdout == version.stdout  # the shell's settings are not the build's


def _env_lines(dockerfile: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, flags=re.MULTILINE))


def test_the_cpu_image(cpu: Built, tmp_path: Path) -> None:
    image = containerfile(cpu, tmp_path)
    docker = image.dockerfile
    assert re.search(r"^FROM python:3\.11-slim AS base-container$", docker, flags=re.MULTILINE)
    assert f"ARG BENTO_USER_UID={BENTO_UID}" in docker
    assert re.findall(r"^USER (\S+)$", docker, flags=re.MULTILINE)[-1] == "bentoml"  # runs unprivileged
    args = _env_lines(docker)
    for name, value in BentoFile.load(cpu.project / "bentofile.yaml").envs.items():
        assert args[name] == value and f"ENV {name}=${name}" in docker
    # PyTorch's CPU wheels: the torch backend is set before the requirements are installed.
    install = docker.index("pip install -r $BENTO_PATH/env/python/requirements.txt")
    assert docker.index("ENV UV_TORCH_BACKEND=$UV_TORCH_BACKEND") < install and args["UV_TORCH_BACKEND"] == "cpu"
    requirements = (cpu.path / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.13.0" in requirements.splitlines() and "bentoml==1.4.40" in requirements.splitlines()
    # The setup script (data and cache folders for the bentoml user) runs as root, before USER.
    (script,) = [p for p in image.context if p.startswith("env/docker/script__")]
    assert (cpu.path / script).read_text() == (REPO / "deploy" / "docker" / "setup.sh").read_text()
    assert docker.index(script.removeprefix("env/docker/")) < docker.rindex("USER bentoml")
    # The models travel in the image, under the Bento's own model store.
    (name, _, version) = encoder_tag(cpu.home).partition(":")
    assert f"models/{name}/{version}/model.yaml" in image.context
    assert [p for p in image.context if p.startswith("models/summarizer-encoder-onnx-int8/")]
    assert not [p for p in image.context if p.startswith("models/summarizer-abstractive/")]


def test_the_gpu_variant(gpu: Built, cpu: Built, tmp_path: Path) -> None:
    assert gpu.tag.startswith("summarizer-gpu:") and gpu.tag.partition(":")[2] != cpu.tag.partition(":")[2]
    abstractive = {t for t in gpu.model_tags if t.startswith("summarizer-abstractive:")}
    # PyTorch on the GPU (SUMMARIZER_ENCODER_RUNTIME=torch): no ONNX export packed.
    without_export = {t for t in default_tags(gpu.home) if not t.startswith("summarizer-encoder-onnx-int8:")}
    assert len(abstractive) == 1 and gpu.model_tags == {*without_export, *abstractive}
    image = containerfile(gpu, tmp_path)
    args = _env_lines(image.dockerfile)
    assert args["SUMMARIZER_ENGINE"] == "abstractive" and "UV_TORCH_BACKEND" not in args  # PyPI's CUDA torch
    assert re.search(r"^FROM python:3\.11-slim AS base-container$", image.dockerfile, flags=re.MULTILINE)
    name, _, version = abstractive.pop().partition(":")
    assert f"models/{name}/{version}/model.yaml" in image.context


def test_the_bentocloud_config_names_the_bentos_services(gpu: Built) -> None:
    config = yaml.safe_load((REPO / "deploy" / "bentocloud" / "summarizer.yaml").read_text())
    assert set(config["services"]) == {s["name"] for s in gpu.info["services"]}
    assert config["bento"].partition(":")[0] == gpu.tag.partition(":")[0]


def _unshare_works() -> str | None:
    """None when `unshare -rn` can make a network namespace here, else why not."""
    try:
        done = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "no unshare command"
    return None if done.returncode == 0 else f"unshare -rn failed: {done.stderr.strip()}"


def test_an_exported_bento_serves_from_a_fresh_home_without_network(cpu: Built, tmp_path: Path) -> None:
    archive = tmp_path / "summarizer.tar.gz"  # .tar.gz: seconds, where the default xz takes a minute
    exported = subprocess.run(
        [str(BIN / "bentoml"), "export", cpu.tag, str(archive)],
        env=base_env(cpu.home), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-4000:]
    fresh = tmp_path / "fresh-home"
    env = base_env(fresh)
    imported = subprocess.run([str(BIN / "bentoml"), "import", str(archive)], env=env, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr[-4000:]
    assert (fresh / "bentos" / cpu.path.relative_to(cpu.home / "bentos")).is_dir()
    assert {p.name for p in (fresh / "models").iterdir()} == {"summarizer-encoder", "summarizer-encoder-onnx-int8", "summarizer-ner"}

    workdir = tmp_path / "elsewhere"  # no checkout: an empty folder
    workdir.mkdir()
    env.update(SUMMARIZER_JOBS_DIR=str(tmp_path / "jobs"), SUMMARIZER_RAG_DIR=str(tmp_path / "rag-index"))
    no_netns = _unshare_works()
    driver = [sys.executable, "-m", "tests.deploy.offline_serve", cpu.tag, str(workdir), str(tmp_path / "serve.log")]
    command = driver if no_netns else ["unshare", "-rn", *driver, "--loopback"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=SERVE_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            Server(url="", log=tmp_path / "serve.log", proc=proc).kill()
    assert proc.returncode == 0, err.decode(errors="replace")[-4000:]
    result = json.loads(out)

    assert result["summary"]["status"] == 200, result["summary"]
    body = result["summary"]["body"]
    assert body["summary"] and body["engine"] == "extractive" and body["model"] in cpu.model_tags
    assert result["styles"]["status"] == 200 and PROBE_STYLE in result["styles"]["body"]["styles"]
    assert [(status, size > 1000) for status, size in result["ui"]] == [(200, True)] * 3  # the page's files are packed
    assert not any(workdir.iterdir())  # nothing written where it was started
    if no_netns:
        pytest.skip(f"served the imported Bento, but could not cut the network ({no_netns})")
    assert result["interfaces"] == ["lo"]  # the namespace had no other way out

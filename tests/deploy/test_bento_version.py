"""models/bento.py: the content version, what it covers, and the settings a build sees.

All on a scratch copy of the project: no model store, no build (tests/deploy/test_bento.py builds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from models.bento import BentoError, BentoFile, bento_version, build_environment, build_settings, included_sources, model_refs
from pipelines.settings import Settings
from tests.deploy.project import DECOYS, REPO, copy_project

TAGS = ["summarizer-encoder:aaaaaaaaaaaaaaaa"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("pristine") / "project")


@pytest.fixture
def project(pristine: Path, tmp_path: Path) -> Path:
    """A copy this test may change."""
    return Path(shutil.copytree(pristine, tmp_path / "project"))


def version(project: Path, bentofile: str = "bentofile.yaml", tags: list[str] = TAGS) -> str:
    return bento_version(BentoFile.load(project / bentofile), tags)


def test_the_version_is_stable_and_independent_of_the_folder(project: Path, pristine: Path) -> None:
    first = version(project)
    assert len(first) == 16 and first == version(project)
    assert version(pristine) == first  # same content elsewhere: same version


def test_only_the_included_sources_are_hashed(project: Path) -> None:
    sources = included_sources(BentoFile.load(project / "bentofile.yaml"))
    assert "service.py" in sources and "pipelines/styles.yaml" in sources and "models/bento.py" in sources
    assert all(s == "service.py" or s.startswith(("pipelines/", "models/")) for s in sources), sources
    assert not [s for s in sources if "__pycache__" in s or s in DECOYS]
    assert {s.split("/")[0] for s in sources} == {"service.py", "pipelines", "models"}


@pytest.mark.parametrize(
    "path", ["service.py", "pipelines/styles.yaml", "models/store.py", "bentofile.yaml", "requirements.txt", "deploy/docker/setup.sh"]
)
def test_a_packed_file_or_build_input_changes_the_version(project: Path, path: str) -> None:
    before = version(project)
    with (project / path).open("a") as fh:
        fh.write("\n# changed\n")
    assert version(project) != before


def test_a_new_source_file_changes_the_version(project: Path) -> None:
    before = version(project)
    (project / "pipelines" / "extra.py").write_text('"""new module"""\n')
    assert version(project) != before


@pytest.mark.parametrize("path", ["README.md", "docs/api.md", "mkdocs.yml", "tests/deploy/test_bento_version.py", "bench/__init__.py", *DECOYS])
def test_files_that_are_not_packed_leave_the_version_alone(project: Path, path: str) -> None:
    before = version(project)
    (project / path).parent.mkdir(parents=True, exist_ok=True)
    with (project / path).open("a") as fh:
        fh.write("\n# changed\n")
    (project / "pipelines" / "__pycache__" / "new.cpython-311.pyc").write_bytes(b"\0")
    assert version(project) == before


def test_a_model_tag_changes_the_version(project: Path) -> None:
    assert version(project, tags=["summarizer-encoder:bbbbbbbbbbbbbbbb"]) != version(project)
    assert version(project, tags=[*TAGS, "summarizer-abstractive:cccccccccccccccc"]) != version(project)
    assert version(project, tags=[*TAGS, *TAGS]) == version(project)  # a set, in any order


def test_the_variants_differ(project: Path) -> None:
    assert version(project, "bentofile.gpu.yaml") != version(project)


def test_a_missing_named_file_is_an_error(project: Path) -> None:
    (project / "deploy" / "docker" / "setup.sh").unlink()
    with pytest.raises(BentoError, match=r"docker\.setup_script names .*setup\.sh"):
        version(project)


def test_the_build_sees_the_bentofile_settings_and_none_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_ENGINE", "abstractive")
    monkeypatch.setenv("SUMMARIZER_ABSTRACTIVE_MODEL", "from-the-shell:latest")
    cpu, gpu = (BentoFile.load(REPO / name) for name in ("bentofile.yaml", "bentofile.gpu.yaml"))
    # The CPU Bento packs the int8 export its default runtime loads; the GPU one runs PyTorch.
    assert model_refs(build_settings(cpu)) == ["summarizer-encoder:latest", "summarizer-encoder-onnx-int8:latest", "summarizer-ner:latest"]
    assert model_refs(build_settings(gpu)) == ["summarizer-encoder:latest", "summarizer-abstractive:latest", "summarizer-ner:latest"]
    assert os.environ["SUMMARIZER_ENGINE"] == "abstractive"  # restored afterwards
    env = build_environment(gpu)
    assert env["SUMMARIZER_ENGINE"] == "abstractive" and "SUMMARIZER_ABSTRACTIVE_MODEL" not in env
    assert env["SUMMARIZER_RAG_DIR"] == "/home/bentoml/data/rag-index" and env["PATH"] == os.environ["PATH"]


def test_model_refs_follow_the_settings() -> None:
    settings = Settings(engine="abstractive", abstractive_model="bart:1", redact_ner_model="ner:2")
    assert model_refs(settings) == ["summarizer-encoder:latest", "summarizer-encoder-onnx-int8:latest", "bart:1", "ner:2"]
    assert model_refs(Settings(redact_ner_model="", encoder_runtime="torch")) == ["summarizer-encoder:latest"]  # names not redacted: not packed
    assert model_refs(Settings(redact=False, encoder_runtime="torch")) == ["summarizer-encoder:latest"]
    assert model_refs(Settings(redact=False, encoder_runtime="onnx")) == ["summarizer-encoder:latest", "summarizer-encoder-onnx:latest"]

def _bentofile(name: str) -> dict[str, object]:
    data = yaml.safe_load((REPO / name).read_text())
    assert isinstance(data, dict)
    return data


def test_the_gpu_bentofile_differs_only_in_its_variant_keys() -> None:
    cpu, gpu = _bentofile("bentofile.yaml"), _bentofile("bentofile.gpu.yaml")
    variant = {"name", "description", "labels", "envs"}
    assert {k: v for k, v in cpu.items() if k not in variant} == {k: v for k, v in gpu.items() if k not in variant}
    assert (cpu["name"], gpu["name"]) == ("summarizer", "summarizer-gpu")


@pytest.mark.parametrize("name", ["bentofile.yaml", "bentofile.gpu.yaml"])
def test_bentofile_settings_are_real_settings(name: str) -> None:
    bentofile = BentoFile.load(REPO / name)
    known = {f"SUMMARIZER_{field.upper()}" for field in Settings.model_fields}
    assert bentofile.settings_env and set(bentofile.settings_env) <= known, set(bentofile.settings_env) - known
    assert bentofile.envs["SUMMARIZER_RAG_DIR"].startswith("/home/bentoml/data/")
    assert bentofile.envs["SUMMARIZER_JOBS_DIR"].startswith("/home/bentoml/data/")
    assert bentofile.envs["HF_HUB_OFFLINE"] == "1" and bentofile.envs["BENTOML_DO_NOT_TRACK"] == "True"
    # The pinned requirements, with the Python version of the image, are what the image installs.
    assert bentofile.data["python"] == {"requirements_txt": "./requirements.txt", "lock_packages": False}
    assert bentofile.data["docker"]["python_version"] == "3.11"  # type: ignore[index]


def test_a_missing_model_is_an_error_that_names_the_import_command(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty-home"), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run(
        [sys.executable, "-m", "models", "bento-version"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "error: model 'summarizer-encoder:latest' is not in the BentoML model store" in done.stderr
    assert "python -m models import-default" in done.stderr

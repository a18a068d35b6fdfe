"""models/folder.py: which folders are loadable models, of what kind, and their content hash."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from models import ModelImportError
from models.folder import check_model_folder, content_hash
from tests.fixtures.tiny_models import build_tiny_bart, build_tiny_causal


def test_hash_is_stable_and_ignores_location(tiny_bert: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bert, tmp_path / "elsewhere"))
    assert content_hash(tiny_bert) == content_hash(tiny_bert) == content_hash(copy)
    assert len(content_hash(tiny_bert)) == 64


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: f.joinpath("vocab.txt").write_bytes(b"X" + f.joinpath("vocab.txt").read_bytes()[1:]),
                     id="one-byte"),
        pytest.param(lambda f: f.joinpath("vocab.txt").rename(f / "vocab2.txt"), id="rename"),
        pytest.param(lambda f: f.joinpath("extra.json").write_text("{}"), id="new-file"),
        pytest.param(lambda f: f.joinpath("sub").mkdir() or f.joinpath("sub", "a").write_text(""), id="new-subfolder"),
    ],
)  # fmt: skip
def test_hash_changes_with_content(tiny_bert: Path, change: Callable[[Path], object]) -> None:
    before = content_hash(tiny_bert)
    change(tiny_bert)
    assert content_hash(tiny_bert) != before


def test_hash_skips_vcs_and_cache_dirs(tiny_bert: Path) -> None:
    before = content_hash(tiny_bert)
    for junk in (".git/HEAD", "__pycache__/x.pyc", ".cache/huggingface/download/meta"):
        (tiny_bert / junk).parent.mkdir(parents=True, exist_ok=True)
        (tiny_bert / junk).write_text("junk")
    assert content_hash(tiny_bert) == before


def test_kind_of_an_encoder(tiny_bert: Path) -> None:
    assert check_model_folder(tiny_bert) == "encoder"


@pytest.mark.parametrize(
    ("builder", "kind"), [(build_tiny_bart, "seq2seq"), (build_tiny_causal, "causal")], ids=["bart", "gpt2"]
)
def test_kind_of_generators(builder: Callable[[Path], Path], kind: str, tmp_path: Path) -> None:
    assert check_model_folder(builder(tmp_path / "model")) == kind


def _missing(tmp_path: Path, tiny: Path) -> Path:
    return tmp_path / "missing"


def _a_file(tmp_path: Path, tiny: Path) -> Path:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"not a folder")
    return path


def _no_config(tmp_path: Path, tiny: Path) -> Path:
    (tiny / "config.json").unlink()
    return tiny


def _no_tokenizer(tmp_path: Path, tiny: Path) -> Path:
    (tiny / "vocab.txt").unlink()
    return tiny


def _no_weights(tmp_path: Path, tiny: Path) -> Path:
    (tiny / "model.safetensors").unlink()
    return tiny


def _broken_config(tmp_path: Path, tiny: Path) -> Path:
    (tiny / "config.json").write_text("{not json")
    return tiny


def _unknown_model_type(tmp_path: Path, tiny: Path) -> Path:
    (tiny / "config.json").write_text('{"model_type": "no-such-architecture"}')
    return tiny


def _bentoml_file(tmp_path: Path, tiny: Path) -> Path:
    (tiny / "model.yaml").write_text("name: x")
    return tiny


BAD_FOLDERS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing": (_missing, "does not exist"),
    "file": (_a_file, "is not a directory"),
    "no-config": (_no_config, "it has no config.json"),
    "no-tokenizer": (_no_tokenizer, "has no tokenizer: expected one of tokenizer.json"),
    "no-weights": (_no_weights, "has no weights"),
    "bentoml-reserved": (_bentoml_file, "contains model.yaml, which BentoML reserves"),
    "broken-config": (_broken_config, "is not a usable Hugging Face config"),
    "unknown-model-type": (_unknown_model_type, "is not a usable Hugging Face config"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_folders_are_refused_with_a_reason(case: str, tiny_bert: Path, tmp_path: Path) -> None:
    make, message = BAD_FOLDERS[case]
    folder = make(tmp_path, tiny_bert)
    with pytest.raises(ModelImportError, match=message) as caught:
        check_model_folder(folder)
    assert str(folder) in str(caught.value)

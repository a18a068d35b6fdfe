"""`python -m pipelines.rag`: index a folder (redacted, incremental), list, delete, clear errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from models import ModelImportError
from models.store import default_encoder_folder
from pipelines.engines.torch_encoder import TorchEncoder
from pipelines.postgres.pool import Database
from pipelines.rag.cli import Encoder, EncoderFactory, main
from pipelines.rag.postgres import PostgresIndex
from pipelines.settings import Settings

EMAIL = "maria.lopez@acme-internal.example"
TAG = "summarizer-encoder:test"


@pytest.fixture(scope="module")
def encoder() -> TorchEncoder:
    return TorchEncoder(default_encoder_folder())


class ConstantEncoder:
    """For tests about bookkeeping, not meaning: every text gets the same unit vector."""

    dim = 8

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.full((len(texts), self.dim), self.dim**-0.5, dtype=np.float32)


def factory(encoder: Encoder, tag: str = TAG) -> EncoderFactory:
    def load(settings: Settings) -> tuple[str, Encoder]:
        return tag, encoder

    return load


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "guides").mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / "guides" / "install.md").write_text(
        "# Install\n\nDownload the installer and run it. Questions go to " + EMAIL + ".\n\n"
        "## Linux\n\nUse the apt repository on Debian and Ubuntu.\n"
    )
    (folder / "faq.txt").write_text("Refunds are paid within 14 days. Call support on +44 20 7946 0321 for help.\n")
    (folder / "policy.HTML").write_text(
        "<html><body><article><h1>Travel policy</h1><p>Book trains for trips under four hours. "
        f"Send receipts to {EMAIL} within a month.</p></article></body></html>"
    )
    (folder / ".git" / "notes.md").write_text("Tooling, not documentation.")
    (folder / "logo.png").write_bytes(b"\x89PNG")
    return folder


def run(capsys: pytest.CaptureFixture[str], argv: list[str], settings: Settings | None = None, **kwargs: object) -> tuple[int, str, str]:
    code = main(argv, settings=settings or Settings(), **kwargs)  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    return code, out, err


def test_index_is_redacted_incremental_and_listed(
    docs: Path, tmp_path: Path, encoder: TorchEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "index"
    code, out, err = run(capsys, ["index", str(docs), "--dir", str(index)], encoder_factory=factory(encoder))
    assert code == 0, err
    assert out.startswith("indexed 3 documents (") and "chunks embedded), 0 unchanged, in " in out
    stored = b"".join(p.read_bytes() for p in index.rglob("*") if p.is_file())
    assert EMAIL.encode() not in stored and b"7946 0321" not in stored  # PII never reaches the index
    chunks = [json.loads(line) for line in (index / "snap-000001" / "chunks.jsonl").read_text().splitlines()]
    assert {c["document"] for c in chunks} == {"faq.txt", "guides/install.md", "policy.HTML"}
    assert any("<EMAIL_ADDRESS>" in c["text"] for c in chunks if c["document"] == "policy.HTML")
    assert {c["heading"] for c in chunks if c["document"] == "guides/install.md"} == {"Install", "Install > Linux"}

    code, out, _ = run(capsys, ["index", str(docs), "--dir", str(index)], encoder_factory=factory(encoder))
    assert code == 0 and out.startswith("indexed 0 documents (0 chunks embedded), 3 unchanged, in ")

    (docs / "faq.txt").write_text("Refunds are paid within 30 days.\n")
    code, out, _ = run(capsys, ["index", str(docs), "--dir", str(index)], encoder_factory=factory(encoder))
    assert code == 0 and out.startswith("indexed 1 documents (1 chunks embedded), 2 unchanged")

    code, out, _ = run(capsys, ["list", "--dir", str(index)])
    lines = out.splitlines()
    assert code == 0 and [line.split("\t")[0] for line in lines[:-1]] == ["faq.txt", "guides/install.md", "policy.HTML"]
    assert lines[-1].startswith("3 documents, ")


def test_delete(docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "index")
    run(capsys, ["index", str(docs), "--dir", index], encoder_factory=factory(ConstantEncoder()))
    assert run(capsys, ["delete", "faq.txt", "--dir", index]) == (0, "deleted faq.txt\n", "")
    code, out, err = run(capsys, ["delete", "faq.txt", "policy.HTML", "--dir", index])
    assert (code, out, err) == (1, "deleted policy.HTML\n", "not in the index: faq.txt\n")
    code, out, _ = run(capsys, ["list", "--dir", index])
    assert out.splitlines()[0].startswith("guides/install.md\t")


def test_with_a_database_url_the_index_is_in_postgresql(
    docs: Path, tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the default folder index would appear
    settings = Settings(database_url=database_url)
    code, out, err = run(capsys, ["index", str(docs)], settings, encoder_factory=factory(ConstantEncoder()))
    assert code == 0 and out.startswith("indexed 3 documents"), err
    db = Database(database_url)
    try:
        assert [d.id for d in PostgresIndex(db, TAG, ConstantEncoder.dim).documents()] == ["faq.txt", "guides/install.md", "policy.HTML"]
        code, out, _ = run(capsys, ["index", str(docs)], settings, encoder_factory=factory(ConstantEncoder()))
        assert code == 0 and out.startswith("indexed 0 documents (0 chunks embedded), 3 unchanged")
        code, out, _ = run(capsys, ["list"], settings)
        assert code == 0 and out.splitlines()[-1].startswith("3 documents, ") and "postgresql://" in out
        assert run(capsys, ["delete", "faq.txt"], settings) == (0, "deleted faq.txt\n", "")
        assert [d.id for d in PostgresIndex(db, TAG, ConstantEncoder.dim).documents()] == ["guides/install.md", "policy.HTML"]
        other = factory(ConstantEncoder(), "summarizer-encoder:newer")
        code, _, err = run(capsys, ["index", str(docs)], settings, encoder_factory=other)
        assert code == 2 and TAG in err and "--rebuild" in err and "SUMMARIZER_DATABASE_URL" in err
        code, out, err = run(capsys, ["index", str(docs), "--rebuild"], settings, encoder_factory=other)
        assert code == 0 and out.startswith("indexed 3 documents"), err
    finally:
        db.close()
    assert not (tmp_path / "rag-index").exists()
    # A folder named as well would be an index the service never reads.
    code, out, err = run(capsys, ["list", "--dir", str(tmp_path / "index")], settings)
    assert code == 2 and "--dir" in err and "SUMMARIZER_DATABASE_URL" in err


def test_an_unreachable_database_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url="postgresql://app:hunter2@127.0.0.1:1/summarizer", database_timeout_s=1)
    code, out, err = run(capsys, ["list"], settings)
    assert code == 2 and out == "" and "not available" in err and "hunter2" not in err


def test_an_index_of_another_encoder_needs_rebuild(docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "index")
    run(capsys, ["index", str(docs), "--dir", index], encoder_factory=factory(ConstantEncoder()))
    other = factory(ConstantEncoder(), "summarizer-encoder:newer")
    code, out, err = run(capsys, ["index", str(docs), "--dir", index], encoder_factory=other)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert TAG in err and "summarizer-encoder:newer" in err and "--rebuild" in err
    code, out, err = run(capsys, ["index", str(docs), "--dir", index, "--rebuild"], encoder_factory=other)
    assert code == 0 and out.startswith("indexed 3 documents"), err


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_nothing_to_index_exits_2(make: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "docs"
    if make == "empty":
        (folder / "sub").mkdir(parents=True)
        (folder / "image.png").write_bytes(b"")

    def never(settings: Settings) -> tuple[str, Encoder]:
        raise AssertionError("no encoder needed")

    code, out, err = run(capsys, ["index", str(folder), "--dir", str(tmp_path / "index")], encoder_factory=never)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and str(folder) in err


def test_a_missing_model_exits_2(docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def absent(settings: Settings) -> tuple[str, Encoder]:
        raise ModelImportError("model summarizer-encoder:latest is not in the BentoML model store; import it first")

    code, _, err = run(capsys, ["index", str(docs), "--dir", str(tmp_path / "index")], encoder_factory=absent)
    assert code == 2 and "import it first" in err


def test_list_and_delete_on_no_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "none")
    assert run(capsys, ["list", "--dir", index]) == (0, f"no documents in {index}\n", "")
    assert run(capsys, ["delete", "a.md", "--dir", index]) == (1, "", "not in the index: a.md\n")


def test_the_default_loader_resolves_the_model_store_tag(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from models.export import export_encoder
    from models.store import import_default_encoder, import_default_ner
    from pipelines.rag.index import recorded_encoder
    from tests.models.conftest import isolated_bentoml_home  # a private store, as the model tests use

    index = tmp_path / "index"
    with isolated_bentoml_home(tmp_path / "bentoml-home"):
        code, _, err = run(capsys, ["index", str(docs), "--dir", str(index)])
        assert code == 2 and "python -m models import-default" in err
        imported = import_default_encoder()
        import_default_ner()  # documents are redacted before they are indexed: names too
        code, _, err = run(capsys, ["index", str(docs), "--dir", str(index)])
        assert code == 2 and "summarizer-encoder-onnx-int8:latest is not in the BentoML model store" in err
        exported = export_encoder(imported.tag, "onnx-int8")  # what the default CPU runtime loads
        code, out, err = run(capsys, ["index", str(docs), "--dir", str(index)])
    assert code == 0 and out.startswith("indexed 3 documents"), err
    # The vectors' model is recorded: the export, made from the imported encoder.
    assert recorded_encoder(index) == (exported.tag, 384, "faiss") and exported.tag.startswith("summarizer-encoder-onnx-int8:")

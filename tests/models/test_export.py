"""models/export.py: the ONNX exports of the stored encoder, against PyTorch's vectors.

Tolerances: the fp32 export is the same arithmetic in another order, so every component within
1e-5 of PyTorch's; int8 weights move vectors by a few percent, so cosine similarity to PyTorch's at
least 0.98 on average and 0.95 for any sentence (bench/encoder.py measures the eval set: mean
0.996, min 0.984). Exports live in the session's shared encoder store, made once.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np
import pytest
from transformers import AutoTokenizer

from models.cli import main
from models.export import CHECK_SENTENCES, KIND, RECIPE, export_encoder
from models.store import ImportResult, ModelImportError
from pipelines.engines.onnx_encoder import OnnxEncoder
from pipelines.engines.torch_encoder import TorchEncoder
from tests.texts import DIALOGUE, LEGAL, NEWS

# Not the export's own check sentences: lines of three kinds of text, a very long one (truncated at
# 512 tokens), punctuation, digits and non-ASCII.
SENTENCES = [
    *(line.strip() for text in (NEWS, LEGAL, DIALOGUE) for line in text.splitlines() if line.strip()),
    "word " * 900,
    "Zoë paid €1,204.50 on 03/04/2026 — ref #A-77/b!",
    "?",
]


@pytest.fixture
def exports(encoder_store: ImportResult) -> dict[str, bentoml.Model]:
    for runtime in ("onnx", "onnx-int8"):
        export_encoder(encoder_store.tag, runtime)  # type: ignore[arg-type]
    return {r: bentoml.models.get(f"summarizer-encoder-{r}:latest") for r in ("onnx", "onnx-int8")}


def test_each_export_is_stored_with_what_it_was_made_from(exports: dict[str, bentoml.Model], encoder_store: ImportResult) -> None:
    for runtime, model in exports.items():
        meta = model.info.metadata
        assert (meta["kind"], meta["runtime"], meta["recipe"]) == (KIND, runtime, RECIPE)
        assert meta["made_from"] == encoder_store.tag and meta["source"] == f"bentoml://{encoder_store.tag}"
        assert float(str(meta["check_min_cos"])) >= (0.9999 if runtime == "onnx" else 0.95)
        assert {p.name for p in Path(model.path).iterdir()} >= {"model.onnx", "tokenizer.json", "tokenizer_config.json"}
    # int8 weights, but for the embeddings (half the fp32 file) and some down-projections: ~73%.
    sizes = {r: (Path(m.path) / "model.onnx").stat().st_size for r, m in exports.items()}
    assert sizes["onnx-int8"] < sizes["onnx"] * 0.8


def _ops(model: bentoml.Model) -> list[tuple[str, str]]:
    import onnx

    return [(n.op_type, n.name) for n in onnx.load(str(Path(model.path) / "model.onnx")).graph.node]


def test_attention_is_fused_and_int8_keeps_the_outlier_layers_in_fp32(exports: dict[str, bentoml.Model]) -> None:
    """Fused attention is most of recipe 3's speed (QAttention in int8); the down-projections whose
    inputs reach past OUTLIER_RANGE stay fp32 (in this MiniLM the first layers', not the last)."""
    layers = 6
    fp32, int8 = _ops(exports["onnx"]), _ops(exports["onnx-int8"])
    assert [t for t, _ in fp32].count("Attention") == layers and [t for t, _ in int8].count("QAttention") == layers
    assert ("EmbedLayerNormalization" in [t for t, _ in int8]) and "QEmbedLayerNormalization" not in [t for t, _ in int8]
    kept = [name for op, name in int8 if op == "MatMul"]
    assert kept and all("/output/dense/" in name and "/attention/" not in name for name in kept)
    assert 0 < len(kept) < layers, kept  # some down-projections quantize, some don't


def test_exporting_again_returns_the_stored_version(exports: dict[str, bentoml.Model], encoder_store: ImportResult) -> None:
    again = export_encoder(encoder_store.tag, "onnx-int8")
    assert not again.created and again.tag == str(exports["onnx-int8"].tag)
    assert len(bentoml.models.list("summarizer-encoder-onnx-int8")) == 1


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    from models.store import default_encoder_folder

    return TorchEncoder(default_encoder_folder(), device="cpu").encode(SENTENCES)


def test_fp32_export_gives_pytorchs_vectors(exports: dict[str, bentoml.Model], reference: np.ndarray) -> None:
    vectors = OnnxEncoder(Path(exports["onnx"].path), runtime="onnx").encode(SENTENCES)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.abs(vectors - reference).max() < 1e-5


def test_int8_export_stays_close_to_pytorchs_vectors(exports: dict[str, bentoml.Model], reference: np.ndarray) -> None:
    vectors = OnnxEncoder(Path(exports["onnx-int8"].path), runtime="onnx-int8").encode(SENTENCES)
    cosines = np.sum(vectors * reference, axis=1)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # still unit vectors
    assert cosines.mean() >= 0.98 and cosines.min() >= 0.95, (cosines.mean(), cosines.min())


def test_tokenization_matches_transformers(exports: dict[str, bentoml.Model]) -> None:
    folder = Path(exports["onnx"].path)
    ours = OnnxEncoder(folder, runtime="onnx").tokenizer.encode_batch(SENTENCES)
    theirs = AutoTokenizer.from_pretrained(str(folder))(SENTENCES, padding=True, truncation=True, max_length=512)
    assert [e.ids for e in ours] == theirs["input_ids"]
    assert max(len(e.ids) for e in ours) == 512  # the long sentence, cut as PyTorch's path cuts it


@pytest.mark.parametrize(("runtime", "tolerance"), [("onnx", 1e-5), ("onnx-int8", 0.0)])
def test_batches_do_not_change_vectors(exports: dict[str, bentoml.Model], runtime: str, tolerance: float) -> None:
    """int8 encodes each text alone: its quantization scale is computed per pass, so a text batched
    with others moved by up to 0.03 per component (a summary would depend on the traffic)."""
    encoder = OnnxEncoder(Path(exports[runtime].path), runtime=runtime)
    together = encoder.encode(list(CHECK_SENTENCES))
    alone = np.vstack([encoder.encode([s]) for s in CHECK_SENTENCES])
    assert np.abs(together - alone).max() <= tolerance


def test_side_by_side_passes_give_the_vectors_of_passes_in_turn(exports: dict[str, bentoml.Model]) -> None:
    """int8's passes run two at a time, one thread each: the same vectors, in input order."""
    folder = Path(exports["onnx-int8"].path)
    side_by_side, in_turn = (
        OnnxEncoder(folder, runtime="onnx-int8", threads=2),
        OnnxEncoder(folder, runtime="onnx-int8", threads=1),
    )
    assert (side_by_side.parallel_passes, in_turn.parallel_passes) == (2, 1)
    assert np.array_equal(side_by_side.encode(SENTENCES), in_turn.encode(SENTENCES))


def test_cpu_budget_is_what_this_process_may_use() -> None:
    import os

    from pipelines.engines.onnx_encoder import cpu_budget

    assert 1 <= cpu_budget() <= len(os.sched_getaffinity(0))


def test_cli_export_onnx(encoder_store: ImportResult, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-onnx", "--runtime", "onnx"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(("exported summarizer-encoder-onnx:", "already exported as summarizer-encoder-onnx:"))
    assert "onnx-int8" not in out


def test_cli_export_of_a_missing_encoder_says_how_to_import_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-onnx", "--from", "summarizer-encoder:latest"]) == 2  # this test's store is empty
    assert "python -m models import-default" in capsys.readouterr().err


def test_an_unknown_runtime_is_refused(encoder_store: ImportResult) -> None:
    with pytest.raises(ModelImportError, match="runtime must be one of onnx, onnx-int8"):
        export_encoder(encoder_store.tag, "torch")

"""Export the stored MiniLM encoder to ONNX (optionally int8), check it, and store it as its own model.

    export_encoder("summarizer-encoder:latest", "onnx-int8")
    # -> summarizer-encoder-onnx-int8:<version>, metadata made_from=summarizer-encoder:<version>

Steps: PyTorch's TorchScript-based exporter (opset 17; it handles this BERT graph in 2 s, where
the torch.export-based one needs onnxscript and minutes) with mean pooling and L2 normalization in
the graph; ONNX Runtime's BERT fusions (LayerNorm, bias + GELU); for `onnx-int8`, dynamic int8
quantization of the weights, per output channel (per tensor kept the mean cosine to PyTorch at
0.957 on the eval sentences, per channel at 0.992), but for the feed-forward down-projections (0.996). The result is checked against PyTorch on fixed
sentences before it is stored (CHECK_SENTENCES); a failed check stores nothing. One stored version per
(encoder version, RECIPE): exporting again returns it. Imports torch and the exporters: the
models CLI loads this module only for the commands that export.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bentoml
import numpy as np
import torch
from onnx import TensorProto
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from models import ModelImportError
from models.folder import content_hash
from models.store import OWNER, ImportResult, _check_name, _result, _stored, _versions
from pipelines.engines.onnx_encoder import MODEL_FILE, OUTPUT, OnnxEncoder
from pipelines.engines.runtime import ONNX_RUNTIMES, Runtime, exported_name
from pipelines.engines.torch_encoder import TorchEncoder

KIND = "onnx-encoder"
# Bump when the steps above change: exports made by an older recipe are then made again.
RECIPE = "2"
OPSET = 17
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
CHECK_SENTENCES = (
    "The council approved the budget for the new bridge on Tuesday.",
    "Either party may terminate this agreement with ninety days' written notice.",
    "honestly i think we should just get pizza tonight, you in?",
    "Refunds are issued to the original payment method within ten business days.",
    "Heavy rain is expected across the north of the country through the weekend, forecasters said.",
    "The supplier shall notify the customer of any personal data breach without undue delay.",
    "Shares fell 4% after the company cut its forecast.",
    "A",
)


@dataclass(frozen=True)
class Check:
    """Cosine similarity of the export's vectors to PyTorch's on CHECK_SENTENCES, and the floor."""

    min_cos: float
    mean_cos: float
    floor: float

    @property
    def passed(self) -> bool:
        return self.min_cos >= self.floor


# fp32 is the same arithmetic in another order; int8 weights move vectors by a few percent.
CHECK_FLOOR: dict[str, float] = {"onnx": 0.9999, "onnx-int8": 0.95}


def export_encoder(source: str, runtime: Runtime) -> ImportResult:
    """Store `runtime`'s export of the stored encoder `source`, unless this recipe already made one."""
    if runtime not in ONNX_RUNTIMES:
        raise ModelImportError(f"runtime must be one of {', '.join(ONNX_RUNTIMES)}, got {runtime!r}")
    encoder = _stored(source)
    name = exported_name(source, runtime)
    _check_name(name)
    made_from = str(encoder.tag)
    for model in _versions(name):
        meta = model.info.metadata
        if meta.get("made_from") == made_from and meta.get("recipe") == RECIPE:
            return _result(model, created=False)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as staging:
        folder = Path(staging)
        _export(Path(encoder.path), folder, quantize=runtime == "onnx-int8")
        check = check_export(Path(encoder.path), folder, runtime)
        if not check.passed:
            raise ModelImportError(
                f"the {runtime} export of {made_from} is too far from PyTorch: cosine min {check.min_cos:.4f}, "
                f"mean {check.mean_cos:.4f} on fixed sentences (floor {check.floor}); nothing was stored"
            )
        metadata = {
            "source": f"bentoml://{made_from}", "revision": str(encoder.tag.version), "made_from": made_from,
            "content_hash": content_hash(folder), "kind": KIND, "runtime": runtime, "recipe": RECIPE, "opset": OPSET,
            "quantization": "int8 dynamic, per channel" if runtime == "onnx-int8" else "none",
            "check_min_cos": round(check.min_cos, 6), "check_mean_cos": round(check.mean_cos, 6),
            "torch": importlib.metadata.version("torch"), "onnxruntime": importlib.metadata.version("onnxruntime"),
        }  # fmt: skip
        if "license" in encoder.info.metadata:
            metadata["license"] = encoder.info.metadata["license"]
        with bentoml.models.create(name=name, labels={"kind": KIND, "owner": OWNER}, metadata=metadata) as model:
            shutil.copytree(folder, model.path, dirs_exist_ok=True)
    return _result(model, created=True)


def _export(encoder_dir: Path, out: Path, *, quantize: bool) -> None:
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" bars on every load, on a terminal or a CI log
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
    # Eager attention: the exporter writes the plain matmul-softmax graph that ORT's fusions know.
    model = AutoModel.from_pretrained(str(encoder_dir), local_files_only=True, attn_implementation="eager").eval()
    sample = tokenizer(["an example sentence", "and a second, longer one to pad against"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    raw, fused = out / "raw.onnx", out / "fused.onnx"
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {OUTPUT: {0: "batch"}}
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            _Pooled(model, names), tuple(sample[n] for n in names), str(raw), input_names=names,
            output_names=[OUTPUT], dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
        config = model.config
        optimized = optimize_model(
            str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size, opt_level=1
        )
        optimized.save_model_to_file(str(fused))
        if quantize:
            quantize_dynamic(
                str(fused), str(out / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True,
                nodes_to_exclude=_ffn_down_projections(fused),
                # Fused ops have no inferred type; their outputs are float.
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )  # fmt: skip
        else:
            fused.rename(out / MODEL_FILE)
    raw.unlink()
    fused.unlink(missing_ok=True)
    for file in COPIED:
        if (encoder_dir / file).is_file():
            shutil.copy2(encoder_dir / file, out / file)


def _ffn_down_projections(model_file: Path) -> list[str]:
    """The MatMuls that stay in fp32: each layer's feed-forward down-projection. Their inputs are
    GELU outputs with outliers; quantized, they moved legal ROUGE by +0.9 against PyTorch (mean
    cosine 0.992); kept in fp32, ROUGE stays within 0.2 on every style (cosine 0.996), for 6 of the
    48 MatMuls (docs/performance.md, "Encoder runtimes")."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    names = [n.name for n in graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
    if not names:  # another exporter's naming: better no export than a silently different recipe
        raise ModelImportError(f"found no feed-forward output MatMul in {model_file.name} to keep in fp32")
    return names


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's optimizer and quantizer print and log notes a person cannot act on."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


class _Pooled(torch.nn.Module):
    """The encoder with mean pooling and L2 normalization, as torch_encoder.py computes them."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.names, inputs, strict=True))
        hidden = self.model(**named).last_hidden_state
        mask = named["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def check_export(encoder_dir: Path, export_dir: Path, runtime: str) -> Check:
    """Both runtimes on CHECK_SENTENCES: the cosine similarity of each pair of vectors."""
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    sentences = list(CHECK_SENTENCES)
    reference = TorchEncoder(encoder_dir, device="cpu").encode(sentences)
    exported = OnnxEncoder(export_dir, runtime=runtime).encode(sentences)
    cosines = np.sum(reference * exported, axis=1)
    return Check(float(cosines.min()), float(cosines.mean()), CHECK_FLOOR[runtime])

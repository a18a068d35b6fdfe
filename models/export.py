"""Export the stored MiniLM encoder to ONNX (optionally int8), check it, and store it as its own model.

    export_encoder("summarizer-encoder:latest", "onnx-int8")
    # -> summarizer-encoder-onnx-int8:<version>, metadata made_from=summarizer-encoder:<version>

Steps: PyTorch's TorchScript-based exporter (opset 17; it handles this BERT graph in 2 s, where
the torch.export-based one needs onnxscript and minutes) with mean pooling and L2 normalization in
the graph, and self-attention written as ONNX Runtime's fusions expect it (`_ExportedAttention`);
ONNX Runtime's BERT fusions (embeddings + LayerNorm, attention, skip + LayerNorm, bias + GELU); for
`onnx-int8`, dynamic int8 quantization of the weights (fused attention becomes QAttention), per
output channel (per tensor kept the mean cosine to PyTorch at 0.957 on the eval sentences, per
channel at 0.992), but for the nodes `_kept_in_fp32` names (0.996). The result is checked against
PyTorch on fixed sentences before it is stored (CHECK_SENTENCES); a failed check stores nothing.
One stored version per (encoder version, RECIPE): exporting again returns it. Imports torch and
the exporters: the models CLI loads this module only for the commands that export.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import math
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from models import ModelImportError
from models.folder import content_hash
from models.store import OWNER, ImportResult, _check_name, _result, _stored, _versions
from pipelines.engines.onnx_encoder import MODEL_FILE, OUTPUT, OnnxEncoder
from pipelines.engines.runtime import ONNX_RUNTIMES, Runtime, exported_name
from pipelines.engines.torch_encoder import TorchEncoder

KIND = "onnx-encoder"
# Bump when the steps above change: exports made by an older recipe are then made again.
RECIPE = "3"
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


# A down-projection input reaching past this stays in fp32 (_kept_in_fp32).
OUTLIER_RANGE = 10.0
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
    model = AutoModel.from_pretrained(str(encoder_dir), local_files_only=True, attn_implementation="eager").eval()
    for layer in model.encoder.layer:
        layer.attention.self = _ExportedAttention(layer.attention.self)
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
        attention = sum(node.op_type == "Attention" for node in optimized.model.graph.node)
        if attention != config.num_hidden_layers:  # another transformers' graph: better no export than a slow one
            raise ModelImportError(f"ONNX Runtime fused {attention} of {config.num_hidden_layers} attention layers")
        optimized.save_model_to_file(str(fused))
        if quantize:
            quantize_dynamic(
                str(fused), str(out / MODEL_FILE), weight_type=QuantType.QInt8, per_channel=True,
                nodes_to_exclude=_kept_in_fp32(fused, tokenizer),
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


def _kept_in_fp32(model_file: Path, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The nodes `onnx-int8` leaves in fp32: the embeddings, and each feed-forward down-projection
    whose input reaches past OUTLIER_RANGE on CHECK_SENTENCES.

    Dynamic quantization maps a pass's whole activation range onto 256 steps. The GELU outputs that
    feed the down-projections of this MiniLM's first four layers reach 14 to 25 while most channels
    stay under 2; the last two layers' reach 4 to 7. With every down-projection quantized, legal
    ROUGE moved by +0.5 to +0.9 against PyTorch (gate: 0.3). Which nodes stay fp32 was settled by
    the gates (docs/performance.md, "Encoder runtimes"): one changed pick among the 40 legal
    documents moves that figure by a few tenths, so it rests on one run per variant."""
    model = onnx.load(str(model_file))
    embeddings = [n.name for n in model.graph.node if n.op_type == "EmbedLayerNormalization"]
    downs = [n for n in model.graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name]
    if not downs:  # another exporter's naming: better no export than a silently different recipe
        raise ModelImportError(f"found no feed-forward output MatMul in {model_file.name} to measure")
    for node in downs:
        model.graph.output.append(helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    reach = dict.fromkeys((n.name for n in downs), 0.0)
    for sentence in CHECK_SENTENCES:
        feed = {k: v for k, v in tokenizer([sentence], return_tensors="np").items() if k in names}
        for node, values in zip(downs, session.run([n.input[0] for n in downs], feed), strict=True):
            reach[node.name] = max(reach[node.name], float(np.abs(values).max()))
    return embeddings + [name for name, value in reach.items() if value > OUTLIER_RANGE]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's optimizer and quantizer print and log notes a person cannot act on."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


class _ExportedAttention(torch.nn.Module):
    """A BERT layer's self-attention, the same arithmetic as transformers' eager attention, written
    as ONNX Runtime's attention fusion matches it (per-head view and permute, scores divided by
    sqrt(head size), an additive mask). The graph transformers 5 traces (shape arithmetic, boolean
    masks) matches none of its patterns: attention then stays 12 separate ops per layer, and int8
    gets no QAttention (306 against 274 int8 sentences/s here, docs/performance.md)."""

    def __init__(self, attention: Any) -> None:  # transformers' BertSelfAttention
        super().__init__()
        self.query, self.key, self.value = attention.query, attention.key, attention.value
        self.heads, self.head_size = int(attention.num_attention_heads), int(attention.attention_head_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size()[:-1] + (self.heads, self.head_size)).permute(0, 2, 1, 3)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> tuple[torch.Tensor, None]:
        query, key, value = self._heads(self.query(hidden)), self._heads(self.key(hidden)), self._heads(self.value(hidden))
        scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_size) + attention_mask
        context = torch.matmul(torch.softmax(scores, dim=-1), value).permute(0, 2, 1, 3).contiguous()
        return context.view(context.size()[:-2] + (self.heads * self.head_size,)), None


class _Pooled(torch.nn.Module):
    """The encoder with mean pooling and L2 normalization, as torch_encoder.py computes them.

    The mask goes to the layers as BERT's classic additive one (0 to attend, -10000 to skip),
    the form ONNX Runtime's attention fusion turns into the fused op's mask input."""

    def __init__(self, model: Any, names: list[str]) -> None:  # transformers' BertModel
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.names, inputs, strict=True))
        embedded = self.model.embeddings(input_ids=named["input_ids"], token_type_ids=named.get("token_type_ids"))
        additive = (1.0 - named["attention_mask"][:, None, None, :].to(embedded.dtype)) * -10000.0
        hidden = self.model.encoder(embedded, attention_mask=additive).last_hidden_state
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

"""The MiniLM sentence encoder in ONNX Runtime on CPU: the export of `python -m models export-onnx`.

The exported graph ends in the mean pooling and L2 normalization that torch_encoder.py does in
PyTorch, so a pass returns finished vectors. Tokenization is Hugging Face `tokenizers` on the same
tokenizer.json, without transformers or torch: the model worker then starts in a fraction of the
time (docs/performance.md, "Cold start").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from pipelines.engines.encoder import SentenceEncoder

MODEL_FILE = "model.onnx"
OUTPUT = "embedding"


def cpu_budget() -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
    container's CPU limit, which the affinity does not show)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, round(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


class OnnxEncoder(SentenceEncoder):
    device_type = "cpu"

    def __init__(
        self,
        model_dir: Path,
        *,
        runtime: str = "onnx",
        threads: int = 0,
        max_batch_tokens: int = 2048,
        max_batch_items: int = 64,
        max_chars: int = 2000,
    ) -> None:
        # int8: one text per pass. Dynamic quantization scales a pass's activations by their range over
        # the whole pass, so another text in it (or its padding) would move this text's vector, by up
        # to 3% per component: a summary would depend on what else was batched. Alone, a vector
        # depends on its text only; and with no padding to compute, this ran faster than batches of
        # one document's sentences: 273 against 204 sentences/s (docs/engines.md, "Encoder runtimes").
        # Such small passes run side by side, one thread each, rather than one at a time on all threads
        # (343 against 245 sentences/s on 2 cores): `threads` is then how many run at once.
        per_pass = 1 if runtime == "onnx-int8" else max_batch_items
        workers = (threads or cpu_budget()) if runtime == "onnx-int8" else 1
        super().__init__(
            max_batch_tokens=max_batch_tokens, max_batch_items=per_pass, max_chars=max_chars, parallel_passes=workers
        )
        self.runtime = runtime
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if runtime == "onnx-int8" else threads  # 0: one per physical core, as torch does
        options.inter_op_num_threads = 1  # one branch at a time: the graph is a straight line
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT warns about every unused initializer
        # fp32: ORT's threads spin briefly between passes (its default), so a pass need not wait for
        # them to wake (with int8 on two threads, 217 against 273 sentences/s without spinning).
        self.session = ort.InferenceSession(str(model_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[1])
        config = json.loads((model_dir / "tokenizer_config.json").read_text())
        # As AutoTokenizer with truncation=True, max_length=512 does in torch_encoder.py.
        self.max_tokens = min(int(config.get("model_max_length", 512)), 512)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        pad = str(config.get("pad_token", "[PAD]"))
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad) or 0, pad_token=pad)

    def _forward(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        (vectors,) = self.session.run([OUTPUT], {k: v for k, v in feed.items() if k in self.inputs})
        return np.asarray(vectors, dtype=np.float32)

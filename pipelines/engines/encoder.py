"""What every sentence encoder does around its forward pass: clip, sort by length, token-capped passes.

Forward passes are capped by tokens because one padded pass over every sentence of a long document
costs gigabytes (see BENTOML-NOTES, model-side traps). On 2 CPU cores, passes of ~2k padded tokens
ran 30-50% faster than ~8k ones (cache-sized work); on a GPU, raise SUMMARIZER_ENCODER_BATCH_TOKENS.
The runtimes (pipelines/engines/runtime.py) differ only in `_forward`: PyTorch in torch_encoder.py,
ONNX Runtime in onnx_encoder.py. This module imports neither, so importing it costs nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from pipelines.engines.grouping import token_capped
from pipelines.scheduling.scheduler import preemption_point


class SentenceEncoder(ABC):
    """Unit-length sentence embeddings. Subclasses set `dim`, `device_type`, `runtime` and `max_tokens`."""

    dim: int
    device_type: str  # "cpu", "cuda" or "mps": how often the batcher should poll (service.py)
    runtime: str  # "torch", "onnx" or "onnx-int8"
    max_tokens: int

    def __init__(self, *, max_batch_tokens: int = 2048, max_batch_items: int = 64, max_chars: int = 2000) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_items = max_batch_items
        # The tokenizer reads a whole string before truncating; a 50 MB "sentence" would stall
        # the worker, so cut long ones first (the encoder sees at most max_tokens anyway).
        self.max_chars = max_chars

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        clipped = [t[: self.max_chars] for t in texts]
        # Character length is a cheap, monotone-enough proxy for token length when sorting.
        approx_tokens = [min(self.max_tokens, len(t) // 3 + 2) for t in clipped]
        for batch in token_capped(approx_tokens, self.max_batch_tokens, self.max_batch_items):
            preemption_point()  # live work waiting behind a job or a long document runs here (scheduling/)
            out[batch] = self._forward([clipped[i] for i in batch])
        return out

    @abstractmethod
    def _forward(self, texts: list[str]) -> np.ndarray:
        """One padded pass: a float32 array of unit vectors, one row per text."""

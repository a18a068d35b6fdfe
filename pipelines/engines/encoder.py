"""What every sentence encoder does around its forward pass: clip, sort by length, token-capped passes.

Forward passes are capped by tokens because one padded pass over every sentence of a long document
costs gigabytes (see BENTOML-NOTES, model-side traps). On 2 CPU cores, passes of ~2k padded tokens
ran 30-50% faster than ~8k ones (cache-sized work); on a GPU, raise SUMMARIZER_ENCODER_BATCH_TOKENS.
The runtimes (pipelines/engines/runtime.py) differ only in `_forward`: PyTorch in torch_encoder.py,
ONNX Runtime in onnx_encoder.py. This module imports neither, so importing it costs nothing.

Passes can run side by side (`parallel_passes`), each on one thread: a pass over one short sentence
is too small to split across threads well (int8 on 2 cores: 343 sentences/s as two single-threaded
passes at a time, 245 as one pass on two threads, docs/performance.md "Encoder runtimes").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipelines.engines.grouping import token_capped
from pipelines.scheduling.scheduler import preemption_point


class SentenceEncoder(ABC):
    """Unit-length sentence embeddings. Subclasses set `dim`, `device_type`, `runtime` and `max_tokens`."""

    dim: int
    device_type: str  # "cpu", "cuda" or "mps": how often the batcher should poll (service.py)
    runtime: str  # "torch", "onnx" or "onnx-int8"
    max_tokens: int

    # Passes handed to the pool between two preemption points: a few milliseconds of work each.
    PASSES_PER_WORKER = 4

    def __init__(
        self, *, max_batch_tokens: int = 2048, max_batch_items: int = 64, max_chars: int = 2000, parallel_passes: int = 1
    ) -> None:
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_items = max_batch_items
        # The tokenizer reads a whole string before truncating; a 50 MB "sentence" would stall
        # the worker, so cut long ones first (the encoder sees at most max_tokens anyway).
        self.max_chars = max_chars
        self.parallel_passes = parallel_passes
        self._pool = ThreadPoolExecutor(parallel_passes, thread_name_prefix="encoder-pass") if parallel_passes > 1 else None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        clipped = [t[: self.max_chars] for t in texts]
        # Character length is a cheap, monotone-enough proxy for token length when sorting.
        approx_tokens = [min(self.max_tokens, len(t) // 3 + 2) for t in clipped]
        batches = list(token_capped(approx_tokens, self.max_batch_tokens, self.max_batch_items))
        step = self.parallel_passes * self.PASSES_PER_WORKER if self._pool else 1
        for first in range(0, len(batches), step):
            preemption_point()  # live work waiting behind a job or a long document runs here (scheduling/)
            group = batches[first : first + step]
            texts_of = [[clipped[i] for i in batch] for batch in group]
            vectors = self._pool.map(self._forward, texts_of) if self._pool else map(self._forward, texts_of)
            for batch, rows in zip(group, vectors, strict=True):
                out[batch] = rows
        return out

    @abstractmethod
    def _forward(self, texts: list[str]) -> np.ndarray:
        """One padded pass: a float32 array of unit vectors, one row per text."""

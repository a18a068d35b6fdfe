"""The MiniLM sentence encoder: token-capped, length-sorted forward passes, mean pooling.

Plain AutoModel plus mean pooling gives the same vectors as sentence-transformers without
its download logic. Forward passes are capped by tokens because one padded pass over every
sentence of a long document costs gigabytes (see BENTOML-NOTES, model-side traps). On 2 CPU
cores, passes of ~2k padded tokens ran 30-50% faster than ~8k ones (cache-sized work); on a
GPU, raise SUMMARIZER_ENCODER_BATCH_TOKENS.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from pipelines.engines.device import select_device, select_dtype
from pipelines.engines.grouping import token_capped


class SentenceEncoder:
    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_tokens: int = 2048,
        max_batch_items: int = 64,
        max_chars: int = 2000,
    ) -> None:
        self.device = select_device(device)
        self.dtype = select_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, dtype=self.dtype)
        self.model.to(self.device).eval()
        self.max_tokens = min(int(self.tokenizer.model_max_length), 512)
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_items = max_batch_items
        # The tokenizer reads a whole string before truncating; a 50 MB "sentence" would stall
        # the worker, so cut long ones first (the encoder sees at most max_tokens anyway).
        self.max_chars = max_chars
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        clipped = [t[: self.max_chars] for t in texts]
        # Character length is a cheap, monotone-enough proxy for token length when sorting.
        approx_tokens = [min(self.max_tokens, len(t) // 3 + 2) for t in clipped]
        for batch in token_capped(approx_tokens, self.max_batch_tokens, self.max_batch_items):
            out[batch] = self._forward([clipped[i] for i in batch])
        return out

    def _forward(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
        return pooled.cpu().numpy()

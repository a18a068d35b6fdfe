"""The MiniLM sentence encoder in PyTorch: AutoModel plus mean pooling, on any device.

Plain AutoModel plus mean pooling gives the same vectors as sentence-transformers without its
download logic. The GPU runtime, and the reference the ONNX exports are checked against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from pipelines.engines.device import select_device, select_dtype
from pipelines.engines.encoder import SentenceEncoder


class TorchEncoder(SentenceEncoder):
    runtime = "torch"

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
        super().__init__(max_batch_tokens=max_batch_tokens, max_batch_items=max_batch_items, max_chars=max_chars)
        self.device = select_device(device)
        self.device_type = self.device.type
        self.dtype = select_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, dtype=self.dtype)
        self.model.to(self.device).eval()
        self.max_tokens = min(int(self.tokenizer.model_max_length), 512)
        self.dim = int(self.model.config.hidden_size)

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

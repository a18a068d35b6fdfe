"""Where the model runs and in which precision. CUDA with half precision when present, else CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Imported inside each function: the ONNX encoder path never loads torch (a second of cold start).


def select_device(requested: str = "auto") -> torch.device:
    """`auto` prefers CUDA, then Apple MPS, then CPU. An explicit device that is absent fails early."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device must be available, got {requested!r} but CUDA is not")
    return device


def select_dtype(requested: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on GPUs that support it (no fp16 overflow in long generations), else
    float16 on CUDA, float32 on CPU (half precision is slow or unsupported there)."""
    import torch

    if requested != "auto":
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def set_threads(threads: int) -> None:
    """Cap torch's intra-op threads (0 keeps its default). The entry worker's redaction shares the
    cores with the model worker, and oversubscribed OpenMP threads spin instead of working."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)

"""Which runtime runs the sentence encoder, and which stored model that runtime loads.

    torch       the imported MiniLM in PyTorch: any device; the reference the others are checked against
    onnx        the same weights exported to ONNX, run by ONNX Runtime on CPU (same vectors, ~1.3x)
    onnx-int8   that export with int8 weights (dynamic, per channel), ~3x, vectors within the gates

`auto` (the default) is PyTorch on a GPU and CPU_DEFAULT on CPU: the fastest runtime that passed
the quality gates in docs/performance.md ("Encoder runtimes"). An ONNX runtime loads a model of its
own, `<encoder name>-<runtime>:latest`, that `python -m models export-onnx` made from the encoder.
Imports nothing heavy: `service.py` reads this while it declares the models.
"""

from __future__ import annotations

from typing import Literal, get_args

from pipelines.errors import ConfigError

Runtime = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
ONNX_RUNTIMES: tuple[Runtime, ...] = ("onnx", "onnx-int8")
CPU_DEFAULT: Runtime = "onnx-int8"


def exported_name(encoder_ref: str, runtime: Runtime) -> str:
    """The model-store name of an ONNX export: `summarizer-encoder:latest` -> `summarizer-encoder-onnx-int8`."""
    return f"{encoder_ref.partition(':')[0]}-{runtime}"


def bundled_runtime(setting: str) -> Runtime | None:
    """The ONNX runtime whose model the model service declares (and a Bento ships) for a setting.

    `auto` ships the CPU default even when built on a GPU machine, so one Bento runs on either."""
    if setting == "auto":
        return CPU_DEFAULT
    return setting if setting in ONNX_RUNTIMES else None  # type: ignore[return-value]


def exported_ref(encoder_ref: str, setting: str) -> str | None:
    """The model reference the model service declares beside the encoder for a setting, if any."""
    runtime = bundled_runtime(setting)
    return f"{exported_name(encoder_ref, runtime)}:latest" if runtime else None


def choose_runtime(setting: str, device: str) -> Runtime:
    """The runtime to load for the `encoder_runtime` and `device` settings.

    `auto` asks torch whether a GPU is present only when `device` is `auto` as well. An ONNX runtime
    with a GPU device never gets here: Settings refuses it when the settings are read."""
    if setting == "auto":
        if device == "cpu":
            return CPU_DEFAULT
        if device == "auto":
            from pipelines.engines.device import select_device  # imports torch: only to look for a GPU

            return CPU_DEFAULT if select_device("auto").type == "cpu" else "torch"
        return "torch"
    if setting not in RUNTIMES:
        raise ConfigError(f"encoder_runtime must be auto, {', '.join(RUNTIMES)}; got {setting!r}")
    return setting  # type: ignore[return-value]  # Settings refuses an ONNX runtime on a GPU device

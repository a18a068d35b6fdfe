"""Which encoder runtime the settings pick, and the checks between an encoder and its export."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from models.refs import ResolvedModel
from pipelines.engines.factory import load_encoder
from pipelines.engines.runtime import CPU_DEFAULT, bundled_runtime, choose_runtime, exported_name, exported_ref
from pipelines.errors import ConfigError
from pipelines.settings import Settings


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [("auto", "cpu", CPU_DEFAULT), ("auto", "cuda", "torch"), ("auto", "mps", "torch"), ("torch", "cpu", "torch"),
     ("onnx", "cpu", "onnx"), ("onnx-int8", "auto", "onnx-int8")],
)  # fmt: skip
def test_choose_runtime(setting: str, device: str, expected: str) -> None:
    assert choose_runtime(setting, device) == expected


def test_auto_on_this_cpu_machine_is_the_cpu_default() -> None:
    import torch

    expected = CPU_DEFAULT if not torch.cuda.is_available() else "torch"
    assert choose_runtime("auto", "auto") == expected


def test_the_cpu_default_is_an_int8_export() -> None:
    # docs/performance.md ("Encoder runtimes") justifies this choice with measured gates.
    assert CPU_DEFAULT == "onnx-int8"


def test_export_names_follow_the_encoder_name() -> None:
    assert exported_name("summarizer-encoder:latest", "onnx-int8") == "summarizer-encoder-onnx-int8"
    assert exported_ref("my-encoder:abc", "onnx") == "my-encoder-onnx:latest"
    # auto ships the CPU default's export, so a Bento built anywhere runs on CPU; torch ships none.
    assert bundled_runtime("auto") == CPU_DEFAULT
    assert exported_ref("summarizer-encoder:latest", "torch") is None


def test_settings_refuse_an_onnx_runtime_on_a_gpu_and_unknown_runtimes() -> None:
    with pytest.raises(ValidationError, match="runs on CPU only"):
        Settings(encoder_runtime="onnx-int8", device="cuda")
    with pytest.raises(ValidationError, match="encoder_runtime"):
        Settings(encoder_runtime="tensorrt")  # type: ignore[arg-type]
    assert Settings(encoder_runtime="torch", device="cuda").encoder_runtime == "torch"


def _export(made_from: str, runtime: str = "onnx-int8") -> ResolvedModel:
    return ResolvedModel("summarizer-encoder-onnx-int8:v2", Path("/nonexistent"), {"made_from": made_from, "runtime": runtime})


def test_an_export_of_another_encoder_version_is_refused_with_the_command_that_fixes_it() -> None:
    encoder = ResolvedModel("summarizer-encoder:new", Path("/nonexistent"))
    with pytest.raises(ConfigError, match="export-onnx"):
        load_encoder(Settings(), "onnx-int8", encoder, lambda: _export("summarizer-encoder:old"))


def test_an_export_of_another_runtime_is_refused() -> None:
    encoder = ResolvedModel("summarizer-encoder:v1", Path("/nonexistent"))
    with pytest.raises(ConfigError, match="needs that runtime's export"):
        load_encoder(Settings(), "onnx-int8", encoder, lambda: _export("summarizer-encoder:v1", runtime="onnx"))
    with pytest.raises(ConfigError, match="got none"):
        load_encoder(Settings(), "onnx", encoder, lambda: None)

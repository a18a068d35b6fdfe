"""Build the configured engine from model folders. The model service calls this once, at start-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.engines.contract import Engine
from pipelines.engines.encoder import SentenceEncoder
from pipelines.engines.extractive import ExtractiveEngine
from pipelines.engines.runtime import Runtime
from pipelines.errors import ConfigError
from pipelines.settings import Settings

if TYPE_CHECKING:
    from models.refs import ResolvedModel


def build_encoder(settings: Settings, model_dir: Path, runtime: Runtime = "torch") -> SentenceEncoder:
    """`model_dir` is the imported encoder for `torch`, its export for an ONNX runtime. Each runtime's
    module is imported only here: the ONNX path never loads torch or transformers."""
    if runtime == "torch":
        from pipelines.engines.torch_encoder import TorchEncoder

        return TorchEncoder(
            model_dir,
            device=settings.device,
            dtype=settings.dtype,
            max_batch_tokens=settings.encoder_batch_tokens,
            max_chars=settings.max_sentence_chars,
        )
    from pipelines.engines.onnx_encoder import OnnxEncoder

    return OnnxEncoder(
        model_dir,
        runtime=runtime,
        threads=settings.torch_threads,
        max_batch_tokens=settings.encoder_batch_tokens,
        max_chars=settings.max_sentence_chars,
    )


def load_encoder(
    settings: Settings, runtime: Runtime, encoder: ResolvedModel, exported: Callable[[], ResolvedModel | None]
) -> tuple[str, SentenceEncoder]:
    """The encoder of `runtime`, and the tag of the model it runs (what a RAG index records: vectors
    of different runtimes never mix). `exported` resolves the ONNX export the service declared; it is
    called only for an ONNX runtime, so the torch path needs no export in the store."""
    if runtime == "torch":
        return encoder.tag, build_encoder(settings, encoder.path)
    export = exported()
    if export is None or export.metadata.get("runtime") != runtime:
        found = export.tag if export else "none"
        raise ConfigError(f"encoder_runtime {runtime!r} needs that runtime's export of {encoder.tag}, got {found}")
    if export.metadata.get("made_from") != encoder.tag:
        raise ConfigError(
            f"{export.tag} was exported from {export.metadata.get('made_from')}, but the encoder is {encoder.tag}: "
            "run `python -m models export-onnx` (or SUMMARIZER_ENCODER_RUNTIME=torch)"
        )
    return export.tag, build_encoder(settings, export.path, runtime)


def build_engine(
    settings: Settings,
    *,
    encoder: SentenceEncoder,
    encoder_tag: str,
    generator_dir: Path | None = None,
    generator_tag: str | None = None,
) -> Engine:
    """The engine `settings.engine` names. Abstractive needs the generator's folder and tag."""
    if settings.engine == "extractive":
        return ExtractiveEngine(encoder, encoder_tag)
    if generator_dir is None or generator_tag is None:
        raise ConfigError("engine 'abstractive' must be given a generator model folder and tag, got none")
    from pipelines.engines.abstractive import AbstractiveEngine  # keeps generation code off the default path

    return AbstractiveEngine(
        generator_dir,
        generator_tag,
        device=settings.device,
        dtype=settings.dtype,
        max_batch_tokens=settings.max_batch_tokens,
        max_batch_items=settings.max_batch_size,
        max_reduce_rounds=settings.max_reduce_rounds,
    )

"""Build the configured engine from model folders. The model service calls this once, at start-up."""

from __future__ import annotations

from pathlib import Path

from pipelines.engines.contract import Engine
from pipelines.engines.encoder import SentenceEncoder
from pipelines.engines.extractive import ExtractiveEngine
from pipelines.errors import ConfigError
from pipelines.settings import Settings


def build_encoder(settings: Settings, model_dir: Path) -> SentenceEncoder:
    return SentenceEncoder(
        model_dir,
        device=settings.device,
        dtype=settings.dtype,
        max_batch_tokens=settings.encoder_batch_tokens,
        max_chars=settings.max_sentence_chars,
    )


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

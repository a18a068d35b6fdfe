"""The whole service in one process, for work that needs no server: the `summarize-batch` CLI
without --url, Ray Data actors, the RAG CLI and benchmarks.

It loads the same models from the same BentoML model store and builds the same input pipeline,
styles and engine as the services, so a document gets the same summary on either path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pipelines.batch.core import BatchDocument, BatchResult, DocumentPreparer, PreparedDocument, assemble
from pipelines.engines.contract import Engine, ItemOutcome, SummaryItem, summarize_isolated
from pipelines.engines.encoder import SentenceEncoder
from pipelines.settings import Settings, get_settings
from pipelines.styles import StyleRegistry
from pipelines.text.prepare import InputPipeline


def load_encoder(settings: Settings) -> tuple[str, SentenceEncoder]:
    """The encoder the model service would load, by the same model-store lookup: (tag, encoder)."""
    import bentoml  # heavy imports only when a model is really loaded

    from models.refs import resolve
    from pipelines.engines import factory
    from pipelines.engines.runtime import choose_runtime, exported_ref

    ref = exported_ref(settings.encoder_model, settings.encoder_runtime)
    return factory.load_encoder(
        settings,
        choose_runtime(settings.encoder_runtime, settings.device),
        resolve(bentoml.models.BentoModel(settings.encoder_model)),
        lambda: resolve(bentoml.models.BentoModel(ref)) if ref else None,
    )


def input_pipeline(settings: Settings) -> InputPipeline:
    """Normalization and redaction as the entry service configures them, NER model included."""
    ner_dir = None
    if settings.ner_model:
        import bentoml

        from models.refs import resolve

        ner_dir = resolve(bentoml.models.BentoModel(settings.ner_model)).path
    return InputPipeline.from_settings(settings, ner_dir)


def load_engine(settings: Settings) -> Engine:
    import bentoml

    from models.refs import resolve
    from pipelines.engines.factory import build_engine

    encoder_tag, encoder = load_encoder(settings)
    generator = resolve(bentoml.models.BentoModel(settings.abstractive_model)) if settings.engine == "abstractive" else None
    return build_engine(
        settings,
        encoder=encoder,
        encoder_tag=encoder_tag,
        generator_dir=generator.path if generator else None,
        generator_tag=generator.tag if generator else None,
    )


class LocalPipeline:
    """Prepare and summarize documents in this process; `run` is the whole batch, synchronously."""

    def __init__(self, settings: Settings | None = None, engine: Engine | None = None) -> None:
        self.settings = settings or get_settings()
        styles = StyleRegistry.load(self.settings.styles_file, self.settings.default_style)
        self.preparer = DocumentPreparer(input_pipeline(self.settings), styles)
        self.engine = engine or load_engine(self.settings)

    def run(self, docs: Sequence[BatchDocument], default_style: str | None = None) -> list[BatchResult]:
        prepared = self.preparer.prepare_all(docs, default_style)
        items = [p.item for p in prepared if isinstance(p, PreparedDocument)]
        outcomes = summarize_isolated(self.engine, items) if items else []
        return assemble(prepared, docs, outcomes)

    async def summarize(self, items: list[SummaryItem]) -> list[ItemOutcome]:
        """The model step as `summarize_documents` expects it, off the event loop."""
        return await asyncio.to_thread(summarize_isolated, self.engine, items)

"""What every route does to submitted text before a model, an index or a file sees it:
limits, then normalize, then redact. One place, so no route can skip a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import BadInput, InputTooLarge
from pipelines.observe.metrics import INPUT_CHARS, REDACTIONS
from pipelines.observe.stages import stage
from pipelines.settings import Settings
from pipelines.text.normalize import Format, NormalizeConfig, normalize
from pipelines.text.redaction_config import RedactionConfig, check_config

if TYPE_CHECKING:
    from pipelines.text.redact import Redactor


@dataclass(frozen=True)
class PreparedText:
    text: str  # normalized and redacted: the only form that travels further
    format: str  # "text" or "html", as detected or given
    removed: dict[str, int]  # what normalization dropped, as counts
    redactions: dict[str, int]  # entity type -> count


class InputPipeline:
    def __init__(self, normalize_config: NormalizeConfig, redactor: Redactor, max_input_chars: int, max_html_chars: int) -> None:
        self.normalize_config = normalize_config
        self.redactor = redactor
        self.max_input_chars = max_input_chars
        self.max_html_chars = max_html_chars

    @classmethod
    def from_settings(cls, settings: Settings, ner_model_dir: Path | None = None) -> InputPipeline:
        normalize_config, redaction_config = cls.check_settings(settings)
        from pipelines.text.redact import Redactor  # Presidio and spaCy: seconds to import, only where text is redacted

        extra, spacy_folder = [], None
        if ner_model_dir is not None and settings.redact:
            from pipelines.text.ner import TransformersNerRecognizer, is_spacy_pipeline

            if is_spacy_pipeline(ner_model_dir):
                spacy_folder = ner_model_dir  # the default: Presidio's NLP engine runs it
            else:  # a token-classification model: transformers is loaded only for this
                extra.append(TransformersNerRecognizer(ner_model_dir))
        redactor = Redactor.build(redaction_config, extra=extra, ner_folder=spacy_folder)
        return cls(normalize_config, redactor, settings.max_input_chars, settings.max_html_chars)

    @staticmethod
    def check_settings(settings: Settings) -> tuple[NormalizeConfig, RedactionConfig]:
        """Cheap validation of the normalize and redact settings, for start-up (raises ValueError)."""
        normalize_config = NormalizeConfig.build(
            strip_quoted_replies=settings.strip_quoted_replies,
            strip_signatures=settings.strip_signatures,
            strip_footers=settings.strip_footers,
            extra_footer_patterns=settings.footer_patterns,
            max_html_chars=settings.max_html_chars,
            max_html_tags=settings.max_html_tags,
        )
        redaction_config = RedactionConfig(
            enabled=settings.redact,
            entities=tuple(settings.redact_entities),
            patterns=dict(settings.redact_patterns),
            phone_regions=tuple(settings.redact_phone_regions),
            score_threshold=settings.redact_score_threshold,
            ner_entities=tuple(settings.redact_ner_entities),
        )
        check_config(redaction_config)
        return normalize_config, redaction_config

    def prepare(self, text: str, fmt: Format = "auto") -> PreparedText:
        """Clean, redacted text, or BadInput (empty) / InputTooLarge (over a limit)."""
        if not text.strip():
            raise BadInput('text is empty; send {"text": "..."} with the document to summarize')
        raw_limit = self.max_input_chars if fmt == "text" else max(self.max_input_chars, self.max_html_chars)
        if len(text) > raw_limit:
            raise InputTooLarge(self._too_large(len(text), raw_limit))
        INPUT_CHARS.observe(len(text))
        with stage("normalize"):
            normalized = normalize(text, fmt, self.normalize_config)
        if len(normalized.text) > self.max_input_chars:
            raise InputTooLarge(self._too_large(len(normalized.text), self.max_input_chars, after="after normalization "))
        if not normalized.text.strip():
            raise BadInput(f"text is empty after normalization (format {normalized.format}); nothing to summarize")
        with stage("redact") as span:
            redacted = self.redactor.redact(normalized.text)
            span.set_attribute("summarizer.redactions", sum(redacted.counts.values()))
        for entity, count in redacted.counts.items():
            REDACTIONS.labels(entity=entity).inc(count)
        return PreparedText(redacted.text, normalized.format, normalized.removed, redacted.counts)

    @staticmethod
    def _too_large(size: int, limit: int, after: str = "") -> str:
        return (
            f"text is {size} characters {after}; the limit is {limit} "
            "(SUMMARIZER_MAX_INPUT_CHARS, SUMMARIZER_MAX_HTML_CHARS); split the document or use the batch job"
        )

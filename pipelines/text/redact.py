"""PII redaction with Presidio, fully offline: pattern and checksum recognizers, and names,
places and organizations from spaCy's small English NER pipeline in the model store.

Presidio's default set-up downloads a spaCy model on first use, and its e-mail recognizer asks
tldextract, which fetches the public suffix list over the network. Here the NLP engine is the NER
pipeline loaded from a folder (`ner_folder`; only its tokenizer, tok2vec and ner run), or a blank
spaCy tokenizer when there is none; e-mail top-level domains are not checked (nothing to fetch);
and the entity list is explicit (Presidio's defaults mislabel phone numbers as other entities).

    redactor = Redactor.build(RedactionConfig(), ner_folder=Path(".../summarizer-ner"))
    result = redactor.redact("Mail Anna Berg at anna@example.com")
    # "Mail <PERSON> at <EMAIL_ADDRESS>", {"EMAIL_ADDRESS": 1, "PERSON": 1}
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)
from presidio_anonymizer import AnonymizerEngine

from pipelines.settings import DEFAULT_PHONE_REGIONS
from pipelines.settings import REDACTABLE_ENTITIES as BUILTIN_ENTITIES

_ENTITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")


# When two entity types claim overlapping text (a US SSN also parses as a phone number), the
# checksum- or structure-validated type wins over the phone number's looser match.
_PRIORITY = {"CREDIT_CARD": 0, "IBAN_CODE": 0, "EMAIL_ADDRESS": 1, "US_SSN": 2, "IP_ADDRESS": 2, "PHONE_NUMBER": 9}


class _CardRecognizer(CreditCardRecognizer):
    """Presidio's card patterns miss Mastercard's 2221-2720 range; the Luhn check stays."""

    PATTERNS = [
        Pattern(p.name, p.regex.replace(r"((4\d{3})|", r"((4\d{3})|(2[2-7]\d{2})|", 1), p.score)
        for p in CreditCardRecognizer.PATTERNS
    ]


# Presidio's patterns can cost time quadratic in the text on adversarial input (`1.2.` repeated:
# 48 s for 100k characters, in the IP recognizer). Analyzing fixed windows makes the cost linear.
# Windows overlap by more than any entity is long, so every entity lies whole in some window;
# a match touching an inner window edge may be cut short there and is left to the neighbour.
WINDOW_CHARS = 2_000
WINDOW_OVERLAP = 500


def windows(length: int, size: int = WINDOW_CHARS, overlap: int = WINDOW_OVERLAP) -> list[tuple[int, int]]:
    """(start, end) of each window over a text of `length` characters."""
    if length <= size + overlap:
        return [(0, length)]
    return [(start, min(length, start + size + overlap)) for start in range(0, length - overlap, size)]


_MIN_PHONE_DIGITS = 7  # fewer is an order number or a postcode, whatever a region's dial plan allows
_MAX_PHONE_DIGITS = 15  # E.164


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


class _PhoneRecognizer(PhoneRecognizer):
    """libphonenumber's matcher (numbers valid for a region), minus short numbers."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        found = super().analyze(text, entities, nlp_artifacts)
        return [f for f in found if _digits(text[f.start : f.end]) >= _MIN_PHONE_DIGITS]


class _PhoneFormatRecognizer(PatternRecognizer):
    """Numbers written the way phones are, even when not valid for a region (made-up, new or
    foreign ranges): an international "+" prefix, "001", or the (555) 555-5555 grouping."""

    PATTERNS = [
        Pattern("international", r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(0\))?[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){1,4}(?![\w-])", 0.4),
        Pattern("us-001", r"(?<![\w-])001[ .-]\d{3}[ .-]\d{3}[ .-]\d{4}(?![\w-])", 0.4),
        Pattern("nanp", r"(?<![\w-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w-])", 0.4),
    ]

    def __init__(self) -> None:
        super().__init__(supported_entity="PHONE_NUMBER", patterns=self.PATTERNS, name="PhoneFormatRecognizer")

    def validate_result(self, pattern_text: str) -> bool:
        return _MIN_PHONE_DIGITS <= _digits(pattern_text) <= _MAX_PHONE_DIGITS


class _EmailRecognizer(EmailRecognizer):
    """Presidio's pattern, without its top-level-domain check: that check fetches the public
    suffix list over the network, and it would let `anna@corp.internal` through unredacted."""

    def validate_result(self, pattern_text: str) -> None:
        return None


class _SsnRecognizer(UsSsnRecognizer):
    """Presidio's SSN patterns, without its list of published sample numbers (123-45-6789,
    078-05-1120, ...): a number in an SSN's place is redacted, whatever it is. A bare 9-digit
    number stays below the threshold unless an SSN context word ("SSN", "social security") is
    near it, so invoice and order numbers are left alone."""

    def invalidate_result(self, pattern_text: str) -> bool:
        delimiters = {c for c in pattern_text if c in ".- "}
        return len(delimiters) > 1  # 536-22 8741: mixed separators are not one number


# spaCy's labels -> Presidio's entities; the rest (dates, money, NORP, ...) are not redacted.
NER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION"}
NER_ENTITIES = ("PERSON", "LOCATION", "ORGANIZATION")
# The only components redaction needs: the rest (tagger, parser, lemmatizer, ...) cost time.
_NER_COMPONENTS = ("tok2vec", "ner")


class _NerRecognizer(SpacyRecognizer):
    """spaCy's entities, minus the names of PII fields themselves: the small model tags an
    all-caps "SSN" or "IBAN" before a number as an organization."""

    FIELD_NAMES = frozenset({"SSN", "SSNS", "IBAN", "BIC", "SWIFT", "ID", "DOB", "PIN", "VAT", "TIN", "EIN", "IP", "CVV", "CVC"})

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        found = super().analyze(text, entities, nlp_artifacts)
        return [f for f in found if text[f.start : f.end].strip(" .:#").upper() not in self.FIELD_NAMES]


class _SpacyEngine(SpacyNlpEngine):
    """Presidio's NLP engine over a local spaCy folder (never a download), or a blank tokenizer.

    Lemmas are the lower-cased words: no lemmatizer runs, and Presidio matches context words
    ("ssn" before a number) against lemmas, which would otherwise all be empty.
    """

    def __init__(self, folder: Path | None) -> None:
        ignored = ["CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "PERCENT",
                   "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"]  # fmt: skip
        super().__init__(
            models=[{"lang_code": "en", "model_name": str(folder or "blank")}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(NER_LABELS), labels_to_ignore=ignored, low_score_entity_names=[]
            ),
        )
        self.folder = folder

    def load(self) -> None:
        if self.folder is None:
            nlp = spacy.blank("en")
        else:
            names = spacy.util.load_meta(self.folder / "meta.json").get("pipeline", [])
            nlp = spacy.load(self.folder, exclude=[n for n in names if n not in _NER_COMPONENTS])
        self.nlp = {"en": nlp}  # type: ignore[assignment]  # Presidio types it as None

    def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
        artifacts: NlpArtifacts = super()._doc_to_nlp_artifact(doc, language)
        artifacts.lemmas = [token.lower_ for token in doc]
        artifacts.keywords = artifacts.set_keywords(self, artifacts.lemmas, language)  # made from the lemmas
        return artifacts


@dataclass(frozen=True)
class RedactionConfig:
    enabled: bool = True
    entities: tuple[str, ...] = BUILTIN_ENTITIES
    patterns: Mapping[str, str] = field(default_factory=dict)  # custom entity -> regex
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    score_threshold: float = 0.3
    ner_entities: tuple[str, ...] = ("PERSON", "LOCATION", "ORGANIZATION")  # what an NER model may redact


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int


@dataclass(frozen=True)
class Redacted:
    text: str
    counts: dict[str, int]  # entity type -> how many were replaced; never the values


def _builtin_recognizers(config: RedactionConfig) -> dict[str, list[EntityRecognizer]]:
    return {
        "EMAIL_ADDRESS": [_EmailRecognizer()],
        "PHONE_NUMBER": [_PhoneRecognizer(supported_regions=list(config.phone_regions)), _PhoneFormatRecognizer()],
        "CREDIT_CARD": [_CardRecognizer()],  # Luhn-checked
        "IBAN_CODE": [IbanRecognizer()],  # mod-97 checked
        "US_SSN": [_SsnRecognizer()],
        "IP_ADDRESS": [IpRecognizer()],
    }


def check_config(config: RedactionConfig) -> None:
    """Bad configuration fails at start-up, naming the setting."""
    unknown = [e for e in config.entities if e not in BUILTIN_ENTITIES and e not in config.patterns]
    if unknown:
        raise ValueError(
            f"redact_entities must be among {', '.join(BUILTIN_ENTITIES)} or a redact_patterns name, got {unknown}"
        )
    for name, regex in config.patterns.items():
        if not _ENTITY_NAME.match(name):
            raise ValueError(f"redact_patterns names must match {_ENTITY_NAME.pattern}, got {name!r}")
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"redact_patterns[{name!r}] must be a valid regex, got {regex!r}: {exc}") from None


def _resolve_overlaps(found: Sequence[Any]) -> list[Any]:
    """Keep one entity per stretch of text: higher score first, then the more specific type.

    Kept spans never overlap, so their starts and ends sort alike and a candidate need only be
    checked against its two neighbours: n log n, where checking all kept spans was quadratic
    (12,500 IP matches in 100k characters of `1.2.` took ~40 s).
    """
    ranked = sorted(found, key=lambda f: (-f.score, _PRIORITY.get(f.entity_type, 5), f.start - f.end))
    starts: list[int] = []
    kept: list[Any] = []
    for candidate in ranked:
        at = bisect.bisect_left(starts, candidate.start)
        if at > 0 and kept[at - 1].end > candidate.start:
            continue
        if at < len(kept) and kept[at].start < candidate.end:
            continue
        starts.insert(at, candidate.start)
        kept.insert(at, candidate)
    return kept


class Redactor:
    """Replaces PII with `<ENTITY_TYPE>` placeholders and counts what it replaced."""

    def __init__(self, analyzer: AnalyzerEngine | None, entities: Sequence[str], score_threshold: float) -> None:
        self._analyzer = analyzer
        self._anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
        self.entities = list(entities)
        self.score_threshold = score_threshold

    @classmethod
    def build(
        cls, config: RedactionConfig, extra: Sequence[EntityRecognizer] = (), ner_folder: Path | None = None
    ) -> Redactor:
        """`ner_folder`: a spaCy pipeline with an NER component; its PERSON, LOCATION and
        ORGANIZATION (those of `config.ner_entities`) are redacted. `extra`: more recognizers
        (a token-classification model, pipelines/text/ner.py)."""
        check_config(config)
        if not config.enabled:
            return cls(None, [], config.score_threshold)
        builtin = _builtin_recognizers(config)
        registry = RecognizerRegistry(supported_languages=["en"])
        for name in config.entities:
            for recognizer in builtin.get(name, []):
                registry.add_recognizer(recognizer)
        for name, regex in config.patterns.items():
            registry.add_recognizer(PatternRecognizer(supported_entity=name, patterns=[Pattern(name, regex, 0.9)]))
        entities = list(dict.fromkeys([*config.entities, *config.patterns]))
        for recognizer in extra:
            registry.add_recognizer(recognizer)
            entities += [e for e in recognizer.supported_entities if e not in entities]
        ner = [e for e in NER_ENTITIES if e in config.ner_entities] if ner_folder is not None else []
        if ner:
            registry.add_recognizer(_NerRecognizer(supported_entities=ner, name="SpacyNer"))
            entities += [e for e in ner if e not in entities]
        nlp_engine = _SpacyEngine(ner_folder if ner else None)
        nlp_engine.load()
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
        return cls(analyzer, entities, config.score_threshold)

    @property
    def enabled(self) -> bool:
        return self._analyzer is not None

    def find(self, text: str) -> list[Span]:
        """Where the PII is, overlaps resolved as the anonymizer will; for evaluation and tests."""
        return [Span(f.entity_type, f.start, f.end) for f in self._analyze(text)]

    def _analyze(self, text: str) -> list[Any]:
        if self._analyzer is None or not text:
            return []
        found = []
        for start, end in windows(len(text)):
            for match in self._analyzer.analyze(
                text=text[start:end], language="en", entities=self.entities, score_threshold=self.score_threshold
            ):
                if (start > 0 and match.start == 0) or (end < len(text) and match.end == end - start):
                    continue  # possibly cut by the window edge: the overlapping window has it whole
                match.start += start
                match.end += start
                found.append(match)
        return _resolve_overlaps(found)

    def redact(self, text: str) -> Redacted:
        found = self._analyze(text)
        if not found:
            return Redacted(text, {})
        result: Any = self._anonymizer.anonymize(text=text, analyzer_results=found)  # type: ignore[arg-type]
        counts = Counter(item.entity_type for item in result.items)
        return Redacted(result.text, dict(sorted(counts.items())))

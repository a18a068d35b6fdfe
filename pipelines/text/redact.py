"""PII redaction with Presidio, fully offline: pattern and checksum recognizers, no spaCy model.

Presidio's default set-up downloads a spaCy model on first use, and its e-mail recognizer asks
tldextract, which fetches the public suffix list over the network. Here the NLP engine is a
blank spaCy tokenizer (the recognizers we use need no NER), e-mail top-level domains are not
checked (nothing to fetch), and the entity list is explicit (Presidio's defaults mislabel
phone numbers as other entities).

    redactor = Redactor.build(RedactionConfig())
    result = redactor.redact("Mail anna@example.com")   # "Mail <EMAIL_ADDRESS>", {"EMAIL_ADDRESS": 1}
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import spacy
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, Pattern, PatternRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
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


class _BlankSpacyEngine(SpacyNlpEngine):
    """Tokens only: enough for Presidio's context words, and nothing to download."""

    def load(self) -> None:
        self.nlp = {"en": spacy.blank("en")}  # type: ignore[assignment]  # Presidio types it as None


@dataclass(frozen=True)
class RedactionConfig:
    enabled: bool = True
    entities: tuple[str, ...] = BUILTIN_ENTITIES
    patterns: Mapping[str, str] = field(default_factory=dict)  # custom entity -> regex
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    score_threshold: float = 0.3


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
        "US_SSN": [UsSsnRecognizer()],
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
    def build(cls, config: RedactionConfig, extra: Sequence[EntityRecognizer] = ()) -> Redactor:
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
        nlp_engine = _BlankSpacyEngine()
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

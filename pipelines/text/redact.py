"""PII redaction with Presidio, fully offline: pattern and checksum recognizers, and names,
places and organizations from spaCy's small English NER pipeline in the model store.

Presidio's default set-up downloads a spaCy model on first use, and its e-mail recognizer asks
tldextract, which fetches the public suffix list over the network. Here the NLP engine is the NER
pipeline loaded from a folder (`ner_folder`; only its tokenizer and ner component run), or a blank
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import spacy
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)
from presidio_anonymizer import AnonymizerEngine
from thinc.api import NumpyOps

from pipelines.text.ner import NAME_CONTEXT_SCORE, NameContextRecognizer
from pipelines.text.redaction_config import Redacted, RedactionConfig, Span, check_config

__all__ = ["Redacted", "RedactionConfig", "Redactor", "Span", "check_config", "windows"]


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


_PHONE_WORDS = re.compile(r"phone|\btel\b|call|mobile|cell|fax|\bring|whatsapp|\btext|dial", re.IGNORECASE)
_PHONE_CONTEXT_CHARS = 48


def _bare_nine_digits(text: str, match: Any) -> bool:
    """A run of exactly nine digits with no phone word just before it: in a bill, a form or next to
    "SSN" such a run is an account, invoice or social security number, not a phone number."""
    value = text[match.start : match.end]
    before = max(0, match.start - _PHONE_CONTEXT_CHARS)
    return value.isdigit() and len(value) == 9 and not _PHONE_WORDS.search(text, before, match.start)


class _PhoneRecognizer(PhoneRecognizer):
    """libphonenumber's matcher (numbers valid for a region), minus short numbers and bare
    nine-digit runs without a phone word before them."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        found = super().analyze(text, entities, nlp_artifacts)
        return [f for f in found if _digits(text[f.start : f.end]) >= _MIN_PHONE_DIGITS and not _bare_nine_digits(text, f)]


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
# The only component redaction needs. In the small English pipeline `ner` has a tok2vec of its own;
# the shared `tok2vec` component feeds only the tagger and parser (same entities without it, 30% faster).
_NER_COMPONENTS = ("ner",)


class _SpacyNer:
    """spaCy's NER over the whole document in one pass (only its `ner` component runs).

    Not a Presidio recognizer on purpose: Presidio would run the model once per analysis window,
    and the windows overlap; the patterns need the windows, the model does not.
    """

    # The names of PII fields themselves: the small model tags an all-caps "SSN" or "IBAN" before
    # a number as an organization.
    FIELD_NAMES = frozenset({"SSN", "SSNS", "IBAN", "BIC", "SWIFT", "ID", "DOB", "PIN", "VAT", "TIN", "EIN", "IP", "CVV", "CVC"})
    SCORE = 0.85  # spaCy gives no confidence; Presidio's default for it
    CHUNK_CHARS = 100_000  # spaCy's memory grows with the document: longer texts go in pieces

    def __init__(self, folder: Path, entities: Sequence[str]) -> None:
        names = spacy.util.load_meta(folder / "meta.json").get("pipeline", [])
        self.nlp = spacy.load(folder, exclude=[n for n in names if n not in _NER_COMPONENTS])
        # thinc multiplies through cython-blis by default; numpy's OpenBLAS picks this CPU's AVX-512
        # kernels: the same entities, 36 against 50 ms per ~600-word article here (one thread).
        ops = NumpyOps(use_blis=False)
        models: list[Any] = [getattr(component, "model", None) for _, component in self.nlp.pipeline]
        for node in (node for model in models if model is not None for node in model.walk()):
            node.ops = ops
        self.entities = frozenset(entities)

    def find(self, text: str) -> list[RecognizerResult]:
        found = []
        for offset in range(0, len(text), self.CHUNK_CHARS):
            for ent in self.nlp(text[offset : offset + self.CHUNK_CHARS]).ents:
                entity = NER_LABELS.get(ent.label_)
                if entity in self.entities and not self._noise(ent.text):
                    found.append(RecognizerResult(entity, offset + ent.start_char, offset + ent.end_char, self.SCORE))
        return found

    def _noise(self, span: str) -> bool:
        """What the small model tags that is not a name: PII field names ("SSN"), one all-caps word
        (a bill's "SEC.", "TITLE", "MIN"; also acronyms like "IBM": a company's initials rarely
        identify a person), and pieces glued by a bill's "--" ("Definitions.--For")."""
        word = span.strip(" .:#")
        return word.upper() in self.FIELD_NAMES or (word.isupper() and " " not in word) or "--" in span


class _BlankSpacyEngine(SpacyNlpEngine):
    """Tokens only, for the patterns' context words; nothing to download.

    Lemmas are the lower-cased words: there is no lemmatizer, and Presidio matches context words
    ("ssn" before a number) against lemmas, which would otherwise all be empty.
    """

    def load(self) -> None:
        self.nlp = {"en": spacy.blank("en")}  # type: ignore[assignment]  # Presidio types it as None

    def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
        artifacts: NlpArtifacts = super()._doc_to_nlp_artifact(doc, language)
        artifacts.lemmas = [token.lower_ for token in doc]
        artifacts.keywords = artifacts.set_keywords(self, artifacts.lemmas, language)  # made from the lemmas
        return artifacts


def _builtin_recognizers(config: RedactionConfig) -> dict[str, list[EntityRecognizer]]:
    return {
        "EMAIL_ADDRESS": [_EmailRecognizer()],
        "PHONE_NUMBER": [_PhoneRecognizer(supported_regions=list(config.phone_regions)), _PhoneFormatRecognizer()],
        "CREDIT_CARD": [_CardRecognizer()],  # Luhn-checked
        "IBAN_CODE": [IbanRecognizer()],  # mod-97 checked
        "US_SSN": [_SsnRecognizer()],
        "IP_ADDRESS": [IpRecognizer()],
    }


def _resolve_overlaps(found: Sequence[Any]) -> list[Any]:
    """Keep one entity per stretch of text: patterns before NER, higher score first, then the
    more specific type.

    Kept spans never overlap, so their starts and ends sort alike and a candidate need only be
    checked against its two neighbours: n log n, where checking all kept spans was quadratic
    (12,500 IP matches in 100k characters of `1.2.` took ~40 s).
    """
    # A pattern's exact span beats a statistical guess that overlaps it: spaCy tags pieces of
    # e-mail addresses as people or organizations with a fixed 0.85, above the e-mail pattern's 0.5.
    ranked = sorted(found, key=lambda f: (f.entity_type in NER_ENTITIES, -f.score, _PRIORITY.get(f.entity_type, 5), f.start - f.end))
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


_CAPITALIZED = re.compile(r"(?<![\w'’-])[A-Z][\w'’-]{2,}")
_TITLES = frozenset("mr mrs ms miss mx dr prof sir dame lord lady judge justice rev fr sr jr st".split())


def _name_words(text: str, found: Sequence[Any]) -> set[str]:
    """The words of every full name found (two words or more), and of names found by where they
    stand (a dialogue's speakers): a name seen once is a name everywhere in the document, where
    the model missed it ("Hi Amara," after "From: Amara Raman", "see you then Maya!")."""
    words: set[str] = set()
    for f in found:
        if f.entity_type == "PERSON":
            parts = _CAPITALIZED.findall(text, f.start, f.end)
            if len(parts) >= 2 or f.score >= NAME_CONTEXT_SCORE:  # a full name, or one found by where it stands
                words.update(w for w in parts if w.lower().rstrip(".") not in _TITLES)
    return words


def _propagate_names(text: str, found: list[Any]) -> list[Any]:
    words = _name_words(text, found)
    if not words:
        return found
    # One pass over the capitalized words, each looked up in a set: linear however many names.
    extra = [RecognizerResult("PERSON", m.start(), m.end(), 0.6) for m in _CAPITALIZED.finditer(text) if m.group() in words]
    return _resolve_overlaps([*found, *extra])


_GIVEN_NAME_BEFORE = re.compile(r"(?:^|[a-z,;]\s+)([A-Z][a-z'’-]{2,})[ \t]+$")
_NOT_GIVEN_NAMES = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july august "
    "september october november december the this that".split()
)


def _join_names(text: str, found: list[Any]) -> list[Any]:
    """One placeholder for one name: PERSON spans apart by spaces only become one span
    ("<PERSON> <PERSON>" for a first name and a surname found separately reads as two people),
    and a capitalized word just before a name, after a lower-case word, is taken as its given
    name (the small model often tags "Lindqvist" in "according to Anneliese Lindqvist")."""
    previous_end = 0
    for f in found:
        before = _GIVEN_NAME_BEFORE.search(text, max(previous_end, f.start - 40), f.start) if f.entity_type == "PERSON" else None
        if before is not None and before.group(1).lower() not in _NOT_GIVEN_NAMES | _TITLES:
            f.start = before.start(1)
        previous_end = f.end
    joined: list[Any] = []
    for f in found:
        last = joined[-1] if joined else None
        if last is not None and last.entity_type == f.entity_type == "PERSON" and not text[last.end : f.start].strip(" \t"):
            last.end = f.end
            continue
        joined.append(f)
    return joined


class Redactor:
    """Replaces PII with `<ENTITY_TYPE>` placeholders and counts what it replaced."""

    def __init__(
        self, analyzer: AnalyzerEngine | None, entities: Sequence[str], score_threshold: float, ner: _SpacyNer | None = None
    ) -> None:
        self._analyzer = analyzer
        self._ner = ner
        # Presidio is asked only for what its own recognizers find (it logs a warning per call for
        # an entity none of them supports); the NER model's entities come from `ner`.
        supported = set(analyzer.registry.get_supported_entities(["en"])) if analyzer is not None else set()
        self._analyzer_entities = [e for e in entities if e in supported]
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
        ner_entities = [e for e in NER_ENTITIES if e in config.ner_entities] if ner_folder is not None else []
        entities += [e for e in ner_entities if e not in entities]
        if "PERSON" in entities:  # with any NER model: names where headers, greetings and turns put them
            registry.add_recognizer(NameContextRecognizer())
        nlp_engine = _BlankSpacyEngine()
        nlp_engine.load()
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
        ner = _SpacyNer(ner_folder, ner_entities) if ner_folder is not None and ner_entities else None
        return cls(analyzer, entities, config.score_threshold, ner)

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
                text=text[start:end], language="en", entities=self._analyzer_entities, score_threshold=self.score_threshold
            ):
                if (start > 0 and match.start == 0) or (end < len(text) and match.end == end - start):
                    continue  # possibly cut by the window edge: the overlapping window has it whole
                match.start += start
                match.end += start
                found.append(match)
        if self._ner is not None:
            found += self._ner.find(text)
        return _join_names(text, _propagate_names(text, _resolve_overlaps(found)))

    def redact(self, text: str) -> Redacted:
        found = self._analyze(text)
        if not found:
            return Redacted(text, {})
        result: Any = self._anonymizer.anonymize(text=text, analyzer_results=found)  # type: ignore[arg-type]
        counts = Counter(item.entity_type for item in result.items)
        return Redacted(result.text, dict(sorted(counts.items())))

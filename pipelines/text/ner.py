"""Names and places for redaction: which kind of NER model a store folder holds, and the
recognizer for a token-classification model.

The default (`summarizer-ner`) is spaCy's small English pipeline, which Presidio's NLP engine runs
itself (pipelines/text/redact.py). A deployment that imports a token-classification model (e.g. a
BERT fine-tuned on CoNLL-03) and names it in SUMMARIZER_REDACT_NER_MODEL gets it instead, through
`TransformersNerRecognizer`. Runs where redaction runs (the entry service), on the CPU.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

from models.folder import is_spacy_pipeline  # the model store's own test of a spaCy folder

__all__ = ["NAME_CONTEXT_SCORE", "NameContextRecognizer", "TransformersNerRecognizer", "is_spacy_pipeline", "windows"]

# CoNLL-style labels to Presidio's entity names; other labels (MISC, DATE, ...) are not PII here.
LABELS = {"PER": "PERSON", "PERSON": "PERSON", "LOC": "LOCATION", "GPE": "LOCATION", "ORG": "ORGANIZATION"}
# The tokenizer reads at most 512 tokens; windows of this many characters stay under that.
WINDOW_CHARS = 1500


def _entity_group(label: str) -> str | None:
    return LABELS.get(label.split("-", 1)[-1].upper())


def windows(text: str, size: int = WINDOW_CHARS) -> list[tuple[int, str]]:
    """(offset, piece) covering all of `text`, cut at whitespace so no word is split."""
    pieces: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        pieces.append((start, text[start:end]))
        start = end
    return pieces


class TransformersNerRecognizer(EntityRecognizer):  # type: ignore[misc]
    def __init__(self, model_dir: Path, min_score: float = 0.5) -> None:
        from transformers import pipeline  # seconds to import: only for this kind of model

        self._pipe: Any = pipeline("token-classification", model=str(model_dir), aggregation_strategy="simple", device="cpu")
        labels = (self._pipe.model.config.id2label or {}).values()
        supported = sorted({group for label in labels if (group := _entity_group(str(label)))})
        if not supported:
            raise ValueError(f"redact_ner_model must predict PER, LOC or ORG labels, got {sorted(set(labels))}")
        self.min_score = min_score
        super().__init__(supported_entities=supported, name="TransformersNer", supported_language="en")

    def load(self) -> None:
        """Loaded in __init__; Presidio calls this hook for lazy recognizers."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for offset, piece in windows(text):
            for found in self._pipe(piece):
                group = _entity_group(str(found["entity_group"]))
                if group in entities and float(found["score"]) >= self.min_score:
                    start, end = offset + int(found["start"]), offset + int(found["end"])
                    results.append(RecognizerResult(group, start, end, float(found["score"])))
        return results


# Above the NER model's fixed 0.85: a name found by where it stands beats a partial or other guess.
NAME_CONTEXT_SCORE = 0.9
# A name as people write it in headers and turns: one to four capitalized words ("Mary-Jo", "O'Neil").
_NAME = r"[A-Z][\w'’-]*\.?(?:[ \t]+[A-Z][\w'’-]*\.?){0,3}"
_NAME_CONTEXTS = (
    re.compile(rf"(?m)^[ \t]*(?:From|To|Cc|Bcc|Reply-To|Sender)[ \t]*:[ \t]*\"?({_NAME})\"?[ \t]*(?:<|,|$)"),
    re.compile(rf"(?m)^[ \t]*(?:Hi|Hello|Hey|Dear|Morning|Good (?:morning|afternoon|evening))[ \t]+({_NAME})[ \t]*[,!:\n]"),
    re.compile(
        rf"(?mi)^[ \t]*(?:thanks|thank you|many thanks|best|best regards|regards|kind regards|warm regards|cheers|"
        rf"sincerely|yours sincerely|yours truly|all the best)[ \t]*[,!.]?[ \t]*\n[ \t]*(?-i:({_NAME}))[ \t]*$"
    ),
    re.compile(rf"(?m)^--[ \t]*\n[ \t]*({_NAME})"),  # the signature separator
    # Form and ticket fields that hold a person ("Name: Okafor, Daniel", "Assigned to: Maya").
    re.compile(
        rf"(?mi)^[ \t]*(?:name|full name|patient|client|customer|claimant|witness|applicant|employee|contact|"
        rf"emergency contact|opened by|assigned to|signed|signed by|prepared by|requester|reporter|owner|attendee)"
        rf"[ \t]*:[ \t]*(?-i:({_NAME}(?:,[ \t]*{_NAME})?))[ \t]*(?:<|\(|$)"
    ),
)
_TURN = re.compile(rf"(?m)^[ \t]*({_NAME})[ \t]*:[ \t]+\S")
# Line labels that are not speakers; a dialogue needs two turns, so one "Note:" line is never a name.
_NOT_SPEAKERS = frozenset(
    "from to cc bcc subject date sent re fwd note notes update updates summary question answer q a warning "
    "important location address phone email tel fax ps p.s. attachment attachments agenda action minutes item "
    "reply original message decision outcome status result results total reason step".split()
)


class NameContextRecognizer(EntityRecognizer):  # type: ignore[misc]
    """Names by where they stand rather than how they look: e-mail headers ("From: Ana Ruiz <...>"),
    greetings ("Hi Tomás,"), sign-offs ("Thanks,\\nPriya") and dialogue turns ("Maya: are we
    still on?"). The small NER model misses many of these, which are the commonest places a name
    appears in e-mail threads and chats."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="NameContext", supported_language="en")

    def load(self) -> None:
        """Nothing to load: regular expressions only."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if "PERSON" not in entities:
            return []
        spans = [m.span(1) for pattern in _NAME_CONTEXTS for m in pattern.finditer(text)]
        turns = [m for m in _TURN.finditer(text) if m.group(1).lower() not in _NOT_SPEAKERS]
        if len(turns) >= 2:  # a dialogue: at least two turns
            spans += [m.span(1) for m in turns]
        return [RecognizerResult("PERSON", start, end, NAME_CONTEXT_SCORE) for start, end in spans]

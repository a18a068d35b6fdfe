"""What redaction is told to do, and the check of it, without Presidio or spaCy.

`import service` reads and checks these settings in every process, the `bentoml serve` arbiter
included; importing Presidio there (it pulls in spaCy, torch and transformers) cost seconds of
cold start. pipelines/text/redact.py does the redacting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipelines.settings import DEFAULT_PHONE_REGIONS
from pipelines.settings import REDACTABLE_ENTITIES as BUILTIN_ENTITIES

_ENTITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")


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

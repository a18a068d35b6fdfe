"""The style registry: built-in styles plus a deployment's own, chosen per request by header.

A style is a bundle of engine settings (length, position prior, prompt, generation settings).
The model service receives the resolved `Style` with every item, so both services agree on
what a style means even when they are deployed apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.errors import BadInput, ConfigError, UnknownStyle

BUILTIN_STYLES_FILE = Path(__file__).with_name("styles.yaml")
STYLE_HEADER = "X-Summary-Style"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class HasText(Protocol):
    @property
    def text(self) -> str: ...


def _check_regex(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what} {pattern!r} must be a regular expression, got: {exc}") from exc


class ExtractiveParams(BaseModel):
    """How the extractive engine picks sentences for a style (docs/styles.md explains each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Length: aim at target_words (readers expect a length in words, not in sentences), never
    # exceed max_words or max_sentences. Without a target, fill up to max_words.
    target_words: int | None = Field(None, gt=0, le=2000)
    max_words: int = Field(60, gt=0, le=2000)
    max_sentences: int = Field(4, gt=0, le=200)
    position_weight: float = Field(0.3, ge=0.0, le=1.0)
    position_decay: float = Field(0.3, ge=0.0)
    diversity: float = Field(0.3, ge=0.0, le=1.0)
    min_sentence_words: int = Field(4, ge=1)
    # Cue phrases (Edmundson 1969): regex -> weight in [-1, 1], matched against a sentence with
    # its section heading in front; the clipped sum, times cue_weight, is added to its score.
    # Written as a mapping in YAML; kept as pairs so the frozen model stays hashable.
    cues: tuple[tuple[str, float], ...] = ()
    cue_weight: float = Field(0.2, ge=0.0, le=1.0)
    # Sentence trimming (a light compression): regexes whose matches are cut from every
    # candidate sentence ("(CNN) --", a dashed aside, a chat's "Oh, well,"), so the word target
    # holds more of what matters. A sentence that would drop under 3 words stays as it was.
    trim: tuple[str, ...] = ()
    # When the best remaining sentence would overshoot the target: True takes the best one that
    # fits instead (a later, shorter sentence); False stops there, for news, where a far-down
    # filler reads and scores worse than a slightly shorter summary.
    fill: bool = True
    # Concept coverage (pipelines/engines/concepts.py): how much selection goes by the weighted words a
    # sentence adds per word (1) rather than by its score and MMR (0); concept weights decay
    # with position by coverage_decay.
    coverage: float = Field(0.0, ge=0.0, le=1.0)
    coverage_decay: float = Field(0.3, ge=0.0)

    @field_validator("cues", mode="before")
    @classmethod
    def _cues_as_pairs(cls, value: Any) -> Any:
        return tuple(value.items()) if isinstance(value, Mapping) else value

    @field_validator("cues")
    @classmethod
    def _cues_compile(cls, cues: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        for pattern, weight in cues:
            _check_regex(pattern, "cue")
            if not -1.0 <= weight <= 1.0:
                raise ValueError(f"cue {pattern!r} weight must be between -1 and 1, got {weight}")
        return cues

    @field_validator("trim")
    @classmethod
    def _trim_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _check_regex(pattern, "trim")
        return patterns

    @property
    def length_target(self) -> int:
        """Words to aim at; a lower max_words wins, so an override of the cap alone still works."""
        return min(self.target_words, self.max_words) if self.target_words is not None else self.max_words


class GenerationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(128, gt=0, le=4096)
    min_new_tokens: int = Field(0, ge=0)
    num_beams: int = Field(1, gt=0, le=16)
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = Field(0, ge=0)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)


class Style(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    instruction: str = "Summarize the following text."
    extractive: ExtractiveParams = ExtractiveParams()
    generation: GenerationParams = GenerationParams()

    def batch_key(self) -> str:
        """Items that share this key can share one model call (same settings, same prompt)."""
        return self.model_dump_json()


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"styles file {str(path)!r} must be readable YAML, got: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"styles file {str(path)!r} must map style names to settings, got {type(data).__name__}")
    return data


class StyleRegistry:
    """Named styles plus the default. Built once at start-up; bad files fail there, not per request."""

    def __init__(self, styles: Mapping[str, Style], default: str) -> None:
        if default not in styles:
            raise ConfigError(f"default_style must be one of {sorted(styles)}, got {default!r}")
        self._styles = dict(styles)
        self.default = default

    @classmethod
    def load(cls, user_file: Path | None = None, default: str = "news") -> StyleRegistry:
        raw = _read_yaml(BUILTIN_STYLES_FILE)
        if user_file is not None:
            for name, spec in _read_yaml(user_file).items():
                if not isinstance(spec, Mapping):
                    raise ConfigError(f"style {name!r} in {str(user_file)!r} must be a mapping, got {spec!r}")
                raw[name] = _deep_merge(raw.get(name, {}), spec)
        styles: dict[str, Style] = {}
        for name, spec in raw.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(f"style names must match {_NAME.pattern}, got {name!r}")
            try:
                styles[name] = Style(name=name, **spec)
            except ValidationError as exc:
                raise ConfigError(f"style {name!r} is invalid: {exc}") from exc
        return cls(styles, default)

    @property
    def names(self) -> list[str]:
        return sorted(self._styles)

    def get(self, name: str) -> Style:
        try:
            return self._styles[name]
        except KeyError:
            raise UnknownStyle(name, self.names) from None

    def resolve(self, header_value: str | None) -> Style:
        """The style a request asked for: header value (case-insensitive), else the default."""
        if header_value is None or not header_value.strip():
            return self._styles[self.default]
        return self.get(header_value.strip().lower())

    def choose(self, header_value: str | None, body_value: str | None) -> Style:
        """A request's style: the X-Summary-Style header or the body's `style` field (for clients
        that cannot set headers), else the default. Both may be sent only if they name the same
        style: a silent winner would summarize in a style one of the two senders did not ask for
        (a proxy or a client default adding the header, say)."""
        header = self.resolve(header_value) if header_value and header_value.strip() else None
        body = self.resolve(body_value) if body_value and body_value.strip() else None
        if header is not None and body is not None and header.name != body.name:
            raise BadInput(
                f"the {STYLE_HEADER} header asks for {header.name!r} and the body's style field for "
                f"{body.name!r}; send one of them, or the same style in both"
            )
        return header or body or self._styles[self.default]


def with_context(style: Style, hits: Sequence[HasText]) -> Style:
    """The style with retrieved documentation added to its instruction (chat models read it;
    seq2seq summarizers ignore instructions, and the extractive engine uses a query vector)."""
    if not hits:
        return style
    context = "\n".join(f"[{i + 1}] {hit.text}" for i, hit in enumerate(hits))
    instruction = f"{style.instruction}\n\nUse the terms of this documentation where they apply:\n{context}"
    return style.model_copy(update={"instruction": instruction})

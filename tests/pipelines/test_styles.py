from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.errors import BadInput, ConfigError, UnknownStyle
from pipelines.styles import StyleRegistry


def test_builtin_styles() -> None:
    registry = StyleRegistry.load()
    assert registry.names == ["casual", "legal", "news"]
    assert registry.default == "news"
    legal, casual = registry.get("legal"), registry.get("casual")
    assert legal.extractive.max_words > registry.get("news").extractive.max_words > casual.extractive.max_words
    assert legal.generation.max_new_tokens > casual.generation.max_new_tokens


def test_header_resolution_is_case_insensitive_and_defaults() -> None:
    registry = StyleRegistry.load(default="legal")
    assert registry.resolve(None).name == "legal"
    assert registry.resolve("  ").name == "legal"
    assert registry.resolve(" CASUAL ").name == "casual"


def test_unknown_style_lists_valid_ones() -> None:
    with pytest.raises(UnknownStyle) as info:
        StyleRegistry.load().resolve("pirate")
    assert info.value.status_code == 400
    assert "'pirate'" in info.value.message and "casual, legal, news" in info.value.message


def test_user_file_adds_and_overrides_key_by_key(tmp_path: Path) -> None:
    user = tmp_path / "styles.yaml"
    user.write_text(
        "news:\n  extractive:\n    max_words: 30\n"
        "support-ticket:\n  description: For the help desk\n  instruction: Summarize the ticket.\n"
        "  extractive: {max_words: 40, position_weight: 0.0}\n"
    )
    registry = StyleRegistry.load(user, default="support-ticket")
    news = registry.get("news")
    assert news.extractive.max_words == 30
    assert news.extractive.position_weight == StyleRegistry.load().get("news").extractive.position_weight
    assert registry.resolve(None).instruction == "Summarize the ticket."
    assert "support-ticket" in registry.names


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("news:\n  extractive:\n    max_words: -1\n", "style 'news' is invalid"),
        ("news:\n  extractive:\n    max_wrds: 10\n", "style 'news' is invalid"),
        ("Bad Name!:\n  description: x\n", "style names must match"),
        ("- a list\n", "must map style names"),
        ("news: 3\n", "must be a mapping"),
        ("news: [unclosed\n", "must be readable YAML"),
    ],
)
def test_bad_user_file_fails_at_load(tmp_path: Path, content: str, fragment: str) -> None:
    user = tmp_path / "styles.yaml"
    user.write_text(content)
    with pytest.raises(ConfigError) as info:
        StyleRegistry.load(user)
    assert fragment in str(info.value)


def test_default_must_exist() -> None:
    with pytest.raises(ConfigError, match="default_style must be one of"):
        StyleRegistry.load(default="missing")


def test_batch_key_differs_with_settings() -> None:
    registry = StyleRegistry.load()
    assert registry.get("news").batch_key() == registry.get("news").batch_key()
    assert registry.get("news").batch_key() != registry.get("legal").batch_key()


def test_cue_phrases_merge_pattern_by_pattern_and_bad_ones_fail_at_load(tmp_path: Path) -> None:
    builtin = dict(StyleRegistry.load().get("legal").extractive.cues)
    assert builtin["may be cited as"] > 0
    user = tmp_path / "styles.yaml"
    user.write_text("legal:\n  extractive:\n    cues: {'may be cited as': 0, '(?i)penalt': 0.5}\n")
    cues = dict(StyleRegistry.load(user).get("legal").extractive.cues)
    assert cues["may be cited as"] == 0 and cues["(?i)penalt"] == 0.5
    assert cues.keys() == builtin.keys() | {"(?i)penalt"}
    user.write_text("legal:\n  extractive:\n    cues: {'(unclosed': 0.5}\n")
    with pytest.raises(ConfigError, match=r"(?s)style 'legal' is invalid.*must be a regular expression"):
        StyleRegistry.load(user)
    user.write_text("casual:\n  extractive:\n    cues: {'plan': 3}\n")
    with pytest.raises(ConfigError, match="weight must be between -1 and 1"):
        StyleRegistry.load(user)


def test_trim_patterns_are_replaced_as_a_list_and_bad_ones_fail_at_load(tmp_path: Path) -> None:
    assert StyleRegistry.load().get("news").extractive.trim
    user = tmp_path / "styles.yaml"
    user.write_text("news:\n  extractive:\n    trim: []\n")
    assert StyleRegistry.load(user).get("news").extractive.trim == ()
    user.write_text("news:\n  extractive:\n    trim: ['^Update:\\s*']\n")
    assert StyleRegistry.load(user).get("news").extractive.trim == ("^Update:\\s*",)
    user.write_text("news:\n  extractive:\n    trim: ['(unclosed']\n")
    with pytest.raises(ConfigError, match=r"(?s)style 'news' is invalid.*trim '\(unclosed' must be a regular expression"):
        StyleRegistry.load(user)


def test_builtin_word_targets_match_what_readers_expect() -> None:
    registry = StyleRegistry.load()
    targets = {name: registry.get(name).extractive.length_target for name in registry.names}
    assert targets == {"news": 55, "legal": 150, "casual": 20}


def test_style_from_the_header_or_the_body_field() -> None:
    registry = StyleRegistry.load(default="news")
    assert registry.choose(None, None).name == "news"
    assert registry.choose("legal", None).name == "legal"
    assert registry.choose(None, "Casual").name == "casual"  # for clients that cannot set headers
    assert registry.choose(" LEGAL ", "legal").name == "legal"  # both, agreeing
    assert registry.choose("", "legal").name == "legal" and registry.choose("legal", " ").name == "legal"


def test_a_header_and_a_body_field_that_disagree_are_refused() -> None:
    with pytest.raises(BadInput) as info:
        StyleRegistry.load().choose("news", "legal")
    assert info.value.status_code == 400
    assert "'news'" in info.value.message and "'legal'" in info.value.message and "X-Summary-Style" in info.value.message
    with pytest.raises(UnknownStyle):
        StyleRegistry.load().choose(None, "pirate")

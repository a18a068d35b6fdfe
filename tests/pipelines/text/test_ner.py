"""The optional NER recognizer, plumbing only: a tiny model that labels every token the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.text.ner import TransformersNerRecognizer, windows
from pipelines.text.redact import RedactionConfig, Redactor
from tests.fixtures.tiny_models import build_tiny_ner


def test_names_are_redacted_when_an_ner_model_is_configured(tmp_path: Path) -> None:
    recognizer = TransformersNerRecognizer(build_tiny_ner(tmp_path / "ner", always="B-PER"))
    assert recognizer.supported_entities == ["LOCATION", "PERSON"]
    redactor = Redactor.build(RedactionConfig(entities=("EMAIL_ADDRESS",)), extra=[recognizer])
    out = redactor.redact("anna met bob in paris")
    for name in ("anna", "bob", "paris"):
        assert name not in out.text
    assert set(out.counts) == {"PERSON"}
    assert "<PERSON>" in out.text


def test_a_model_without_person_or_place_labels_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_ner(tmp_path / "ner", always="B-MISC")
    config = (folder / "config.json").read_text().replace('"B-PER"', '"B-X"').replace('"I-PER"', '"I-X"')
    (folder / "config.json").write_text(config.replace('"B-LOC"', '"B-Y"').replace('"I-LOC"', '"I-Y"'))
    with pytest.raises(ValueError, match="redact_ner_model must predict PER, LOC or ORG labels"):
        TransformersNerRecognizer(folder)


def test_windows_cover_the_text_without_splitting_words() -> None:
    text = " ".join(f"word{i}" for i in range(1000))
    pieces = windows(text, size=300)
    assert "".join(piece for _, piece in pieces) == text
    assert all(text[offset : offset + len(piece)] == piece for offset, piece in pieces)
    assert all(len(piece) <= 300 for _, piece in pieces)
    assert all(not piece.rstrip().endswith("word") for _, piece in pieces)

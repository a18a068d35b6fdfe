"""The labelled PII set (tests/fixtures/pii.py) is what the redaction figures rest on: check it."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import pytest

from tests.fixtures.pii import (
    CONTEXTS,
    NAME_ENTITIES,
    NEGATIVE_KINDS,
    PATTERN_ENTITIES,
    TITLES,
    Document,
    Gold,
    evaluate,
    labelled_documents,
    labelled_set,
)

ALL = (*PATTERN_ENTITIES, *NAME_ENTITIES)
SSN_WORDS = re.compile(r"\b(ssn|social security)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return labelled_documents(ALL, per_entity=12, seed=5)


def test_the_same_seed_gives_the_same_documents(docs: list[Document]) -> None:
    assert labelled_documents(ALL, per_entity=12, seed=5) == docs
    assert labelled_documents(ALL, per_entity=12, seed=6) != docs
    assert labelled_set(PATTERN_ENTITIES, per_entity=10, seed=3) == labelled_set(PATTERN_ENTITIES, per_entity=10, seed=3)


def test_every_gold_span_holds_its_value_and_none_overlap(docs: list[Document]) -> None:
    for doc in docs:
        for g in doc.gold:
            assert doc.text[g.start : g.end] == g.value, (doc.kind, g)
            assert g.value == g.value.strip() and g.value
        spans = sorted((g.start, g.end) for g in doc.gold)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), doc.text


def test_each_entity_has_at_least_what_was_asked(docs: list[Document]) -> None:
    counts = {e: sum(g.entity == e for d in docs for g in d.gold) for e in ALL}
    assert all(counts[e] >= 12 for e in ALL), counts


def test_every_context_and_negative_kind_is_there(docs: list[Document]) -> None:
    kinds = {d.kind for d in docs}
    assert kinds == set(CONTEXTS) | set(NEGATIVE_KINDS)
    for doc in docs:
        if doc.kind in NEGATIVE_KINDS:
            assert doc.gold == []
        else:
            assert doc.gold


def test_email_threads_have_headers_a_greeting_and_a_sign_off(docs: list[Document]) -> None:
    threads = [d for d in docs if d.kind == "email"]
    for doc in threads:
        people = {d.value for d in doc.gold if d.entity == "PERSON"}
        sender = re.match(r"From: (.+) <(.+)>\nTo: (.+) <(.+)>\n", doc.text)
        assert sender, doc.text
        assert {sender[1], sender[3]} <= people
        assert {sender[2], sender[4]} <= {g.value for g in doc.gold if g.entity == "EMAIL_ADDRESS"}
        greeting = re.search(r"\n(?:Hi|Hello|Dear) (.+),\n", doc.text)
        assert greeting and sender[3].startswith(greeting[1] + " ") and greeting[1] in people
        assert re.search(rf"\n(?:Thanks|Best regards|Cheers),\n{re.escape(sender[1])}\n", doc.text)


def test_dialogue_speakers_are_people(docs: list[Document]) -> None:
    turns = [d for d in docs if d.kind == "dialogue"]
    assert turns
    for doc in turns:
        starts = {g.start for g in doc.gold if g.entity == "PERSON"}
        for line in re.finditer(r"^([^:\n]+): ", doc.text, re.MULTILINE):
            assert line.start() in starts, line[1]


def test_names_come_in_several_forms_and_scripts_stay_latin() -> None:
    docs = labelled_documents(("PERSON",), per_entity=60, seed=11)
    gold = [(d, g) for d in docs for g in d.gold]
    values = [g.value for _, g in gold]
    assert any(re.fullmatch(r"[^,]+, [^,]+", v) for v in values)  # "Last, First" in a form
    assert any(re.search(r" [A-Z]\. ", v) for v in values)  # a middle initial
    assert any(" " not in v for v in values)  # a first name alone
    assert any(d.text[: g.start].endswith(tuple(t + " " for t in TITLES)) for d, g in gold)  # a title, outside the span
    assert any(not v.isascii() for v in values)  # diacritics: "Müller", "Stănescu"
    assert len({v.split()[-1] for v in values}) > 40


def test_ssn_formats_and_their_context() -> None:
    docs = labelled_documents(("US_SSN",), per_entity=60, seed=4)
    values = [(d.text, g) for d in docs for g in d.gold]
    shapes = {re.sub(r"\d", "9", g.value) for _, g in values}
    assert shapes == {"999-99-9999", "999 99 9999", "999999999"}
    assert {"123-45-6789", "078-05-1120"} <= {g.value for _, g in values}
    for text, g in values:
        if "-" not in g.value or g.value in ("123-45-6789", "078-05-1120"):
            assert SSN_WORDS.search(text[max(0, g.start - 60) : g.start]), text


def test_negatives_hold_what_they_promise(docs: list[Document]) -> None:
    bills = [d.text for d in docs if d.kind == "negative-numbers"]
    prose = [d.text for d in docs if d.kind == "negative-capitalized"]
    assert bills and prose
    for text in bills:
        assert re.search(r"\b\d{9}\b", text) and not SSN_WORDS.search(text)
    for text in prose:
        assert len(re.findall(r"\b[A-Z][a-z]+", text)) >= 5


def test_the_plain_set_is_what_test_redact_was_tuned_on() -> None:
    docs = labelled_documents(PATTERN_ENTITIES, per_entity=10, seed=2026, wide=False)
    assert {d.kind for d in docs} == {"sentences"}
    assert labelled_set(PATTERN_ENTITIES, per_entity=10, seed=2026) == [(d.text, d.gold) for d in docs]
    assert all(re.fullmatch(r"\d{3}-\d{2}-\d{4}", g.value) for d in docs for g in d.gold if g.entity == "US_SSN")


@dataclass(frozen=True)
class _Span:
    entity: str
    start: int
    end: int


def test_evaluate_counts_overlaps() -> None:
    text = "From Dr. Daniel Okafor in Lagos, ref 123456789."
    gold = [Gold("PERSON", 9, 22, "Daniel Okafor"), Gold("LOCATION", 26, 31, "Lagos")]
    assert text[9:22] == "Daniel Okafor" and text[26:31] == "Lagos"
    predicted = [
        _Span("PERSON", 16, 22),  # "Okafor" alone: found, not fully
        _Span("ORGANIZATION", 26, 31),  # the right text, the wrong type: a miss and a false positive
        _Span("PHONE_NUMBER", 37, 46),  # overlaps no gold value
    ]
    tallies = evaluate(lambda _: predicted, [(text, gold)])
    assert (tallies["PERSON"].tp, tallies["PERSON"].full, tallies["PERSON"].fp) == (1, 0, 0)
    assert (tallies["LOCATION"].tp, tallies["LOCATION"].fn) == (0, 1)
    assert tallies["ORGANIZATION"].fp == 1 and tallies["PHONE_NUMBER"].fp == 1
    whole = evaluate(lambda _: [_Span("PERSON", 5, 15), _Span("PERSON", 16, 22)], [(text, gold)])["PERSON"]  # "Dr. Daniel", "Okafor"
    assert (whole.tp, whole.full, whole.fp, whole.full_recall) == (1, 1, 0, 1.0)
    only_names = evaluate(lambda _: predicted, [(text, gold)], entities=NAME_ENTITIES)
    assert "PHONE_NUMBER" not in only_names

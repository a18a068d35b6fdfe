"""Names, places and organizations with the default NER model (spaCy's small English pipeline, from
the installed wheel), and the SSN formats that used to slip through (issue 20)."""

from __future__ import annotations

import pytest

from models.store import default_ner_folder
from pipelines.settings import REDACTABLE_ENTITIES, Settings
from pipelines.text.prepare import InputPipeline
from pipelines.text.redact import RedactionConfig, Redactor
from tests.fixtures.pii import evaluate, labelled_set


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor.build(RedactionConfig(), ner_folder=default_ner_folder())


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("The witness, Daniel Okafor, told the court she saw the car.", "Daniel Okafor"),
        ("Counsel for the claimant, Ingrid Lindqvist, asked for an adjournment.", "Ingrid Lindqvist"),
        ("The contract was signed by Tomás Herrera on behalf of the buyer.", "Tomás Herrera"),
        ("Judge Priya Raman dismissed the appeal on Tuesday.", "Priya Raman"),
        ("According to Mei Nakamura, the invoice was paid twice.", "Mei Nakamura"),
    ],
)
def test_a_name_in_a_short_text_is_a_placeholder(redactor: Redactor, text: str, name: str) -> None:
    out = redactor.redact(text)
    assert out.counts.get("PERSON") == 1 and "<PERSON>" in out.text, out
    assert not [word for word in name.split() if word in out.text], out.text


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("The claimant's SSN is 536228741 according to the form.", "536228741"),
        ("SSN: 536 22 8741", "536 22 8741"),
        ("Her social security number is 123-45-6789, his is 078-05-1120.", "123-45-6789"),
    ],
)
def test_ssns_in_every_format_and_the_sample_numbers(redactor: Redactor, text: str, kept: str) -> None:
    out = redactor.redact(text)
    assert kept not in out.text and "US_SSN" in out.counts and "PHONE_NUMBER" not in out.counts, out
    assert "ORGANIZATION" not in out.counts  # "SSN" itself is a field name, not a company


@pytest.mark.parametrize(
    "text",
    ["Invoice no. 536228741, total 120.00 EUR.", "Routing number 546367717", "Order 123456789 shipped on Monday."],
)
def test_nine_digit_numbers_without_ssn_or_phone_words_stay(redactor: Redactor, text: str) -> None:
    out = redactor.redact(text)
    assert "US_SSN" not in out.counts and "PHONE_NUMBER" not in out.counts, out
    assert any(ch.isdigit() for ch in out.text)


def test_an_email_thread_names_in_headers_greeting_and_sign_off(redactor: Redactor) -> None:
    thread = (
        "From: Amara Raman <amara.raman@example.org>\nTo: Siobhan Brennan\nSubject: the hearing\n\n"
        "Hi Siobhan,\n\nAmara Raman has agreed to give evidence on Monday.\n\nThanks,\nAmara"
    )
    out = redactor.redact(thread)
    for word in ("Amara", "Raman", "Siobhan", "Brennan"):
        assert word not in out.text, out.text
    assert "<PERSON> <PERSON>" not in out.text  # one placeholder per name
    assert out.counts["EMAIL_ADDRESS"] == 1 and "Monday" in out.text


def test_dialogue_speakers_are_names_and_a_single_label_is_not(redactor: Redactor) -> None:
    chat = "Maya: are we still on for Saturday?\nLeo: yes, I booked the table.\nMaya: great, see you then Leo!"
    out = redactor.redact(chat)
    assert "Maya" not in out.text and "Leo" not in out.text, out.text
    note = redactor.redact("Note: the report is due on Friday.")
    assert note.text.startswith("Note:") and "PERSON" not in note.counts


def test_patterns_win_over_the_model_where_they_overlap(redactor: Redactor) -> None:
    out = redactor.redact("Write to leak.Okafor@example.com from 2001:db8:cbd3::8a2e:370:7334 today.")
    assert out.text == "Write to <EMAIL_ADDRESS> from <IP_ADDRESS> today.", out


def test_which_ner_entities_are_redacted_is_a_setting() -> None:
    people_only = Redactor.build(RedactionConfig(ner_entities=("PERSON",)), ner_folder=default_ner_folder())
    out = people_only.redact("Daniel Okafor moved from Lagos to Berlin to work for Siemens.")
    assert out.counts == {"PERSON": 1} and "Lagos" in out.text


def test_the_settings_choose_the_model_and_can_turn_it_off() -> None:
    assert Settings().ner_model == "summarizer-ner:latest"
    assert Settings(redact_ner_model="").ner_model is None and Settings(redact_ner_model="none").ner_model is None
    assert Settings(redact=False).ner_model is None
    pipeline = InputPipeline.from_settings(Settings(), default_ner_folder())  # a spaCy folder: the default path
    assert pipeline.prepare("The witness, Daniel Okafor, told the court she saw the car.").redactions == {"PERSON": 1}


def test_recall_and_precision_on_the_wide_labelled_set(redactor: Redactor) -> None:
    """The issue's targets, on a seed never used while tuning (that was 1 and 3): every pattern
    entity recall >= 0.95, PERSON recall >= 0.85 and precision >= 0.8."""
    entities = (*REDACTABLE_ENTITIES, "PERSON")
    tallies = evaluate(redactor.find, labelled_set(entities, per_entity=100, seed=2026, wide=True), entities)
    for entity in REDACTABLE_ENTITIES:
        assert tallies[entity].recall >= 0.95, (entity, tallies[entity])
    assert tallies["PERSON"].recall >= 0.85 and tallies["PERSON"].precision >= 0.8, tallies["PERSON"]


def test_building_with_the_model_never_reaches_for_the_network(no_network: list[object]) -> None:
    out = Redactor.build(RedactionConfig(), ner_folder=default_ner_folder()).redact("Ask Daniel Okafor.")
    assert out.counts == {"PERSON": 1} and no_network == []

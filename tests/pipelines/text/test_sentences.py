from __future__ import annotations

import pytest

from pipelines.text.sentences import clean, is_heading, split_sentences, word_count
from tests.texts import DIALOGUE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr. Smith flew to Washington on Jan. 5. He met Dr. J. R. Jones at 3.5 p.m. sharp.",
            ["Mr. Smith flew to Washington on Jan. 5.", "He met Dr. J. R. Jones at 3.5 p.m. sharp."],
        ),
        ('"Great!" he said. The U.S. economy grew 2.1% in Q3.', ['"Great!" he said.', "The U.S. economy grew 2.1% in Q3."]),
        ("Is it done? Yes. It ships e.g. on Monday.", ["Is it done?", "Yes.", "It ships e.g. on Monday."]),
        ("See Sec. 4 of the Act. It applies to all.", ["See Sec. 4 of the Act.", "It applies to all."]),
        ("First paragraph without a stop\n\nSecond one.", ["First paragraph without a stop", "Second one."]),
    ],
)
def test_split_keeps_abbreviations_decimals_and_initials(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_dialogue_turns_are_sentences() -> None:
    turns = split_sentences(DIALOGUE)
    assert turns[0] == "Maya: Hey, are we still on for the hiking trip this Saturday?"
    assert all(t.split(":", 1)[0] in {"Maya", "Leo"} for t in turns)
    assert len(turns) == DIALOGUE.count("\n") + 1


def test_list_items_break() -> None:
    assert split_sentences("Steps:\n- open the box\n- take it out") == ["Steps:", "- open the box", "- take it out"]


def test_clean_removes_control_characters_and_folds_spaces() -> None:
    assert clean("a\x00b\u200b  c\t\td\r\ne\u00a0f") == "ab c d\ne f"
    assert clean("ﬁne") == "fine"  # NFKC


def test_word_count() -> None:
    assert word_count("  two   words ") == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "U.S." and "Inc." end a sentence only when a typical opener follows.
        (
            "He moved to the U.S. The firm, Acme Inc., hired him. U.S. officials agreed.",
            ["He moved to the U.S.", "The firm, Acme Inc., hired him.", "U.S. officials agreed."],
        ),
        ("Shares of Acme Inc. rose. They sold Acme Inc. In March they bought it back.", ["Shares of Acme Inc. rose.", "They sold Acme Inc.", "In March they bought it back."]),
        # "No.", "Jan.", "Art." are abbreviations before a number, words otherwise.
        ("The answer was no. We left on Jan. 5. It is in Art. IV of No. 10.", ["The answer was no.", "We left on Jan. 5.", "It is in Art. IV of No. 10."]),
        ("They sat in the sun. Then it rained in Dec. The roads flooded.", ["They sat in the sun.", "Then it rained in Dec.", "The roads flooded."]),
        ("It said no. I agreed.", ["It said no.", "I agreed."]),  # "I" is a word here, not Roman one
        ("Mr. and Mrs. Smith met St. John at 5 p.m. Tuesday.", ["Mr. and Mrs. Smith met St. John at 5 p.m. Tuesday."]),
    ],
)
def test_abbreviations_that_end_sentences_and_those_that_never_do(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('He said "yes." Then he left.', ['He said "yes."', "Then he left."]),
        ("\"Stop!\" she shouted. 'We are done.' 'Really?' he asked.", ['"Stop!" she shouted.', "'We are done.'", "'Really?' he asked."]),
        (
            "She said: 'I tried a pub. None paid enough. 'The loan did not cover rent.' Then she quit.",
            ["She said: 'I tried a pub.", "None paid enough.", "'The loan did not cover rent.'", "Then she quit."],
        ),
        ("“It works,” he said. “Ship it.” They did.", ["“It works,” he said.", "“Ship it.”", "They did."]),
        # A lost space between sentences, but not inside names and web addresses.
        ("The court heard.Shocking details followed. See www.BBC.co.uk or Node.Js docs.", ["The court heard.", "Shocking details followed.", "See www.BBC.co.uk or Node.Js docs."]),
    ],
)
def test_quotes_stay_with_their_sentence(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_numbered_clauses_and_statute_headings() -> None:
    bill = (
        "SECTION 1. SHORT TITLE.\n\nThis Act may be cited as the ``Clean Rivers Act''.\n\n"
        "SEC. 2. FINDINGS.\n\nThe Congress finds as follows:\n(1) Rivers are\npolluted.\n(2) Fish die.\n\n"
        "SEC. 3. GRANTS.\n\nSection 5 of the Water Act (33 U.S.C. 1251) is amended by adding at the end the following:\n"
        "``(d)(1) The Secretary shall make grants to States.\n``(2) Grants may not exceed $5,000,000.''."
    )
    assert split_sentences(bill) == [
        "SECTION 1. SHORT TITLE.",
        "This Act may be cited as the ``Clean Rivers Act''.",
        "SEC. 2. FINDINGS.",
        "The Congress finds as follows:",
        "(1) Rivers are polluted.",
        "(2) Fish die.",
        "SEC. 3. GRANTS.",
        "Section 5 of the Water Act (33 U.S.C. 1251) is amended by adding at the end the following:",
        "``(d)(1) The Secretary shall make grants to States.",
        "``(2) Grants may not exceed $5,000,000.''.",
    ]


def test_enumerators_open_their_clause_and_a_sentence_may_end_with_a_number() -> None:
    contract = "1. Services. The Supplier shall provide them.\n2. Fees. The Customer shall pay as required by section 5. Payment is monthly."
    assert split_sentences(contract) == [
        "1. Services.",
        "The Supplier shall provide them.",
        "2. Fees.",
        "The Customer shall pay as required by section 5.",
        "Payment is monthly.",
    ]


def test_dialogue_speaker_forms() -> None:
    chat = "#Person1#: Hi, Mr. Lee. Can we meet?\n#Person2#: Sure. Let's meet at 5 p.m. tomorrow.\nDr. Lee: Fine.\nSpeaker 2: OK then."
    assert split_sentences(chat) == [
        "#Person1#: Hi, Mr. Lee. Can we meet?",
        "#Person2#: Sure. Let's meet at 5 p.m. tomorrow.",
        "Dr. Lee: Fine.",
        "Speaker 2: OK then.",
    ]
    # "He said:" opens a quotation, not a turn: its sentences split as usual.
    assert split_sentences("He said: I am done. We left.") == ["He said: I am done.", "We left."]
    # A very long turn is split into sentences (the first keeps the speaker).
    long_turn = "Anna: " + "We walked a long way. " * 20
    assert split_sentences(long_turn)[:2] == ["Anna: We walked a long way.", "We walked a long way."]


@pytest.mark.parametrize(
    ("sentence", "heading"),
    [
        ("SEC. 2. FINDINGS.", True),
        ("SECTION 1. SHORT TITLE.", True),
        ("SERVICES AGREEMENT.", True),
        ("3. Late payment.", True),
        ("(2) Definitions.", True),
        ("The Congress finds as follows:", False),
        ("(1) Immigration is a Federal responsibility of the United States.", False),
        ("NASA said the launch went well.", False),
        ("OK.", False),
    ],
)
def test_is_heading(sentence: str, heading: bool) -> None:
    assert is_heading(sentence) is heading

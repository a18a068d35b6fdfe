from __future__ import annotations

import pytest

from pipelines.sentences import clean, split_sentences, word_count
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

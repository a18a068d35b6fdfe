"""Sentence splitting that survives abbreviations, decimals, initials and dialogue turns.

Extractive selection and long-document chunking both work on sentences, so a bad split
(a summary cut at "U.S." or "Sec. 2") shows up directly in what users read.
"""

from __future__ import annotations

import re
import unicodedata

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "gen", "gov", "sen", "rep", "col", "lt", "sgt",
    "capt", "cmdr", "adm", "rev", "hon", "pres", "inc", "ltd", "co", "corp", "llc", "plc", "bros", "dept",
    "univ", "assn", "vs", "etc", "al", "approx", "est", "fig", "figs", "no", "nos", "vol", "vols", "p", "pp",
    "ch", "sec", "secs", "art", "arts", "para", "cl", "subsec", "u.s", "u.k", "e.g", "i.e", "cf", "viz",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue",
    "wed", "thu", "fri", "sat", "sun", "a.m", "p.m", "ave", "blvd", "rd", "ft", "in", "lb", "lbs", "oz",
}
# Candidate boundary: end punctuation (with closing quotes/brackets), whitespace, then what may
# start a sentence. The left context is checked in code, where abbreviations are known.
_BOUNDARY = re.compile(r"([.!?…]+[\"'”’)\]]*)(\s+)(?=[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])")
_LINE_BREAKS = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*•]\s|\d+[.)]\s|\(\w{1,4}\)\s|[A-Z][\w .'-]{0,30}:\s))")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_TURN = re.compile(r"^[A-Z][\w .'-]{0,30}:\s")
# A dialogue turn stays whole (its sentences mean little without the speaker) unless it is long.
_MAX_TURN_WORDS = 60


def clean(text: str) -> str:
    """Minimal clean-up every engine needs: NFKC, no control characters, folded spaces."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


def _ends_with_abbreviation(left: str) -> bool:
    word = left.rsplit(None, 1)[-1] if left.strip() else ""
    word = word.lstrip("\"'“‘([").rstrip(".").lower()
    if not word:
        return False
    if word in _ABBREVIATIONS:
        return True
    # Initials ("J.", "J.R.") and single letters of enumerations ("a.") are not sentence ends.
    return bool(re.fullmatch(r"(?:[a-z]\.)*[a-z]", word))


def _split_block(block: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(block):
        end = match.end(1)
        if match.group(1).startswith(".") and _ends_with_abbreviation(block[start:match.start(1)]):
            continue
        piece = block[start:end].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = block[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def split_sentences(text: str) -> list[str]:
    """Sentences in document order. Paragraphs, list items and "Speaker:" turns always break."""
    sentences: list[str] = []
    for block in _LINE_BREAKS.split(clean(text)):
        block = " ".join(block.split())
        if _TURN.match(block) and word_count(block) <= _MAX_TURN_WORDS:
            sentences.append(block)
        elif block:
            sentences.extend(_split_block(block))
    return sentences


def word_count(text: str) -> int:
    return len(text.split())

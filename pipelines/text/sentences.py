"""Sentence splitting that survives abbreviations, quotes, numbered clauses and dialogue turns.

Extractive selection and long-document chunking both work on sentences, so a bad split
(a summary cut at "U.S." or "Sec. 2") shows up directly in what users read.

    split_sentences('He moved to the U.S. The firm, Acme Inc., hired him on Jan. 5.')
    # ['He moved to the U.S.', 'The firm, Acme Inc., hired him on Jan. 5.']

A period after a known abbreviation is not a boundary, with two refinements in the spirit of
Punkt (Kiss & Strunk 2006): abbreviations that also end sentences ("U.S.", "Inc.", "etc.") end
one when a typical sentence opener follows ("... the U.S. The ..."), and abbreviations that
only ever precede a number ("No. 5", "Jan. 5", "Sec. 4") end one when no number follows
("The answer was no. We ..."). Enumerators ("1.", "(a)", "SEC. 2.") stay with their clause.
"""

from __future__ import annotations

import re
import unicodedata

# Never a sentence end: titles and Latin forms, always followed by more of the sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "messrs", "dr", "prof", "gen", "gov", "sen", "rep", "col", "lt", "sgt", "capt", "cmdr",
    "adm", "rev", "hon", "pres", "fr", "mt", "vs", "e.g", "i.e", "cf", "viz", "al", "approx", "dept", "univ",
    "assn",
}  # fmt: skip
# Abbreviations that often end a sentence too: they end one when a sentence opener follows.
_MAY_END = {
    "etc", "inc", "ltd", "co", "corp", "llc", "plc", "bros", "jr", "sr", "st", "ave", "blvd", "rd",
    "u.s", "u.k", "u.n", "d.c", "a.m", "p.m",
}  # fmt: skip
# Abbreviations only before a number ("No. 5", "Jan. 5", "Art. IV"); otherwise they are words.
_BEFORE_NUMBER = {
    "no", "nos", "vol", "vols", "pp", "fig", "figs", "art", "arts", "para", "paras", "cl", "ch", "sec", "secs",
    "subsec", "ft", "in", "lb", "lbs", "oz", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
}  # fmt: skip
# Words that typically open a sentence: after "U.S." they mark a boundary, after "J.R." no name does.
_OPENERS = {
    "the", "a", "an", "he", "she", "it", "they", "we", "i", "you", "this", "that", "these", "those", "there",
    "his", "her", "its", "their", "our", "my", "but", "and", "in", "on", "at", "as", "after", "before", "if",
    "when", "while", "however", "meanwhile", "then", "so", "yet", "some", "many", "most", "no", "one", "for",
    "what", "why", "how", "who", "where",
}  # fmt: skip
# Candidate boundary: end punctuation (with closing quotes/brackets), whitespace, then what may
# start a sentence. The left context is checked in code, where abbreviations are known.
# "<" opens a redaction placeholder ("... on Monday. <PERSON> said ...").
_BOUNDARY = re.compile(r"([.!?…]+[\"'”’)\]]*)(\s+)(?=[\"'“‘(\[`<]*[A-Z0-9À-ÖØ-Þ])")
# "...the court heard.Shocking details..." (a lost space between two sentences).
_GLUED = re.compile(r"(?<=[a-z]{2}[.!?])(?=[A-Z][a-z]{2,})")
_NEXT_WORD = re.compile(r"[\"'“‘(\[`<]*([\w.]+)")
# A number after "No." / "Art." / "Jan.": digits, or a Roman numeral that is not the word "I".
_NUMBER = re.compile(r"[\"'“‘(\[`]*(?:\d|[IVXLC]{2,}\b|[IVX]\b(?! [a-z]))")
# A piece that is only an enumerator or a section number belongs to the clause it opens.
_ENUMERATOR = re.compile(
    r"(?:[\"'“`]*\(?[0-9]{1,3}[.)]|[\"'“`]*\([A-Za-z0-9]{1,4}\)|"
    r"(?:SEC(?:TION)?|Sec(?:tion)?|ARTICLE|Article|Art|TITLE|PART|Part|CHAPTER|Chapter|Clause|Schedule|Rule)\.?\s+"
    r"[0-9IVXLC]+[A-Za-z]?\.)"
)
# "Maya:", "Dr. Lee:", "Speaker 2:", DialogSum's "#Person1#:", a redacted "<PERSON>:"; not "He said:" (a lower-case word).
SPEAKER = r"(?:#[A-Za-z][\w ]{0,30}#|<[A-Z][A-Z0-9_]*>|[A-Z][\w.'-]{0,20}(?: [A-Z0-9][\w.'-]{0,20}){0,3})"
_LINE_BREAKS = re.compile(
    r"\n\s*\n|\n(?=\s*(?:[-*•]\s|\d+[.)]\s|[\"'“`]*(?:\(\w{1,4}\))+\s|" + SPEAKER + r":\s))"
)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_TURN = re.compile(r"^" + SPEAKER + r":\s")
# A dialogue turn stays whole (its sentences mean little without the speaker) unless it is long.
_MAX_TURN_WORDS = 60


def clean(text: str) -> str:
    """Minimal clean-up every engine needs: NFKC, no control characters, folded spaces."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


def _is_boundary(left: str, right: str) -> bool:
    """Whether a period ends the sentence, given the text before it and after the space."""
    word = left.rsplit(None, 1)[-1] if left.strip() else ""
    word = word.lstrip("\"'“‘([`").rstrip(".").lower()
    following = _NEXT_WORD.match(right)
    next_word = following.group(1).rstrip(".") if following else ""
    if not word:
        return True
    if word in _MAY_END:
        return next_word.lower() in _OPENERS
    if word in _BEFORE_NUMBER:
        return not _NUMBER.match(right)
    if word in _ABBREVIATIONS:
        return False
    # Initials ("J.", "J.R.") and single letters of enumerations ("a.") are not sentence ends.
    return not re.fullmatch(r"(?:[a-z]\.)*[a-z]", word)


def _split_block(block: str) -> list[str]:
    block = _GLUED.sub(" ", block)
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(block):
        end = match.end(1)
        if match.group(1).startswith(".") and not _is_boundary(block[start : match.start(1)], block[match.end() :]):
            continue
        piece = block[start:end].strip()
        if _ENUMERATOR.fullmatch(piece):
            continue  # "1." or "SEC. 2." opens the clause that follows
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = block[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def split_sentences(text: str) -> list[str]:
    """Sentences in document order. Paragraphs, list items, numbered clauses and "Speaker:" turns
    (also "#Person1#:") always break."""
    sentences: list[str] = []
    for block in _LINE_BREAKS.split(clean(text)):
        block = " ".join(block.split())
        if _TURN.match(block) and word_count(block) <= _MAX_TURN_WORDS:
            sentences.append(block)
        elif block:
            sentences.extend(_split_block(block))
    return sentences


def is_heading(sentence: str) -> bool:
    """A heading rather than a sentence: mostly capitals ("SEC. 2. FINDINGS."), or a short
    numbered title ("3. Late payment."). Headings label text; a summary that quotes them says
    nothing."""
    letters = [ch for ch in sentence if ch.isalpha()]
    if len(letters) >= 4 and sum(ch.isupper() for ch in letters) >= 0.8 * len(letters):
        return True
    enumerator = _ENUMERATOR.match(sentence)
    return enumerator is not None and 0 < word_count(sentence[enumerator.end() :]) <= 4 and sentence.endswith(".")


def word_count(text: str) -> int:
    return len(text.split())

"""Split a document into heading-aware, sentence-aligned chunks for the knowledge index.

A chunk that straddles two sections ("Install" and "Uninstall") retrieves for the wrong
questions, and one cut mid-sentence reads badly when quoted back; so chunks stay inside a
section, hold whole sentences, and carry their heading path, which is embedded with them.

    chunks = chunk_document("guide.md", text, max_words=120)
    chunks[3].heading, chunks[3].text        # "Install > Linux", "Use apt. ..."
    embedding_text(chunks[3])                # "Install > Linux: Use apt. ..."
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.text.sentences import clean, split_sentences, word_count

_ATX = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_SETEXT = re.compile(r"^(={3,}|-{3,})\s*$")
_RULE = re.compile(r"^(?:(?:-\s*){3,}|(?:\*\s*){3,}|(?:_\s*){3,})$")
_FENCE = re.compile(r"^(```|~~~)")
_LIST_ITEM = re.compile(r"^(?:[-*+•]\s|\d+[.)]\s|\|)")
_TURN = re.compile(r"^[A-Z][\w .'-]{0,30}:\s")
_PLAIN_HEADING_MAX_WORDS = 10
_PLAIN_HEADING_MAX_CHARS = 80
# Headings without a markdown level nest below every markdown heading and replace each other.
_PLAIN_LEVEL = 7


@dataclass(frozen=True)
class Chunk:
    document_id: str
    index: int  # position in the document, from 0
    text: str
    heading: str  # "Install > Linux"; "" before the first heading


def embedding_text(chunk: Chunk) -> str:
    """What is embedded: the heading path gives a short chunk the context its words lack."""
    return f"{chunk.heading}: {chunk.text}" if chunk.heading else chunk.text


def _plain_heading(lines: list[str], i: int) -> bool:
    """A short, unpunctuated line standing alone before more text, e.g. an HTML <h2> after normalize."""
    line = lines[i]
    if i > 0 and lines[i - 1]:
        return False  # inside a paragraph: a wrapped line, not a title
    if len(line) > _PLAIN_HEADING_MAX_CHARS or word_count(line) > _PLAIN_HEADING_MAX_WORDS:
        return False
    # A question is allowed: FAQ pages title their answers with one.
    if line[-1] in ".,;:!…" or _LIST_ITEM.match(line) or _TURN.match(line) or not (line[0].isupper() or line[0].isdigit()):
        return False
    if i + 1 < len(lines) and lines[i + 1][:1].islower():
        return False  # the next line continues this one: a wrapped sentence
    return any(lines[i + 1 :])  # something must follow, or it is just a last line


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading path, body) pairs in document order; headings are not part of the body."""
    lines = clean(text).split("\n")
    sections: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_code = False
    underline = -1  # index of the setext underline to skip

    def start(level: int, title: str) -> None:
        sections.append((" > ".join(t for _, t in path), "\n".join(body)))
        body.clear()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))

    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if i == underline:
            continue
        if _FENCE.match(line):
            in_code = not in_code
            continue  # the fence markers themselves carry no meaning
        if in_code:
            body.append(line)  # "# comment" in a shell block is not a heading
        elif atx := _ATX.match(line):
            if atx.group(2):
                start(len(atx.group(1)), atx.group(2))
        elif line and _SETEXT.match(nxt) and not (i > 0 and lines[i - 1]) and not _RULE.match(line):
            start(1 if nxt.startswith("=") else 2, line)
            underline = i + 1
        elif _RULE.match(line):
            body.append("")  # a thematic break separates paragraphs, nothing more
        elif line and _plain_heading(lines, i):
            start(_PLAIN_LEVEL, line)
        else:
            body.append(line)
    sections.append((" > ".join(t for _, t in path), "\n".join(body)))
    return [(heading, b) for heading, b in sections if b.strip()]


def _pieces(sentences: list[str], max_words: int) -> list[str]:
    """Sentences, with any longer than max_words cut into runs of max_words words."""
    out: list[str] = []
    for sentence in sentences:
        words = sentence.split()
        out.extend(" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words))
    return out


def _pack(pieces: list[str], max_words: int, overlap: int) -> list[str]:
    """Greedy packing; each chunk after the first repeats up to `overlap` pieces that still fit."""
    counts = [word_count(p) for p in pieces]
    chunks: list[str] = []
    start = 0
    while start < len(pieces):
        end, words = start, 0
        while end < len(pieces) and (end == start or words + counts[end] <= max_words):
            words += counts[end]
            end += 1
        chunks.append(" ".join(pieces[start:end]))
        if end == len(pieces):
            break
        start = end
        # Carry the overlap only as far as it leaves room for the next new piece.
        while start > end - overlap and sum(counts[start - 1 : end + 1]) <= max_words:
            start -= 1
    return chunks


def chunk_document(document_id: str, text: str, *, max_words: int = 120, overlap_sentences: int = 1) -> list[Chunk]:
    """Chunks of whole sentences, at most max_words words each, never spanning two sections."""
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    if overlap_sentences < 0:
        raise ValueError(f"overlap_sentences must be >= 0, got {overlap_sentences}")
    sections = _sections(text)
    if not sections and text.strip():
        sections = [("", text)]  # only headings: their words are all the document has
    chunks: list[Chunk] = []
    for heading, body in sections:
        for piece in _pack(_pieces(split_sentences(body), max_words), max_words, overlap_sentences):
            chunks.append(Chunk(document_id, len(chunks), piece, heading))
    return chunks

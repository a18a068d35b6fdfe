"""Heading-aware, sentence-aligned chunks: what the knowledge index embeds and quotes back."""

from __future__ import annotations

import pytest

from pipelines.text.chunking import Chunk, chunk_document, embedding_text
from pipelines.text.sentences import split_sentences, word_count

GUIDE = """Acme CLI is a tool for deploying sites. It runs on every major platform.

# Install

Download the archive from the releases page. Unpack it anywhere on your path.

## Linux

Use the apt repository on Debian and Ubuntu. On Fedora, use dnf instead.

## macOS
Install it with Homebrew. Apple silicon and Intel builds are both published.

Usage
=====

Run acme deploy in the project folder. It reads acme.toml for the target.

```
# this comment is code, not a heading
acme deploy --dry-run
```

Troubleshooting

If a deploy hangs, run it again with --verbose. The log shows the step that stalled.
"""


def numbered(n: int, words: int = 8) -> str:
    """n distinct sentences of `words` words each."""
    return " ".join(f"Sentence {i} has " + " ".join(["filler"] * (words - 4)) + f" end{i}." for i in range(n))


def test_headings_become_paths_and_chunks_never_span_sections() -> None:
    chunks = chunk_document("guide.md", GUIDE)
    assert [c.heading for c in chunks] == ["", "Install", "Install > Linux", "Install > macOS", "Usage", "Usage > Troubleshooting"]
    assert chunks[0].text.startswith("Acme CLI is a tool")
    assert chunks[2].text == "Use the apt repository on Debian and Ubuntu. On Fedora, use dnf instead."
    assert "Homebrew" in chunks[3].text and "Fedora" not in chunks[3].text
    # Inside a code fence, "#" starts a comment, not a section.
    assert "# this comment is code, not a heading" in chunks[4].text
    assert chunks[5].text.startswith("If a deploy hangs")
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.document_id == "guide.md" for c in chunks)
    assert not any(line.startswith("=") for c in chunks for line in c.text.split())


def test_a_heading_resets_deeper_levels_and_lone_lines_nest_below_markdown() -> None:
    text = "# A\n\n## B\n\nText of b.\n\nPlain title\n\nText of plain.\n\n# C\n\nText of c.\n\n### D\nText of d."
    assert [(c.heading, c.text) for c in chunk_document("d", text)] == [
        ("A > B", "Text of b."),
        ("A > B > Plain title", "Text of plain."),
        ("C", "Text of c."),
        ("C > D", "Text of d."),
    ]


def test_normalized_html_headings_are_lone_lines() -> None:
    # What normalize() makes of <h1>Title</h1><p>..</p><h2>Sub</h2><p>..</p>; FAQ titles end in "?".
    text = "Bridge to close\n\nThe council voted on Tuesday.\n\nWhat happens next?\n\nA new bridge is designed."
    assert [(c.heading, c.text) for c in chunk_document("page.html", text)] == [
        ("Bridge to close", "The council voted on Tuesday."),
        ("What happens next?", "A new bridge is designed."),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "The council voted\non Tuesday to close the bridge.",  # a wrapped line continues in lower case
        "Intro sentence here.\nNot a heading\n\nBody text follows.",  # inside a paragraph
        "- first item\n\n- second item.",  # list items
        "Anna: can you call me\n\nTom: yes.",  # dialogue turns
        "Just one line without a period",  # nothing follows it
    ],
)
def test_lines_that_only_look_like_headings_stay_text(text: str) -> None:
    assert all(c.heading == "" for c in chunk_document("d", text))


def test_chunks_are_whole_sentences_within_the_word_budget() -> None:
    text = numbered(40)
    sentences = split_sentences(text)
    chunks = chunk_document("d", text, max_words=30, overlap_sentences=0)
    assert len(chunks) > 5
    assert all(word_count(c.text) <= 30 for c in chunks)
    # Without overlap, the chunks are the sentences in order, each exactly once, none cut.
    assert [s for c in chunks for s in split_sentences(c.text)] == sentences


def test_consecutive_chunks_of_a_section_share_the_overlap() -> None:
    chunks = chunk_document("d", "# One\n\n" + numbered(12) + "\n\n# Two\n\n" + numbered(12), max_words=30, overlap_sentences=1)
    for a, b in zip(chunks, chunks[1:]):
        if a.heading == b.heading:
            assert split_sentences(b.text)[0] == split_sentences(a.text)[-1]
            assert len(split_sentences(b.text)) > 1  # the overlap never makes up a whole chunk
        else:
            assert split_sentences(b.text)[0] == "Sentence 0 has filler filler filler filler end0."  # no overlap across sections
    assert all(word_count(c.text) <= 30 for c in chunks)


def test_overlap_is_dropped_when_it_would_break_the_budget() -> None:
    long = "Then " + " ".join(["word"] * 8) + " longer sentence ends."  # 12 words
    chunks = chunk_document("d", f"Short one here. {long}", max_words=12, overlap_sentences=1)
    assert [c.text for c in chunks] == ["Short one here.", long]


def test_a_sentence_longer_than_the_budget_is_split_on_words() -> None:
    long_sentence = " ".join(f"w{i}" for i in range(25)) + "."
    chunks = chunk_document("d", f"Before it. {long_sentence} After it.", max_words=10, overlap_sentences=0)
    assert all(word_count(c.text) <= 10 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == f"Before it. {long_sentence} After it.".split()


def test_embedding_text_prefixes_the_heading() -> None:
    assert embedding_text(Chunk("d", 0, "Use apt.", "Install > Linux")) == "Install > Linux: Use apt."
    assert embedding_text(Chunk("d", 0, "Use apt.", "")) == "Use apt."


def test_empty_and_heading_only_documents() -> None:
    assert chunk_document("d", "") == [] and chunk_document("d", " \n\n ") == []
    assert [c.text for c in chunk_document("d", "# Only a title")] == ["# Only a title"]


@pytest.mark.parametrize(("max_words", "overlap"), [(0, 1), (10, -1)])
def test_bad_arguments_are_refused(max_words: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        chunk_document("d", "Text.", max_words=max_words, overlap_sentences=overlap)

"""Check that moving the README into docs/ lost nothing.

The README was cut down to a front page and its content moved, verbatim, into the MkDocs pages
under docs/. A move like that loses facts silently: a dropped table row, a figure left behind, a
sentence nobody copied. This compares the old README with README.md + docs/*.md and lists every
fact of the old text that the new text no longer holds:

    code line    each non-blank line of a fenced code block, in a fenced block of the new text
    inline code  each `span`, inside a span of the new text
    table row    each row, cells compared whitespace-normalised (links reduced to their text)
    number       each number with a decimal point or a unit (`4.46`, `17.6 s`, `1.5x`, `95%`),
                 with the words either side of it, in the new prose
    sentence     each sentence of prose, whitespace-normalised, emphasis and link targets stripped

A sentence reworded on purpose (a "see below" that became a link to another page) is listed in
ALLOWED with the reason. Exit status 1 when anything is missing.

    cp README.md /tmp/old-readme.md                  # before the move (or git show REV:README.md)
    python bench/docs_moved.py /tmp/old-readme.md [--root .] [--show-allowed]

Compare against the README the move started from: an older one still names what has changed
since (module paths before a rename show up as missing).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KINDS = ("code line", "inline code", "table row", "number", "sentence")

# (kind, the old text as this check normalises it) -> why the new text says it differently.
_CODE_MAP = "the code map's pipelines/ entry, rewritten for the subpackages (docs/architecture.md)"
ALLOWED: dict[tuple[str, str], str] = {
    ("code line", line): _CODE_MAP
    for line in (
        "pipelines/        the work, framework-free: settings, errors, the public request/response (api),",
        "input preparation (normalize, redact, ner, prepare), styles, sentences,",
        "encoder, extractive (with concepts: coverage) and abstractive engines,",
        "batching helpers, the model-call",
        "policy (gateway), the ASGI middleware (asgi: body size, media type, error",
        "shape, concurrency; auth_asgi), the OpenAPI document (openapi), graceful",
        "shutdown (drain), RAG (chunking,",
        "vectorstore, rag, retrieval, rag_cli), many documents (batch: the shared",
        "/batch-job-CLI core; jobs, jobs_runner, jobs_http: durable jobs; batch_cli;",
        "inprocess: the whole pipeline in one process; ray_batch)",
    )
}
ALLOWED |= {
    (
        "sentence",
        "Header `X-Summary-Style`: `news` (default), `legal`, `casual`, or a style of your own (below);"
        " case-insensitive.",
    ): "styles are on their own page now: '(below)' became a link to docs/styles.md",
    ("sentence", "See below."): "normalization and redaction are on their own page: a link to docs/normalization.md",
    (
        "sentence",
        "The entry service `summarizer` on `cpu.4` (1-4 replicas), the model service `summarizer-model` on"
        " `gpu.l4.1` (1-2); `SUMMARIZER_AUTH_REQUIRED=true` with the tokens from the secret (see Auth above;"
        " a revocation needs a redeploy there).",
    ): "Auth is not above on docs/deploy.md: 'see Auth above' became a link to docs/auth.md",
}

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_HEADING = re.compile(r"^#{1,6}\s")
_ADMONITION = re.compile(r"^\s*(?:!!!|\?\?\?\+?)\s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SPAN = re.compile(r"(`+)(.+?)\1")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_STRONG = re.compile(r"\*\*|__")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(`])")
_UNIT = r"(?:%|x\b|×|\s(?:ms|s|MB|MiB|GB|GiB|KB|KiB|min|minutes|seconds|hours|documents/s|docs/s|chunks/s)\b)"
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?P<unit>" + _UNIT + r")?")


@dataclass(frozen=True)
class Item:
    """One fact of the old README: its kind, where it was, and its text as compared."""

    kind: str
    line: int
    text: str


@dataclass
class Unit:
    """A block of the text outside code: a paragraph or list item, a table row, or a heading."""

    kind: str  # "prose", "row" or "heading"
    line: int
    raw: str
    lines: list[str] = field(default_factory=list)

    def locate(self, needle: str) -> int:
        """The line of the unit where `needle` (or failing that, its first words) starts."""
        words = needle.split()
        for size in (4, 2, 1):
            head = " ".join(words[:size])
            for offset, text in enumerate(self.lines):
                if head and head in prose(text):
                    return self.line + offset
        return self.line


@dataclass
class Parsed:
    """What a Markdown text holds, in the terms the check compares."""

    code_lines: list[tuple[int, str]] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)


def parse(text: str) -> Parsed:
    """Split Markdown into fenced code lines and units (paragraphs, list items, rows, headings)."""
    parsed = Parsed()
    fence: str | None = None
    block: list[str] = []
    start = 0

    def close() -> None:
        nonlocal block
        if block:
            parsed.units.append(Unit("prose", start, " ".join(block), block))
        block = []

    for number, line in enumerate(text.splitlines(), 1):
        opening = _FENCE.match(line)
        stripped = line.strip()
        if fence is not None:
            if opening and stripped == opening.group(1)[0] * len(stripped) and len(stripped) >= len(fence):
                fence = None
            elif stripped:
                parsed.code_lines.append((number, stripped))
            continue
        if opening:
            close()
            fence = opening.group(1)
        elif not stripped or _ADMONITION.match(line):
            close()
        elif stripped.startswith("|"):
            close()
            parsed.units.append(Unit("row", number, stripped, [stripped]))
        elif _HEADING.match(line):
            close()
            heading = stripped.lstrip("#").strip()
            parsed.units.append(Unit("heading", number, heading, [heading]))
        elif _LIST_ITEM.match(line):
            close()
            start, block = number, [_LIST_ITEM.sub("", line, count=1).strip()]
        else:
            if not block:
                start = number
            block.append(stripped)
    close()
    return parsed


def spaces(text: str) -> str:
    """Runs of whitespace as one space, ends trimmed."""
    return " ".join(text.split())


def prose(raw: str) -> str:
    """Prose as compared: links and images reduced to their text, emphasis marks dropped (not
    inside code spans), whitespace folded."""
    parts: list[str] = []
    last = 0
    for span in _SPAN.finditer(raw):
        start, end = span.span()
        parts.append(_plain(raw[last:start]))
        parts.append(span.group(0))
        last = end
    parts.append(_plain(raw[last:]))
    return spaces("".join(parts))


def _plain(text: str) -> str:
    text = _LINK.sub(r"\1", _IMAGE.sub(r"\1", text))
    return _EMPHASIS.sub(r"\1", _STRONG.sub("", text))


def cells(row: str) -> tuple[str, ...]:
    """A table row's cells, whitespace-normalised, links reduced to their text."""
    inner = row.strip().strip("|")
    found = re.split(r"(?<!\\)\|", inner)
    return tuple(spaces(_LINK.sub(r"\1", cell)) for cell in found)


def is_separator(row: tuple[str, ...]) -> bool:
    return all(re.fullmatch(r":?-{3,}:?", cell) for cell in row)


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s]


def number_windows(text: str) -> Iterator[tuple[str, str]]:
    """Each number with a decimal point or a unit, with two words either side."""
    for found in _NUMBER.finditer(text):
        if "." not in found.group(0) and not found.group("unit"):
            continue
        start, end = found.span()
        before = " ".join(text[:start].split(" ")[-3:])
        after = " ".join(text[end:].split(" ")[:3])
        yield found.group(0), before + found.group(0) + after


def facts(old: Parsed) -> Iterator[Item]:
    """Every fact of the old text, in order of kind, then line."""
    for line_number, line in old.code_lines:
        yield Item("code line", line_number, line)
    for unit in old.units:
        for span in _SPAN.finditer(unit.raw):
            yield Item("inline code", unit.locate(span.group(0)), spaces(span.group(2)))
    for unit in old.units:
        if unit.kind == "row" and not is_separator(row := cells(unit.raw)):
            yield Item("table row", unit.line, " | ".join(row))
    for unit in old.units:
        if unit.kind == "prose":
            for figure, window in number_windows(prose(unit.raw)):
                yield Item("number", unit.locate(figure), window)
    for unit in old.units:
        if unit.kind == "prose":
            for sentence in sentences(prose(unit.raw)):
                yield Item("sentence", unit.locate(sentence), sentence)


@dataclass
class Corpus:
    """The new text, indexed for each kind of comparison."""

    code_lines: set[str]
    spans: set[str]
    rows: set[str]
    prose: str

    @classmethod
    def of(cls, texts: Iterable[str]) -> Corpus:
        code: set[str] = set()
        spans: set[str] = set()
        rows: set[str] = set()
        paragraphs: list[str] = []
        for text in texts:
            parsed = parse(text)
            code.update(line for _, line in parsed.code_lines)
            for unit in parsed.units:
                spans.update(spaces(span.group(2)) for span in _SPAN.finditer(unit.raw))
                if unit.kind == "row":
                    rows.add(" | ".join(cells(unit.raw)))
                elif unit.kind == "prose":
                    paragraphs.append(prose(unit.raw))
        return cls(code, spans, rows, "\n".join(paragraphs))

    def holds(self, item: Item) -> bool:
        if item.kind == "code line":
            return item.text in self.code_lines
        if item.kind == "inline code":
            return item.text in self.spans or any(item.text in span for span in self.spans)
        if item.kind == "table row":
            return item.text in self.rows
        return item.text in self.prose


def check(old_text: str, new_texts: Iterable[str]) -> tuple[dict[str, list[int]], list[Item], list[Item]]:
    """Counts per kind (checked, missing, allowed), the missing items, the allowed items."""
    corpus = Corpus.of(new_texts)
    counts = {kind: [0, 0, 0] for kind in KINDS}
    missing: list[Item] = []
    allowed: list[Item] = []
    seen: set[tuple[str, str]] = set()
    for item in facts(parse(old_text)):
        key = (item.kind, item.text)
        if key in seen:
            continue
        seen.add(key)
        counts[item.kind][0] += 1
        if corpus.holds(item):
            continue
        if key in ALLOWED:
            counts[item.kind][2] += 1
            allowed.append(item)
        else:
            counts[item.kind][1] += 1
            missing.append(item)
    return counts, missing, allowed


def new_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("old", type=Path, help="the old README.md")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (README.md and docs/)")
    parser.add_argument("--show-allowed", action="store_true", help="also list the allowed differences")
    args = parser.parse_args(argv)
    files = new_files(args.root)
    old_text = args.old.read_text(encoding="utf-8")
    counts, missing, allowed = check(old_text, (path.read_text(encoding="utf-8") for path in files))
    for item in missing:
        print(f"missing: line {item.line} [{item.kind}] {item.text}")
    if args.show_allowed:
        for item in allowed:
            print(f"allowed: line {item.line} [{item.kind}] {item.text}\n    ({ALLOWED[(item.kind, item.text)]})")
    unused = set(ALLOWED) - {(item.kind, item.text) for item in allowed}
    for kind, text in sorted(unused):
        print(f"note: an ALLOWED entry matches nothing missing: [{kind}] {text}")
    lines = len(old_text.splitlines())
    print(f"old: {args.old} ({lines} lines); new: README.md + {len(files) - 1} pages under docs/")
    for kind in KINDS:
        checked, lost, excused = counts[kind]
        print(f"{kind:12} checked {checked:5}  missing {lost:4}  allowed {excused:3}")
    total = sum(c[1] for c in counts.values())
    print("nothing missing" if not total else f"{total} missing")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())

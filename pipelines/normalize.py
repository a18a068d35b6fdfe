"""First stage before any model sees the text: web pages cut to their article, e-mails to the new message.

A summary of a reply should be about the reply, not the quoted thread, the signature or the legal
footer; a summary of a web page about the article, not its menus and cookie banner. What is dropped
is reported as counts only (never content), so it can be logged without leaking the document.

    result = normalize(mail_text)                  # format detected
    result.text, result.removed                    # "...", {"quoted_reply_lines": 4}
    normalize(page_html, "html", NormalizeConfig.build(extra_footer_patterns=[r"^Acme Ltd\\b"]))

Nothing here touches the network: `trafilatura.extract` on a string only parses it (its URL
download helpers live in `trafilatura.downloads`, unused; metadata, whose date search could fetch
a string starting "http", stays off), and lxml's HTML parser runs with `no_network` by default.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.deduplication import LRUCache

from pipelines.errors import BadInput
from pipelines.sentences import clean

Format = Literal["auto", "text", "html"]

_DOC_START = re.compile(r"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)
# Only known tag names count, so "<anna@example.com>" or "a <b and c> d" in a mail stay text.
_TAG = re.compile(
    r"<(?:(?:p|div|br|span|a|b|i|u|em|strong|ul|ol|li|table|tr|td|th|h[1-6]|body|head|title|meta|img|section"
    r"|article|main|blockquote|pre|hr|font|nav|header|footer|aside|script|style)(?:\s[^<>]*)?/?|/[a-z][a-z0-9-]*\s*)>",
    re.I,
)
_MAX_CHARS_PER_TAG = 500
_BODY = re.compile(r"<body[\s>]", re.I)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_CANDIDATE_CONTROL = re.compile(r"[^\x20-\x7e\n\t\r]")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACE_RUNS = re.compile(r"\s+")

_DROP_TAGS = ("script", "style", "noscript", "template", "head", "iframe", "svg", "button")
_CHROME_TAGS = ("nav", "header", "footer", "aside", "form")
_BLOCK_TAGS = frozenset(
    "p div section article main h1 h2 h3 h4 h5 h6 li ul ol dl dt dd table tr blockquote pre figure figcaption "
    "address hr caption details summary".split()
)

# Mail clients' reply markers. Attributions need a digit or an address, so "As Anna wrote:" stays.
_ATTRIBUTION_LEAD = re.compile(r"^(?:On|Am|Le|El|Em|Op|Il)\s")
_ATTRIBUTION_TAIL = re.compile(r"(?:\bwrote|\bschrieb\b.*|\ba\s+écrit|\bescribió|\bescreveu|\bschreef|\bha\s+scritto)\s*:$", re.I)
_ORIGINAL = re.compile(r"^-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original)\s*-{2,}$", re.I)
_FORWARD = re.compile(
    r"^(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado)\s*-{2,}"
    r"|begin forwarded message:)$",
    re.I,
)
_HEADER_FROM = re.compile(r"^\*?(?:from|von|de)\*?\s?:", re.I)
_HEADER = re.compile(
    r"^\*?(?:from|von|de|sent|date|gesendet|datum|envoyé|enviado(?: el)?|fecha|to|an|à|para|cc|subject|betreff"
    r"|objet|asunto)\*?\s?:",
    re.I,
)
_RULE = re.compile(r"^_{10,}$")

_SENT_FROM = re.compile(
    r"^(?:sent (?:from|with|via) (?:my )?(?:iphone|ipad|android|blackberry|mobile|phone|smartphone|samsung|galaxy"
    r"|pixel|outlook|mail for windows|yahoo mail|gmail|proton ?mail)\b.{0,60}|get outlook for (?:ios|android).{0,60}"
    r"|von meinem \w+(?: \w+)? gesendet|envoyé de mon \w+(?: \w+)?|enviado desde mi \w+(?: \w+)?)$",
    re.I,
)
_SIGN_OFF = re.compile(
    r"(?:(?:best|kind|warm|warmest|with kind|with best)\s+regards|regards|best wishes|all the best|best|many thanks"
    r"|thanks(?: again| a lot)?|thank you|cheers|sincerely|yours(?: sincerely| truly| faithfully)?"
    r"|mit freundlichen gr(?:ü|ue)(?:ß|ss)en|(?:viele|beste|liebe) gr(?:ü|ue)(?:ß|ss)e|mfg|cordialement"
    r"|bien cordialement|bien à vous|saludos(?: cordiales)?|un saludo|atentamente)\b\s*[,.!]?",
    re.I,
)
_SIGNATURE_MAX_LINES = 15  # after "--": more than this is body text, not a signature
_SIGN_OFF_WINDOW = 10
_SIGN_OFF_TAIL_LINES = 8
_SIGN_OFF_TAIL_WORDS = 6

_FOOTER = re.compile(
    r"^(?:to )?unsubscribe\b|\bunsubscribe\W*$|\bunsubscribe (?:here|now|below|at any time|anytime|from (?:this|these|our))\b"
    r"|click (?:here )?to unsubscribe|manage (?:your )?(?:\w+ )?preferences|update your (?:\w+ )?preferences"
    r"|you (?:are|were) receiving this (?:e-?mail|message|newsletter)|you received this (?:e-?mail|message) because"
    r"|to stop receiving (?:these|this|our|future)|no longer wish to receive|confidentiality notice"
    r"|this (?:e-?mail|message|communication)(?: and any (?:attachments?|files?)[\w ]{0,30})? (?:is|are|may be|contains?)"
    r" (?:strictly )?(?:confidential|privileged)|if you are not the intended recipient"
    r"|this (?:e-?mail|message) is intended (?:only|solely) for",
    re.I,
)


@dataclass(frozen=True)
class NormalizeConfig:
    """What plain-text clean-up does. A footer pattern (searched case-insensitively, line by line)
    drops the paragraph holding the matching line when that paragraph reaches into the last third
    of the text: the same rule as the built-in footers, so a loose pattern cannot eat the body.
    """

    strip_quoted_replies: bool = True
    strip_signatures: bool = True
    strip_footers: bool = True
    extra_footer_patterns: tuple[str, ...] = ()
    max_html_chars: int = 2_000_000
    _footers: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_html_chars < 1:
            raise ValueError(f"max_html_chars must be a positive integer, got {self.max_html_chars!r}")
        compiled = []
        for i, pattern in enumerate(self.extra_footer_patterns):
            try:
                compiled.append(re.compile(pattern, re.I))
            except (re.error, TypeError) as exc:
                raise ValueError(f"extra_footer_patterns[{i}] must be a valid regex, got {pattern!r}: {exc}") from None
        object.__setattr__(self, "_footers", (_FOOTER, *compiled))

    @classmethod
    def build(
        cls,
        *,
        strip_quoted_replies: bool = True,
        strip_signatures: bool = True,
        strip_footers: bool = True,
        extra_footer_patterns: Sequence[str] = (),
        max_html_chars: int = 2_000_000,
    ) -> NormalizeConfig:
        """From settings values; raises ValueError at start-up for a bad regex or limit."""
        return cls(strip_quoted_replies, strip_signatures, strip_footers, tuple(extra_footer_patterns), max_html_chars)


@dataclass(frozen=True)
class Normalized:
    text: str
    format: Literal["text", "html"]
    removed: dict[str, int]  # counts only, never content; zero counts left out


def detect_format(text: str) -> Literal["text", "html"]:
    """HTML if it opens like a document or known tags are dense (one per 500 characters, with a
    closing tag or <br>); a mail with addresses in angle brackets or "a < b" stays text."""
    if _DOC_START.match(text.lstrip("\ufeff")):
        return "html"
    tags = _TAG.findall(text)
    closes = any(tag.startswith("</") or tag[1:3].lower() == "br" for tag in tags)
    return "html" if len(tags) >= 2 and closes and len(tags) * _MAX_CHARS_PER_TAG >= len(text) else "text"


def normalize(text: str, fmt: Format = "auto", config: NormalizeConfig = NormalizeConfig()) -> Normalized:
    """Main text of `text`, cleaned. Raises BadInput only for HTML that is oversize or unparseable."""
    if fmt not in ("auto", "text", "html"):
        raise ValueError(f"fmt must be auto, text or html, got {fmt!r}")
    used: Literal["text", "html"] = detect_format(text) if fmt == "auto" else fmt
    if used == "html" and len(text) > config.max_html_chars:
        raise BadInput(f"html is {len(text)} characters; the limit is {config.max_html_chars} (max_html_chars)")
    body, controls = _drop_controls(text)
    if used == "html":
        extracted, more = _drop_controls(_html_text(body))
        removed = {"html_chars": max(0, len(body) - len(extracted)), "control_chars": controls + more}
        body = extracted
    else:
        body, removed = _strip_text(clean(body), config)
        removed["control_chars"] = controls
    return Normalized(_BLANK_RUNS.sub("\n\n", clean(body)), used, {k: n for k, n in removed.items() if n})


def _drop_controls(text: str) -> tuple[str, int]:
    # Same characters `clean` drops (category C), counted; the ASCII pre-filter keeps 2 MB pages fast.
    # lxml refuses some of them (NUL), so HTML loses them before parsing.
    dropped = 0

    def keep(match: re.Match[str]) -> str:
        nonlocal dropped
        if unicodedata.category(match.group())[0] != "C":
            return match.group()
        dropped += 1
        return ""

    return _CANDIDATE_CONTROL.sub(keep, text), dropped


def _html_text(html: str) -> str:
    html = _XML_DECLARATION.sub("", html, count=1)
    if not html.strip():
        return ""
    if _DOC_START.match(html) or _BODY.search(html):
        # A fresh cache per call: with `deduplicate=True` trafilatura shares one process-wide
        # cache, and the third request for the same page would come back empty.
        text = trafilatura.extract(
            html, output_format="txt", include_comments=False, include_tables=True, include_links=False,
            include_images=False, favor_precision=True, with_metadata=False, deduplicate=LRUCache(maxsize=1024),
        )  # fmt: skip
        if text and text.strip():
            return "\n\n".join(line for line in text.split("\n") if line.strip())
    # Fragments go to lxml: they carry little chrome, and trafilatura drops their headings and
    # lists ("<h2>..</h2><ul>..</ul><p>..</p>" keeps only the <p>). Better the chrome than nothing.
    return _lxml_text(_parse_html(html), _CHROME_TAGS) or _lxml_text(_parse_html(html), ())


def _parse_html(html: str) -> lxml.html.HtmlElement:
    try:
        return lxml.html.fromstring(html)
    except (lxml.etree.LxmlError, ValueError) as exc:
        raise BadInput(f"html could not be parsed: {exc}") from exc


def _lxml_text(root: lxml.html.HtmlElement, chrome: tuple[str, ...]) -> str:
    for element in list(root.iter(*_DROP_TAGS, *chrome)):
        if element is not root:
            element.drop_tree()
    if root.tag in _DROP_TAGS + chrome:
        return ""
    verbatim = {id(node) for pre in root.iter("pre") for node in pre.iter()}
    for element in root.iter():
        # Source line breaks mean nothing in HTML; only blocks and <br> break lines.
        if id(element) not in verbatim:
            element.text = _SPACE_RUNS.sub(" ", element.text) if element.text else element.text
            element.tail = _SPACE_RUNS.sub(" ", element.tail) if element.tail else element.tail
        if element.tag in ("td", "th"):
            element.tail = " " + (element.tail or "")
        elif element.tag in _BLOCK_TAGS:
            element.text = "\n\n" + (element.text or "")
            element.tail = "\n\n" + (element.tail or "")
        elif element.tag == "br":
            element.tail = "\n" + (element.tail or "")
    return "\n".join(line.strip() for line in str(root.text_content()).split("\n")).strip()


def _strip_text(text: str, config: NormalizeConfig) -> tuple[str, dict[str, int]]:
    lines = text.split("\n")
    removed: dict[str, int] = {}
    if config.strip_quoted_replies:
        lines, removed["quoted_reply_lines"] = _strip_quotes(lines)
    if config.strip_signatures:
        lines, removed["signature_lines"] = _strip_signature(lines)
    if config.strip_footers:
        lines, removed["footer_lines"] = _strip_footers(lines, config._footers)
    if not any(lines):
        # A mail that is all quote (or all signature) still says something; a noisy summary
        # beats a 400 telling the user their non-empty message was empty.
        return text, {}
    return "\n".join(lines), removed


def _nonblank(lines: Sequence[str]) -> int:
    return sum(1 for line in lines if line)


def _strip_quotes(lines: list[str]) -> tuple[list[str], int]:
    before = _nonblank(lines)
    # A forward's content is the point of the mail: drop only its marker and header block.
    for i in reversed([i for i, line in enumerate(lines) if _FORWARD.match(line)]):
        end = i + 1
        while end < len(lines) and (_HEADER.match(lines[end]) or (not lines[end] and end == i + 1)):
            end += 1
        lines = lines[:i] + lines[end:]
    cut = _reply_start(lines)
    kept = [line for line in lines[:cut] if not line.startswith(">")]
    return kept, before - _nonblank(kept)


def _reply_start(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if _ORIGINAL.match(line) or _is_attribution(line):
            return i
        if i + 1 < len(lines) and _ATTRIBUTION_LEAD.match(line) and _is_attribution(f"{line} {lines[i + 1]}"):
            return i
        if _HEADER_FROM.match(line) and all(_HEADER.match(x) for x in lines[i + 1 : i + 3]) and i + 2 < len(lines):
            return i - 1 if i and _RULE.match(lines[i - 1]) else i
    return len(lines)


def _is_attribution(line: str) -> bool:
    return (
        len(line) <= 300
        and bool(_ATTRIBUTION_TAIL.search(line))
        and bool(re.search(r"[\d@]", line))
        and ("@" in line or bool(_ATTRIBUTION_LEAD.match(line)))
    )


def _strip_signature(lines: list[str]) -> tuple[list[str], int]:
    kept = [line for line in lines if not _SENT_FROM.match(line)]
    for i, line in enumerate(kept):
        if line == "--" and _nonblank(kept[i + 1 :]) <= _SIGNATURE_MAX_LINES:
            kept = kept[:i]
            break
    for i in [i for i, line in enumerate(kept) if line][-_SIGN_OFF_WINDOW:]:
        tail = [line for line in kept[i + 1 :] if line]
        if (
            _is_sign_off(kept[i])
            and len(tail) <= _SIGN_OFF_TAIL_LINES
            and all(len(line.split()) <= _SIGN_OFF_TAIL_WORDS for line in tail)
        ):
            kept = kept[:i]
            break
    return kept, _nonblank(lines) - _nonblank(kept)


def _is_sign_off(line: str) -> bool:
    """ "Best regards," or "Thanks, Anna Smith" but not "Thanks for the report." """
    match = _SIGN_OFF.match(line)
    if match is None:
        return False
    name = line[match.end() :].split()
    return len(name) <= 3 and all(word[0].isupper() for word in name)


def _strip_footers(lines: list[str], patterns: Sequence[re.Pattern[str]]) -> tuple[list[str], int]:
    total = len("\n".join(lines))
    kept: list[str] = []
    removed = offset = start = 0
    for i, line in enumerate([*lines, ""]):
        if line:
            offset += len(line) + 1
            continue
        paragraph = lines[start:i]
        in_last_third = offset * 3 > total * 2
        if in_last_third and any(p.search(x) for x in paragraph for p in patterns):
            removed += len(paragraph)
        else:
            kept.extend(paragraph)
        kept.append(line)
        offset += 1
        start = i + 1
    return kept[:-1], removed

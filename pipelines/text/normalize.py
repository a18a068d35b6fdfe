"""First stage before any model sees the text: web pages cut to their article, e-mails to the new message.

A summary of a reply should be about the reply, not the quoted thread, the signature or the legal
footer; a summary of a web page about the article, not its menus and cookie banner. What is dropped
is reported as counts only (never content), so it can be logged without leaking the document.

    result = normalize(mail_text)                  # format detected: "text"
    result.text, result.removed                    # "...", {"quoted_reply_lines": 4, "signature_lines": 3}
    normalize(page_html, "html", NormalizeConfig.build(extra_footer_patterns=[r"^Acme Ltd is registered"]))

No network (checked in trafilatura 2.3.1): `extract` on a string only parses it; the downloaders of
trafilatura, courlan and htmldate are imported, never called (metadata, where htmldate would fetch a
string that looks like a URL, stays off); lxml's HTML parser defaults to `no_network`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.deduplication import LRUCache

from pipelines.errors import BadInput, InputTooLarge
from pipelines.text.sentences import clean

Format = Literal["auto", "text", "html"]

_DOC_START = re.compile(r"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)
_BODY = re.compile(r"<body[\s>]", re.I)
# Known tag names only, so "<anna@example.com>" or "x <b and c> y" in a mail do not count.
_TAG = re.compile(r"<(?:(?:p|div|br|span|a|b|i|u|em|strong|ul|ol|li|table|tr|td|th|h[1-6]|body|head|title|meta|img"
                  r"|section|article|main|blockquote|pre|hr|font|nav|header|footer|aside|script|style)(?:\s[^<>]*)?/?"
                  r"|/[a-z][a-z0-9-]*\s*)>", re.I)
_MAX_CHARS_PER_TAG = 500
_TAG_OPEN = re.compile(r"<[A-Za-z]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# Runs that may hold category C characters: not printable ASCII, not a Unicode space (Z*).
_MAYBE_CONTROL = re.compile(r"[^\x20-\x7e\n\t\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_SPACE_RUNS = re.compile(r"\s+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_DROP_TAGS = ("script", "style", "noscript", "template", "head", "iframe", "svg", "button")
_CHROME_TAGS = ("nav", "header", "footer", "aside", "form")
_BLOCK_TAGS = set("p div section article main h1 h2 h3 h4 h5 h6 li ul ol dl dt dd table tr blockquote pre figure"
                  " figcaption address hr caption details summary".split())

# Attributions also need a digit or an address (checked in code), so "As Anna wrote:" stays.
_ATTRIBUTION_LEAD = re.compile(r"^(?:On|Am|Le|El|Em|Op)\s")
_ATTRIBUTION_TAIL = re.compile(r"(?:\bwrote|\bschrieb\s+[^,:]{1,80}|\ba\s+écrit|\bescribió|\bescreveu)\s*:$", re.I)
_ORIGINAL = re.compile(r"^-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original)\s*-+$", re.I)
_FORWARD = re.compile(r"^(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado)"
                      r"\s*-+|begin forwarded message:)$", re.I)
_FROM_KEYS = ("from", "von", "de")
_HEADER = re.compile(r"^\*?(from|von|de|sent|date|gesendet|datum|envoyé|enviado(?: el)?|fecha|to|an|à|para|cc|subject"
                     r"|betreff|objet|asunto)\*?\s?:", re.I)
_RULE = re.compile(r"^_{10,}$")
_SENT_FROM = re.compile(r"^(?:sent (?:from|with|via) (?:my )?(?:iphone|ipad|android|blackberry|mobile|phone|samsung"
                        r"|galaxy|pixel|outlook|mail for windows|yahoo mail|gmail)\b.{0,60}|get outlook for (?:ios|android)"
                        r".{0,60}|von meinem \w+ gesendet|envoyé de mon \w+|enviado desde mi \w+)$", re.I)
_SIGN_OFF = re.compile(r"(?:(?:best|kind|warm|warmest)\s+regards|regards|best wishes|all the best|best|many thanks"
                       r"|thanks(?: again| a lot)?|thank you|cheers|sincerely|yours(?: sincerely| truly| faithfully)?"
                       r"|mit freundlichen gr(?:ü|ue)(?:ß|ss)en|(?:viele|beste|liebe) gr(?:ü|ue)(?:ß|ss)e|mfg"
                       r"|(?:bien )?cordialement|bien à vous|saludos(?: cordiales)?|un saludo|atentamente)\b\s*[,.!]?",
                       re.I)
_SIGNATURE_MAX_LINES = 15  # after "--": more than this is body text, not a signature
_SIGN_OFF_WINDOW, _SIGN_OFF_TAIL_LINES, _SIGN_OFF_TAIL_WORDS = 10, 8, 6
_FOOTER = re.compile(r"^(?:to )?unsubscribe\b|\bunsubscribe\W*$|\bunsubscribe (?:here|now|below|at any time|anytime"
                     r"|from (?:this|these|our))\b|click (?:here )?to unsubscribe|(?:manage|update) your (?:\w+ )?"
                     r"preferences|no longer wish to receive|you (?:are|were) receiving this (?:e-?mail|message"
                     r"|newsletter)|you received this (?:e-?mail|message) because|to stop receiving (?:these|this|our"
                     r"|future)|confidentiality notice|if you are not the intended recipient|this (?:e-?mail|message"
                     r"|communication)(?: and any (?:attachments?|files?)[\w ]{0,30})? (?:is|are|may be|contains?)"
                     r" (?:strictly )?(?:confidential|privileged)|this (?:e-?mail|message) is intended (?:only|solely)"
                     r" for", re.I)


@dataclass(frozen=True)
class NormalizeConfig:
    """Plain-text clean-up switches. A footer pattern (searched case-insensitively in each line) drops
    the paragraph holding the matching line when that paragraph reaches into the last third of the
    text: the rule the built-in footers follow, so a loose pattern cannot eat the body.
    """

    strip_quoted_replies: bool = True
    strip_signatures: bool = True
    strip_footers: bool = True
    extra_footer_patterns: tuple[str, ...] = ()
    max_html_chars: int = 2_000_000
    # trafilatura spends ~0.1 ms of CPU per element, so tags, not characters, bound its time:
    # 800 kB of "<p>x</p>" took 10-12 s on 2 cores. Real pages run one tag per 30-60 characters,
    # far under this for any page within max_html_chars' default.
    max_html_tags: int = 50_000
    _footers: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_html_chars < 1:
            raise ValueError(f"max_html_chars must be a positive integer, got {self.max_html_chars!r}")
        if self.max_html_tags < 1:
            raise ValueError(f"max_html_tags must be a positive integer, got {self.max_html_tags!r}")
        compiled = [_FOOTER]
        for i, pattern in enumerate(self.extra_footer_patterns):
            try:
                compiled.append(re.compile(pattern, re.I))
            except (re.error, TypeError) as exc:
                raise ValueError(f"extra_footer_patterns[{i}] must be a valid regex, got {pattern!r}: {exc}") from None
        object.__setattr__(self, "_footers", tuple(compiled))

    @classmethod
    def build(
        cls, *, strip_quoted_replies: bool = True, strip_signatures: bool = True, strip_footers: bool = True,
        extra_footer_patterns: Sequence[str] = (), max_html_chars: int = 2_000_000, max_html_tags: int = 50_000,
    ) -> NormalizeConfig:
        """From settings values; a bad regex or limit raises ValueError here, at start-up."""
        return cls(
            strip_quoted_replies, strip_signatures, strip_footers, tuple(extra_footer_patterns), max_html_chars, max_html_tags
        )


@dataclass(frozen=True)
class Normalized:
    text: str
    format: Literal["text", "html"]  # as given, or as detected
    removed: dict[str, int]  # counts only, never content; zero counts left out


def detect_format(text: str) -> Literal["text", "html"]:
    """HTML if it opens like a page, or known tags are dense (one per 500 characters, with a closing
    tag or <br>): a wrong "html" would run a mail through an article extractor, so stay cautious."""
    if _DOC_START.match(text.lstrip("\ufeff")):
        return "html"
    tags = _TAG.findall(text)
    closes = any(tag.startswith("</") or tag[1:3].lower() == "br" for tag in tags)
    return "html" if len(tags) >= 2 and closes and len(tags) * _MAX_CHARS_PER_TAG >= len(text) else "text"


def normalize(text: str, fmt: Format = "auto", config: NormalizeConfig = NormalizeConfig()) -> Normalized:
    """The main text of a page or a mail, cleaned. Raises InputTooLarge for oversize and BadInput for unparseable HTML."""
    used: Literal["text", "html"] = detect_format(text) if fmt == "auto" else fmt
    if used == "html" and len(text) > config.max_html_chars:
        raise InputTooLarge(f"html is {len(text)} characters; the limit is {config.max_html_chars} (max_html_chars)")
    if used == "html" and _more_tags_than(text, config.max_html_tags):
        raise InputTooLarge(
            f"html has more than {config.max_html_tags} tags, the limit; send the article's own markup, or its text"
        )
    source, controls = _drop_controls(text)
    if used == "html":
        body, decoded_controls = _drop_controls(_html_text(source))  # entities such as &#8203;
        removed = {"html_chars": 0, "control_chars": controls + decoded_controls}
    else:
        body, removed = _strip_text(clean(source), config)
        removed["control_chars"] = controls
    result = _BLANK_RUNS.sub("\n\n", clean(body))
    if used == "html":
        removed["html_chars"] = max(0, len(source) - len(result))
    return Normalized(result, used, {k: n for k, n in removed.items() if n})


def _more_tags_than(html: str, limit: int) -> bool:
    """Opening tags counted without parsing; stops at `limit` + 1, so a tag bomb costs no more."""
    return sum(1 for _ in islice(_TAG_OPEN.finditer(html), limit + 1)) > limit


def _drop_controls(text: str) -> tuple[str, int]:
    """What `clean` drops (category C; line breaks and tabs stay), counted. lxml refuses some (NUL)."""
    dropped = 0

    def keep(match: re.Match[str]) -> str:
        nonlocal dropped
        run = match.group()
        if run.isprintable():  # no C (and no Z) character: the common case, decided in C
            return run
        kept = "".join(ch for ch in run if unicodedata.category(ch)[0] != "C")
        dropped += len(run) - len(kept)
        return kept

    return _MAYBE_CONTROL.sub(keep, text), dropped


def _html_text(html: str) -> str:
    html = _XML_DECLARATION.sub("", html, count=1)  # lxml refuses a str that declares an encoding
    if not html.strip():
        return ""
    if _DOC_START.match(html) or _BODY.search(html):
        # A fresh cache per call: with `deduplicate=True` trafilatura counts repeats in one
        # process-wide cache, and the third request for the same page would come back empty.
        text = trafilatura.extract(
            html, output_format="txt", include_comments=False, include_tables=True, include_links=False,
            include_images=False, favor_precision=True, with_metadata=False, deduplicate=LRUCache(maxsize=1024),
        )
        if text and text.strip():
            return "\n\n".join(line for line in text.split("\n") if line.strip())
    # Fragments go to lxml: they carry little chrome, and trafilatura drops their headings and
    # lists ("<h2>..</h2><ul>..</ul><p>..</p>" keeps only the <p>). Better chrome than nothing.
    return _lxml_text(_parse_html(html), _CHROME_TAGS) or _lxml_text(_parse_html(html), ())


def _parse_html(html: str) -> lxml.html.HtmlElement:
    try:
        return lxml.html.fromstring(html)
    except (lxml.etree.LxmlError, ValueError) as exc:
        # The parser's message can quote the document; the type is enough to act on.
        raise BadInput(f"html could not be parsed ({type(exc).__name__})") from exc


def _lxml_text(root: lxml.html.HtmlElement, chrome: tuple[str, ...]) -> str:
    if root.tag in _DROP_TAGS + chrome:
        return ""
    for element in list(root.iter(*_DROP_TAGS, *chrome)):
        element.drop_tree()
    verbatim = {id(node) for pre in root.iter("pre") for node in pre.iter()}
    for element in root.iter():
        if id(element) not in verbatim:  # source line breaks mean nothing in HTML, outside <pre>
            element.text = _SPACE_RUNS.sub(" ", element.text) if element.text else element.text
            element.tail = _SPACE_RUNS.sub(" ", element.tail) if element.tail else element.tail
        if element.tag in ("td", "th"):
            element.tail = " " + (element.tail or "")
        elif element.tag in _BLOCK_TAGS:
            element.text, element.tail = "\n\n" + (element.text or ""), "\n\n" + (element.tail or "")
        elif element.tag == "br":
            element.tail = "\n" + (element.tail or "")
    return "\n".join(line.strip() for line in str(root.text_content()).split("\n")).strip()


def _strip_text(text: str, config: NormalizeConfig) -> tuple[str, dict[str, int]]:
    lines, removed = text.split("\n"), {}
    if config.strip_quoted_replies:
        lines, removed["quoted_reply_lines"] = _strip_quotes(lines)
    if config.strip_signatures:
        lines, removed["signature_lines"] = _strip_signature(lines)
    if config.strip_footers:
        lines, removed["footer_lines"] = _strip_footers(lines, config._footers)
    if not any(lines):
        # A mail that is all quote still says something: a noisy summary beats a 400 that calls
        # the user's non-empty message empty.
        return text, {}
    return "\n".join(lines), removed


def _nonblank(lines: Sequence[str]) -> int:
    return sum(1 for line in lines if line)


def _strip_quotes(lines: list[str]) -> tuple[list[str], int]:
    before = _nonblank(lines)
    # A forward's content is the point of the mail: only its marker and header block go.
    for i in reversed([i for i, line in enumerate(lines) if _FORWARD.match(line)]):
        end = i + 1
        while end < len(lines) and (_HEADER.match(lines[end]) or (end == i + 1 and not lines[end])):
            end += 1
        lines = lines[:i] + lines[end:]
    kept = [line for line in lines[: _reply_start(lines)] if not line.startswith(">")]
    return kept, before - _nonblank(kept)


def _reply_start(lines: list[str]) -> int:
    """Where the quoted history begins: an attribution, an Outlook marker or header block, or the end."""
    for i, line in enumerate(lines):
        wrapped = f"{line} {lines[i + 1]}" if i + 1 < len(lines) and _ATTRIBUTION_LEAD.match(line) else ""
        if _ORIGINAL.match(line) or _is_attribution(line) or _is_attribution(wrapped):
            return i
        header = _HEADER.match(line)
        if header and header.group(1).lower() in _FROM_KEYS and i + 2 < len(lines):
            if _HEADER.match(lines[i + 1]) and _HEADER.match(lines[i + 2]):
                return i - 1 if i and _RULE.match(lines[i - 1]) else i
    return len(lines)


def _is_attribution(line: str) -> bool:
    dated = _ATTRIBUTION_LEAD.match(line) is not None and any(ch.isdigit() for ch in line)
    return 0 < len(line) <= 300 and ("@" in line or dated) and _ATTRIBUTION_TAIL.search(line) is not None


def _strip_signature(lines: list[str]) -> tuple[list[str], int]:
    kept = [line for line in lines if not _SENT_FROM.match(line)]
    for i, line in enumerate(kept):
        if line == "--" and _nonblank(kept[i + 1 :]) <= _SIGNATURE_MAX_LINES:  # RFC 3676 "-- ", stripped
            kept = kept[:i]
            break
    for i in [i for i, line in enumerate(kept) if line][-_SIGN_OFF_WINDOW:]:
        tail = [line for line in kept[i + 1 :] if line]
        short = len(tail) <= _SIGN_OFF_TAIL_LINES and all(len(line.split()) <= _SIGN_OFF_TAIL_WORDS for line in tail)
        if short and _is_sign_off(kept[i]):
            kept = kept[:i]
            break
    return kept, _nonblank(lines) - _nonblank(kept)


def _is_sign_off(line: str) -> bool:
    """ "Best regards," and "Thanks, Anna Smith", but not "Thanks for the report." """
    match = _SIGN_OFF.match(line)
    name = line[match.end() :].split() if match else []
    return match is not None and len(name) <= 3 and all(word[0].isupper() for word in name)


def _strip_footers(lines: list[str], patterns: Sequence[re.Pattern[str]]) -> tuple[list[str], int]:
    """Drop each paragraph that holds a footer line and reaches into the last third of the text."""
    text = "\n".join(lines)
    kept, removed, end = [], 0, 0
    for paragraph in _PARAGRAPH_BREAK.split(text):
        end += len(paragraph) + 2
        if end * 3 > len(text) * 2 and any(p.search(line) for line in paragraph.split("\n") for p in patterns):
            removed += _nonblank(paragraph.split("\n"))
        else:
            kept.append(paragraph)
    return "\n\n".join(kept).split("\n"), removed

"""Normalize then redact, with the limits: what every text route runs before anything else."""

from __future__ import annotations

import pytest

from pipelines.errors import BadInput, InputTooLarge
from pipelines.settings import Settings
from pipelines.text.prepare import InputPipeline

PAGE = """<!doctype html><html><head><title>Bridge</title><script>track('secret-tracker')</script></head>
<body><nav><a href="/">Home</a> <a href="/news">News</a></nav>
<div class="cookie">We use cookies. Accept all?</div>
<article><h1>Bridge to close</h1>
<p>The council voted on Tuesday to close the old bridge to cars from March, after engineers found corrosion.</p>
<p>Residents can send comments to bridge.team@northbridge.example or call +44 20 7946 0321 until Friday.</p>
<p>Pedestrians and cyclists will still be allowed to cross while a replacement is designed by the city.</p>
</article><footer>Copyright Northbridge Council. All rights reserved.</footer></body></html>"""

MAIL = """Hi Tom,

the invoice is attached. Please pay to DE89 3704 0044 0532 0130 00 by the end of the month.

Best regards,
Anna
anna@acme.example

On Mon, 2 Mar 2026 at 10:02, Tom <tom.private@example.com> wrote:
> Can you send me the invoice? My card is 4111 1111 1111 1111.
"""


@pytest.fixture(scope="module")
def pipeline() -> InputPipeline:
    return InputPipeline.from_settings(Settings(max_input_chars=5000, max_html_chars=20_000))


def test_html_page_is_reduced_to_the_article_then_redacted(pipeline: InputPipeline) -> None:
    out = pipeline.prepare(PAGE)
    assert out.format == "html"
    assert "The council voted on Tuesday" in out.text and "Pedestrians and cyclists" in out.text
    for chrome in ("Home", "cookies", "Copyright", "secret-tracker"):
        assert chrome not in out.text
    assert "<EMAIL_ADDRESS>" in out.text and "<PHONE_NUMBER>" in out.text
    assert out.redactions == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert out.removed["html_chars"] > 0


def test_mail_quotes_and_signature_go_before_redaction_counts(pipeline: InputPipeline) -> None:
    out = pipeline.prepare(MAIL, "text")
    assert out.text.startswith("Hi Tom,") and "<IBAN_CODE>" in out.text
    # The quoted reply and the signature were dropped whole, so their PII is not even counted.
    assert out.redactions == {"IBAN_CODE": 1}
    for gone in ("tom.private", "4111", "anna@acme", "Best regards"):
        assert gone not in out.text
    assert out.removed["quoted_reply_lines"] >= 2 and out.removed["signature_lines"] >= 3


@pytest.mark.parametrize(("text", "fmt"), [("", "auto"), ("   \n ", "text"), ("<html><body><script>track()</script><style>p {}</style></body></html>", "html")])
def test_empty_input_or_empty_after_normalization_is_400(pipeline: InputPipeline, text: str, fmt: str) -> None:
    with pytest.raises(BadInput, match="empty"):
        pipeline.prepare(text, fmt)  # type: ignore[arg-type]


def test_limits_apply_to_raw_text_and_to_what_the_model_would_see(pipeline: InputPipeline) -> None:
    with pytest.raises(InputTooLarge, match="the limit is 5000"):
        pipeline.prepare("word " * 1100, "text")  # raw text over max_input_chars
    with pytest.raises(InputTooLarge, match="the limit is 20000"):
        pipeline.prepare("<p>" + "word " * 5000 + "</p>", "html")  # raw HTML over max_html_chars
    big_page = "<html><body><article>" + "<p>The council met again today to discuss it.</p>" * 150 + "</article></body></html>"
    with pytest.raises(InputTooLarge, match="after normalization"):
        pipeline.prepare(big_page, "html")  # the page fits, its text does not
    # Chrome around a small article does not count against the text limit.
    assert pipeline.prepare(PAGE.replace("</footer>", "x" * 6000 + "</footer>"), "html").format == "html"


def test_the_html_tag_limit_comes_from_settings() -> None:
    page = "<html><body><article>" + "<p>The council met again today to discuss it.</p>" * 30 + "</article></body></html>"
    assert InputPipeline.from_settings(Settings(max_html_tags=100)).prepare(page, "html").format == "html"
    with pytest.raises(InputTooLarge, match="more than 20 tags"):
        InputPipeline.from_settings(Settings(max_html_tags=20)).prepare(page, "html")


def test_settings_switch_redaction_and_normalization_steps() -> None:
    plain = InputPipeline.from_settings(Settings(redact=False, strip_signatures=False, strip_quoted_replies=False))
    out = plain.prepare(MAIL, "text")
    assert out.redactions == {} and "tom.private@example.com" in out.text and "Best regards" in out.text


def test_bad_settings_fail_at_start_up() -> None:
    with pytest.raises(ValueError, match=r"extra_footer_patterns\[0\] must be a valid regex"):
        InputPipeline.check_settings(Settings(footer_patterns=["(unclosed"]))
    with pytest.raises(ValueError, match="redact_entities must be among"):
        InputPipeline.check_settings(Settings(redact_entities=["NAMES"]))


def test_the_whole_preparation_runs_offline(no_network: list[object]) -> None:
    pipeline = InputPipeline.from_settings(Settings())
    assert pipeline.prepare(PAGE).redactions == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert pipeline.prepare(MAIL).redactions == {"IBAN_CODE": 1}
    assert no_network == []

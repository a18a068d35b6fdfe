"""Normalization on realistic pages and mails, written for these tests (not taken from any data set)."""

from __future__ import annotations

import pytest
import trafilatura

from pipelines.errors import BadInput, InputTooLarge
from pipelines.text.normalize import NormalizeConfig, detect_format, normalize

HEADLINE = "Harbour Street bridge to close to cars after inspection finds severe corrosion"
PARAGRAPHS = [
    "Engineers in Northbridge finished the first full inspection of the Harbour Street bridge on Monday, confirming "
    "that corrosion in two of its steel supports is worse than a survey found last spring.",
    "The report, presented to the council's transport committee, recommends closing the crossing to cars within six "
    "weeks while a temporary support frame is designed and installed.",
    'Deputy mayor Priya Natarajan said the findings left the city little room to manoeuvre. "Nobody wants to close a '
    'bridge that fourteen thousand drivers use every day, but the numbers are clear," she said.',
    "Shop owners on both banks of the river warned that a long closure could push customers towards the retail park "
    "on the ring road, and asked the council for reduced business rates during the works.",
    "The committee agreed to open a consultation on a replacement crossing next month. Early designs include a wider "
    "footpath, a protected cycle lane and a single lane for buses & emergency vehicles.",
    "Traffic will be diverted over the Mill Road bridge, where the council plans to add a temporary third lane and "
    "retime the traffic lights at both ends before the closure begins.",
]
CHROME = [
    "We use cookies", "Accept all cookies", "Manage settings", "Home", "World", "Business", "Sport", "Weather",
    "Northbridge Gazette", "Related stories", "new bus lanes", "Weekend road closures", "Subscribe to our newsletter",
    "Copyright", "All rights reserved", "Privacy policy", "Terms of use", "dataLayer", "gtag", "font-family",
    "addEventListener",
]
_BODY = "\n      ".join(f"<p>{p.replace('&', '&amp;')}</p>" for p in PARAGRAPHS)
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{HEADLINE} | Northbridge Gazette</title>
  <style>body {{ font-family: Georgia, serif; }} .cookie-banner {{ position: fixed; bottom: 0; }}</style>
  <script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
</head>
<body>
  <div class="cookie-banner" id="cookie-consent">
    <p>We use cookies to improve your experience and to show you relevant adverts.</p>
    <button>Accept all cookies</button> <button>Manage settings</button>
  </div>
  <header class="site-header">
    <a class="logo" href="/">Northbridge Gazette</a>
    <nav class="main-menu"><ul>
      <li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/business">Business</a></li>
      <li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li>
    </ul></nav>
  </header>
  <main>
    <article class="story">
      <h1>{HEADLINE}</h1>
      {_BODY}
    </article>
    <aside class="sidebar">
      <h2>Related stories</h2>
      <ul>
        <li><a href="/news/bus-lanes">Council approves new bus lanes on Mill Road</a></li>
        <li><a href="/news/closures">Weekend road closures announced</a></li>
      </ul>
      <div class="newsletter"><p>Subscribe to our newsletter</p><form><input type="email"></form></div>
    </aside>
  </main>
  <footer class="site-footer">
    <p>Copyright 2026 Northbridge Gazette Ltd. All rights reserved.</p>
    <ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li></ul>
  </footer>
  <script>document.querySelector('.cookie-banner').addEventListener('click', function () {{}});</script>
</body>
</html>
"""


def test_news_page_keeps_the_article_and_drops_the_chrome() -> None:
    result = normalize(PAGE)
    assert result.format == "html"
    assert result.text.split("\n\n") == [HEADLINE, *PARAGRAPHS]
    assert [chrome for chrome in CHROME if chrome in result.text] == []
    assert result.removed == {"html_chars": len(PAGE) - len(result.text)}


def test_same_page_three_times_gives_the_same_text() -> None:
    # trafilatura's own deduplication cache is process-wide and would empty the third result.
    assert len({normalize(PAGE).text for _ in range(4)}) == 1


def test_fragment_goes_through_lxml(monkeypatch: pytest.MonkeyPatch) -> None:
    # trafilatura would keep only the <p> of the list example below.
    monkeypatch.setattr(trafilatura, "extract", lambda *args, **kwargs: pytest.fail("fragment sent to trafilatura"))
    fragment = "<p>Hello <b>world</b>.</p><p>Second &amp; last.</p>"
    assert normalize(fragment) == normalize(fragment, "html")
    assert normalize(fragment).text == "Hello world.\n\nSecond & last."
    assert normalize(fragment).format == "html"
    lists = "<h2>Summary</h2>\n<ul><li>Revenue up 4%</li><li>Costs\n   flat</li></ul><p>See the sheet.<br>Tom</p>"
    assert normalize(lists).text == "Summary\n\nRevenue up 4%\n\nCosts flat\n\nSee the sheet.\nTom"
    xhtml = '<?xml version="1.0" encoding="utf-8"?>\n<div><p>Caf&#233; open.</p><table><tr><td>Mon</td><td>9-5</td></tr></table></div>'
    assert normalize(xhtml).text == "Café open.\n\nMon 9-5"


def test_fragment_drops_scripts_and_chrome_but_never_all_text() -> None:
    fragment = "<nav>Home | News</nav><div>Short note.</div><script>track()</script><footer>(c) Acme</footer>"
    assert normalize(fragment).text == "Short note."
    assert normalize("<header>Quarterly results</header><style>p {}</style>", "html").text == "Quarterly results"


def test_page_where_trafilatura_finds_nothing_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trafilatura, "extract", lambda *args, **kwargs: None)
    paragraphs = normalize(PAGE).text.split("\n\n")
    assert paragraphs[-len(PARAGRAPHS) - 1 :] == [HEADLINE, *PARAGRAPHS]
    # Tags say what is chrome; the cookie banner is a plain <div> and stays in this fallback.
    assert paragraphs[0].startswith("We use cookies") and len(paragraphs) == len(PARAGRAPHS) + 2


def test_unparseable_html_is_bad_input_and_oversize_html_too_large() -> None:
    with pytest.raises(BadInput, match="html could not be parsed"):
        normalize("<!-- nothing but a comment -->", "html")
    with pytest.raises(InputTooLarge, match="the limit is 1000"):
        normalize(PAGE, config=NormalizeConfig.build(max_html_chars=1000))
    assert normalize(PAGE, "text", NormalizeConfig(max_html_chars=1000)).format == "text"  # the limit is for html
    assert normalize("  ", "html").text == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PAGE, "html"),
        ("<html><body><p>Hi</p></body></html>", "html"),
        ("\ufeff<!doctype html><title>x</title>", "html"),
        ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"></html>', "html"),
        ("<p>Hello <b>world</b>.</p><p>Second &amp; last.</p>", "html"),
        ("<div>One line<br>two lines</div>", "html"),
        ("Plain text with a stray < in it.", "text"),
        ("If a < b and b > c then a < c.", "text"),
        ("Use x <b and c> y, then stop.", "text"),
        ("Hi Anna,\n\nsee below.\n\nOn Tue, 3 Mar 2026, Anna Smith <anna@example.com> wrote:\n> Hi <bob@example.com>", "text"),
        ("Reach me at <https://example.com/contact> or <anna@example.com>.", "text"),
        ("One <br> mentioned in a long plain-text mail about markup. " * 2 + "x" * 2000, "text"),
    ],
)
def test_detect_format(text: str, expected: str) -> None:
    assert detect_format(text) == expected


GMAIL_REPLY = """Hi Anna,

Thanks for sending the figures. I agree we should move the launch to April.
Can you book the room for Thursday?

On Tue, 3 Mar 2026 at 10:02, Anna Smith <anna@example.com> wrote:
> Hi Bob,
>
> Here are the Q1 figures. Revenue is up four percent.
>
> Anna
"""
BODY = ["Hi Anna,", "Thanks for sending the figures. I agree we should move the launch to April.", "Can you book the room for Thursday?"]


def test_gmail_reply_drops_attribution_and_quote() -> None:
    result = normalize(GMAIL_REPLY)
    assert result.format == "text"
    assert result.text == "Hi Anna,\n\n" + "\n".join(BODY[1:])
    assert result.removed == {"quoted_reply_lines": 6}


def test_wrapped_attribution_and_languages() -> None:
    wrapped = "Sounds good, see you at 3.\n\nOn Tue, 3 Mar 2026 at 10:02, Anna Smith\n<anna@example.com> wrote:\n\nOld text.\n"
    assert normalize(wrapped).text == "Sounds good, see you at 3."
    for attribution in [
        "Am Di., 3. März 2026 um 10:02 Uhr schrieb Anna Schmidt <anna@example.de>:",
        "Le mar. 3 mars 2026 à 10:02, Anne Martin <anne@example.fr> a écrit :",
        "El mar, 3 mar 2026 a las 10:02, Ana García (<ana@example.es>) escribió:",
        "On 03/03/2026 10:02, Anna Smith wrote:",
    ]:
        mail = f"Danke, passt so.\nIch melde mich morgen.\n\n{attribution}\n> Alter Text.\nNoch mehr alter Text."
        result = normalize(mail)
        assert result.text == "Danke, passt so.\nIch melde mich morgen.", attribution
        assert result.removed == {"quoted_reply_lines": 3}


def test_outlook_reply_drops_original_message_and_header_block() -> None:
    original = "Approved, please go ahead with the order.\n\n-----Original Message-----\nFrom: Anna\nSent: Monday\nOld request."
    assert normalize(original).text == "Approved, please go ahead with the order."
    headers = """Approved, please go ahead with the order.

________________________________
From: Anna Smith <anna@example.com>
Sent: Tuesday, March 3, 2026 10:02 AM
To: Bob Jones <bob@example.com>
Subject: RE: Order for the new laptops

Can we order twelve laptops for the new team?
"""
    result = normalize(headers)
    assert result.text == "Approved, please go ahead with the order."
    assert result.removed == {"quoted_reply_lines": 6}


def test_forward_keeps_the_forwarded_content() -> None:
    mail = """FYI, see the schedule below.

---------- Forwarded message ---------
From: Anna Smith <anna@example.com>
Date: Tue, 3 Mar 2026 at 10:02
Subject: Delivery schedule
To: Bob Jones <bob@example.com>


The first delivery arrives on Monday and the second one on Friday.
"""
    result = normalize(mail)
    assert result.text == "FYI, see the schedule below.\n\nThe first delivery arrives on Monday and the second one on Friday."
    assert result.removed == {"quoted_reply_lines": 5}


SIGNED = "Hi team,\n\nThe release is ready for testing on the staging server.\nPlease report issues by Friday."


@pytest.mark.parametrize(
    ("signature", "lines"),
    [
        ("-- \nJane Doe\nHead of Sales\nAcme Corp\n+1 555 0100", 5),
        ("--\nJane Doe", 2),
        ("Best regards,\nJohn\nACME Inc.", 3),
        ("Kind regards\n\nJohn Smith\nSenior Engineer | ACME Inc.\nT: +44 20 7946 0000", 4),
        ("Thanks, John", 1),
        ("Mit freundlichen Grüßen\nJürgen Weber", 2),
        ("Cordialement,\nMarie", 2),
        ("Sent from my iPhone", 1),
        ("Cheers,\nJohn\n\nSent from Outlook for Android", 3),
    ],
)
def test_signatures_are_dropped(signature: str, lines: int) -> None:
    result = normalize(f"{SIGNED}\n\n{signature}\n")
    assert result.text == SIGNED
    assert result.removed == {"signature_lines": lines}


def test_reply_with_signature_and_quote_counts_both() -> None:
    mail = "Yes, Thursday works.\n\nBest,\nBob\n\nOn Tue, 3 Mar 2026 at 10:02, Anna <anna@example.com> wrote:\n> Thursday?"
    result = normalize(mail)
    assert result.text == "Yes, Thursday works."
    assert result.removed == {"quoted_reply_lines": 2, "signature_lines": 2}


MARKETING = """Spring sale starts today

All garden furniture is 30% off until Sunday, and delivery is free on orders over 50 pounds.
Our new range of outdoor lighting has arrived, including solar lanterns and string lights.

Visit your nearest store or shop online.

You are receiving this email because you signed up for offers from Greenway Gardens.
Unsubscribe | Manage your preferences | View in browser
"""


def test_marketing_footer_is_dropped() -> None:
    result = normalize(MARKETING)
    assert result.text == MARKETING.split("\n\nYou are receiving")[0]
    assert result.removed == {"footer_lines": 2}


def test_confidentiality_notice_is_dropped() -> None:
    notice = (
        "CONFIDENTIALITY NOTICE: This e-mail and any attachments are confidential and may be privileged.\n"
        "If you are not the intended recipient, please notify the sender and delete this message."
    )
    result = normalize(f"{SIGNED}\n\n{notice}")
    assert result.text == SIGNED
    assert result.removed == {"footer_lines": 2}


def test_near_misses_in_the_body_stay() -> None:
    mail = """Hi Carla,

Thanks for the report. Please send my regards to the whole team in Lisbon.
I tried to unsubscribe from the old supplier newsletter, but it still arrives every week.
Regards to the suppliers are in the second section, which you can unsubscribe from in the portal.
We should move the supplier review to May, when the new contract starts.
The budget for the second half needs another look before the board meeting.
I will send a draft of the agenda on Monday, with the open questions listed at the top.
"""
    result = normalize(mail)
    assert result.text == mail.strip()
    assert result.removed == {}


def test_message_that_is_only_a_quote_keeps_its_text() -> None:
    mail = "On Tue, 3 Mar 2026 at 10:02, Anna Smith <anna@example.com> wrote:\n> The meeting moves to Thursday."
    result = normalize(mail)
    assert result.text == mail
    assert result.removed == {}


def test_switches_turn_stages_off() -> None:
    config = NormalizeConfig.build(strip_quoted_replies=False, strip_signatures=False, strip_footers=False)
    assert normalize(GMAIL_REPLY, config=config).text == normalize(GMAIL_REPLY, "text", config).text
    assert "> Here are the Q1 figures." in normalize(GMAIL_REPLY, config=config).text
    assert normalize(MARKETING, config=config).removed == {}


def test_extra_footer_patterns() -> None:
    mail = f"{SIGNED}\n\nAcme Ltd is registered in England and Wales, no. 01234567.\n12 High Street, Bristol"
    config = NormalizeConfig.build(extra_footer_patterns=[r"^acme ltd is registered in"])
    result = normalize(mail, config=config)
    assert result.text == SIGNED
    assert result.removed == {"footer_lines": 2}
    assert normalize(mail).text == mail


def test_invalid_footer_pattern_names_its_index() -> None:
    with pytest.raises(ValueError, match=r"extra_footer_patterns\[1\] must be a valid regex, got '\(unclosed'"):
        NormalizeConfig.build(extra_footer_patterns=["ok", "(unclosed"])
    with pytest.raises(ValueError, match="max_html_chars must be a positive integer, got 0"):
        NormalizeConfig.build(max_html_chars=0)


def test_unicode_is_normalized_and_control_characters_counted() -> None:
    text = "\ufeffThe ﬁrst\u200b draft\x00 is\u00a0\u00a0ready.\r\nSecond\tline\x07.\r\n\r\n\r\n\r\n\r\nEnd."
    result = normalize(text)
    assert result.text == "The first draft is ready.\nSecond line.\n\nEnd."
    assert result.removed == {"control_chars": 4}


def test_html_entities_for_invisible_characters_are_counted() -> None:
    result = normalize("<p>Zero&#8203;width and soft&shy;hyphen.</p><p>Next.</p>")
    assert result.text == "Zerowidth and softhyphen.\n\nNext."
    assert result.removed["control_chars"] == 2


def test_a_tag_bomb_is_too_large_before_any_parser_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the page reached the HTML parser")

    monkeypatch.setattr(trafilatura, "extract", no_parsing)
    config = NormalizeConfig.build(max_html_chars=10_000_000)
    bombs = {
        "flat": "<html><body>" + "<p>x</p>" * 100_000 + "</body></html>",  # ~10 s in trafilatura unguarded
        "nested": "<html><body>" + "<div>" * 50_000 + "deep" + "</div>" * 50_000 + "</body></html>",
        "fragment": "<span>a</span>" * 60_000,
    }
    for name, html in bombs.items():
        with pytest.raises(InputTooLarge, match="more than 50000 tags"):
            normalize(html, "html", config)
        assert detect_format(html) == "html", name  # "auto" meets the same limit


def test_the_tag_limit_counts_opening_tags_and_is_configurable() -> None:
    at_limit = "<p>" + "<b>x</b> " * 99 + "</p>"  # 100 opening tags; closing tags and "<" in text are free
    assert normalize(at_limit + " 1 < 2", "html", NormalizeConfig.build(max_html_tags=100)).text.startswith("x x")
    with pytest.raises(InputTooLarge, match="more than 99 tags"):
        normalize(at_limit, "html", NormalizeConfig.build(max_html_tags=99))
    assert normalize(at_limit, "text", NormalizeConfig.build(max_html_tags=1)).format == "text"  # html only
    with pytest.raises(ValueError, match="max_html_tags must be a positive integer, got 0"):
        NormalizeConfig.build(max_html_tags=0)


def test_a_huge_attribute_and_many_entities_still_give_the_text() -> None:
    config = NormalizeConfig.build(max_html_chars=10_000_000)
    attribute = '<html><body><p title="' + "a" * 5_000_000 + '">The bridge closes in March.</p></body></html>'
    assert normalize(attribute, "html", config).text == "The bridge closes in March."
    entities = "<p>" + "&amp;&#8203;&lt;" * 100_000 + "Done.</p>"
    result = normalize(entities, "html", config)
    assert result.text == "&<" * 100_000 + "Done." and result.removed["control_chars"] == 100_000

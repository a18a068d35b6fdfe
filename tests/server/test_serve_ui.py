"""The /ui playground in a real headless Chromium, against a real `bentoml serve` with auth on.

Each test opens a fresh browser context (nothing carried over, as a new tab after a reload), types
the token as a person would, and reads the page the way a person or a screen reader does. One
server for the module: auth on, small job batches (so progress moves in steps a poll can see).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.auth.store import TokenFile
from tests.fixtures.browser import axe_violations
from tests.server.conftest import Server, StartServer, wait_for
from tests.texts import LEGAL, NEWS

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.timeout(300)]

if os.environ.get("CI", "").lower() != "true":
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")  # the fixture says why, once
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, ViewportSize

MAX_CONCURRENCY = 8  # small, so one test can fill it with uploads that never finish
DESKTOP = ViewportSize(width=1100, height=900)
PHONE = ViewportSize(width=375, height=740)
# Where the README's screenshot comes from: `make screenshot` sets this to docs/images/ui.png.
SCREENSHOT = os.environ.get("SUMMARIZER_UI_SCREENSHOT")
PII = {
    "EMAIL_ADDRESS": "dana.whitfield@northbridge-mail.com",
    "PHONE_NUMBER": "(212) 555-0187",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
    "PERSON": "Ingrid Lindqvist",
}


# Short paragraphs, so the summary keeps every sentence and with it every placeholder.
BILLING_PAGE = (
    "<html><head><title>Billing error</title></head><body><nav><a href='/'>Home</a> | <a href='/news'>News</a></nav>"
    "<article><h1>Double charges refunded</h1>"
    f"<p>Customers who were charged twice can write to {PII['EMAIL_ADDRESS']} before the end of March, "
    f"said {PII['PERSON']}, who leads the billing team.</p>"
    f"<p>The billing team answers calls on {PII['PHONE_NUMBER']} on weekdays between nine and five.</p>"
    f"<p>Refunds go back to the card that paid, such as {PII['CREDIT_CARD']}, within ten days.</p>"
    f"<p>Transfers from account {PII['IBAN_CODE']} were stopped while the error is investigated.</p>"
    "</article><footer>Copyright 2026 Northbridge Courier. All rights reserved.</footer></body></html>"
)


def drop_file(page: Page, target: str, name: str, content: str, media_type: str) -> None:
    """A file dropped on `target`, the way a person drags one from their desktop."""
    transfer = page.evaluate_handle(
        "([name, content, type]) => { const t = new DataTransfer(); t.items.add(new File([content], name, {type})); return t; }",
        [name, content, media_type],
    )
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})


@pytest.fixture(scope="module")
def ui_server(start_server: StartServer, bentoml_home: Path, auth_token_file: TokenFile, auth_token: str,
              summarize_only_token: str, tmp_path_factory: pytest.TempPathFactory) -> Server:  # fmt: skip
    """Started after its tokens are written: a token made later is picked up only within a second."""
    return start_server(
        bentoml_home, auth_tokens_file=str(auth_token_file.path), rag_dir=str(tmp_path_factory.mktemp("rag")),
        jobs_batch_documents="2", jobs_concurrency="1", max_concurrency=str(MAX_CONCURRENCY),
    )  # fmt: skip


@pytest.fixture(scope="module")
def summarize_only_token(auth_token_file: TokenFile) -> str:
    return auth_token_file.create("summarize-only", ["summarize"])[1]


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def requests_seen(context: BrowserContext) -> list[str]:
    seen: list[str] = []
    context.on("request", lambda request: seen.append(request.url))
    return seen


def open_page(context: BrowserContext, server: Server, token: str | None = None) -> Page:
    page = context.new_page()
    page.goto(f"{server.url}/ui")
    page.wait_for_selector("body[data-ready=true]")
    if token is not None:
        page.fill("#token", token)
        page.press("#token", "Tab")  # the change event: the styles load with the token
        wait_js(page, "document.querySelectorAll('#sum-style option').length > 1")
    return page


def wait_js(page: Page, expression: str, timeout_s: float = 60.0) -> None:
    """Until a JavaScript expression is true. Playwright's wait_for_function evaluates its
    predicate with eval, which the page's Content-Security-Policy refuses (as it should)."""
    for _ in range(int(timeout_s * 10)):
        if page.evaluate(f"() => Boolean({expression})"):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"not true after {timeout_s} s: {expression}")


def finished_actions(page: Page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.actions || 0)"))


def wait_for_action(page: Page, before: int) -> None:
    """Until the page has finished the action started after `before` actions (answer or error)."""
    wait_js(page, f"Number(document.body.dataset.actions || 0) > {before}")


def click_and_wait(page: Page, selector: str) -> None:
    before = finished_actions(page)
    page.click(selector)
    wait_for_action(page, before)


def summarize(page: Page, text: str, style: str | None = None) -> None:
    page.fill("#sum-text", text)
    if style is not None:
        page.select_option("#sum-style", style)
    click_and_wait(page, "#sum-submit")


def error_text(page: Page, box: str) -> str:
    page.wait_for_selector(f"{box}:not([hidden])")
    return page.inner_text(box)


def dom_and_values(page: Page) -> str:
    """Everything a script could read off the page: the serialized DOM and every control's value."""
    values = page.evaluate("() => [...document.querySelectorAll('input, textarea, select')].map((e) => e.value).join('\\n')")
    return str(page.content()) + "\n" + str(values)


def test_the_page_is_served_open_and_self_contained(context: BrowserContext, ui_server: Server, requests_seen: list[str]) -> None:
    response = httpx.get(f"{ui_server.url}/ui", timeout=30)  # no token: the page holds no data
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert httpx.get(f"{ui_server.url}/ui/config.json", timeout=30).json()["auth"] is True
    assert httpx.get(f"{ui_server.url}/ui/nothing.js", timeout=30).status_code == 404
    # The open prefix opens the page's files only: a path that climbs out of it is no way in.
    assert httpx.post(f"{ui_server.url}/ui/../summarize", json={"text": NEWS}, timeout=30).status_code in (401, 404)
    page = open_page(context, ui_server)
    assert page.is_visible("#auth") and page.is_visible("#token")
    assert not [url for url in requests_seen if not url.startswith(ui_server.url)], requests_seen
    # The page, BentoML's page at / and the OpenAPI document point at each other.
    assert page.get_attribute("nav a[href='/']", "href") == "/" and page.is_visible("nav a[href='/docs.json']")


def test_summarize_with_each_style(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    page = open_page(context, ui_server, auth_token)
    styles = page.eval_on_selector_all("#sum-style option", "options => options.map((o) => o.value)")
    assert {"legal", "news", "casual"} <= set(styles)
    for style in styles:
        summarize(page, LEGAL if style == "legal" else NEWS, style)
        assert page.is_hidden("#sum-error"), page.inner_text("#sum-error")
        facts = page.inner_text("#sum-result dl")
        assert f"Style\n{style}" in facts and "Engine\nextractive" in facts and "Model\nsummarizer-encoder-onnx-int8:" in facts
        assert "% of the input" in facts and "total" in facts
        # The style's description is shown beside the choice, and the result is announced.
        assert page.inner_text("#sum-style-desc").strip()
        assert page.inner_text("#sum-status").startswith("Summary ready:")
        page.fill("#sum-text", "")


def test_html_file_with_pii_is_marked_and_never_in_the_page(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    page = open_page(context, ui_server, auth_token)
    drop_file(page, "#sum-drop", "billing.html", BILLING_PAGE, "text/html")
    assert "billing.html" in page.inner_text("#sum-file-info")
    page.select_option("#sum-style", "legal")
    click_and_wait(page, "#sum-submit")
    marked = page.eval_on_selector_all("#sum-result mark.pii", "marks => marks.map((m) => [m.dataset.entity, m.innerText, m.title])")
    assert {entity for entity, _, _ in marked} == set(PII), marked
    for entity, shown, title in marked:
        assert "redacted" in shown and entity in shown and title.startswith("redacted ")  # words, not colour only
    redactions = page.inner_text("#sum-result")
    assert all(f"{entity}: 1" in redactions for entity in PII)
    assert "read as html" in redactions and "html_chars" in redactions  # what normalization dropped
    everything = dom_and_values(page)
    leaked = [value for value in PII.values() if value in everything]
    assert not leaked, f"original values in the page: {leaked}"


def test_a_file_over_the_limit_shows_the_apis_413(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    page = open_page(context, ui_server, auth_token)
    page.set_input_files("#sum-file", files=[FilePayload(name="big.txt", mimeType="text/plain", buffer=(NEWS + "\n").encode() * 1200)])
    click_and_wait(page, "#sum-submit")
    shown = error_text(page, "#sum-error")
    assert "Error 413 (InputTooLarge)" in shown and "request body is larger than the 1048576 byte limit" in shown, shown


def test_ask_your_docs_with_citations(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    page = open_page(context, ui_server, auth_token)
    page.click("#tab-rag")
    files = [
        FilePayload(name="bridges.md", mimeType="text/markdown", buffer=NEWS.encode()),
        FilePayload(name="contracts.txt", mimeType="text/plain", buffer=LEGAL.encode()),
    ]
    page.set_input_files("#index-files", files=files)
    click_and_wait(page, "#index-submit")
    assert "Indexed 2" in page.inner_text("#index-status"), page.inner_text("#index-error")
    page.wait_for_selector("#docs-table tr[data-id='contracts.txt']")
    assert page.locator("#docs-table tbody tr[data-id]").count() == 2
    page.fill("#rag-text", "The supplier must report a personal data breach to the customer. What notice period applies to termination?")
    page.select_option("#rag-style", "legal")
    click_and_wait(page, "#rag-submit")
    assert page.is_hidden("#rag-error"), page.inner_text("#rag-error")
    citations = page.locator("#rag-citations li.citation")
    assert citations.count() >= 1
    first = citations.first.inner_text()
    assert first.startswith("contracts.txt") and "score" in first
    assert "Data protection" in page.inner_text("#rag-citations") or "Termination" in page.inner_text("#rag-citations")
    # Delete one document from the list: the table follows.
    click_and_wait(page, "#docs-table button[aria-label='Delete bridges.md']")
    assert page.locator("#docs-table tr[data-id='bridges.md']").count() == 0
    assert page.inner_text("#index-status") == "Deleted bridges.md."


def jsonl(count: int) -> bytes:
    lines = [json.dumps({"id": f"doc-{i:03d}", "text": NEWS if i % 2 else LEGAL}) for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


def submit_job(page: Page, count: int) -> str:
    page.click("#tab-jobs")
    page.set_input_files("#job-file", files=[FilePayload(name="corpus.jsonl", mimeType="application/x-ndjson", buffer=jsonl(count))])
    click_and_wait(page, "#job-submit")
    page.wait_for_selector("#job-watch:not([hidden])")
    return str(page.inner_text("#job-id"))


def job_progress(page: Page) -> tuple[str, float, float]:
    state, value, maximum = page.evaluate("() => [document.querySelector('#job-watch').dataset.status, "
                                          "document.querySelector('#job-progress').value, document.querySelector('#job-progress').max]")  # fmt: skip
    return str(state), float(value), float(maximum)


def test_a_job_followed_to_completion_and_downloaded(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    page = open_page(context, ui_server, auth_token)
    job_id = submit_job(page, 24)
    seen: list[float] = []
    rates: set[str] = set()
    for _ in range(240):  # bounded: at most two minutes
        state, value, maximum = job_progress(page)
        seen.append(value)
        rates.add(page.inner_text("#job-counts"))
        if state == "completed":
            break
        page.wait_for_timeout(500)
    assert state == "completed" and maximum == 24 and seen[-1] == 24, (state, seen)
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert any(0 < v < 24 for v in seen), f"the page never showed progress between start and end: {seen}"
    assert any("documents/s" in line for line in rates), rates
    assert page.is_disabled("#job-cancel")
    with page.expect_download() as download:
        page.click("#job-download")
    lines = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert [line["id"] for line in lines] == [f"doc-{i:03d}" for i in range(24)] and all(line["summary"] for line in lines)
    page.click("#jobs-refresh")
    page.wait_for_selector(f"#jobs-table tr[data-id='{job_id}']")
    assert "completed" in page.inner_text(f"#jobs-table tr[data-id='{job_id}']")


def test_a_job_cancelled_from_the_page(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    page = open_page(context, ui_server, auth_token)
    job_id = submit_job(page, 400)
    wait_js(page, "['queued', 'running'].includes(document.querySelector('#job-watch').dataset.status)")
    page.click("#job-cancel")
    wait_js(page, "document.querySelector('#job-watch').dataset.status === 'cancelled'")
    assert page.is_disabled("#job-cancel")
    status = httpx.get(f"{ui_server.url}/jobs/{job_id}", headers={"Authorization": f"Bearer {auth_token}"}, timeout=30).json()
    assert status["status"] == "cancelled" and status["done"] < 400


def test_401_and_403_are_explained(context: BrowserContext, ui_server: Server, summarize_only_token: str) -> None:
    page = open_page(context, ui_server)
    summarize(page, NEWS)
    shown = error_text(page, "#sum-error")
    assert "Error 401 (Unauthorized)" in shown and "send Authorization: Bearer <token>" in shown
    assert "requires a token. Enter one in the Access token field" in shown
    page.fill("#token", "smz_wrong_token")
    summarize(page, NEWS)
    assert "The token was not accepted" in error_text(page, "#sum-error")
    # A valid token without the jobs scope: 403, in words, naming the scope.
    page.fill("#token", summarize_only_token)
    page.click("#tab-jobs")
    page.set_input_files("#job-file", files=[FilePayload(name="one.jsonl", mimeType="application/x-ndjson", buffer=jsonl(1))])
    click_and_wait(page, "#job-submit")
    shown = error_text(page, "#job-error")
    assert "Error 403 (Forbidden)" in shown and "lacks the 'jobs' scope" in shown and "not allowed to do this" in shown


def test_429_is_explained_with_retry_after(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    """Every admission slot held by an upload that never finishes: the page's next call is refused."""
    page = open_page(context, ui_server, auth_token)
    address = httpx.URL(ui_server.url)
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_CONCURRENCY):
            sock = socket.create_connection((address.host, address.port), timeout=10)
            head = (f"POST /jobs HTTP/1.1\r\nHost: {address.host}\r\nAuthorization: Bearer {auth_token}\r\n"
                    "Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n")  # fmt: skip
            sock.sendall(head.encode() + b'{"id": "held"')
            held.append(sock)
        auth = {"Authorization": f"Bearer {auth_token}"}
        wait_for(lambda: httpx.post(f"{ui_server.url}/styles", json={}, headers=auth, timeout=10).status_code == 429)
        summarize(page, NEWS)
        shown = error_text(page, "#sum-error")
        assert "Error 429 (Overloaded)" in shown and f"the limit is {MAX_CONCURRENCY}" in shown, shown
        assert re.search(r"busy .*Retry after \d+ s\.", shown), shown
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: httpx.post(f"{ui_server.url}/styles", json={}, headers=auth, timeout=10).status_code == 200)


def test_the_summarize_flow_by_keyboard_alone(context: BrowserContext, ui_server: Server, auth_token: str) -> None:
    page = open_page(context, ui_server)
    visited: list[str] = []

    def tab_to(element_id: str) -> None:
        for _ in range(30):
            page.keyboard.press("Tab")
            focused = page.evaluate("() => document.activeElement.id || document.activeElement.tagName")
            visited.append(focused)
            if focused == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}: {visited}")

    tab_to("token")
    page.keyboard.type(auth_token)
    tab_to("tab-summarize")
    page.keyboard.press("ArrowRight")  # the tab pattern: arrows move between tabs
    assert page.evaluate("() => document.activeElement.id") == "tab-rag" and page.is_visible("#panel-rag")
    page.keyboard.press("ArrowLeft")
    tab_to("sum-text")
    page.keyboard.type(NEWS[:600])
    tab_to("sum-style")
    wait_js(page, "document.querySelectorAll('#sum-style option').length > 1")
    page.keyboard.type("casual")  # a focused select's type-ahead picks the option
    assert page.evaluate("() => [document.activeElement.id, document.activeElement.value]") == ["sum-style", "casual"]
    tab_to("sum-submit")
    before = finished_actions(page)
    page.keyboard.press("Enter")
    wait_for_action(page, before)
    assert page.inner_text("#sum-status").startswith("Summary ready:")  # role=status: announced
    assert "Style\ncasual" in page.inner_text("#sum-result dl")


def test_no_serious_accessibility_violations(browser: Browser, ui_server: Server, auth_token: str) -> None:
    """axe-core in the page, in each state a person sees: empty, with a summary, RAG, jobs."""
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)  # axe is injected inline
    try:
        page = open_page(context, ui_server, auth_token)
        found = axe_violations(page)
        summarize(page, NEWS + f" Contact {PII['EMAIL_ADDRESS']}.")
        found += axe_violations(page)
        page.click("#tab-rag")
        found += axe_violations(page)
        submit_job(page, 2)
        found += axe_violations(page)
        summarize_error = open_page(context, ui_server)  # the error state: no token
        summarize(summarize_error, NEWS)
        found += axe_violations(summarize_error)
    finally:
        context.close()
    assert not found, "\n".join(found)


def test_readable_at_phone_width(browser: Browser, ui_server: Server, auth_token: str, tmp_path: Path) -> None:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    try:
        page = open_page(context, ui_server, auth_token)
        summarize(page, NEWS + f" Contact {PII['EMAIL_ADDRESS']}.")
        # The documents table, the widest thing on the page, has rows when it is measured.
        page.click("#tab-rag")
        page.set_input_files("#index-files", files=[FilePayload(name="phone-width-check.md", mimeType="text/markdown", buffer=NEWS.encode())])
        click_and_wait(page, "#index-submit")
        page.wait_for_selector("#docs-table tr[data-id='phone-width-check.md']")
        widths: dict[str, Any] = {}
        for tab in ("#tab-summarize", "#tab-rag", "#tab-jobs"):
            page.click(tab)
            widths[tab] = page.evaluate("() => document.documentElement.scrollWidth")
        assert all(width <= PHONE["width"] for width in widths.values()), widths
    finally:
        context.close()


def test_screenshot(context: BrowserContext, ui_server: Server, auth_token: str, tmp_path: Path) -> None:
    """The README's picture, from this run's browser (`make screenshot` keeps it)."""
    page = open_page(context, ui_server, auth_token)
    drop_file(page, "#sum-drop", "billing.html", BILLING_PAGE, "text/html")
    page.select_option("#sum-style", "legal")
    click_and_wait(page, "#sum-submit")
    assert page.locator("#sum-result mark.pii").count() == len(PII)
    page.fill("#token", "")
    page.evaluate("() => document.activeElement.blur()")
    target = tmp_path / "ui.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 20_000 and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SCREENSHOT:
        shutil.copyfile(target, SCREENSHOT)

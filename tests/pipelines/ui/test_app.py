"""The /ui routes and the page's files, without a server or a browser (tests/server/test_serve_ui.py
drives the page in Chromium)."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette

from pipelines.ui.app import ASSETS, STATIC, PageConfig, routes

CONFIG = PageConfig(auth=True, max_body_bytes=1_048_576, jobs_max_upload_bytes=4_294_967_296)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=Starlette(routes=routes(CONFIG))), base_url="http://test")


@pytest.mark.anyio
async def test_the_page_and_its_assets_with_a_self_only_policy() -> None:
    async with client() as http:
        page = await http.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self';" in policy
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["cache-control"] == "no-cache"
        for name, media_type in ASSETS.items():
            asset = await http.get(f"/ui/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"] == media_type
            assert asset.text == (STATIC / name).read_text()
        assert (await http.head("/ui")).status_code == 200
        assert (await http.get("/ui/config.json")).json() == {
            "auth": True, "max_body_bytes": 1_048_576, "jobs_max_upload_bytes": 4_294_967_296,
            "api_reference": "/", "openapi": "/docs.json",
        }  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["index.html", "app.py", "..%2Fapp.py", "%2e%2e", "nothing.js"])
async def test_only_the_listed_files_are_served(name: str) -> None:
    async with client() as http:
        response = await http.get(f"/ui/{name}")
    assert response.status_code == 404 and "import" not in response.text
    if "/" not in name.replace("%2F", "/"):  # a name the route matched: our error (the server shapes the rest)
        assert response.json()["error"]["type"] == "NotFound"


def test_nothing_is_loaded_from_another_host() -> None:
    """No URL with a scheme or a protocol-relative one in the page's files: it works offline."""
    for path in STATIC.iterdir():
        text = path.read_text()
        found = re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?(?:[a-z]+:)?//""", text, re.IGNORECASE)
        assert not found, f"{path.name}: {found}"
        assert not re.search(r"(localStorage|sessionStorage)\.|document\.cookie", text), f"{path.name} stores something"


def test_every_element_the_script_uses_is_in_the_page() -> None:
    """A renamed id in index.html would otherwise fail only in a browser, at the click."""
    html = (STATIC / "index.html").read_text()
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    used = set(re.findall(r'\$\("([^"]+)"\)', (STATIC / "app.js").read_text()))
    assert used and used <= ids, f"not in index.html: {sorted(used - ids)}"
    # Every form control has a label (axe checks it in the browser run too).
    controls = re.findall(r'<(?:input|textarea|select)\b[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    assert set(controls) <= labelled, f"unlabelled: {sorted(set(controls) - labelled)}"

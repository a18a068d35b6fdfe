"""Token auth through a real `bentoml serve`: 401, 403, 200 per route; revocation without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import bentoml
import httpx
import pytest

from pipelines.auth.store import SCOPES, TokenFile
from tests.server.conftest import Server, StartServer, wait_for
from tests.texts import NEWS

pytestmark = pytest.mark.server

# (method, path, body, scope it needs)
ROUTES: list[tuple[str, str, dict[str, object] | None, str]] = [
    ("POST", "/summarize", {"text": NEWS}, "summarize"),
    ("POST", "/styles", {}, "summarize"),
    ("POST", "/batch", {"documents": [{"id": "a", "text": NEWS}]}, "batch"),
    ("POST", "/rag/documents", {}, "rag"),
    ("POST", "/rag/index", {"documents": [{"id": "d", "text": "Refunds take 30 days."}]}, "rag:write"),
    ("GET", "/jobs", None, "jobs"),
]


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> TokenFile:
    return TokenFile(tmp_path_factory.mktemp("auth") / "tokens.json")


@pytest.fixture(scope="module")
def tokens(token_file: TokenFile) -> dict[str, str]:
    issued = {scope: token_file.create(f"only-{scope}", [scope])[1] for scope in SCOPES}
    issued["all"] = token_file.create("all", list(SCOPES))[1]
    return issued


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path, token_file: TokenFile, tokens: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Server:  # fmt: skip
    return start_server(
        bentoml_home, auth_tokens_file=str(token_file.path), rag_dir=str(tmp_path_factory.mktemp("rag"))
    )


def call(server: Server, method: str, path: str, body: dict[str, object] | None, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=120)


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_every_protected_route_wants_a_token_with_its_scope(
    server: Server, tokens: dict[str, str], method: str, path: str, body: dict[str, object] | None, scope: str
) -> None:
    missing = call(server, method, path, body, None)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "Unauthorized"
    assert call(server, method, path, body, "smz_nope_nope").status_code == 401
    other = next(s for s in SCOPES if s != scope)
    wrong = call(server, method, path, body, tokens[other])
    assert wrong.status_code == 403, wrong.text
    good = call(server, method, path, body, tokens[scope])
    assert good.status_code == 200, good.text


def test_probes_and_metrics_stay_open(server: Server) -> None:
    for path in ("/readyz", "/livez", "/metrics"):
        assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200


def test_the_bentoml_client_sends_its_token(server: Server, tokens: dict[str, str]) -> None:
    with bentoml.SyncHTTPClient(server.url, token=tokens["all"]) as client:
        assert client.summarize(text=NEWS)["summary"]


def test_a_revoked_token_stops_working_without_a_restart(server: Server, token_file: TokenFile) -> None:
    _, token = token_file.create("short-lived", ["summarize"])
    deadline = time.monotonic() + 10
    while call(server, "POST", "/styles", {}, token).status_code != 200:  # picked up within a second
        assert time.monotonic() < deadline, "a new token was not picked up"
        time.sleep(0.3)
    assert token_file.revoke("short-lived") == 1
    deadline = time.monotonic() + 10
    while (status := call(server, "POST", "/styles", {}, token).status_code) == 200:
        assert time.monotonic() < deadline, "a revoked token still works"
        time.sleep(0.3)
    assert status == 401


def test_auth_failures_are_counted_by_reason(server: Server, tokens: dict[str, str]) -> None:
    from tests.server.test_serve_metrics import metric

    before = httpx.get(f"{server.url}/metrics", timeout=30).text
    call(server, "POST", "/styles", {}, None)
    call(server, "POST", "/styles", {}, None)
    call(server, "POST", "/batch", {"documents": [{"id": "a", "text": NEWS}]}, tokens["jobs"])
    after = httpx.get(f"{server.url}/metrics", timeout=30).text
    for reason, count in (("missing", 2), ("scope", 1)):
        assert metric(after, "summarizer_auth_failures_total", reason=reason) - metric(
            before, "summarizer_auth_failures_total", reason=reason
        ) == count
    assert tokens["jobs"] not in after


def test_the_request_log_names_the_caller_never_the_token(server: Server, tokens: dict[str, str]) -> None:
    httpx.post(f"{server.url}/styles", json={}, headers={"Authorization": f"Bearer {tokens['summarize']}", "X-Request-Id": "auth-ok"}, timeout=30)
    httpx.post(f"{server.url}/styles", json={}, headers={"Authorization": f"Bearer {tokens['jobs']}", "X-Request-Id": "auth-403"}, timeout=30)
    wait_for(lambda: {"auth-ok", "auth-403"} <= server.request_logs().keys())
    logs = server.request_logs()
    assert (logs["auth-ok"]["status"], logs["auth-ok"]["caller"]) == (200, "only-summarize")
    assert (logs["auth-403"]["status"], logs["auth-403"]["caller"]) == (403, "only-jobs")
    output = server.log.read_text(errors="replace")
    assert not [name for name, token in tokens.items() if token in output], "a token in the server log"

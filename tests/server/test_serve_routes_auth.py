"""With auth on, no route answers without a valid token, through a real `bentoml serve`.

The routes are not a hand-kept list: every operation of the live /docs.json, every route of the
mounted /jobs app (pipelines/jobs/app.py, asked directly in case the document loses one) and
BentoML's own pages. Each gets no token, a garbage token, a real token id with a wrong secret and
a non-Bearer scheme: all must be 401 with our JSON error, never 2xx, never 5xx. Probes and /metrics
stay open as docs/auth.md says, and the token never reaches the server log or /metrics.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from pipelines.http.middleware import EXEMPT_PATHS
from pipelines.jobs.app import build_app
from tests.server.conftest import Server, wait_for
from tests.texts import NEWS

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

METHODS = ("get", "put", "post", "delete", "patch")
# BentoML's own pages beside the APIs: the Swagger UI, its assets and the schema endpoints.
BENTOML_PAGES = [("GET", "/"), ("GET", "/docs.json"), ("GET", "/schema.json"), ("GET", "/static_content/index.css")]
A_JOB_ID = "job-0123456789abcdef"


@pytest.fixture(scope="module")
def document(auth_server: Server, auth_token: str) -> dict[str, Any]:
    response = httpx.get(f"{auth_server.url}/docs.json", headers={"Authorization": f"Bearer {auth_token}"}, timeout=60)
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


def concrete(path: str) -> str:
    return re.sub(r"\{[^/]+\}", A_JOB_ID, path)


def every_route(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(METHOD, path template) of the document, the /jobs app and BentoML's pages, without repeats."""
    documented = [(m.upper(), path) for path, item in spec["paths"].items() for m in item if m in METHODS]
    jobs = [(m, r.path) for r in build_app(lambda: None).routes if isinstance(r, Route) for m in sorted(r.methods or ()) if m != "HEAD"]  # type: ignore[arg-type, return-value]
    return list(dict.fromkeys(documented + jobs + BENTOML_PAGES))


def refused(auth_server: Server, method: str, path: str, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    body = {"text": NEWS} if method in ("POST", "PUT", "PATCH") else None  # a body the route would accept
    return httpx.request(method, f"{auth_server.url}{concrete(path)}", json=body, headers=headers, timeout=60)


def test_the_document_lists_every_route(document: dict[str, Any]) -> None:
    routes = every_route(document)
    expected = {"/summarize", "/batch", "/styles", "/rag", "/rag/index", "/rag/documents", "/rag/delete", "/jobs", "/jobs/{job_id}",
                "/jobs/{job_id}/results", "/jobs/{job_id}/invalid", "/jobs/{job_id}/cancel", "/readyz", "/livez", "/metrics"}  # fmt: skip
    assert expected <= set(document["paths"])
    jobs_app = {(m, r.path) for r in build_app(lambda: None).routes if isinstance(r, Route) for m in r.methods or () if m != "HEAD"}  # type: ignore[arg-type, return-value]
    documented = {(m.upper(), path) for path, item in document["paths"].items() for m in item if m in METHODS}
    assert jobs_app <= documented, f"/jobs routes missing from /docs.json: {jobs_app - documented}"
    assert len(documented) >= 18 and len(routes) >= 22
    assert document["security"] == [{"bearerAuth": []}]


def test_no_route_answers_without_a_valid_token(auth_server: Server, document: dict[str, Any], auth_token: str) -> None:
    token_id = auth_token.split("_")[1]
    wrong = {
        "no token": None,
        "garbage": "Bearer smz_nope_nope",
        "right id, wrong secret": f"Bearer smz_{token_id}_{'x' * 43}",
        "basic scheme": "Basic " + base64.b64encode(f"everything:{auth_token}".encode()).decode(),
        "bearer without a token": "Bearer",
    }
    checked, leaks = 0, []
    for method, path in every_route(document):
        if path in EXEMPT_PATHS:
            continue
        for case, authorization in wrong.items():
            response = refused(auth_server, method, path, authorization)
            checked += 1
            error = response.json().get("error", {}) if response.headers.get("content-type") == "application/json" else {}
            if (response.status_code, error.get("type"), response.headers.get("www-authenticate")) != (401, "Unauthorized", "Bearer"):
                leaks.append(f"{method} {path} with {case}: {response.status_code} {response.text[:120]}")
    assert not leaks, "\n".join(leaks)
    assert checked >= 18 * len(wrong)  # 14 documented routes and BentoML's 4 pages


def test_the_right_token_reaches_the_routes(auth_server: Server, auth_token: str) -> None:
    """The same requests with the token are let through: the 401s above were auth, not the route."""
    auth = f"Bearer {auth_token}"
    assert refused(auth_server, "POST", "/summarize", auth).status_code == 200
    assert refused(auth_server, "GET", "/jobs/{job_id}", auth).status_code == 404  # no such job: past auth
    assert refused(auth_server, "GET", "/docs.json", auth).status_code == 200


def test_probes_and_metrics_answer_without_a_token(auth_server: Server) -> None:
    for path in ("/readyz", "/livez", "/metrics"):
        assert httpx.get(f"{auth_server.url}{path}", timeout=30).status_code == 200, path
    healthz = httpx.get(f"{auth_server.url}/healthz", timeout=30)
    assert healthz.status_code != 401 and healthz.status_code < 500
    # CORS preflight is never refused by auth (docs/auth.md); without CORS configured it is 405.
    preflight = httpx.options(f"{auth_server.url}/summarize", headers={"Origin": "http://a.example", "Access-Control-Request-Method": "POST"}, timeout=30)
    assert preflight.status_code != 401 and preflight.status_code < 500


def test_no_token_reaches_the_log_or_metrics(auth_server: Server, auth_token: str) -> None:
    token_id = auth_token.split("_")[1]
    near_miss = f"smz_{token_id}_{auth_token.split('_', 2)[2][::-1]}"  # a typo'd real token is a secret too
    sent = {"good": auth_token, "near miss": near_miss, "garbage": "smz_garbage_secretvalue123"}
    for name, value in sent.items():
        for method, path in (("POST", "/summarize"), ("POST", "/styles"), ("GET", "/jobs"), ("GET", "/jobs/{job_id}")):
            headers = {"Authorization": f"Bearer {value}", "X-Request-Id": f"tok-{name.replace(' ', '-')}-{method}-{len(path)}"}
            httpx.request(method, f"{auth_server.url}{concrete(path)}", json={"text": NEWS} if method == "POST" else None, headers=headers, timeout=60)
    wait_for(lambda: sum(rid.startswith("tok-") for rid in auth_server.request_logs()) >= 12)
    metrics = httpx.get(f"{auth_server.url}/metrics", timeout=30).text
    log = auth_server.log.read_text(errors="replace")
    for name, value in sent.items():
        secret = value.split("_", 2)[2]
        assert secret not in log, f"the {name} token's secret is in the server log"
        assert secret not in metrics, f"the {name} token's secret is in /metrics"
    callers = {r.get("caller") for rid, r in auth_server.request_logs().items() if rid.startswith("tok-good")}
    assert callers == {"everything"}  # the log names the caller, never the token

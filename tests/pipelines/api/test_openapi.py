"""The completed OpenAPI document: what it adds to BentoML's, and that its schemas accept exactly
the bodies the service sends (real payloads from the error classes, the response models and the
/jobs app), so the fuzz test's schema-conformance check compares against the truth."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import bentoml
import httpx
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.core.result import Ok
from starlette.applications import Starlette
from starlette.routing import Route

from pipelines.api.openapi import JSON, complete, docs_route, jobs_paths, operations
from pipelines.api.responses import Normalization, SummaryResponse, Timing
from pipelines.batch.core import BatchResult
from pipelines.errors import BadInput, InputTooLarge, NotFound, Overloaded, SummarizerError, UnknownStyle
from pipelines.http.middleware import EXEMPT_PATHS
from pipelines.jobs.app import JobsBackend, build_app
from pipelines.jobs.store import JobStore
from pipelines.styles import StyleRegistry

STYLES = StyleRegistry.load().names


@bentoml.service(name="openapi-test")
class Tiny:
    """Two APIs shaped like service.py's, for BentoML to document the way it documents ours."""

    @bentoml.api(route="/summarize")
    async def summarize(self, text: str = "", format: str = "auto") -> Any:
        return {}

    @bentoml.api(route="/styles")
    def list_styles(self) -> dict[str, Any]:
        return {}


@pytest.fixture(scope="module")
def bentoml_spec() -> dict[str, Any]:
    spec: dict[str, Any] = Tiny.openapi_spec.asdict()  # type: ignore[attr-defined]
    return spec


@pytest.fixture(scope="module")
def spec(bentoml_spec: dict[str, Any]) -> dict[str, Any]:
    return complete(bentoml_spec, styles=STYLES, auth=True)


def body_schema(spec: dict[str, Any], path: str, method: str, status: int) -> jsonschema_rs.Validator:
    """A validator for one documented response body, its $refs resolved in the document."""
    schema = spec["paths"][path][method]["responses"][str(status)]["content"][JSON]["schema"]
    return jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_every_api_route_documents_its_body_and_every_error_status(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/summarize"]["post"]["responses"]
    assert sorted(responses, key=int) == ["200", "400", "401", "403", "413", "415", "429", "500", "503", "504", "507"]
    assert responses["200"]["content"][JSON]["schema"] == {"$ref": "#/components/schemas/SummaryResponse"}
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
    header = spec["paths"]["/summarize"]["post"]["parameters"][0]
    assert (header["name"], header["in"], header["schema"]["enum"]) == ("X-Summary-Style", "header", ["casual", "legal", "news", ""])
    assert spec["openapi"] == "3.1.0"


def test_no_reference_dangles_and_bentomls_wrong_error_schemas_are_gone(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert {"InvalidArgument", "NotFound", "InternalServerError"}.isdisjoint(schemas)
    missing = {r for r in refs(spec) if r.removeprefix("#/components/schemas/") not in schemas}
    assert not missing


def test_error_schemas_accept_what_the_service_and_bentoml_send(spec: dict[str, Any]) -> None:
    bad = body_schema(spec, "/summarize", "post", 400)
    assert bad.is_valid(UnknownStyle("pirate", ["news"]).to_payload())
    assert bad.is_valid([{"error": "Invalid JSON input received"}])  # BentoML: malformed JSON
    validation = {"error": "1 validation error for Input", "detail": [{"type": "string_type", "loc": ["text"], "msg": "..."}]}
    assert bad.is_valid(validation)
    assert not bad.is_valid({"message": "no error key"})
    assert body_schema(spec, "/summarize", "post", 413).is_valid(InputTooLarge("too big").to_payload())
    media = body_schema(spec, "/summarize", "post", 415)
    assert media.is_valid({"error": {"type": "UnsupportedMediaType", "message": "send JSON", "status": 415}})
    assert media.is_valid([{"error": "application/vnd.bentoml+pickle is not allowed in main server"}])
    assert body_schema(spec, "/summarize", "post", 429).is_valid(Overloaded("busy").to_payload())
    assert body_schema(spec, "/summarize", "post", 500).is_valid(SummarizerError().to_payload())
    assert body_schema(spec, "/summarize", "post", 504).is_valid({"error": "Not able to process the request in 65 seconds"})
    # Auth refusals are always ours: BentoML's own shape there would be a bug.
    assert not body_schema(spec, "/summarize", "post", 401).is_valid({"error": "Authorization error"})


def test_success_schemas_accept_real_responses_and_refuse_undocumented_fields(spec: dict[str, Any]) -> None:
    summary = SummaryResponse(
        summary="S.", style="news", engine="extractive", model="enc:1", input_chars=3, input_words=1, summary_words=1,
        chunks=1, normalization=Normalization(format="text", chars=3, removed={}), redactions={},
        timing=Timing(prepare_ms=1.0, model_ms=2.0, total_ms=3.0),
    )  # fmt: skip
    assert body_schema(spec, "/summarize", "post", 200).is_valid(summary.model_dump())
    batch = {"results": [BatchResult(id="a", summary="S.").model_dump(exclude_none=True), BatchResult.failed("b", BadInput("empty")).model_dump(exclude_none=True)]}
    assert jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/BatchResponse", "components": spec["components"]}).is_valid(batch)
    styles = body_schema(spec, "/styles", "post", 200)
    listing = {"default": "news", "header": "X-Summary-Style", "styles": {"news": "Lead-first."}}
    assert styles.is_valid(listing)
    assert not styles.is_valid({**listing, "undocumented": 1})


def test_auth_marks_every_route_but_probes_and_metrics(bentoml_spec: dict[str, Any], spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"bearerAuth": []}]
    for path, method, operation in operations(spec):
        if path in EXEMPT_PATHS:
            assert operation["security"] == [] and "401" not in operation["responses"], path
        else:
            assert "security" not in operation and {"401", "403"} <= operation["responses"].keys(), (path, method)
    protected = complete(bentoml_spec, styles=STYLES, auth=True, protect_metrics=True)["paths"]["/metrics"]["get"]
    assert "security" not in protected and "401" in protected["responses"]


def test_without_tokens_the_document_claims_no_auth(bentoml_spec: dict[str, Any]) -> None:
    spec = complete(bentoml_spec, styles=STYLES, auth=False)
    assert "security" not in spec and "securitySchemes" not in spec["components"]
    assert all("401" not in op["responses"] for _, _, op in operations(spec))


def test_the_jobs_routes_are_documented_exactly(spec: dict[str, Any]) -> None:
    app = build_app(lambda: None)  # type: ignore[arg-type, return-value]
    routes = [route for route in app.routes if isinstance(route, Route)]
    served = {(route.path, method.lower()) for route in routes for method in route.methods or () if method != "HEAD"}
    assert served == {(path, method) for path, method, _ in operations({"paths": jobs_paths(STYLES)})}
    assert served <= {(path, method) for path, method, _ in operations(spec)}


def test_bentomls_document_is_left_as_it_was(bentoml_spec: dict[str, Any]) -> None:
    before = json.dumps(bentoml_spec, sort_keys=True, default=str)
    complete(bentoml_spec, styles=STYLES, auth=True)
    assert json.dumps(bentoml_spec, sort_keys=True, default=str) == before


def test_schemathesis_loads_every_operation(spec: dict[str, Any]) -> None:
    results = list(schemathesis.openapi.from_dict(spec).get_all_operations())
    loaded = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(loaded) == len(results), [result for result in results if not isinstance(result, Ok)]
    assert {(op.path, op.method.lower()) for op in loaded} == {(path, method) for path, method, _ in operations(spec)}


# -- the /jobs app against its documentation -------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    backend = JobsBackend(JobStore(tmp_path / "store"), StyleRegistry.load(), None, max_upload_bytes=4096, wake=lambda: None)
    app = build_app(lambda: backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jobs.test") as client:
        yield client


def conforms(spec: dict[str, Any], path: str, method: str, response: httpx.Response) -> bool:
    return body_schema(spec, path, method, response.status_code).is_valid(response.json())


@pytest.mark.anyio
async def test_the_jobs_app_answers_as_documented(spec: dict[str, Any], jobs: httpx.AsyncClient) -> None:
    upload = b'{"id": "a", "text": "One. Two."}\nnot json\n'
    created = await jobs.post("/jobs", content=upload, headers={"content-type": "application/x-ndjson"})
    assert created.status_code == 201 and conforms(spec, "/jobs", "post", created)
    job = created.json()["id"]
    checks = [
        ("/jobs", "get", await jobs.get("/jobs")),
        ("/jobs/{job_id}", "get", await jobs.get(f"/jobs/{job}")),
        ("/jobs/{job_id}/cancel", "post", await jobs.post(f"/jobs/{job}/cancel")),
        ("/jobs/{job_id}/cancel", "post", await jobs.post(f"/jobs/{job}/cancel")),  # 409: already ended
        ("/jobs/{job_id}", "delete", await jobs.delete(f"/jobs/{job}")),
        ("/jobs/{job_id}", "get", await jobs.get(f"/jobs/{job}")),  # 404: forgotten
        ("/jobs", "post", await jobs.post("/jobs", json={"path": "x.jsonl"})),  # 400: no data dir
    ]
    assert [r.status_code for _, _, r in checks] == [200, 200, 200, 409, 200, 404, 400]
    assert [(path, method) for path, method, r in checks if not conforms(spec, path, method, r)] == []


@pytest.mark.anyio
async def test_docs_route_serves_the_completed_document_built_once(bentoml_spec: dict[str, Any]) -> None:
    built: list[int] = []

    def source() -> dict[str, Any]:
        built.append(1)
        return bentoml_spec

    app = Starlette(routes=[docs_route(source, styles=STYLES, auth=True, protect_metrics=False)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docs.test") as client:
        first, second = await client.get("/docs.json"), await client.get("/docs.json")
    assert first.json() == second.json() == json.loads(json.dumps(complete(bentoml_spec, styles=STYLES, auth=True)))
    assert built == [1]


def test_a_missing_job_is_our_error_shape(spec: dict[str, Any]) -> None:
    assert body_schema(spec, "/jobs/{job_id}", "get", 404).is_valid(NotFound("no job 'x'").to_payload())


def test_the_document_points_at_the_playground_page(bentoml_spec: dict[str, Any], spec: dict[str, Any]) -> None:
    """BentoML's page at / renders info.description: the link from its generic form to /ui."""
    assert "[the playground page at /ui](/ui)" in spec["info"]["description"]
    assert spec["info"]["description"].startswith(bentoml_spec["info"].get("description", "").rstrip())
    assert spec["externalDocs"]["url"] == "/ui"

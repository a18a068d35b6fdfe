"""The entry service's OpenAPI document, as `/docs.json` serves it: BentoML's, completed.

BentoML 1.4 builds the document from the API signatures (`Service.openapi_spec`) and has no hook
to extend it (bentoml/BentoML#2975 is open). What it builds does not describe what this service
answers:

- success bodies: our APIs return `Any` (a JSONResponse on errors), so BentoML documents `{}`;
- errors: it lists 400/404/500 with one schema, where 404 never happens and its own 400 bodies are
  `[{"error": ...}]` or, for validation errors, `{"error": ..., "detail": [...]}`; ours
  (pipelines/errors.py) are `{"error": {"type", "message", "status"}}` with 401, 403, 413, 429
  (with Retry-After), 503 and 504 as well;
- auth: the bearer-token scheme, and which routes stay open;
- the /jobs routes: a mounted Starlette app, which BentoML describes only for FastAPI mounts.

`complete(spec, ...)` takes BentoML's document as JSON and returns the completed one; it is pure
and unit-tested. `docs_route(...)` serves it: service.py appends that route to the Starlette app
it mounts at "/", which BentoML's router consults before its own /docs.json (a route, not a
patch of BentoML). The Bento's `apis/openapi.yaml` (written by `bentoml build`) stays BentoML's.

The version becomes 3.1.0: BentoML says 3.0.2 but emits pydantic's JSON Schema 2020-12
(`exclusiveMinimum: 0`, `{"type": "null"}`), which is what OpenAPI 3.1 uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipelines.api.responses import RagResponse, SummaryResponse
from pipelines.batch.core import BatchResult, ErrorBody
from pipelines.http.middleware import EXEMPT_PATHS
from pipelines.jobs.store import JobStatus
from pipelines.rag.documents import DocumentInfo
from pipelines.styles import STYLE_HEADER

Spec = dict[str, Any]
JSON = "application/json"
NDJSON = "application/x-ndjson"
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"
PLAYGROUND_NOTE = (
    "\n\n**Try it in a browser: [the playground page at /ui](/ui)** (styles, redaction, RAG with "
    "citations, jobs with live progress). This document as JSON: [/docs.json](/docs.json)."
)


class _Documented(BaseModel):
    # additionalProperties: false, so a field added to a response without its documentation
    # fails the schema-conformance fuzz test instead of going unnoticed.
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(_Documented):
    """Every error this service makes: pipelines/errors.py, and refusals before BentoML (pipelines/http/middleware.py)."""

    error: ErrorBody


class BatchResponse(_Documented):
    results: list[BatchResult]


class StylesResponse(_Documented):
    default: str
    header: str
    styles: dict[str, str]  # name -> description


class IndexResponse(_Documented):
    indexed: list[str]
    unchanged: list[str]
    chunks_embedded: int
    redactions: dict[str, int]
    documents: int
    chunks: int


class DocumentsResponse(_Documented):
    documents: list[DocumentInfo]
    chunks: int


class DeleteResponse(_Documented):
    deleted: list[str]
    not_found: list[str]
    chunks: int


class JobSubmission(BaseModel):
    """POST /jobs with a JSON body: a file under SUMMARIZER_JOBS_DATA_DIR instead of an upload."""

    path: str
    style: str | None = None
    deadline: str | float | None = None  # ISO 8601 with a timezone, or seconds since the epoch


class InvalidLineInfo(_Documented):
    line: int
    error: str


class JobStatusResponse(_Documented):
    id: str
    status: JobStatus
    source: str
    default_style: str | None
    total: int
    done: int
    failed: int
    pending: int
    percent: float
    rate_docs_per_s: float
    eta_s: float | None
    deadline: str | None
    behind_schedule: bool
    invalid_lines: int
    invalid: list[InvalidLineInfo]
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    results: str


class JobSummary(_Documented):
    id: str
    status: JobStatus
    source: str
    total: int
    invalid_lines: int


class JobList(_Documented):
    jobs: list[JobSummary]


class JobDeleted(_Documented):
    deleted: str


# The 200 body of each BentoML API route (service.py builds these dicts).
SUCCESS: Mapping[str, type[BaseModel]] = {
    "/summarize": SummaryResponse,
    "/batch": BatchResponse,
    "/styles": StylesResponse,
    "/rag": RagResponse,
    "/rag/index": IndexResponse,
    "/rag/documents": DocumentsResponse,
    "/rag/delete": DeleteResponse,
}
STYLED = ("/summarize", "/batch", "/rag")  # routes that read the style header

# BentoML's own error bodies, as its server really writes them (_bentoml_impl/server/app.py).
BENTOML_SCHEMAS: Spec = {
    "BentoMLError": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "array", "items": {"type": "object"}}},
        "description": "BentoML's own error: request validation (with `detail`), a timeout, an internal error.",
    },
    "BentoMLErrorList": {
        "type": "array",
        "items": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "description": "BentoML's own error for a refused request (e.g. the pickle content type).",
    },
}
REPLACED_SCHEMAS = ("InvalidArgument", "NotFound", "InternalServerError")

ERRORS: Mapping[int, str] = {
    400: "Bad input: empty or unusable text, a wrong field, an unknown style (the message lists the valid ones)",
    401: "No token, or an unknown, malformed or revoked one",
    403: "The token lacks the route's scope",
    404: "No such job",
    409: "The job is not in a state that allows this",
    413: "The text, the document count or the body is over its limit",
    415: "The body is not JSON (another Content-Type, or compressed)",
    429: "Too many requests in flight, or the model service is at capacity; retry after Retry-After seconds",
    500: "A bug or a model failure; the body never echoes internals",
    503: "The model service, the knowledge index or the job store is not ready or failed; retry shortly",
    504: "No answer within the request timeout",
    507: "The volume under the job store or the index is full or read-only: nothing was stored",
}
# Admission control and the server's timeout cover every protected route; storage and readiness
# errors most of them: documented on all, as what a client must be ready for.
ALWAYS = (429, 500, 503, 504, 507)
API_ERRORS = (400, 413, 415, *ALWAYS)  # any BentoML API route: a JSON body, parsed by BentoML
_RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def ref(name: str) -> Spec:
    return {"$ref": REF.format(model=name)}


def error_response(status: int) -> Spec:
    """The documented response for one error status: who can answer it decides the body."""
    body: Spec = ref("ErrorResponse")
    if status == 400:
        body = {"anyOf": [ref("ErrorResponse"), ref("BentoMLError"), ref("BentoMLErrorList")]}
    elif status == 415:
        body = {"anyOf": [ref("ErrorResponse"), ref("BentoMLErrorList")]}
    elif status in (500, 504):
        body = {"anyOf": [ref("ErrorResponse"), ref("BentoMLError")]}
    response: Spec = {"description": ERRORS[status], "content": {JSON: {"schema": body}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
    elif status == 429:
        response["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": True}}
    elif status == 503:
        response["headers"] = {"Retry-After": _RETRY_AFTER}
    return response


def success(model: str | None, status: int = 200, media_type: str = JSON, headers: Spec | None = None) -> Spec:
    schema = ref(model) if model else {"type": "string"}
    response: Spec = {"description": "Success", "content": {media_type: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def style_param(where: str, name: str, styles: Iterable[str], description: str) -> Spec:
    # Case-insensitive on the server; the canonical names are what a client should send. An empty
    # value means the default, as no value does.
    schema = {"type": "string", "enum": [*sorted(styles), ""]}
    return {"name": name, "in": where, "required": False, "schema": schema, "description": description}


def _job_op(op_id: str, description: str, ok: Spec, errors: Iterable[int] = (), **extra: Any) -> Spec:
    responses = {str(status): error_response(status) for status in (*errors, *ALWAYS)}
    return {"operationId": op_id, "description": description, "tags": ["Jobs"], "responses": {**ok, **responses}, **extra}


def jobs_paths(styles: Iterable[str]) -> Spec:
    """The /jobs routes of pipelines/jobs/app.py (a unit test keeps the two in step)."""
    job_id = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}]
    submit_body = {
        "required": True,
        "content": {
            NDJSON: {"schema": {"type": "string"}, "description": "the JSONL file itself, streamed to disk"},
            JSON: {"schema": ref("JobSubmission")},
        },
    }
    submit_params = [
        style_param("query", "style", styles, "the job's default style"),
        style_param("header", STYLE_HEADER, styles, "the job's default style, when the query has none"),
        {
            "name": "deadline", "in": "query", "required": False, "schema": {"type": "string", "minLength": 1},
            "description": "when the job should be done: ISO 8601 with a timezone (2026-12-07T06:00:00Z) or seconds since the epoch",
        },  # fmt: skip
    ]
    location = {"Location": {"required": True, "schema": {"type": "string"}}}
    status = {"200": success("JobStatusResponse")}
    return {
        "/jobs": {
            "post": _job_op(
                "jobs__submit", "Submit a job: a JSONL upload, or the path of a file under the data directory.",
                {"201": success("JobStatusResponse", 201, headers=location)}, (400, 413),
                parameters=submit_params, requestBody=submit_body,
            ),  # fmt: skip
            "get": _job_op("jobs__list", "All jobs, newest first.", {"200": success("JobList")}),
        },
        "/jobs/{job_id}": {
            "parameters": job_id,
            "get": _job_op("jobs__status", "Progress, rate, ETA and the first invalid lines.", status, (404,)),
            "delete": _job_op("jobs__delete", "Forget a finished job.", {"200": success("JobDeleted")}, (404, 409)),
        },
        "/jobs/{job_id}/results": {
            "parameters": job_id,
            "get": _job_op(
                "jobs__results", "Result lines (JSONL, input order), so far or final.",
                {"200": success(None, media_type=NDJSON, headers={"X-Job-Status": {"required": True, "schema": {"type": "string"}}})},
                (404,),
            ),  # fmt: skip
        },
        "/jobs/{job_id}/invalid": {
            "parameters": job_id,
            "get": _job_op("jobs__invalid", "Every invalid input line (JSONL).", {"200": success(None, media_type=NDJSON)}, (404,)),
        },
        "/jobs/{job_id}/cancel": {
            "parameters": job_id,
            "post": _job_op("jobs__cancel", "Stop a queued or running job.", status, (404, 409)),
        },
    }


def add_models(schemas: Spec, models: Iterable[type[BaseModel]], mode: JsonSchemaMode = "serialization") -> None:
    for model in models:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            if schemas.get(name, definition) != definition:
                raise ValueError(f"two schemas named {name!r} in the OpenAPI document")
            schemas[name] = definition


def operations(spec: Spec) -> Iterable[tuple[str, str, Spec]]:
    """(path, method, operation) for every operation in the document."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                yield path, method, operation


def _complete_api(path: str, operation: Spec, styles: Iterable[str]) -> None:
    model = SUCCESS.get(path)
    ok = success(model.__name__) if model else operation["responses"]["200"]
    operation["responses"] = {"200": ok, **{str(status): error_response(status) for status in API_ERRORS}}
    if path in STYLED:
        operation["parameters"] = [style_param("header", STYLE_HEADER, styles, "a configured style; else the default")]


def _secure(spec: Spec, protect_metrics: bool) -> None:
    open_paths = EXEMPT_PATHS - ({"/metrics"} if protect_metrics else set())
    spec["components"]["securitySchemes"] = {
        SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": "a token from `python -m pipelines.auth create`"}
    }
    spec["security"] = [{SECURITY_SCHEME: []}]
    for path, _, operation in operations(spec):
        if path in open_paths:
            operation["security"] = []  # probes and (unless protected) scrapes need no token
            continue
        operation["responses"].update({str(status): error_response(status) for status in (401, 403)})


def complete(bentoml_spec: Spec, *, styles: Iterable[str], auth: bool, protect_metrics: bool = False) -> Spec:
    """BentoML's document with our bodies, errors, security and the /jobs routes; `styles` are
    the configured style names, `auth` whether tokens are configured."""
    spec: Spec = json.loads(json.dumps(bentoml_spec))  # a deep copy, with BentoML's int status keys as strings
    styles = sorted(styles)
    spec["openapi"] = "3.1.0"
    # BentoML's page at / renders this as Markdown: the way from its generic form to ours.
    info = spec.setdefault("info", {})
    info["description"] = (info.get("description") or "").rstrip() + PLAYGROUND_NOTE
    spec["externalDocs"] = {"description": "The playground page: summarize, ask your docs, run jobs", "url": "/ui"}
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in REPLACED_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(json.loads(json.dumps(BENTOML_SCHEMAS)))
    add_models(schemas, [ErrorResponse, *SUCCESS.values(), JobStatusResponse, JobList, JobDeleted])
    add_models(schemas, [JobSubmission], mode="validation")
    for path, _, operation in operations(spec):
        if "x-bentoml-name" in operation:
            _complete_api(path, operation, styles)
    spec["paths"].update(jobs_paths(styles))
    if auth:
        _secure(spec, protect_metrics)
    return spec


def docs_route(
    bentoml_spec: Callable[[], Spec], *, styles: Iterable[str], auth: bool, protect_metrics: bool, path: str = "/docs.json"
) -> Route:
    """`GET /docs.json` with the completed document, built once on first use."""
    built: list[Spec] = []
    names = list(styles)

    async def endpoint(request: Request) -> Response:
        if not built:
            built.append(complete(bentoml_spec(), styles=names, auth=auth, protect_metrics=protect_metrics))
        return JSONResponse(built[0])

    return Route(path, endpoint, methods=["GET"])

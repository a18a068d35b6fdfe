"""The /jobs routes over ASGI, with a real job store and no runner: submit, read, control, errors."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from pipelines.batch.core import BatchResult
from pipelines.errors import BadInput, InputTooLarge
from pipelines.jobs.app import JobsBackend, LineGuard, build_app, parse_deadline, resolve_data_path
from pipelines.jobs.store import JobStore, RetryPolicy
from pipelines.styles import STYLE_HEADER, StyleRegistry

NDJSON = {"content-type": "application/x-ndjson"}
STYLES = StyleRegistry.load()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Env:
    backend: JobsBackend
    client: httpx.AsyncClient
    data: Path
    outside: Path
    woken: list[int]

    @property
    def store(self) -> JobStore:
        assert isinstance(self.backend.store, JobStore)  # these tests read its upload files
        return self.backend.store

    def uploads(self) -> list[str]:
        return sorted(p.name for p in self.store.inputs.iterdir())


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    woken: list[int] = []
    backend = JobsBackend(JobStore(tmp_path / "store"), STYLES, data, max_upload_bytes=4096, wake=lambda: woken.append(1))
    app = build_app(lambda: backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jobs.test") as client:
        yield Env(backend, client, data, outside, woken)


def jsonl(*ids: str, junk: int = 0) -> bytes:
    lines = [json.dumps({"id": i, "text": f"Text of {i}. More."}) for i in ids] + ["not json"] * junk
    return ("\n".join(lines) + "\n").encode()


async def submit(env: Env, body: bytes = jsonl("a", "b", "c")) -> str:
    response = await env.client.post("/jobs", content=body, headers=NDJSON)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def assert_error(response: httpx.Response, status: int, kind: str, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["status"], error["type"]) == (status, kind)
    for fragment in fragments:
        assert fragment in error["message"]


# -- submit ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_upload_creates_a_job_and_wakes_the_runner(env: Env) -> None:
    response = await env.client.post("/jobs?style=Legal", content=jsonl("a", "b", "c", junk=2), headers=NDJSON)
    assert response.status_code == 201
    body = response.json()
    job_id = body["id"]
    assert response.headers["location"] == f"/jobs/{job_id}"
    assert (body["status"], body["source"], body["total"], body["invalid_lines"], body["pending"]) == ("queued", "upload", 3, 2, 3)
    assert body["default_style"] == "legal" and [x["line"] for x in body["invalid"]] == [4, 5]
    assert env.woken == [1]
    assert env.uploads() == [f"{job_id}.jsonl"]
    assert env.store.inputs.joinpath(f"{job_id}.jsonl").read_bytes() == jsonl("a", "b", "c", junk=2)


@pytest.mark.anyio
async def test_a_chunked_upload_is_streamed_to_the_file(env: Env) -> None:
    body = jsonl(*[f"d{i}" for i in range(40)])
    assert len(body) < env.backend.max_upload_bytes

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    response = await env.client.post("/jobs", content=chunks(), headers=NDJSON)
    assert response.status_code == 201 and response.json()["total"] == 40


@pytest.mark.anyio
async def test_path_submission_inside_the_data_dir(env: Env) -> None:
    (env.data / "sub" / "corpus.jsonl").write_bytes(jsonl("x", "y"))
    response = await env.client.post("/jobs", json={"path": "sub/corpus.jsonl", "style": "casual"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["source"], body["total"], body["default_style"]) == ("path:sub/corpus.jsonl", 2, "casual")
    assert env.store.get(body["id"]).input_path == (env.data / "sub" / "corpus.jsonl").resolve()
    assert env.uploads() == [] and env.woken == [1]  # the file is read where it is, not copied


@pytest.mark.anyio
async def test_paths_that_leave_the_data_dir_are_refused(env: Env) -> None:
    secret = env.outside / "other.jsonl"
    secret.write_bytes(jsonl("s"))
    (env.data / "link.jsonl").symlink_to(secret)
    (env.data / "sub" / "dirlink").symlink_to(env.outside, target_is_directory=True)
    for given in ("../outside/other.jsonl", "sub/../../outside/other.jsonl", str(secret), "link.jsonl", "sub/dirlink/other.jsonl"):
        response = await env.client.post("/jobs", json={"path": given})
        assert_error(response, 400, "BadInput", "outside the data directory")
    bad: list[tuple[object, str]] = [("missing.jsonl", "no file"), ("sub", "no file"), ("", "relative to the data directory"), (5, "relative")]
    for value, why in bad:
        assert_error(await env.client.post("/jobs", json={"path": value}), 400, "BadInput", why)
    assert_error(await env.client.post("/jobs", json=["sub/x.jsonl"]), 400, "BadInput", '{"path"')
    assert_error(await env.client.post("/jobs", content=b"{nope", headers={"content-type": "application/json"}), 400, "BadInput", "not valid JSON")
    assert env.store.all() == [] and env.woken == []


def test_a_symlink_that_stays_inside_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.jsonl").write_bytes(jsonl("a"))
    (tmp_path / "alias.jsonl").symlink_to(tmp_path / "real.jsonl")
    assert resolve_data_path(tmp_path, "alias.jsonl") == (tmp_path / "real.jsonl").resolve()
    with pytest.raises(BadInput, match="SUMMARIZER_JOBS_DATA_DIR"):
        resolve_data_path(None, "alias.jsonl")


@pytest.mark.anyio
async def test_a_path_with_a_nul_byte_is_a_bad_request(env: Env) -> None:
    assert_error(await env.client.post("/jobs", json={"path": "a\u0000.jsonl"}), 400, "BadInput")


@pytest.mark.anyio
async def test_path_submission_is_off_without_a_data_dir(env: Env) -> None:
    env.backend.data_dir = None
    (env.data / "corpus.jsonl").write_bytes(jsonl("x"))
    response = await env.client.post("/jobs", json={"path": "corpus.jsonl"})
    assert_error(response, 400, "BadInput", "SUMMARIZER_JOBS_DATA_DIR")
    assert env.store.all() == []


@pytest.mark.anyio
async def test_an_upload_over_the_limit_is_413_and_leaves_no_file(env: Env) -> None:
    big = jsonl(*[f"doc-{i}" for i in range(200)])
    assert len(big) > env.backend.max_upload_bytes
    assert_error(await env.client.post("/jobs", content=big, headers=NDJSON), 413, "InputTooLarge", "SUMMARIZER_JOBS_MAX_UPLOAD_BYTES")

    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for start in range(0, len(big), 512):
            sent += 1
            yield big[start : start + 512]

    assert_error(await env.client.post("/jobs", content=chunks(), headers=NDJSON), 413, "InputTooLarge")
    assert sent < len(big) // 512  # it stopped reading once over the limit
    assert env.uploads() == [] and env.store.all() == [] and env.woken == []


@pytest.mark.anyio
async def test_a_large_json_submission_is_refused_without_reading_it_all(env: Env) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(256):  # 1 MiB, far over the 64 KiB a {"path": ...} body may have
            sent += 1
            yield b" " * 4096

    response = await env.client.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "InputTooLarge")
    assert sent <= 20, f"read {sent * 4} KiB of a JSON body before refusing it"


@pytest.mark.anyio
async def test_empty_or_invalid_uploads_are_400_and_leave_no_file(env: Env) -> None:
    assert_error(await env.client.post("/jobs", content=b"", headers=NDJSON), 400, "BadInput", "upload is empty")
    response = await env.client.post("/jobs", content=b'{"id": "a", "text": "mail jane@example.com"\n[1]\n', headers=NDJSON)
    assert_error(response, 400, "BadInput", "no valid document", "line 1:", "line 2:")
    assert "jane@example.com" not in response.text
    assert env.uploads() == [] and env.store.all() == [] and env.woken == []


@pytest.mark.anyio
async def test_an_unknown_style_is_refused_before_anything_is_written(env: Env) -> None:
    (env.data / "corpus.jsonl").write_bytes(jsonl("x"))
    for response in (
        await env.client.post("/jobs?style=poetry", content=jsonl("a"), headers=NDJSON),
        await env.client.post("/jobs", content=jsonl("a"), headers={**NDJSON, STYLE_HEADER: "poetry"}),
        await env.client.post("/jobs", json={"path": "corpus.jsonl", "style": "poetry"}),
    ):
        assert_error(response, 400, "UnknownStyle", "'poetry'", "valid styles: casual, legal, news")
    assert env.uploads() == [] and env.store.all() == [] and env.woken == []
    # The header works when it names a style.
    response = await env.client.post("/jobs", content=jsonl("a"), headers={**NDJSON, STYLE_HEADER: "casual"})
    assert response.status_code == 201 and response.json()["default_style"] == "casual"


# -- deadlines ---------------------------------------------------------------------------------


def iso(ts: float, offset_hours: int = 0) -> str:
    """`ts` as ISO 8601 in the zone `offset_hours` from UTC ("Z" for UTC)."""
    zone = timezone(timedelta(hours=offset_hours))
    text = datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if offset_hours == 0 else text


@pytest.mark.anyio
async def test_a_deadline_is_taken_as_iso_8601_with_a_zone_or_as_epoch_seconds(env: Env) -> None:
    (env.data / "corpus.jsonl").write_bytes(jsonl("x"))
    due = float(int(time.time()) + 86_400)
    shown = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(due))
    submissions = {
        "iso, Z": await env.client.post("/jobs", params={"deadline": iso(due)}, content=jsonl("a"), headers=NDJSON),
        "iso, offset": await env.client.post("/jobs", params={"deadline": iso(due, 2)}, content=jsonl("a"), headers=NDJSON),
        "epoch": await env.client.post("/jobs", params={"deadline": str(int(due))}, content=jsonl("a"), headers=NDJSON),
        "json, iso": await env.client.post("/jobs", json={"path": "corpus.jsonl", "deadline": iso(due, -5)}),
        "json, number": await env.client.post("/jobs", json={"path": "corpus.jsonl", "deadline": due}),
        # The body's deadline wins over the query's, as its style does.
        "json over query": await env.client.post(
            "/jobs", params={"deadline": str(int(due) + 60)}, json={"path": "corpus.jsonl", "deadline": due}
        ),
    }
    for how, response in submissions.items():
        assert response.status_code == 201, (how, response.text)
        body = response.json()
        assert (body["deadline"], body["behind_schedule"]) == (shown, False), how
        assert env.store.get(body["id"]).deadline == due, how


@pytest.mark.anyio
async def test_no_deadline_is_null_in_the_status(env: Env) -> None:
    (env.data / "corpus.jsonl").write_bytes(jsonl("x"))
    for response in (
        await env.client.post("/jobs", content=jsonl("a"), headers=NDJSON),
        await env.client.post("/jobs", json={"path": "corpus.jsonl", "deadline": None}),
    ):
        assert response.status_code == 201, response.text
        assert (response.json()["deadline"], response.json()["behind_schedule"]) == (None, False)
        assert env.store.get(response.json()["id"]).deadline is None


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("2031-12-07T06:00:00", "has no timezone"),
        ("2031-12-07", "has no timezone"),
        ("2001-12-07T06:00:00Z", "is in the past"),
        ("1000", "is in the past"),
        ("next tuesday", "is not an ISO 8601 timestamp"),
        ("", "is not an ISO 8601 timestamp"),
        ("1e12", "is not an ISO 8601 timestamp"),
        ("99999999999999", "before the year 10000"),
        ("9999-12-31T23:59:59-05:00", "before the year 10000"),
    ],
)
@pytest.mark.anyio
async def test_a_deadline_that_is_unclear_or_past_is_400_before_the_upload_is_stored(env: Env, given: str, why: str) -> None:
    response = await env.client.post("/jobs", params={"deadline": given}, content=jsonl("a"), headers=NDJSON)
    assert_error(response, 400, "BadInput", "deadline", why)
    assert env.uploads() == [] and env.store.all() == [] and env.woken == []


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (True, "deadline must be"),
        ([1], "deadline must be"),
        ({"at": 1}, "deadline must be"),
        (1000, "is in the past"),
        ("2031-12-07T06:00:00", "has no timezone"),
        ("soon", "is not an ISO 8601 timestamp"),
        (10**400, "before the year 10000"),
    ],
)
@pytest.mark.anyio
async def test_a_json_deadline_that_is_unclear_or_past_is_400(env: Env, given: object, why: str) -> None:
    (env.data / "corpus.jsonl").write_bytes(jsonl("x"))
    body = json.dumps({"path": "corpus.jsonl", "deadline": given}).encode()
    response = await env.client.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "BadInput", why)
    assert env.store.all() == [] and env.woken == []


def test_a_refused_deadline_names_the_servers_time_and_is_not_echoed_whole() -> None:
    with pytest.raises(BadInput) as raised:
        parse_deadline("2001-12-07T06:00:00Z", 2_000_000_000.0)
    assert "the server's time is 2033-05-18T03:33:20Z" in raised.value.message
    with pytest.raises(BadInput) as raised:
        parse_deadline("x" * 5000, 0.0)
    assert len(raised.value.message) < 300


# -- read --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_list_status_results_and_invalid_lines(env: Env) -> None:
    first = await submit(env, jsonl("a", "b", "c", junk=1))
    second = await submit(env, jsonl("z"))
    listed = (await env.client.get("/jobs")).json()["jobs"]
    assert [(j["id"], j["total"], j["invalid_lines"], j["status"]) for j in listed] == [(second, 1, 0, "queued"), (first, 3, 1, "queued")]

    status = await env.client.get(f"/jobs/{first}")
    assert status.status_code == 200 and (status.json()["id"], status.json()["total"]) == (first, 3)

    empty = await env.client.get(f"/jobs/{first}/results")
    assert empty.status_code == 200 and empty.text == "" and empty.headers["x-job-status"] == "queued"
    assert empty.headers["content-type"].startswith("application/x-ndjson")

    # The runner's part, done by hand: two documents finish, out of order.
    store = env.store
    store.start(first)
    claimed = store.claim(first, 3)
    store.record(first, [claimed[2], claimed[0]], [BatchResult(id="c", summary="C."), BatchResult(id="a", summary="A.")], RetryPolicy())
    partial = await env.client.get(f"/jobs/{first}/results")
    assert partial.headers["x-job-status"] == "running"
    assert [json.loads(x) for x in partial.text.splitlines()] == [{"id": "a", "summary": "A.", "line": 1}, {"id": "c", "summary": "C.", "line": 3}]
    progress = (await env.client.get(f"/jobs/{first}")).json()
    assert (progress["done"], progress["pending"], progress["percent"]) == (2, 1, 66.67)

    invalid = await env.client.get(f"/jobs/{first}/invalid")
    assert invalid.status_code == 200
    assert [json.loads(x)["line"] for x in invalid.text.splitlines()] == [4]


# -- control -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancel_then_cancel_again_then_delete(env: Env) -> None:
    job_id = await submit(env)
    upload = env.store.inputs / f"{job_id}.jsonl"
    assert_error(await env.client.delete(f"/jobs/{job_id}"), 409, "Conflict", "cancel it before deleting")

    cancelled = await env.client.post(f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert env.woken == [1, 1]
    assert_error(await env.client.post(f"/jobs/{job_id}/cancel"), 409, "Conflict", "already cancelled")
    assert env.woken == [1, 1]

    deleted = await env.client.delete(f"/jobs/{job_id}")
    assert deleted.status_code == 200 and deleted.json() == {"deleted": job_id}
    assert not upload.exists() and env.uploads() == []
    assert_error(await env.client.get(f"/jobs/{job_id}"), 404, "NotFound", job_id)


@pytest.mark.anyio
async def test_unknown_jobs_are_404_json_everywhere(env: Env) -> None:
    await submit(env)
    for method, path in (("GET", "/jobs/job-nope"), ("GET", "/jobs/job-nope/results"), ("GET", "/jobs/job-nope/invalid"),
                         ("POST", "/jobs/job-nope/cancel"), ("DELETE", "/jobs/job-nope")):  # fmt: skip
        assert_error(await env.client.request(method, path), 404, "NotFound", "job-nope")


@pytest.mark.anyio
async def test_an_unexpected_failure_is_a_plain_500_without_details(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[object]:
        raise RuntimeError("disk says /secret/path")

    monkeypatch.setattr(env.store, "all", broken)
    response = await env.client.get("/jobs")
    assert_error(response, 500, "SummarizerError", "internal error")
    assert "secret" not in response.text


# -- hostile submissions ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" * 60_000, "nested too deeply"),  # under the 64 KiB JSON limit; json.loads recurses
        (b'{"path": "\xff\xfe.jsonl"}', "UnicodeDecodeError"),
        (b'{"path": "a.jsonl"', "JSONDecodeError"),
    ],
)
async def test_json_submissions_that_do_not_parse_are_400(env: Env, body: bytes, why: str) -> None:
    response = await env.client.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "BadInput", "not valid JSON", why)
    assert env.store.all() == []


@pytest.mark.anyio
async def test_a_path_too_long_for_the_file_system_is_400_and_not_echoed_whole(env: Env) -> None:
    response = await env.client.post("/jobs", json={"path": "a" * 5_000 + ".jsonl"})
    assert_error(response, 400, "BadInput", "cannot name a file", "ENAMETOOLONG")
    assert len(response.text) < 600
    assert_error(await env.client.post("/jobs", json={"path": "..%2f..%2fetc%2fpasswd"}), 400, "BadInput", "no file")


@pytest.mark.anyio
async def test_a_line_over_the_limit_is_413_while_it_streams_in(env: Env) -> None:
    env.backend.max_upload_bytes, env.backend.store.max_line_bytes = 1_000_000, 1_000
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield jsonl("a", "b")
        for _ in range(500):  # line 3: 500 kB without a line break
            sent += 1
            yield b"x" * 1_000

    response = await env.client.post("/jobs", content=chunks(), headers=NDJSON)
    assert_error(response, 413, "InputTooLarge", "line 3 ", "longer than 1000 bytes", "MAX_LINE_BYTES")
    assert response.headers["connection"] == "close"  # the rest of the body is not read
    assert sent <= 2, "it read on after the line passed the limit"
    assert env.uploads() == [] and env.store.all() == [] and env.woken == []


@pytest.mark.anyio
async def test_lines_at_the_limit_pass_whatever_the_chunking(env: Env) -> None:
    line = json.dumps({"id": "a", "text": "word " * 150})
    env.backend.store.max_line_bytes = len(line)
    body = (line + "\n" + line.replace('"a"', '"b"') + "\n").encode()
    whole = await env.client.post("/jobs", content=body, headers=NDJSON)
    assert whole.status_code == 201, whole.text

    async def bytewise() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    assert (await env.client.post("/jobs", content=bytewise(), headers=NDJSON)).status_code == 201
    env.backend.store.max_line_bytes = len(line) - 1
    assert_error(await env.client.post("/jobs", content=body, headers=NDJSON), 413, "InputTooLarge", "line 1 ")


def test_the_line_guard_finds_a_long_line_inside_one_chunk() -> None:
    guard = LineGuard(10)
    guard.feed(b"short\nalso short\n")  # "also short" is exactly 10
    with pytest.raises(InputTooLarge, match="line 4 "):
        guard.feed(b"ok\n" + b"y" * 11 + b"\nok\n")


@pytest.mark.anyio
async def test_a_compressed_upload_is_never_expanded(env: Env) -> None:
    # 40 MB of valid JSONL in 40 kB: had anything decompressed it, the 4 kB limit would be a 413.
    bomb = gzip.compress(jsonl("a") * 1_000_000, compresslevel=9)
    env.backend.max_upload_bytes = len(bomb) + 1
    response = await env.client.post("/jobs", content=bomb, headers={"content-type": "application/gzip"})
    assert_error(response, 400, "BadInput", "no valid document")
    assert env.uploads() == [] and env.store.all() == []

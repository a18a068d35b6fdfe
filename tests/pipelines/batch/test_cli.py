"""`summarize-batch`: bad lines, resume after a kill, retries and fatal answers of a server.

The in-process runs start the real CLI in a subprocess with the real encoder from a private BentoML
model store; the server protocol (retries, Retry-After, splitting, fatal statuses) is checked
against an httpx mock transport, the resume bookkeeping against a fake pipeline: both in a second.
"""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.batch import cli as batch_cli
from pipelines.batch.cli import main
from pipelines.batch.core import BatchDocument, BatchResult, ErrorBody
from pipelines.settings import Settings
from tests.server.conftest import REPO, base_env, run_models_cli
from tests.texts import DIALOGUE, LEGAL, NEWS

RUN_TIMEOUT_S = 300


def write_jsonl(path: Path, rows: Sequence[object | str]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def short_docs(n: int, prefix: str = "doc") -> list[dict[str, str]]:
    return [
        {"id": f"{prefix}-{i}", "text": f"Report {i}: the harbour reopened on day {i} after repairs. The mayor thanked "
                                        f"the crews. Ships are expected next week. Trade should recover by spring."}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_cli, "BACKOFF_S", 0.01)
    monkeypatch.setattr(batch_cli, "GRACE_S", 1.0)


# --- In process, the real CLI and models ---------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a CLI subprocess: a private model store holding the default encoder."""
    env = base_env(tmp_path_factory.mktemp("bentoml-home"))
    run_models_cli(env, "import-default")
    return env


def cli(env: dict[str, str], *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.batch", *map(str, args)]


def run_cli(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(env, *args), cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def test_bad_lines_are_reported_by_number_and_the_rest_summarized(cli_env: dict[str, str], tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "news", "text": NEWS, "metadata": {"source": "wire"}},
        "{not json",
        {"text": "no id here"},
        "[1, 2]",
        {"id": "legal", "text": LEGAL, "style": "legal"},
        {"id": "news", "text": "the same id again"},
        {"id": "empty", "text": ""},
        {"id": "odd-style", "text": DIALOGUE, "style": "sonnet"},
        "",  # blank lines are no documents, and no errors
        {"id": "chat", "text": DIALOGUE, "format": "text"},
    ])  # fmt: skip
    out = tmp_path / "out.jsonl"
    done = run_cli(cli_env, source, "-o", out, "--style", "casual")
    assert done.returncode == 1, done.stderr
    bad = [line for line in done.stderr.splitlines() if line.startswith(f"{source}: line ")]
    assert [b.split(":")[1] for b in bad] == [" line 2", " line 3", " line 4", " line 6"]
    assert "not valid JSON" in bad[0] and "id" in bad[1] and "JSON object" in bad[2]
    assert bad[3].endswith("duplicate id, first seen on line 1")

    results = {r["id"]: r for r in read_results(out)}
    assert sorted(results) == ["chat", "empty", "legal", "news", "odd-style"]
    assert {r["id"]: r["line"] for r in results.values()} == {"news": 1, "legal": 5, "empty": 7, "odd-style": 8, "chat": 10}
    assert results["news"]["summary"] and results["news"]["style"] == "casual"  # --style: the default
    assert results["news"]["metadata"] == {"source": "wire"}
    assert results["legal"]["style"] == "legal"  # the document's own style wins
    assert results["empty"]["error"]["type"] == "BadInput" and "summary" not in results["empty"]
    odd = results["odd-style"]["error"]
    assert odd["type"] == "UnknownStyle" and odd["status"] == 400 and "'sonnet'" in odd["message"]
    assert "3 summarized, 2 failed, 4 invalid input lines" in done.stdout

    # The same command again: nothing left to do, so no model is loaded; the failures still count.
    before = out.read_bytes()
    again = run_cli(cli_env, source, "-o", out, "--style", "casual")
    assert again.returncode == 1 and "0 this run" in again.stdout
    assert out.read_bytes() == before


def test_resume_after_sigkill_and_a_torn_last_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    docs = short_docs(200)
    source = write_jsonl(tmp_path / "in.jsonl", docs)
    out = tmp_path / "out.jsonl"
    args = (source, "-o", out, "--batch-size", "4")
    proc = subprocess.Popen(cli(cli_env, *args), cwd=REPO, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (not out.exists() or out.read_bytes().count(b"\n") < 8) and proc.poll() is None:
            assert time.monotonic() < deadline, "no results written in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
    first = read_results(out)
    assert 8 <= len(first) < len(docs)
    # What a kill in the middle of a write leaves behind.
    with out.open("ab") as f:
        f.write(b'{"id": "doc-199", "summ')

    resumed = run_cli(cli_env, *args)
    assert resumed.returncode == 0, resumed.stderr
    assert "cut off a partial last line" in resumed.stderr
    assert f"{len(docs)} summarized, 0 failed, 0 invalid input lines; {len(docs) - len(first)} this run" in resumed.stdout
    results = read_results(out)
    assert results[: len(first)] == first  # kept as they were, then the rest appended
    assert sorted(r["id"] for r in results) == sorted(d["id"] for d in docs)  # one line per id: no gaps, no repeats
    assert all(r["line"] == int(r["id"].split("-")[1]) + 1 and r["summary"] for r in results)


def test_fatal_setup_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", short_docs(3))
    env = base_env(tmp_path / "empty-home")  # no model imported
    missing_model = run_cli(env, source, "-o", tmp_path / "out.jsonl", "--quiet")
    assert missing_model.returncode == 2
    assert "not in the BentoML model store" in missing_model.stderr.strip().splitlines()[-1]
    assert main([str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl")]) == 2
    assert main([str(source), "-o", str(source)]) == 2
    assert main([str(source), "-o", str(tmp_path / "out.jsonl"), "--url", "localhost:3000"]) == 2


# --- The resume bookkeeping, with a fake pipeline -----------------------------------------------


class FakePipeline:
    """Summaries are the upper-cased text; ids in `flaky` fail transiently while `flaky` says so."""

    def __init__(self, flaky: set[str] | None = None) -> None:
        self.flaky = flaky or set()
        self.seen: list[str] = []

    def run(self, docs: Sequence[BatchDocument], default_style: str | None = None) -> list[BatchResult]:
        self.seen += [d.id for d in docs]
        busy = ErrorBody(type="Overloaded", message="busy", status=429)
        return [BatchResult(id=d.id, error=busy) if d.id in self.flaky else BatchResult(id=d.id, summary=d.text.upper())
                for d in docs]  # fmt: skip


def factory(pipeline: FakePipeline) -> Callable[[Settings], FakePipeline]:
    return lambda settings: pipeline


def test_transient_failures_are_retried_then_written_and_retried_again_on_rerun_and_restart(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", short_docs(5))
    out = tmp_path / "out.jsonl"
    argv = [str(source), "-o", str(out), "--batch-size", "2", "--max-attempts", "3", "--quiet"]
    flaky = FakePipeline(flaky={"doc-1"})
    assert main(argv, pipeline_factory=factory(flaky)) == 1
    assert flaky.seen.count("doc-1") == 3  # every attempt, then an error line
    assert read_results(out)[1]["error"]["type"] == "Overloaded"

    healthy = FakePipeline()
    assert main(argv, pipeline_factory=factory(healthy)) == 0
    assert healthy.seen == ["doc-1"]
    results = read_results(out)
    assert sorted(r["id"] for r in results) == [f"doc-{i}" for i in range(5)]
    assert all("summary" in r for r in results)

    # --restart starts over, whatever the file held.
    write_jsonl(out, [{"id": "stranger", "summary": "from another input"}])
    again = FakePipeline()
    assert main([*argv, "--restart"], pipeline_factory=factory(again)) == 0
    assert again.seen == [f"doc-{i}" for i in range(5)]
    assert [r["id"] for r in read_results(out)] == [f"doc-{i}" for i in range(5)]


def test_a_damaged_output_or_a_second_run_on_it_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", short_docs(2))
    out = write_jsonl(tmp_path / "out.jsonl", [{"id": "doc-0", "summary": "s"}, "garbage", {"id": "doc-1", "summary": "s"}])
    argv = [str(source), "-o", str(out)]
    assert main(argv, pipeline_factory=factory(FakePipeline())) == 2
    assert "line 2 is not a result line" in capsys.readouterr().err

    out.unlink()
    with out.open("ab") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        assert main(argv, pipeline_factory=factory(FakePipeline())) == 2
    assert "another summarize-batch run" in capsys.readouterr().err


# --- Against a server: the protocol, with a mock transport --------------------------------------


def ok(docs: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(200, json={"results": [{"id": d["id"], "summary": "s", "style": "news"} for d in docs]})


def server(answer: Callable[[httpx.Request, list[dict[str, Any]]], httpx.Response]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answer(request, json.loads(request.content)["documents"])

    return httpx.MockTransport(handle), requests


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Callable[..., tuple[int, list[dict[str, Any]]]]]:
    source = write_jsonl(tmp_path / "in.jsonl", short_docs(10))
    out = tmp_path / "out.jsonl"

    def run(transport: httpx.MockTransport, *extra: str) -> tuple[int, list[dict[str, Any]]]:
        argv = [str(source), "-o", str(out), "--url", "http://summarizer:3000/", "--batch-size", "4", "--quiet", *extra]
        code = main(argv, transport=transport)
        return code, read_results(out) if out.exists() else []

    yield run


def test_server_overload_is_retried_honoring_retry_after(remote: Callable[..., tuple[int, list[dict[str, Any]]]]) -> None:
    calls = {"n": 0}

    def answer(request: httpx.Request, docs: list[dict[str, Any]]) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {"type": "Overloaded", "message": "busy", "status": 429}})
        if calls["n"] == 2:
            raise httpx.ConnectError("refused", request=request)
        if calls["n"] == 3:  # one document of a batch is transient: only it goes again
            return httpx.Response(200, json={"results": [{"id": d["id"], "error": {"type": "NotReady", "message": "x", "status": 503}}
                                                         if i == 0 else {"id": d["id"], "summary": "s"} for i, d in enumerate(docs)]})  # fmt: skip
        return ok(docs)

    transport, requests = server(answer)
    code, results = remote(transport, "--concurrency", "1", "--style", "legal", "--token", "t0k")
    assert code == 0
    assert sorted(r["id"] for r in results) == [f"doc-{i}" for i in range(10)]
    assert all(r["summary"] == "s" and r["line"] == int(r["id"][4:]) + 1 for r in results)
    assert str(requests[0].url) == "http://summarizer:3000/batch"
    assert requests[0].headers["X-Summary-Style"] == "legal" and requests[0].headers["Authorization"] == "Bearer t0k"
    assert [len(json.loads(r.content)["documents"]) for r in requests] == [4, 4, 4, 1, 4, 2]


def test_after_max_attempts_every_document_gets_an_error_line(remote: Callable[..., tuple[int, list[dict[str, Any]]]]) -> None:
    transport, requests = server(lambda request, docs: httpx.Response(503, text="<html>bad gateway</html>"))
    code, results = remote(transport, "--max-attempts", "2")
    assert code == 1
    assert len(requests) == 6  # 3 batches, 2 attempts each
    assert sorted(r["id"] for r in results) == [f"doc-{i}" for i in range(10)]
    assert {r["error"]["status"] for r in results} == {503}


def test_a_too_large_body_is_split(remote: Callable[..., tuple[int, list[dict[str, Any]]]]) -> None:
    def answer(request: httpx.Request, docs: list[dict[str, Any]]) -> httpx.Response:
        too_large = len(docs) > 1 or docs[0]["id"] == "doc-3"
        return httpx.Response(413, json={"error": {"type": "InputTooLarge", "message": "big", "status": 413}}) if too_large else ok(docs)

    code, results = remote(server(answer)[0])
    assert code == 1
    by_id = {r["id"]: r for r in results}
    assert len(by_id) == 10 and by_id["doc-3"]["error"]["type"] == "InputTooLarge"
    assert all("summary" in r for i, r in by_id.items() if i != "doc-3")


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_refused_request_is_fatal(
    status: int, remote: Callable[..., tuple[int, list[dict[str, Any]]]], capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"error": {"type": "BadInput", "message": "at most 64 documents", "status": status}}
    transport, requests = server(lambda request, docs: httpx.Response(status, json=body))
    code, results = remote(transport, "--concurrency", "1")
    assert code == 2 and results == [] and len(requests) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"refused the request: {status}" in err[0]


def test_the_token_can_come_from_a_file(remote: Callable[..., tuple[int, list[dict[str, Any]]]], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    transport, requests = server(lambda request, docs: ok(docs))
    code, _ = remote(transport, "--token-file", str(token_file))
    assert code == 0
    assert {r.headers["Authorization"] for r in requests} == {"Bearer s3cret"}
    code, _ = remote(transport, "--token-file", str(tmp_path / "missing"), "--restart")
    assert code == 2

"""`summarize-batch --url` against a real `bentoml serve`: a few hundred documents, Ctrl-C, resume."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.batch.test_cli import read_results, short_docs, write_jsonl
from tests.server.conftest import REPO, Server, StartServer, base_env
from tests.texts import LEGAL, NEWS

pytestmark = pytest.mark.server
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path) -> Server:
    return start_server(bentoml_home, max_latency_ms="20000")


def cli(server: Server, source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.batch", str(source), "-o", str(out), "--url", server.url, *extra]


def test_a_few_hundred_documents_one_line_each(server: Server, bentoml_home: Path, tmp_path: Path) -> None:
    docs: list[dict[str, Any]] = [*short_docs(200), {"id": "news", "text": NEWS, "metadata": {"desk": "city"}},
                                     {"id": "legal", "text": LEGAL, "style": "legal"}]  # fmt: skip
    source = write_jsonl(tmp_path / "in.jsonl", docs)
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        cli(server, source, out, "--batch-size", "8", "--concurrency", "4", "--style", "casual"),
        cwd=REPO, env=base_env(bentoml_home), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + server.log_tail()
    assert f"{len(docs)} summarized, 0 failed, 0 invalid input lines" in done.stdout
    results = {r["id"]: r for r in read_results(out)}
    assert len(results) == len(read_results(out)) == len(docs)
    assert all(results[d["id"]]["line"] == n for n, d in enumerate(docs, 1))
    assert all(r["summary"] and r["engine"] == "extractive" for r in results.values())
    assert results["doc-7"]["style"] == "casual" and results["legal"]["style"] == "legal"
    assert results["news"]["metadata"] == {"desk": "city"}


def test_ctrl_c_then_the_same_command_resumes(server: Server, bentoml_home: Path, tmp_path: Path) -> None:
    docs = short_docs(400)
    source = write_jsonl(tmp_path / "in.jsonl", docs)
    out = tmp_path / "out.jsonl"
    command = cli(server, source, out, "--batch-size", "4", "--concurrency", "2")
    env = base_env(bentoml_home)
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (not out.exists() or out.read_bytes().count(b"\n") < 16) and proc.poll() is None:
            assert time.monotonic() < deadline, "no results written in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)  # in-flight requests get a few seconds, then it exits
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    first = read_results(out)  # only whole lines: the in-flight batches finished or were dropped
    assert 16 <= len(first) < len(docs)
    assert f"interrupted: {len(first)} of {len(docs)} done; rerun the same command to resume" in stderr

    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(docs) - len(first)} this run" in resumed.stdout
    results = read_results(out)
    assert results[: len(first)] == first
    assert sorted(r["id"] for r in results) == sorted(d["id"] for d in docs)
    assert all("summary" in r for r in results)

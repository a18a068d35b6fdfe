"""The batch job on Ray Data: a real local Ray instance and the real encoder, and the line handling alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines.batch.core import BatchDocument, BatchResult
from pipelines.batch.ray_data import EXIT_ERROR, EXIT_FAILED, SummarizeBatch, main, read_lines
from pipelines.errors import Overloaded
from tests.server.conftest import REPO, base_env, run_models_cli
from tests.texts import DIALOGUE, LEGAL, NEWS

DOCUMENTS = 50
JOB_TIMEOUT_S = 180  # Ray start, two actors loading the models on 2 cores, 50 documents: ~60 s


def _lines(content: bytes, block_lines: int = 1_000) -> list[dict[str, object]]:
    return [row for block in read_lines(pa.BufferReader(content), "in.jsonl", block_lines) for row in block.to_pylist()]


def test_lines_split_on_newlines_only_and_keep_their_numbers() -> None:
    content = b'{"id": "a"}\n\n  \n{"id": "b\xe2\x80\xa8c"}\r\n\xff\n{"id": "last"}'
    rows = _lines(content)
    assert [row["line"] for row in rows] == [1, 4, 5, 6]  # blank lines skipped, still counted
    assert rows[1]["raw"] == '{"id": "b\u2028c"}\r\n'.encode()  # U+2028 is not a line break in JSONL
    assert rows[2]["raw"] == b"\xff\n"  # not UTF-8: that line's problem, not the file's
    assert {row["path"] for row in rows} == {"in.jsonl"}
    assert len(list(read_lines(pa.BufferReader(content), "in.jsonl", block_lines=2))) == 2


class FakePipeline:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, docs: Sequence[BatchDocument], default_style: str | None = None) -> list[BatchResult]:
        self.calls.append(([d.id for d in docs], default_style))
        if self.fail:
            raise Overloaded("busy")
        return [BatchResult(id=d.id, summary=d.text.upper()) for d in docs]


def _batch(*raws: bytes) -> dict[str, np.ndarray]:
    return {
        "path": np.array(["/data/in.jsonl"] * len(raws), dtype=object),
        "line": np.arange(1, len(raws) + 1),
        "raw": np.array(raws, dtype=object),
    }


def test_a_batch_keeps_input_order_with_invalid_lines_among_documents() -> None:
    pipeline = FakePipeline()
    out = SummarizeBatch("brief", pipeline)(_batch(b'{"id": "a", "text": "x"}', b"{oops", b'{"id": "n"}', b'{"id": "b", "text": "y"}'))
    rows = [json.loads(line) for line in out["result"]]
    assert pipeline.calls == [(["a", "b"], "brief")]
    assert [(r["id"], r["line"]) for r in rows] == [("a", 1), ("", 2), ("n", 3), ("b", 4)]
    assert rows[0]["summary"] == "X" and rows[3]["summary"] == "Y"
    assert rows[1]["error"]["type"] == rows[2]["error"]["type"] == "InvalidLine"
    assert rows[1]["error"]["message"].startswith("in.jsonl line 2: not valid JSON")
    assert list(out["failed"]) == [False, True, True, False]


def test_a_batch_that_fails_as_a_whole_fails_each_document() -> None:
    out = SummarizeBatch(None, FakePipeline(fail=True))(_batch(b'{"id": "a", "text": "x"}', b'{"id": "b", "text": "y"}'))
    assert [json.loads(line)["error"]["type"] for line in out["result"]] == ["Overloaded", "Overloaded"]
    assert all(out["failed"])


def _run_job(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.batch.ray_data", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=JOB_TIMEOUT_S,
    )  # fmt: skip


def test_refuses_a_non_empty_output_or_a_missing_input_before_starting_ray(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "x"}\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.jsonl").write_text("{}\n")
    assert main([str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out")]) == EXIT_ERROR
    assert "is not empty" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "new")]) == EXIT_ERROR
    assert "no such file" in capsys.readouterr().err
    assert main([str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "new"), "--style", "no-such-style"]) == EXIT_ERROR
    assert "no-such-style" in capsys.readouterr().err


@pytest.mark.timeout(240)
def test_summarizes_a_corpus_on_a_local_ray_instance(tmp_path: Path) -> None:
    home = tmp_path / "bentoml-home"
    env = base_env(home)
    run_models_cli(env, "import-default")
    texts = [NEWS, LEGAL, DIALOGUE]
    lines = [json.dumps({"id": f"doc-{i}", "text": texts[i % 3], "metadata": {"i": i}}) for i in range(DOCUMENTS)]
    lines[5] = json.dumps({"id": "doc-5", "text": NEWS.replace("\n", "\u2028", 1)}, ensure_ascii=False)
    lines[10:10] = ["{not json", "", json.dumps({"id": "empty", "text": ""})]
    source = tmp_path / "corpus.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    started = time.monotonic()
    # Two actors of half a CPU each: a pool on a 2-CPU local instance (one CPU left for read and write).
    args = ["--actors", "2", "--actor-cpus", "0.5", "--batch-size", "8"]
    done = _run_job(env, str(source), "-o", str(tmp_path / "out"), *args)
    elapsed = time.monotonic() - started
    assert done.returncode == EXIT_FAILED, done.stderr[-4000:]  # the bad line and the empty text
    assert f"{DOCUMENTS + 2} documents, 2 failed" in done.stderr

    rows = [json.loads(line) for part in sorted((tmp_path / "out").glob("*.jsonl")) for line in part.read_text().splitlines()]
    by_id = {row["id"]: row for row in rows}
    assert len(rows) == len(by_id) == DOCUMENTS + 2  # one row per document, the bad line's id is ""
    for i in range(DOCUMENTS):
        row = by_id[f"doc-{i}"]
        assert row["summary"] and row["engine"] == "extractive" and "error" not in row, row
        assert row["line"] == (i + 1 if i < 10 else i + 4)
    assert by_id["doc-0"]["metadata"] == {"i": 0}
    assert by_id["empty"]["error"]["type"] == "BadInput"
    assert by_id[""]["error"] == {"type": "InvalidLine", "status": 400, "message": by_id[""]["error"]["message"]}
    assert by_id[""]["error"]["message"].startswith("corpus.jsonl line 11: not valid JSON")
    print(f"ray job: {elapsed:.1f} s for {DOCUMENTS} documents")

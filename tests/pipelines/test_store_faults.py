"""Storage faults under the job store and the knowledge index, on real filesystems.

A full disk is a real tmpfs of a few MiB filled to the last byte (ENOSPC); a read-only volume is
a read-only bind mount over the folder (EROFS for every new open, as after a remount). Mounting
needs a mount namespace: such tests run again in a child pytest under `unshare -rm` (a user and
mount namespace of its own, so nothing outside it sees the mounts) and pass when they pass there.
Damaged files need no mount and run directly.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec
from xml.etree import ElementTree

import httpx
import numpy as np
import pytest

from pipelines.batch.core import BatchDocument, BatchResult
from pipelines.errors import StorageError, StorageFull, StorageReadOnly, storage_error
from pipelines.jobs.app import JobsBackend, build_app
from pipelines.jobs.runner import JobRunner, acquire_runner_lock
from pipelines.jobs.store import JobStore, RetryPolicy
from pipelines.rag.index import CHUNKS, MANIFEST, Document, IndexCorrupt, KnowledgeIndex
from pipelines.rag.vectorstore import FAISS_FILE
from pipelines.settings import Settings
from pipelines.styles import StyleRegistry

if TYPE_CHECKING:
    from pipelines.rag.cli import Encoder

REPO = Path(__file__).resolve().parents[2]
IN_NAMESPACE = "SUMMARIZER_TEST_IN_MOUNT_NAMESPACE"
CHILD_TIMEOUT_S = 400  # every namespace test of the session, in one run
TAG, DIM = "fake-encoder:1", 64
NDJSON = {"content-type": "application/x-ndjson"}
Fault = Literal["full", "read-only"]
P = ParamSpec("P")


# -- real filesystems --------------------------------------------------------------------------


@functools.cache
def _unshare_problem() -> str | None:
    """None when `unshare -rm` can mount here, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    try:
        done = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -rm failed: {exc}"
    return None if done.returncode == 0 else f"unshare -rm cannot mount here: {done.stderr.strip()}"


_SELECTED: list[str] = []  # node ids of the namespace tests this session runs
_OUTCOMES: dict[str, str | None] = {}  # node id -> None when it passed in the namespace, else the report


@pytest.fixture(autouse=True)
def _note_namespace_tests(request: pytest.FixtureRequest) -> None:
    if not _SELECTED:
        items = request.session.items
        _SELECTED.extend(i.nodeid for i in items if getattr(getattr(i, "function", None), "in_mount_namespace", False))


def in_mount_namespace(test: Callable[P, None]) -> Callable[P, None]:
    """Run the test in a mount namespace of its own, where it may mount a tmpfs.

    The first such test of a session runs every selected one in one child pytest under
    `unshare -rm` (one start-up instead of one each); each test then reports its own outcome.
    """

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        if os.environ.get(IN_NAMESPACE) == "1":
            test(*args, **kwargs)
            return
        problem = _unshare_problem()
        if problem:
            pytest.skip(f"needs a mount namespace for a real full or read-only filesystem: {problem}")
        node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" (", 1)[0]
        if node not in _OUTCOMES:
            _OUTCOMES.update(_run_in_namespace(_SELECTED if node in _SELECTED else [node]))
        report = _OUTCOMES.get(node, f"{node} did not run in the namespace")
        assert report is None, report

    run.in_mount_namespace = True  # type: ignore[attr-defined]
    return run


def _run_in_namespace(nodes: list[str]) -> dict[str, str | None]:
    """Each node's outcome in one `unshare -rm` pytest run: None if it passed, else why not."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "report.xml"
        done = subprocess.run(
            ["unshare", "-rm", sys.executable, "-m", "pytest", *nodes, "-q", "--no-header", f"--junitxml={xml}"],
            cwd=REPO, env={**os.environ, IN_NAMESPACE: "1"}, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )  # fmt: skip
        output = f"{done.stdout[-8000:]}\n{done.stderr[-2000:]}"
        outcomes: dict[str, str | None] = {node: f"no outcome for {node} (exit {done.returncode}):\n{output}" for node in nodes}
        for case in ElementTree.parse(xml).iter("testcase") if xml.exists() else []:
            node = f"{str(case.get('classname')).replace('.', '/')}.py::{case.get('name')}"
            problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
            outcomes[node] = None if problem is None else f"{problem.tag} in the namespace: {problem.get('message')}\n{problem.text}"
    return outcomes


class Volume:
    """A tmpfs of `size` mounted at `path`, to fill up or turn read-only (inside the namespace only)."""

    def __init__(self, path: Path, size: str = "4m") -> None:
        assert os.environ.get(IN_NAMESPACE) == "1", "mount only inside the test's own namespace"
        path.mkdir(parents=True)
        self.path = path
        self._mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        self._filler = path / ".filler"
        self.read_only_now = False

    @staticmethod
    def _mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)

    def fill(self, leave_bytes: int = 0) -> None:
        """Write until the volume is full (ENOSPC), then give `leave_bytes` back."""
        with self._filler.open("ab", buffering=0) as f:  # unbuffered: nothing left to flush at close
            for size in (1 << 16, 4096, 512, 1):
                try:
                    while f.write(b"\0" * size):
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        if leave_bytes:
            os.truncate(self._filler, self._filler.stat().st_size - leave_bytes)
        probe = self.path / ".probe"
        if not leave_bytes:
            with pytest.raises(OSError) as full:
                probe.write_bytes(b"x" * 8192)
            assert full.value.errno == errno.ENOSPC
        probe.unlink(missing_ok=True)

    def read_only(self) -> None:
        """A read-only bind mount on top: new opens fail with EROFS, as after a remount."""
        self._mount("--bind", "-o", "ro", str(self.path), str(self.path))
        self.read_only_now = True

    def fault(self, kind: Fault) -> None:
        self.fill() if kind == "full" else self.read_only()

    def repair(self) -> None:
        """Space freed, or the volume writable again."""
        if self.read_only_now:
            subprocess.run(["umount", "-l", str(self.path)], check=True, capture_output=True, timeout=30)
            self.read_only_now = False
        self._filler.unlink(missing_ok=True)


def error_of(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["status"], error["type"]) == (status, kind)
    message: str = error["message"]
    return message


def expected(fault: Fault) -> tuple[int, str, str]:
    """(status, error type, words in the message) for a fault."""
    return (507, "StorageFull", "full") if fault == "full" else (507, "StorageReadOnly", "read-only")


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [(errno.ENOSPC, StorageFull, 507), (errno.EDQUOT, StorageFull, 507), (errno.EROFS, StorageReadOnly, 507), (errno.EIO, StorageError, 503)],
)
def test_os_errors_become_storage_errors_that_name_the_store_not_the_path(code: int, kind: type[StorageError], status: int) -> None:
    err = storage_error(OSError(code, os.strerror(code), "/srv/secret/jobs/inputs/job-1.part"), "the job store")
    assert type(err) is kind and err.status_code == status
    payload = err.to_payload()["error"]
    assert isinstance(payload, dict) and payload["status"] == status and payload["type"] == kind.__name__
    assert str(payload["message"]).startswith("the job store ") and "/srv" not in str(payload["message"])


# -- the job store -----------------------------------------------------------------------------


def jsonl(n: int, prefix: str = "d") -> bytes:
    return "".join(json.dumps({"id": f"{prefix}{i}", "text": f"Report {i} opens. It goes on."}) + "\n" for i in range(n)).encode()


def submit(store: JobStore, n: int, prefix: str = "d") -> str:
    job_id, path = store.new_upload_path()
    path.write_bytes(jsonl(n, prefix))
    return store.create(job_id, path, "upload", None).id


def finish(store: JobStore, job_id: str) -> None:
    """Run a job to completion through the store's own calls, as the runner does."""
    store.start(job_id)
    claimed = store.claim(job_id, 1000)
    store.record(job_id, claimed, [BatchResult(id=c.doc_id, summary=f"S{c.doc_id}.") for c in claimed], RetryPolicy())
    store.finish(job_id, "completed")


def uploads(store: JobStore) -> list[str]:
    return sorted(p.name for p in store.inputs.iterdir())


@contextmanager
def jobs_client(store: JobStore) -> Iterator[Callable[[Callable[[httpx.AsyncClient], Awaitable[None]]], None]]:
    """Run async steps against the real /jobs app over ASGI."""
    backend = JobsBackend(store, StyleRegistry.load(), None, max_upload_bytes=1 << 22, wake=lambda: None)

    def run(steps: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
        async def go() -> None:
            transport = httpx.ASGITransport(app=build_app(lambda: backend))
            async with httpx.AsyncClient(transport=transport, base_url="http://jobs.test") as client:
                await steps(client)

        asyncio.run(go())

    yield run
    store.close()


@pytest.mark.timeout(CHILD_TIMEOUT_S + 30)
@pytest.mark.parametrize("fault", ["full", "read-only"])
@in_mount_namespace
def test_a_refused_upload_is_a_clear_507_and_leaves_nothing_behind(fault: Fault, tmp_path: Path) -> None:
    volume = Volume(tmp_path / "vol")
    store = JobStore(volume.path / "jobs")
    done_id = submit(store, 5)
    finish(store, done_id)
    before = uploads(store)
    status, kind, words = expected(fault)
    volume.fault(fault)

    async def refused(client: httpx.AsyncClient) -> None:
        message = error_of(await client.post("/jobs", content=jsonl(2000), headers=NDJSON), status, kind)
        assert "job store" in message and words in message and str(volume.path) not in message
        listed = (await client.get("/jobs")).json()["jobs"]
        assert [j["id"] for j in listed] == [done_id]  # no half-registered job
        results = await client.get(f"/jobs/{done_id}/results")  # what was recorded stays readable
        assert results.status_code == 200 and len(results.text.splitlines()) == 5

    async def accepted(client: httpx.AsyncClient) -> None:
        response = await client.post("/jobs", content=jsonl(2000), headers=NDJSON)
        assert response.status_code == 201, response.text
        assert response.json()["total"] == 2000

    with jobs_client(store) as run:
        run(refused)
        assert uploads(store) == before  # the partial upload is gone
        volume.repair()
        run(accepted)


@pytest.mark.timeout(CHILD_TIMEOUT_S + 30)
@in_mount_namespace
def test_an_upload_that_fits_but_cannot_be_registered_is_removed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The file is written, then the job's rows do not fit: 507, and neither the job nor its file stays."""
    volume = Volume(tmp_path / "vol")
    store = JobStore(volume.path / "jobs")
    body = jsonl(3000)
    volume.fill(leave_bytes=len(body) + 64 * 1024)  # room for the file, not for 3000 rows and their indexes

    async def steps(client: httpx.AsyncClient) -> None:
        message = error_of(await client.post("/jobs", content=body, headers=NDJSON), 507, "StorageFull")
        assert "job store" in message
        assert (await client.get("/jobs")).json() == {"jobs": []}

    with caplog.at_level(logging.ERROR, logger="summarizer.jobs"), jobs_client(store) as run:
        run(steps)
        assert uploads(store) == []
    # The upload itself went through; SQLite ran out of room registering it.
    assert not [r for r in caplog.records if "upload to" in r.getMessage()]
    assert [r for r in caplog.records if str(store.path) in r.getMessage() and "full" in r.getMessage()]


class BigSummaries:
    """The runner's summarize: long summaries (so a batch's results need real space). With a
    volume given, the first call breaks it, as a disk filling up during a nightly job would."""

    def __init__(self, volume: Volume | None, fault: Fault) -> None:
        self.volume, self.fault, self.calls = volume, fault, 0

    async def __call__(self, docs: list[BatchDocument], default_style: str | None, urgent: bool) -> list[BatchResult]:
        self.calls += 1
        if self.calls == 1 and self.volume is not None:
            self.volume.fault(self.fault)
        return [BatchResult(id=d.id, summary=f"{d.id}: " + "word " * 4000) for d in docs]


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(CHILD_TIMEOUT_S + 30)
@pytest.mark.parametrize(("fault", "when"), [("full", "mid-batch"), ("read-only", "mid-batch"), ("full", "before")])
@in_mount_namespace
def test_the_runner_waits_out_a_broken_volume_and_loses_nothing(
    fault: Fault, when: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """mid-batch: the volume breaks between claiming a batch and recording its results; before:
    the job cannot even be started."""
    volume = Volume(tmp_path / "vol", size="8m")
    store = JobStore(volume.path / "jobs")
    job_id = submit(store, 40)
    summarize = BigSummaries(volume if when == "mid-batch" else None, fault)
    poll_s = 0.2
    # Two attempts only: if a store fault counted as one, documents would end failed at once.
    runner = JobRunner(store, summarize, batch_documents=8, concurrency=2, poll_s=poll_s,
                       policy=RetryPolicy(max_attempts=2, backoff_s=0.01, backoff_max_s=0.01))  # fmt: skip

    def faults() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "job store unavailable" in r.getMessage()]

    async def scenario() -> None:
        if when == "before":
            volume.fault(fault)
        task = asyncio.create_task(runner.run_forever())
        await wait_until(lambda: len(faults()) >= 4, 30)
        assert not task.done()  # waiting, not crashed
        status = await asyncio.to_thread(store.status, job_id)  # reads go on meanwhile
        assert (status["done"], status["failed"]) == (0, 0) and status["status"] in ("queued", "running")
        volume.repair()
        await wait_until(lambda: store.job_status(job_id) == "completed", 30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="summarizer.jobs"):
        asyncio.run(scenario())
    lines = [json.loads(line) for line in "".join(store.results(job_id)).splitlines()]
    assert sorted(r["id"] for r in lines) == sorted(f"d{i}" for i in range(40))
    assert all("error" not in r and r["summary"].startswith(r["id"]) for r in lines)
    with closing(sqlite3.connect(store.path)) as db:
        assert db.execute("SELECT MAX(attempts) FROM documents").fetchone()[0] == 1  # no attempt spent on the fault
    tries = faults()
    assert all(r.exc_info is None and expected(fault)[2] in r.getMessage() for r in tries)  # one clear line each
    # Backing off, not retrying every poll: the wait before the 4th try is at least twice the poll.
    assert tries[3].created - tries[2].created >= 2 * poll_s
    store.close()


@pytest.mark.timeout(CHILD_TIMEOUT_S + 30)
@pytest.mark.parametrize("fault", ["full", "read-only"])
@in_mount_namespace
def test_a_store_opened_on_a_broken_volume_still_serves_what_it_recorded(
    fault: Fault, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart while the volume is full or read-only: the service starts, reads work, writes
    get 507, and once the volume is repaired the same store works without a restart."""
    volume = Volume(tmp_path / "vol")
    first = JobStore(volume.path / "jobs")
    job_id = submit(first, 5)
    finish(first, job_id)
    earlier = acquire_runner_lock(first.root)  # the lock file exists, as after any earlier run
    assert earlier is not None
    earlier.close()
    first.close()
    status, kind, _ = expected(fault)
    volume.fault(fault)
    with caplog.at_level(logging.ERROR, logger="summarizer.jobs"):
        store = JobStore(volume.path / "jobs")  # no exception: the server comes up
    assert any(str(store.path) in r.getMessage() for r in caplog.records)
    lock = acquire_runner_lock(store.root)
    assert lock is not None
    lock.close()

    async def broken(client: httpx.AsyncClient) -> None:
        job = await client.get(f"/jobs/{job_id}")
        assert job.status_code == 200 and job.json()["status"] == "completed", job.text
        results = await client.get(f"/jobs/{job_id}/results")
        assert [json.loads(line)["summary"] for line in results.text.splitlines()] == [f"Sd{i}." for i in range(5)]
        error_of(await client.post("/jobs", content=jsonl(3), headers=NDJSON), status, kind)
        error_of(await client.post(f"/jobs/{job_id}/cancel"), status, kind)

    async def repaired(client: httpx.AsyncClient) -> None:
        response = await client.post("/jobs", content=jsonl(3), headers=NDJSON)
        assert response.status_code == 201, response.text

    with jobs_client(store) as run:
        run(broken)
        volume.repair()
        run(repaired)


async def never_called(docs: list[BatchDocument], default_style: str | None, urgent: bool) -> list[BatchResult]:
    raise AssertionError("a damaged store has no document to run")


def damage(path: Path, where: Literal["header", "middle"]) -> None:
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(0 if where == "header" else size // 2)
        f.write(hashlib.sha256(b"garbage").digest() * 64)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["header", "middle"])
def test_a_damaged_job_store_is_a_503_not_a_crash(where: Literal["header", "middle"], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = JobStore(tmp_path / "jobs")
    for k in range(3):
        finish(first, submit(first, 300, prefix=f"j{k}-"))
    first.close()
    damage(first.path, where)
    with caplog.at_level(logging.ERROR, logger="summarizer.jobs"):
        store = JobStore(tmp_path / "jobs")  # the service starts
    assert any(str(store.path) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    runner = JobRunner(store, never_called, poll_s=0.05)

    async def steps(client: httpx.AsyncClient) -> None:
        for response in (await client.get("/jobs"), await client.post("/jobs", content=jsonl(3), headers=NDJSON)):
            message = error_of(response, 503, "JobStoreCorrupt")
            assert "damaged" in message and "jobs.sqlite3" in message and str(tmp_path) not in message
        task = asyncio.create_task(runner.run_forever())
        await wait_until(lambda: sum("job store unavailable" in r.getMessage() for r in caplog.records) >= 2, 10)
        assert not task.done()  # the runner waits for a repaired store, it does not die
        # The operator moves the damaged file aside: the same process gets an empty store.
        for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"):
            if (tmp_path / "jobs" / name).exists():
                (tmp_path / "jobs" / name).rename(tmp_path / f"{name}.damaged")
        assert (await client.get("/jobs")).json() == {"jobs": []}
        assert (await client.post("/jobs", content=jsonl(3), headers=NDJSON)).status_code == 201
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.ERROR, logger="summarizer.jobs"), jobs_client(store) as run:
        run(steps)
    assert all(r.exc_info is None for r in caplog.records if "job store unavailable" in r.getMessage())


# -- the knowledge index -----------------------------------------------------------------------


def embed(texts: list[str]) -> np.ndarray:
    """Deterministic unit vectors from word hashes: similar texts, similar vectors."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, int(hashlib.md5(word.strip(".,").encode()).hexdigest(), 16) % DIM] += 1.0
    unit: np.ndarray = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return unit


class FakeEncoder:
    dim = DIM

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return embed(list(texts))


def fake_encoder(settings: Settings) -> tuple[str, Encoder]:
    return TAG, FakeEncoder()


def rag_cli(argv: list[str]) -> int:
    # Imported here: the CLI's input pipeline costs seconds of imports that the other tests skip.
    from pipelines.rag.cli import main

    return main(argv, encoder_factory=fake_encoder, settings=Settings())


def docs(prefix: str, n: int, sentences: int = 3) -> list[Document]:
    return [
        Document(f"{prefix}/{i}.md", " ".join(f"Topic {prefix} {i} sentence {s} about {prefix}wares." for s in range(sentences)))
        for i in range(n)
    ]


def snapshot_state(directory: Path) -> tuple[bytes, list[str]]:
    return (directory / MANIFEST).read_bytes(), sorted(p.name for p in directory.iterdir() if p.name != ".filler")


def searchable(directory: Path, prefix: str) -> None:
    """A fresh reader (another worker, a restart) loads the live version and finds `prefix` documents."""
    reader = KnowledgeIndex(directory, TAG, DIM)
    hits = reader.search(embed([f"Topic {prefix} 0 sentence 0 about {prefix}wares."])[0], 1)
    assert hits and hits[0].document_id.startswith(prefix), hits
    reader.close()


@pytest.mark.timeout(CHILD_TIMEOUT_S + 30)
@pytest.mark.parametrize("leave_kib", [0, 24])
@in_mount_namespace
def test_indexing_on_a_full_volume_changes_nothing_and_works_after_space_is_freed(
    leave_kib: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """leave_kib=0: the chunk file cannot be written; 24: it can, the vectors file cannot."""
    volume = Volume(tmp_path / "vol")
    index = KnowledgeIndex(volume.path / "rag", TAG, DIM)
    index.add(docs("old", 3), embed)
    before = snapshot_state(index.directory)
    volume.fill(leave_bytes=leave_kib * 1024)
    with caplog.at_level(logging.ERROR, logger="summarizer.rag"), pytest.raises(StorageFull) as raised:
        index.add(docs("new", 40, sentences=12), embed)
    assert raised.value.status_code == 507 and "knowledge index" in raised.value.message
    assert any(str(index.directory) in r.getMessage() for r in caplog.records)  # the log names the folder
    assert snapshot_state(index.directory) == before  # no partial snapshot, no temporary manifest
    searchable(index.directory, "old")
    assert len(index.documents()) == 3
    volume.repair()
    index.add(docs("new", 40, sentences=12), embed)
    searchable(index.directory, "new")
    assert len(KnowledgeIndex(index.directory, TAG, DIM).documents()) == 43


@pytest.mark.timeout(CHILD_TIMEOUT_S + 30)
@in_mount_namespace
def test_a_read_only_index_refuses_writes_and_keeps_answering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    volume = Volume(tmp_path / "vol")
    index = KnowledgeIndex(volume.path / "rag", TAG, DIM)
    index.add(docs("old", 3), embed)
    before = snapshot_state(index.directory)
    volume.read_only()
    for write in (lambda: index.add(docs("new", 2), embed), lambda: index.delete(["old/0.md"]), index.clear):
        with pytest.raises(StorageReadOnly, match="knowledge index cannot store anything: its volume is read-only"):
            write()
    searchable(index.directory, "old")  # a reader needs no write access
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Read-only volumes refuse new snapshots.\n")
    code = rag_cli(["index", str(folder), "--dir", str(index.directory)])
    assert code == 2 and "read-only" in capsys.readouterr().err  # one line, no traceback
    assert snapshot_state(index.directory) == before
    volume.repair()
    index.add(docs("new", 2), embed)
    searchable(index.directory, "new")


Damage = Callable[[Path], None]


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _drop_last_line(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # still valid JSONL: only a checksum can tell


def _reword_chunk(path: Path) -> None:
    path.write_text(path.read_text().replace("sentence 1", "sentence 9", 1))  # valid JSON, wrong text


def _edit_manifest_hash(path: Path) -> None:
    raw = json.loads(path.read_text())
    first = sorted(raw["documents"])[0]
    raw["documents"][first]["hash"] = "0" * 64  # valid JSON and a valid manifest, but not what was written
    path.write_text(json.dumps(raw, indent=1))


DAMAGES: dict[str, tuple[str, Damage]] = {
    "vectors-bit-flip": (FAISS_FILE, _flip_middle),
    "vectors-truncated": (FAISS_FILE, _truncate),
    "chunks-line-lost": (CHUNKS, _drop_last_line),
    "chunks-reworded": (CHUNKS, _reword_chunk),
    "chunks-truncated": (CHUNKS, _truncate),
    "manifest-edited": (MANIFEST, _edit_manifest_hash),
    "manifest-truncated": (MANIFEST, _truncate),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_a_damaged_index_file_is_detected_at_load_and_named(case: str, tmp_path: Path) -> None:
    index = KnowledgeIndex(tmp_path / "rag", TAG, DIM)
    index.add(docs("old", 4), embed)
    name, hurt = DAMAGES[case]
    manifest = json.loads((index.directory / MANIFEST).read_text())
    path = index.directory / name if name == MANIFEST else index.directory / manifest["snapshot"] / name
    hurt(path)
    fresh = KnowledgeIndex(index.directory, TAG, DIM)
    with pytest.raises(IndexCorrupt) as raised:
        fresh.check()
    assert str(path) in raised.value.message and "pipelines.rag index DOCS --rebuild" in raised.value.message
    assert raised.value.to_payload()["error"] == {
        "type": "IndexCorrupt", "message": "the knowledge index is unavailable; the server log says why", "status": 503,
    }  # fmt: skip


@pytest.mark.timeout(60)
def test_rag_cli_rebuild_repairs_a_damaged_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for doc in docs("kb", 3):
        (folder / doc.id.replace("/", "-")).write_text(doc.text + "\n")
    directory = tmp_path / "rag"
    assert rag_cli(["index", str(folder), "--dir", str(directory)]) == 0
    snapshot = json.loads((directory / MANIFEST).read_text())["snapshot"]
    _flip_middle(directory / snapshot / FAISS_FILE)
    capsys.readouterr()
    assert rag_cli(["index", str(folder), "--dir", str(directory)]) == 2
    assert FAISS_FILE in capsys.readouterr().err  # without --rebuild: refused, naming the file
    assert rag_cli(["index", str(folder), "--rebuild", "--dir", str(directory)]) == 0
    assert "indexed 3 documents" in capsys.readouterr().out
    searchable(directory, "kb")


def test_an_index_written_before_checksums_still_loads(tmp_path: Path) -> None:
    index = KnowledgeIndex(tmp_path / "rag", TAG, DIM)
    index.add(docs("old", 2), embed)
    path = index.directory / MANIFEST
    raw: dict[str, Any] = json.loads(path.read_text())
    for key in ("sha256", "files"):
        assert key in raw
        del raw[key]
    path.write_text(json.dumps(raw, indent=1))
    searchable(index.directory, "old")

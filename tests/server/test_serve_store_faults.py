"""Storage faults through a real `bentoml serve`: a damaged index and a damaged job store at start-up
(clear 503s, /summarize unaffected, the log names the file, the documented repair works without a
restart), and a job store whose volume fills up, then turns read-only, while the server runs (507s,
recorded results stay readable, work resumes once the volume is repaired).

The last test runs the server in a mount namespace of its own (`unshare -rm`) on a small tmpfs: a
real full disk and a real read-only mount, without touching the machine's filesystems.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import BIN, READY_TIMEOUT_S, REPO, Server, StartServer, base_env, free_port, wait_for

pytestmark = pytest.mark.server

DOCS = {
    "billing/refunds.md": "# Refunds\n\nCustomers can ask for a refund within 30 days of purchase. "
    "Refunds go back to the original payment card and take five to seven business days.\n",
    "account/security.md": "# Account security\n\nIf you cannot log in, reset your password from the sign-in page. "
    "The reset link expires after one hour.\n",
}
QUERY = "I was charged twice on my card and would like my money back. How long does a refund take?"
ARTICLE = "The council approved the new budget on Tuesday. The vote was close. Work on the bridge starts in May."
NDJSON = {"content-type": "application/x-ndjson"}


def rag_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, in its own process, with the test's model store."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.rag", *args], cwd=REPO, env=base_env(home), capture_output=True, text=True, timeout=300
    )


def error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()["error"]
    assert (body["status"], body["type"]) == (status, kind), body
    message: str = body["message"]
    return message


def jsonl(n: int, prefix: str) -> bytes:
    return "".join(json.dumps({"id": f"{prefix}{i}", "text": ARTICLE}) + "\n" for i in range(n)).encode()


def submit(server: Server, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/jobs", content=body, headers=NDJSON, timeout=60)


def completed(server: Server, job_id: str, total: int) -> None:
    def done() -> bool:
        s: dict[str, Any] = httpx.get(f"{server.url}/jobs/{job_id}", timeout=30).json()
        assert s["status"] in ("queued", "running", "completed"), s
        return bool(s["status"] == "completed" and s["done"] == total)

    wait_for(done, timeout_s=120)


def result_ids(server: Server, job_id: str) -> list[str]:
    response = httpx.get(f"{server.url}/jobs/{job_id}/results", timeout=60)
    assert response.status_code == 200, response.text
    return [json.loads(line)["id"] for line in response.text.splitlines()]


def summarize_works(server: Server) -> None:
    response = httpx.post(f"{server.url}/summarize", json={"text": ARTICLE}, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["summary"]


# -- damaged files at start-up -----------------------------------------------------------------


class Damaged:
    def __init__(self, root: Path) -> None:
        self.docs, self.rag, self.jobs = root / "docs", root / "rag", root / "jobs"

    def vectors(self) -> Path:
        snapshot: str = json.loads((self.rag / "manifest.json").read_text())["snapshot"]
        return self.rag / snapshot / "vectors.faiss"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory, bentoml_home: Path) -> Damaged:
    paths = Damaged(tmp_path_factory.mktemp("damaged"))
    for doc_id, text in DOCS.items():
        (paths.docs / doc_id).parent.mkdir(parents=True, exist_ok=True)
        (paths.docs / doc_id).write_text(text)
    built = rag_cli(bentoml_home, "index", str(paths.docs), "--dir", str(paths.rag))
    assert built.returncode == 0, built.stderr
    # One flipped bit in the vectors: faiss still loads the file; only the manifest's sha256 tells.
    data = bytearray(paths.vectors().read_bytes())
    data[len(data) // 2] ^= 0x01
    paths.vectors().write_bytes(bytes(data))
    paths.jobs.mkdir()
    (paths.jobs / "jobs.sqlite3").write_bytes(b"this is not a database, it was overwritten " * 200)
    return paths


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path, damaged: Damaged) -> Server:
    return start_server(bentoml_home, rag_dir=str(damaged.rag), jobs_dir=str(damaged.jobs))


@pytest.mark.timeout(600)
def test_a_damaged_index_is_a_503_naming_the_file_and_a_rebuild_repairs_it(
    server: Server, damaged: Damaged, bentoml_home: Path
) -> None:
    for route, body in (("/rag", {"text": QUERY}), ("/rag/documents", {}), ("/rag/index", {"documents": [{"id": "x", "text": ARTICLE}]})):
        message = error(httpx.post(f"{server.url}{route}", json=body, timeout=120), 503, "IndexCorrupt")
        assert message == "the knowledge index is unavailable; the server log says why"
    log = server.log.read_text()
    assert f"knowledge index unavailable: {damaged.vectors()} does not match the sha256" in log
    summarize_works(server)  # only RAG is down

    rebuilt = rag_cli(bentoml_home, "index", str(damaged.docs), "--rebuild", "--dir", str(damaged.rag))
    assert rebuilt.returncode == 0, rebuilt.stderr
    response = httpx.post(f"{server.url}/rag", json={"text": QUERY}, timeout=120)  # no restart
    assert response.status_code == 200, response.text
    assert response.json()["citations"][0]["document_id"] == "billing/refunds.md"


@pytest.mark.timeout(600)
def test_a_damaged_job_store_is_a_503_and_moving_it_aside_repairs_it(server: Server, damaged: Damaged) -> None:
    for response in (httpx.get(f"{server.url}/jobs", timeout=30), submit(server, jsonl(3, "a"))):
        message = error(response, 503, "JobStoreCorrupt")
        assert "damaged" in message and str(damaged.jobs) not in message
    assert f"job store {damaged.jobs / 'jobs.sqlite3'}: the job store's database file is damaged" in server.log.read_text()
    assert server.proc.poll() is None
    summarize_works(server)

    for path in damaged.jobs.glob("jobs.sqlite3*"):  # what the error message tells the operator to do
        path.rename(path.with_name(path.name + ".damaged"))
    assert httpx.get(f"{server.url}/jobs", timeout=30).json() == {"jobs": []}
    response = submit(server, jsonl(5, "b"))
    assert response.status_code == 201, response.text
    completed(server, response.json()["id"], 5)  # the runner, backing off meanwhile, picks it up


# -- a volume that fills up, then turns read-only ------------------------------------------------


def unshare_problem() -> str | None:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "no unshare or nsenter command"
    done = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "tmpfs", "/mnt"], capture_output=True, text=True, timeout=30)
    return None if done.returncode == 0 else f"unshare -rm cannot mount here: {done.stderr.strip()}"


@pytest.fixture
def namespaced(bentoml_home: Path, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server whose job store is a 16 MiB tmpfs mounted in the server's own mount namespace."""
    problem = unshare_problem()
    if problem:
        pytest.skip(f"needs a mount namespace for a real full or read-only volume: {problem}")
    volume = tmp_path / "volume"
    volume.mkdir()
    port = free_port()
    env = base_env(bentoml_home)
    env.update(SUMMARIZER_JOBS_DIR=str(volume / "jobs"), SUMMARIZER_RAG_DIR=str(tmp_path / "rag"))
    mount_then_serve = 'mount -t tmpfs -o size=16m tmpfs "$1" && shift && exec "$@"'
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c", mount_then_serve, "sh", str(volume),
             str(BIN / "bentoml"), "serve", "service:Summarizer", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(url=f"http://127.0.0.1:{port}", log=log, proc=proc)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready(server):
            assert proc.poll() is None, f"bentoml serve exited with {proc.returncode}:\n{server.log_tail()}"
            assert time.monotonic() < deadline, f"not ready after {READY_TIMEOUT_S} s:\n{server.log_tail()}"
            time.sleep(0.5)
        yield server, volume
    finally:
        if proc.poll() is None:
            server.kill()


def ready(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def in_server_namespace(server: Server, *command: str) -> None:
    subprocess.run(["nsenter", "-t", str(server.proc.pid), "-m", *command], check=True, capture_output=True, timeout=30)


def fill(path: Path) -> None:
    with path.open("ab", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC


@pytest.mark.timeout(600)
def test_a_full_then_read_only_job_store_gives_507_and_work_resumes(namespaced: tuple[Server, Path]) -> None:
    server, volume = namespaced
    first = submit(server, jsonl(20, "first-"))
    assert first.status_code == 201, first.text
    first_id = first.json()["id"]
    completed(server, first_id, 20)
    # The volume as the server sees it: through its mount namespace.
    inside = Path(f"/proc/{server.proc.pid}/root") / volume.relative_to("/")
    filler = inside / ".filler"

    fill(filler)
    message = error(submit(server, jsonl(2000, "full-")), 507, "StorageFull")
    assert message == "the job store cannot store anything: its volume is full; free space, then retry"
    assert len(result_ids(server, first_id)) == 20  # what was recorded stays readable
    assert [p.name for p in (inside / "jobs" / "inputs").iterdir()] == [f"{first_id}.jsonl"]  # no partial upload
    summarize_works(server)
    filler.unlink()
    second = submit(server, jsonl(30, "second-"))
    assert second.status_code == 201, second.text
    completed(server, second.json()["id"], 30)

    in_server_namespace(server, "mount", "--bind", "-o", "ro", str(volume), str(volume))
    message = error(submit(server, jsonl(5, "ro-")), 507, "StorageReadOnly")
    assert message == "the job store cannot store anything: its volume is read-only"
    assert sorted(result_ids(server, second.json()["id"])) == sorted(f"second-{i}" for i in range(30))
    assert [j["id"] for j in httpx.get(f"{server.url}/jobs", timeout=30).json()["jobs"]] == [second.json()["id"], first_id]
    in_server_namespace(server, "umount", "-l", str(volume))
    third = submit(server, jsonl(5, "third-"))
    assert third.status_code == 201, third.text
    completed(server, third.json()["id"], 5)
    assert "Traceback" not in server.log.read_text()

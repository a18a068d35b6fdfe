"""Real `bentoml serve` processes (both services, production mode) on 127.0.0.1 for server tests."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from pipelines.auth.store import SCOPES, TokenFile
from tests.server.otlp import Receiver

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 180.0


@dataclass
class Server:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def request_logs(self) -> dict[str, dict[str, Any]]:
        """The JSON request records (pipelines/observe/request_log.py) written so far, by request id."""
        records = {}
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"summarizer.request"' in line:
                record = json.loads(line)
                records[record["request_id"]] = record
        return records

    def kill(self) -> None:
        """SIGKILL the whole process tree (entry and model workers): a crash, not a shutdown.

        BentoML starts some workers in process groups of their own, so the group alone is not
        enough: every descendant is killed, or an orphaned model worker lives on.
        """
        tree = psutil.Process(self.proc.pid).children(recursive=True)
        os.killpg(self.proc.pid, signal.SIGKILL)
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)

    def workers(self, service: str) -> list[psutil.Process]:
        """The live worker processes of one service ("summarizer" or "summarizer-model").

        BentoML starts each as `python -m _bentoml_impl.worker.service ... --service-name NAME`.
        """
        found = []
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            named = cmd[cmd.index("--service-name") + 1 :][:1] if "--service-name" in cmd else []
            if "_bentoml_impl.worker.service" in cmd and named == [service]:
                found.append(child)
        return found

    def in_progress(self, service: str) -> float:
        """Requests `service` is handling now (BentoML's gauge on /metrics, summed over workers)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("bentoml_service_request_in_progress{") and f'service_name="{service}"' in line
        )


StartServer = Callable[..., Server]


@functools.cache
def redacted(text: str) -> str:
    """`text` as the default deployment prepares it (normalized and redacted, names included):
    what an extractive summary's sentences are cut from."""
    from models.store import default_ner_folder
    from pipelines.settings import Settings
    from pipelines.text.prepare import InputPipeline

    return InputPipeline.from_settings(Settings(), default_ner_folder()).prepare(text).text


def wait_for(condition: Callable[[], bool], timeout_s: float = 45.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(bentoml_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUMMARIZER_")}
    env.update(BENTOML_HOME=str(bentoml_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", BENTOML_DO_NOT_TRACK="True")
    return env


def run_models_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "models", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh model store holding the default encoder, imported the way `make serve` does it."""
    home = tmp_path_factory.mktemp("bentoml-home")
    run_models_cli(base_env(home), "import-default")
    return home


def replica_home(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    """Another BentoML home over the same model store (same model tags), as in a second container
    of one Bento: a server clears the metrics folder under its home, so servers never share one."""
    home = tmp_path_factory.mktemp("bentoml-replica-home")
    (home / "models").symlink_to(source / "models", target_is_directory=True)
    return home


class PortTaken(Exception):
    """`bentoml serve` could not bind the port it was given."""


@pytest.fixture(scope="session")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_bentoml_home(tmp_path_factory)


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartServer]:
    """Factory: start a server with extra SUMMARIZER_* settings; all are stopped when the test
    module ends (a server holds ~1.5 GB: two dozen at once would not fit the machine)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(bentoml_home: Path, **settings: str) -> Server:
        # free_port() frees its port before serve binds it; another server's internal port can take it
        # in between (seen once in CI: "Address already in use"). Then a new port, at most twice more.
        for _ in range(2):
            try:
                return start_once(bentoml_home, dict(settings))
            except PortTaken:
                continue
        return start_once(bentoml_home, dict(settings))

    def start_once(bentoml_home: Path, settings: dict[str, str]) -> Server:
        port = free_port()
        env = base_env(bentoml_home)
        # Each server gets its own job store unless a test shares one (a restart).
        settings.setdefault("jobs_dir", str(tmp_path_factory.mktemp("jobs")))
        env.update({f"SUMMARIZER_{k.upper()}": v for k, v in settings.items()})
        log = tmp_path_factory.mktemp("serve") / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "bentoml"), "serve", "service:Summarizer", "--host", "127.0.0.1", "--port", str(port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        procs.append(proc)
        server = Server(url=f"http://127.0.0.1:{port}", log=log, proc=proc)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                if "Address already in use" in server.log_tail():
                    raise PortTaken(port)
                pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        pytest.fail(f"bentoml serve not ready after {READY_TIMEOUT_S} s:\n{server.log_tail()}")

    yield start
    # Workers run in process groups of their own: note them before the arbiter goes.
    leftovers = [child for proc in procs if proc.poll() is None for child in psutil.Process(proc.pid).children(recursive=True)]
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(leftovers, timeout=30)
    for child in alive:
        child.kill()


@pytest.fixture(scope="module")
def auth_token_file(tmp_path_factory: pytest.TempPathFactory) -> TokenFile:
    return TokenFile(tmp_path_factory.mktemp("auth") / "tokens.json")


@pytest.fixture(scope="module")
def auth_token(auth_token_file: TokenFile) -> str:
    """A token named "everything" with every scope."""
    return auth_token_file.create("everything", list(SCOPES))[1]


@pytest.fixture(scope="module")
def auth_server(start_server: StartServer, bentoml_home: Path, auth_token_file: TokenFile, auth_token: str,
                tmp_path_factory: pytest.TempPathFactory) -> Server:  # fmt: skip
    """A server with auth on (the token file above) and a RAG index of its own."""
    return start_server(bentoml_home, auth_tokens_file=str(auth_token_file.path), rag_dir=str(tmp_path_factory.mktemp("rag")))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """An OTLP/HTTP collector for one test module's servers (`trace_otlp_endpoint=receiver.endpoint`)."""
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()

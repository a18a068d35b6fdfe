"""Start, measure and stop the servers a benchmark compares: ours (`bentoml serve`) and the naive
FastAPI peer (`uvicorn bench.naive:app`), on 127.0.0.1, with the same model store and settings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tests.server.conftest import base_env, free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Running:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    cold_start_s: float

    def processes(self) -> dict[str, psutil.Process]:
        """The tree's processes by role: arbiter, entry worker, model worker (ours); naive server."""
        tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        return {_label(p.cmdline()): p for p in tree}

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each process of the tree, MiB."""
        return {label: round(p.memory_info().rss / 2**20, 1) for label, p in self.processes().items()}

    def peak_mib(self) -> dict[str, float]:
        """Peak resident memory (VmHWM) of each process of the tree since it started, MiB."""
        peaks = {}
        for label, proc in self.processes().items():
            status = Path(f"/proc/{proc.pid}/status").read_text()
            (line,) = [row for row in status.splitlines() if row.startswith("VmHWM:")]
            peaks[label] = round(int(line.split()[1]) / 1024, 1)
        return peaks

    def stop(self) -> None:
        """SIGTERM the tree, then SIGKILL what is left (BentoML workers have process groups of their own)."""
        tree = psutil.Process(self.proc.pid).children(recursive=True)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        _, alive = psutil.wait_procs(tree, timeout=15)
        for p in alive:
            p.kill()


def _label(cmdline: list[str]) -> str:
    joined = " ".join(cmdline)
    if "_bentoml_impl.worker.service" in joined:
        return "model worker" if "--service-name summarizer-model" in joined else "entry worker"
    if "uvicorn" in joined:
        return "naive server"
    if "bentoml" in joined:
        return "arbiter"
    return cmdline[0] if cmdline else "?"


def start(name: str, command: list[str], env: dict[str, str], url: str, timeout_s: float = 600, cwd: Path = REPO) -> Running:
    """Start `command` (in `cwd`, a checkout) and time it from process start to `/readyz` answering 200."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while time.perf_counter() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: run `{' '.join(command)}` to see why")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Running(name, url, proc, time.perf_counter() - started)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"{name} not ready after {timeout_s} s")


def server_env(home: Path, settings: dict[str, str]) -> dict[str, str]:
    env = base_env(home)
    env.update({f"SUMMARIZER_{k.upper()}": v for k, v in settings.items()})
    return env


def start_ours(home: Path, settings: dict[str, str], checkout: Path = REPO) -> Running:
    """`bentoml serve` of the service in `checkout` (this one, or a worktree of another revision)."""
    port = free_port()
    command = [str(BIN / "bentoml"), "serve", "service:Summarizer", "--host", "127.0.0.1", "--port", str(port)]
    return start("ours", command, server_env(home, settings), f"http://127.0.0.1:{port}", cwd=checkout)


def start_naive(home: Path, settings: dict[str, str]) -> Running:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.naive:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return start("naive", command, server_env(home, settings), f"http://127.0.0.1:{port}")


def adaptive_batch(url: str) -> tuple[float, float]:
    """(sum, count) of the model service's adaptive batch sizes for `summarize`, from /metrics."""
    total = count = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if 'method_name="summarize"' in line and line.startswith("bentoml_service_adaptive_batch_size_"):
            value = float(line.rsplit(" ", 1)[1])
            if line.startswith("bentoml_service_adaptive_batch_size_sum"):
                total += value
            elif line.startswith("bentoml_service_adaptive_batch_size_count"):
                count += value
    return total, count

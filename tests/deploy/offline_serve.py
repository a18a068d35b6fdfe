"""Serve a Bento by its tag and summarize once: meant to run inside a network namespace of its own.

    unshare -rn python -m tests.deploy.offline_serve TAG WORKDIR LOG --loopback

With `--loopback` it first brings up the namespace's loopback (down in a new namespace). Then it
starts `bentoml serve TAG` on 127.0.0.1 in WORKDIR (the environment is the caller's, so
BENTOML_HOME names the store), waits for /readyz, calls /summarize and /styles, fetches the /ui
page's files, and prints one JSON object: the network interfaces it could see, and the answers.
The server's whole process tree is killed before it returns. The test that runs it reads the JSON.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import socket
import struct
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.server.conftest import BIN, READY_TIMEOUT_S, Server, free_port, wait_for
from tests.texts import NEWS

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2: one ioctl on the interface flags."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def _wait_ready(server: Server) -> None:
    def ready() -> bool:
        if server.proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            return httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, READY_TIMEOUT_S)


def serve_and_summarize(tag: str, workdir: Path, log: Path) -> dict[str, Any]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "bentoml"), "serve", tag, "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(url=f"http://127.0.0.1:{port}", log=log, proc=proc)
    try:
        _wait_ready(server)
        summary = httpx.post(f"{server.url}/summarize", json={"text": NEWS}, timeout=60)
        styles = httpx.post(f"{server.url}/styles", json={}, timeout=30)
        page = [httpx.get(f"{server.url}/ui{name}", timeout=30) for name in ("", "/app.js", "/style.css")]
        return {
            "ui": [(r.status_code, len(r.content)) for r in page],
            "interfaces": sorted(name for _, name in socket.if_nameindex()),
            "summary": {"status": summary.status_code, "body": summary.json()},
            "styles": {"status": styles.status_code, "body": styles.json()},
        }
    finally:
        server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.offline_serve")
    parser.add_argument("tag")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--loopback", action="store_true", help="bring up `lo` first (a new network namespace)")
    args = parser.parse_args(argv)
    if args.loopback:
        loopback_up()
    print(json.dumps(serve_and_summarize(args.tag, args.workdir, args.log)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

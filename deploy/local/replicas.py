"""N replicas of the service on this machine, sharing one PostgreSQL database: `make replicas`.

    make replicas                       # 2 replicas on :3000 and :3001, database `summarizer`
    make replicas N=3 PORT=4000 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/mine

Each replica is a `bentoml serve` of its own, as in two containers: its own BentoML home (the
model store is linked in, not copied: a server clears the metrics folder under its home when it
starts, so two servers must never share one) and its own spool folder for uploads. The database
is created when it does not exist. Logs: .replicas/replica-K.log. Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = REPO / ".replicas"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/summarizer"


def ensure_database(url: str) -> None:
    """Create the database named in `url` if it is missing (through the server's `postgres` database)."""
    name = urlsplit(url).path.lstrip("/")
    admin = urlsplit(url)._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"created database {name}")
    except psycopg.OperationalError as exc:
        sys.exit(f"PostgreSQL did not answer ({str(exc).strip().splitlines()[0]}); start it, or pass DATABASE_URL")


def replica_home(k: int) -> Path:
    """A BentoML home whose model store is the default one's."""
    source = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml")) / "models"
    home = RUN_DIR / f"home-{k}"
    home.mkdir(parents=True, exist_ok=True)
    link = home / "models"
    if not link.is_symlink():
        link.symlink_to(source, target_is_directory=True)
    return home


def start(k: int, port: int, url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENTOML_HOME": str(replica_home(k)), "SUMMARIZER_DATABASE_URL": url,
           "SUMMARIZER_JOBS_DIR": str(RUN_DIR / f"jobs-{k}")}  # fmt: skip
    log = (RUN_DIR / f"replica-{k}.log").open("wb")
    command = [str(Path(sys.executable).parent / "bentoml"), "serve", "service:Summarizer", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a replica exited with {proc.returncode}; see {RUN_DIR}/replica-*.log")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout_s:.0f} s; see {RUN_DIR}/replica-*.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("-n", "--replicas", type=int, default=2)
    parser.add_argument("--port", type=int, default=3000, help="the first replica's port; the others follow")
    parser.add_argument("--database-url", default=os.environ.get("SUMMARIZER_DATABASE_URL") or DEFAULT_URL)
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    ensure_database(args.database_url)
    RUN_DIR.mkdir(exist_ok=True)
    procs = [start(k, args.port + k, args.database_url) for k in range(args.replicas)]
    try:
        for k, proc in enumerate(procs):
            wait_ready(f"http://127.0.0.1:{args.port + k}", proc)
        for k in range(args.replicas):
            print(f"replica {k}: http://127.0.0.1:{args.port + k}  (log {RUN_DIR.name}/replica-{k}.log)")
        print("all replicas share the database; Ctrl-C stops them", flush=True)
        while all(proc.poll() is None for proc in procs):
            time.sleep(1.0)
        print("a replica exited; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=90)


if __name__ == "__main__":
    main()

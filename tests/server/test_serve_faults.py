"""Process faults in a real `bentoml serve`: the model worker killed mid-request, and SIGTERM.

- A SIGKILLed model worker: the requests it held get a fast JSON 503 with Retry-After (the
  gateway's readiness probe, pipelines/http/gateway.py), not a 500 and not a 504 after the timeout;
  BentoML's arbiter starts a new worker and the server serves again.
- SIGTERM to `bentoml serve` (what `docker stop` and Kubernetes send): every request in flight,
  including one still being prepared in the entry service, completes with 200; new connections
  are not served; the process exits 0 (pipelines/http/drain.py, BENTOML_NO_UDS in service.py).

One server for the module; the SIGTERM test ends it, so it runs last.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.server.conftest import Server, StartServer, wait_for
from tests.texts import LEGAL, NEWS

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]
REQUEST_TIMEOUT_S = 30
IN_FLIGHT = 6
# ~1,000-word documents keep the model busy for a few seconds, so a fault lands while they are in it.
DOCS = [f"Report {i}.\n" + "\n".join([NEWS, LEGAL] * 2) for i in range(IN_FLIGHT)]
# Redaction makes this one slow to prepare (~2 s alone): it is still in the entry service, not yet
# at the model, when SIGTERM arrives.
SLOW_TO_PREPARE = "\n".join(
    f"Call Dana Smith at +1 415 555 {i:04d} or write to dana{i}@example.com about invoice {i}." for i in range(200)
)
CLIENT_TIMEOUT_S = REQUEST_TIMEOUT_S * 2 + 30  # past the server's backstop (twice the deadline: long documents): a hang shows as a timeout
RESTART_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def server(start_server: StartServer, bentoml_home: Path) -> Server:
    return start_server(bentoml_home, request_timeout_s=str(REQUEST_TIMEOUT_S))


def post(server: Server, text: str) -> httpx.Response:
    return httpx.post(f"{server.url}/summarize", json={"text": text}, timeout=CLIENT_TIMEOUT_S)


def send_all(pool: ThreadPoolExecutor, server: Server, docs: list[str], all_at_model: bool) -> list[Future[httpx.Response]]:
    """Send every document at once; return when the model works on some of them (or on every
    request still in flight, with `all_at_model`: none is still being prepared by the entry)."""
    futures = [pool.submit(post, server, doc) for doc in docs]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pending = sum(not f.done() for f in futures)
        at_model = server.in_progress("summarizer-model")
        if pending and at_model >= (pending if all_at_model else 2):
            return futures
        assert pending, [f.result().status_code for f in futures]  # all done before we looked
        time.sleep(0.1)
    pytest.fail(f"requests never reached the model:\n{server.log_tail()}")


def ready(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def outcome(response: httpx.Response) -> str:
    """'200', or the status and our error type ('503 NotReady'); anything else shows as itself."""
    if response.status_code == 200:
        return "200"
    try:
        body: Any = response.json()
        return f"{response.status_code} {body['error']['type']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} not our JSON: {response.text[:200]!r}"


def test_a_killed_model_worker_fails_requests_clearly_and_comes_back(server: Server) -> None:
    assert ready(server)
    [model] = server.workers("summarizer-model")
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = send_all(pool, server, DOCS, all_at_model=True)
        in_flight = [f for f in futures if not f.done()]
        model.kill()
        killed_at = time.monotonic()
        # A hang would show as the client's timeout raising here.
        responses = [f.result(timeout=CLIENT_TIMEOUT_S + 5) for f in in_flight]
        answered_s = time.monotonic() - killed_at
    outcomes = Counter(outcome(r) for r in responses)
    print("in flight at the kill:", dict(outcomes), f"answered within {answered_s:.1f} s")
    # Not a 500, not a 504 after the whole timeout: a fast 503 that says when to come back.
    assert outcomes == {"503 NotReady": len(in_flight)}, outcomes
    assert all(r.headers.get("retry-after") for r in responses)
    assert answered_s < 10, answered_s

    # While the worker restarts, new requests fail just as fast (or are served, once it is back).
    sent = time.monotonic()
    during = post(server, NEWS)
    print("sent during the restart:", outcome(during), f"in {time.monotonic() - sent:.1f} s")
    assert outcome(during) in ("503 NotReady", "200") and time.monotonic() - sent < 10

    # BentoML's arbiter starts a new model worker; the server is ready and serves again.
    wait_for(lambda: [p.pid for p in server.workers("summarizer-model")] not in ([], [model.pid]), timeout_s=60)
    wait_for(lambda: ready(server), timeout_s=RESTART_TIMEOUT_S)
    print(f"ready again {time.monotonic() - killed_at:.1f} s after the kill")
    response = post(server, NEWS)
    assert response.status_code == 200, response.text
    assert response.json()["summary"], response.json()


def test_sigterm_drains_requests_in_flight_then_exits(server: Server) -> None:
    assert ready(server)
    workers = server.workers("summarizer") + server.workers("summarizer-model")
    with ThreadPoolExecutor(IN_FLIGHT + 1) as pool:
        futures = send_all(pool, server, [*DOCS, SLOW_TO_PREPARE], all_at_model=False)
        in_flight = [f for f in futures if not f.done()]
        assert not futures[-1].done(), "the slow document was not in flight"
        server.proc.send_signal(signal.SIGTERM)  # what `docker stop` and Kubernetes send to PID 1
        sent_at = time.monotonic()
        # New connections are no longer served: uvicorn stopped accepting, and the listening
        # socket, which BentoML's arbiter holds, only queues them until the server exits.
        # uvicorn notices the signal at its next tick (every 0.1 s, later while the GIL is busy):
        # a connection made in that window is still served, which is a race, not a leak.
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{server.url}/summarize", json={"text": NEWS}, timeout=3)
        outcomes = Counter(outcome(f.result(timeout=CLIENT_TIMEOUT_S + 5)) for f in in_flight)
    print("in flight at SIGTERM:", dict(outcomes), f"answered within {time.monotonic() - sent_at:.1f} s")
    assert outcomes == {"200": len(in_flight)}, outcomes

    returncode = server.proc.wait(timeout=60)
    print(f"exited with {returncode} {time.monotonic() - sent_at:.1f} s after SIGTERM")
    assert returncode == 0
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, alive
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/readyz", timeout=5)

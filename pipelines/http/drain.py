"""Graceful shutdown across the two services of one `bentoml serve`: the model worker stops last.

On SIGTERM, BentoML's arbiter signals every worker at the same moment, and each worker's uvicorn
stops accepting connections and finishes the requests it holds. The entry service's requests
that are still being prepared (normalize, redact) have not called the model yet. If the model
worker has stopped accepting by then, their calls meet a socket that the arbiter keeps open but
no worker serves: they fail (503) or wait until the request timeout (504).

So the model worker holds SIGTERM back, serving as usual, until the entry workers of the same
server have exited (at most `max_delay_s`), then hands it to the handler that was there before
(uvicorn's), which drains as usual. With no entry worker beside it (a separately deployed model
service, as on BentoCloud) it passes the signal on at once.

    stop_after("summarizer", max_delay_s=75.0)   # in the model worker, at start-up
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import psutil

log = logging.getLogger("summarizer.drain")
# How BentoML 1.4 starts a service's worker: `python -m _bentoml_impl.worker.service ... --service-name NAME`.
WORKER_MODULE = "_bentoml_impl.worker.service"


def workers_of(parent: psutil.Process | None, service: str) -> list[psutil.Process]:
    """The live worker processes of `service` among `parent`'s children, this process excepted
    (with `--development`, the entry worker runs the model service in-process)."""
    found = []
    for child in parent.children() if parent is not None else []:
        if child.pid == os.getpid():
            continue
        try:
            cmd = child.cmdline()
            alive = child.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:  # gone, or not ours to inspect
            continue
        named = cmd[cmd.index("--service-name") + 1 :][:1] if "--service-name" in cmd else []
        if alive and WORKER_MODULE in cmd and named == [service]:
            found.append(child)
    return found


Handler = Callable[[int, FrameType | None], object]


def defer_signal(sig: signal.Signals, done: Callable[[], bool], max_delay_s: float, poll_s: float = 0.2) -> bool:
    """Replace the handler of `sig` with one that calls it once `done()` is true (or `max_delay_s` passed).

    Returns False, changing nothing, when no Python handler is installed: then there is no
    graceful path to delay. Call it from the main thread, after the server installed its handler.
    """
    previous = signal.getsignal(sig)
    if not callable(previous):
        return False
    forward: Handler = previous
    waiting = threading.Event()

    def finished() -> bool:
        try:
            return done()
        except Exception:  # cannot tell: do not hold the exit back
            return True

    def wait_then_forward(signum: int) -> None:  # logs from here, not from the handler: locks
        log.info("%s received: held back for at most %g s", signal.Signals(signum).name, max_delay_s)
        started = time.monotonic()
        while time.monotonic() < started + max_delay_s and not finished():
            time.sleep(poll_s)
        log.info("%s passed on after %.1f s", signal.Signals(signum).name, time.monotonic() - started)
        forward(signum, None)  # uvicorn's handler only sets flags: safe from this thread

    def handler(signum: int, frame: FrameType | None) -> None:
        if not waiting.is_set():  # a second signal does not start a second wait
            waiting.set()
            threading.Thread(target=wait_then_forward, args=(signum,), daemon=True, name="deferred-exit").start()

    signal.signal(sig, handler)
    return True


def stop_after(service: str, max_delay_s: float) -> bool:
    """In a worker: pass SIGTERM on only once the workers of `service` beside it have exited."""
    parent = psutil.Process().parent()
    return defer_signal(signal.SIGTERM, lambda: not workers_of(parent, service), max_delay_s)

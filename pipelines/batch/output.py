"""The output file of `summarize-batch` is its checkpoint: opened locked against a second run,
resumed from the ids already in it (a partial last line cut off, transient errors dropped so they are
retried), then appended to by ResultWriter, flushed per batch and fsynced every few seconds.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError
from tqdm import tqdm

from pipelines.batch.backends import CliError
from pipelines.batch.core import BatchResult

FSYNC_INTERVAL_S = 5.0  # a power cut loses at most this much work; a crash or kill loses none


@dataclass
class Resumed:
    """What an earlier run left in the output file."""

    done: set[str] = field(default_factory=set)
    summarized: int = 0
    failed: int = 0


def _resume(path: Path, out: IO[bytes]) -> Resumed:
    """Collect the ids an earlier run finished; a crash can leave half a line at the end: cut it off.
    Lines that ended as a transient error are dropped, so their documents are tried again: a server
    that was down for a while must not fail them for good."""
    resumed, complete_bytes, transient = Resumed(), 0, 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break
            try:
                result = BatchResult.model_validate_json(raw)
            except ValidationError:
                raise CliError(
                    f"{path}: line {number} is not a result line; fix or remove it, or start over with --restart"
                ) from None
            complete_bytes += len(raw)
            if result.transient:
                transient += 1
                continue
            resumed.done.add(result.id)
            resumed.summarized += result.error is None
            resumed.failed += result.error is not None
    if transient:
        _rewrite_without_transient(path, out)
        print(f"{path}: retrying {transient} documents that failed transiently last time", file=sys.stderr)
    elif (size := path.stat().st_size) > complete_bytes:
        out.truncate(complete_bytes)
        print(f"{path}: cut off a partial last line ({size - complete_bytes} bytes) left by an interrupted run", file=sys.stderr)
    return resumed


def _rewrite_without_transient(path: Path, out: IO[bytes]) -> None:
    """Keep the final lines (and no partial one) via a copy: 100k results need not fit in memory.
    A crash while copying back loses lines, never duplicates them; their documents are redone."""
    tmp = path.with_name(f".{path.name}.resume")
    with path.open("rb") as src, tmp.open("wb") as dst:
        for raw in src:
            if raw.endswith(b"\n") and not BatchResult.model_validate_json(raw).transient:
                dst.write(raw)
    out.truncate(0)
    with tmp.open("rb") as src:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    out.flush()
    os.fsync(out.fileno())
    tmp.unlink()


class ResultWriter:
    """Appends result lines, flushed per batch (a crash or kill loses nothing written), fsynced every
    few seconds and at the end (a power cut loses at most a few seconds)."""

    def __init__(self, out: IO[bytes], progress: tqdm) -> None:
        self.out = out
        self.progress = progress
        self.synced_at = time.monotonic()
        self.summarized = 0
        self.failed = 0

    def write(self, lines: list[BatchResult]) -> None:
        self.out.write("".join(result.to_line() + "\n" for result in lines).encode())
        self.out.flush()
        if time.monotonic() - self.synced_at > FSYNC_INTERVAL_S:
            self.sync()
        failed = sum(result.error is not None for result in lines)
        self.failed += failed
        self.summarized += len(lines) - failed
        self.progress.update(len(lines))

    def sync(self) -> None:
        self.out.flush()
        os.fsync(self.out.fileno())
        self.synced_at = time.monotonic()


def open_output(path: Path, restart: bool) -> tuple[IO[bytes], Resumed]:
    """The output, locked against a second run on the same file, after resume bookkeeping."""
    try:
        out = path.open("ab")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        out.close()
        raise CliError(f"{path} is being written by another summarize-batch run") from None
    try:
        if restart:
            out.truncate(0)
            return out, Resumed()
        return out, _resume(path, out)
    except BaseException:
        out.close()
        raise

"""`summarize-batch`: summarize a JSONL file of documents into a JSONL file of results, resumably.

    summarize-batch input.jsonl -o results.jsonl [--url URL] [--style STYLE] [--concurrency N]
                    [--batch-size N] [--token-file F | --token T] [--max-attempts N] [--timeout S] [--restart] [--quiet]
    python -m pipelines.batch ...            (the same)

Input: one document a line, {"id", "text", "style"?, "format"?: auto|text|html, "metadata"?}. A bad
line (not JSON, no id, a repeated id) is reported on stderr with its line number and skipped; blank
lines are ignored. Output: one line per valid document, in completion order: the `/batch` result
with `line`, the input line number, and either `summary` or `error` {type, message, status}.

With --url the documents go to a running server's POST /batch, --concurrency requests of
--batch-size documents at a time; overload, restarts, timeouts and dropped connections are retried
with exponential backoff (honoring Retry-After) up to --max-attempts, then written as error lines.
--token-file (or --token) is sent as a bearer token. Without --url the models are loaded
in this process from the BentoML model store, as the server loads them (SUMMARIZER_* settings apply),
and batches run one at a time (--concurrency applies to --url only).

Ctrl-C (or SIGTERM) stops sending, lets in-flight batches finish for a few seconds and exits 130.
Resume: rerunning the same command after Ctrl-C, a crash or a kill continues where it stopped: the
ids already in the output are skipped (a partial last line is cut off), and documents that ended
as a transient error (Overloaded, NotReady, UpstreamTimeout) are tried again. --restart starts over.
The progress bar (stderr) shows on a terminal; --quiet hides it.

Exit status: 0 every valid document summarized; 1 finished, but some documents failed or some
input lines were invalid; 2 usage error or fatal (missing input, model not imported, the server
refused the request); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from pipelines.batch.backends import (
    Backend,
    BodyTooLarge,
    CliError,
    HttpBackend,
    LocalBackend,
    PipelineFactory,
    RequestFailed,
)
from pipelines.batch.core import BatchDocument, BatchResult, InvalidLine, parse_line
from pipelines.batch.output import ResultWriter, open_output

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
GRACE_S = 5.0  # after Ctrl-C, how long in-flight batches may finish and be written
BACKOFF_S = 1.0  # first retry delay; doubles per attempt, with jitter so workers spread out
BACKOFF_MAX_S = 60.0

Batch = list[tuple[int, BatchDocument]]  # (input line number, document)


def _count_lines(path: Path) -> int:
    """Documents in the input (non-blank lines), streamed: the progress bar's total."""
    with path.open("rb") as f:
        return sum(1 for raw in f if raw.strip())


def _documents(path: Path, done: set[str], report: Callable[[InvalidLine], None]) -> Iterator[tuple[int, BatchDocument]]:
    """The valid documents not done yet, streamed. Bad lines and repeated ids are reported, not sent:
    the output holds exactly one line per id, so a later line with a seen id cannot have one."""
    first_seen: dict[str, int] = {}
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                doc = parse_line(raw, number)
            except InvalidLine as exc:
                report(exc)
                continue
            if doc.id in first_seen:
                report(InvalidLine(number, f"duplicate id, first seen on line {first_seen[doc.id]}"))
                continue
            first_seen[doc.id] = number
            if doc.id not in done:
                yield number, doc


def _batches(items: Iterable[tuple[int, BatchDocument]], size: int) -> Iterator[Batch]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class Run:
    """Feeds batches to the backend, --concurrency at a time, retries, writes results, stops cleanly."""

    def __init__(self, backend: Backend, writer: ResultWriter, max_attempts: int) -> None:
        self.backend = backend
        self.writer = writer
        self.max_attempts = max_attempts
        self.stop = asyncio.Event()  # first Ctrl-C: send nothing more, let in-flight work finish
        self.hurry = asyncio.Event()  # second Ctrl-C: don't wait for it
        self.complete = False  # every batch sent and written: a late Ctrl-C interrupted nothing
        self.warned_split = False

    def interrupt(self) -> None:
        if self.stop.is_set():
            self.hurry.set()
        self.stop.set()

    async def _pause(self, seconds: float) -> bool:
        """Sleep before a retry; False when interrupted meanwhile (the batch is left for the resume)."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return True
        return False

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        delay = retry_after_s if retry_after_s is not None else BACKOFF_S * 2 ** (attempt - 1)
        return min(BACKOFF_MAX_S, delay) * random.uniform(1.0, 1.25)

    async def process(self, batch: Batch) -> None:
        """Write one line per document of the batch, retrying what failed transiently; a document is
        never dropped, except when Ctrl-C comes first (then the resume does it)."""
        pending, delay = batch, 0.0
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1 and not await self._pause(delay):
                return
            last = attempt == self.max_attempts
            try:
                results = await self.backend.send([doc for _, doc in pending])
            except BodyTooLarge as exc:
                if len(pending) == 1:  # one document over the body limit: that document's error
                    line, doc = pending[0]
                    self.writer.write([BatchResult(id=doc.id, error=exc.error, metadata=doc.metadata, line=line)])
                    return
                if not self.warned_split:
                    self.warned_split = True
                    tqdm.write(f"the server refused {len(pending)} documents in one request ({exc.error.message}); "
                               "splitting them: a smaller --batch-size saves the extra requests", file=sys.stderr)  # fmt: skip
                half = len(pending) // 2
                await self.process(pending[:half])
                await self.process(pending[half:])
                return
            except RequestFailed as exc:
                if last:
                    self.writer.write([BatchResult(id=doc.id, error=exc.error, metadata=doc.metadata, line=line)
                                       for line, doc in pending])  # fmt: skip
                    return
                delay = self._backoff(attempt, exc.retry_after_s)
                continue
            final, retry = [], []
            for (line, doc), result in zip(pending, results, strict=True):
                if result.transient and not last:
                    retry.append((line, doc))
                else:
                    final.append(result.model_copy(update={"line": line}))
            if final:
                self.writer.write(final)
            if not retry:
                return
            pending, delay = retry, self._backoff(attempt, None)

    async def execute(self, batches: Iterator[Batch]) -> None:
        """Dispatch until the input ends or Ctrl-C; a CliError from any batch stops everything."""
        tasks: set[asyncio.Task[None]] = set()
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            for batch in batches:
                while len(tasks) >= self.backend.max_in_flight and not self.stop.is_set():
                    finished, _ = await asyncio.wait(tasks | {stopped}, return_when=asyncio.FIRST_COMPLETED)
                    self._reap(tasks, finished)
                if self.stop.is_set():
                    break
                tasks.add(asyncio.create_task(self.process(batch)))
            while tasks and not self.stop.is_set():
                finished, _ = await asyncio.wait(tasks | {stopped}, return_when=asyncio.FIRST_COMPLETED)
                self._reap(tasks, finished)
            self.complete = not self.stop.is_set()
            if tasks:  # interrupted: give in-flight batches a moment to finish and be written
                hurried = asyncio.ensure_future(self.hurry.wait())
                deadline = time.monotonic() + GRACE_S
                while tasks and not self.hurry.is_set() and (left := deadline - time.monotonic()) > 0:
                    finished, _ = await asyncio.wait(tasks | {hurried}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                    self._reap(tasks, finished)
                hurried.cancel()
        finally:
            stopped.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _reap(tasks: set[asyncio.Task[None]], finished: set[Any]) -> None:
        for task in finished & tasks:
            tasks.discard(task)
            task.result()  # re-raises a CliError (server refused, model missing)


@dataclass
class Totals:
    """The outcome counts for the summary line and the exit status."""

    summarized: int
    failed: int
    invalid: int
    this_run: int
    elapsed_s: float
    documents: int


def _summarize_file(args: argparse.Namespace, backend: Backend) -> tuple[Totals, bool]:
    """The run itself: resume, stream the input through the backend, write results. (totals, interrupted)."""
    started = time.perf_counter()
    out, resumed = open_output(args.output, args.restart)
    try:
        total = _count_lines(args.input)
        with tqdm(total=total, initial=len(resumed.done), unit="doc", file=sys.stderr, dynamic_ncols=True,
                  disable=True if args.quiet else None) as progress:  # fmt: skip
            invalid = 0

            def report(exc: InvalidLine) -> None:
                nonlocal invalid
                invalid += 1
                progress.update(1)
                tqdm.write(f"{args.input}: {exc}", file=sys.stderr)

            writer = ResultWriter(out, progress)
            run = Run(backend, writer, args.max_attempts)
            batches = _batches(_documents(args.input, resumed.done, report), args.batch_size)
            try:
                asyncio.run(_execute(run, batches, backend))
            finally:
                writer.sync()
        totals = Totals(
            summarized=resumed.summarized + writer.summarized, failed=resumed.failed + writer.failed, invalid=invalid,
            this_run=writer.summarized + writer.failed, elapsed_s=time.perf_counter() - started, documents=total,
        )  # fmt: skip
        return totals, not run.complete
    finally:
        out.close()


async def _execute(run: Run, batches: Iterator[Batch], backend: Backend) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, run.interrupt)
    try:
        await run.execute(batches)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await backend.aclose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="summarize-batch", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("input", type=Path, help="JSONL file, one {id, text, style?, format?, metadata?} a line")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSONL results; resumed if it exists")
    parser.add_argument("--url", help="a running server (http://host:port); default: summarize in this process")
    parser.add_argument("--style", help="style for documents that name none (default: the deployment's default)")
    parser.add_argument("--concurrency", type=_positive, metavar="N", default=4, help="requests in flight, with --url (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive, metavar="N", default=16, help="documents per request or in-process batch (default: %(default)s)")
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", help="bearer token for the server (visible in `ps`; prefer --token-file)")
    tokens.add_argument("--token-file", type=Path, help="file holding the bearer token (e.g. a mounted secret)")
    parser.add_argument("--max-attempts", type=_positive, metavar="N", default=5, help="tries per document on transient failures (default: %(default)s)")
    parser.add_argument("--timeout", type=_seconds, metavar="S", default=300.0, help="seconds to wait for one request (default: %(default)s)")
    parser.add_argument("--restart", action="store_true", help="overwrite the output instead of resuming it")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


def _backend(
    args: argparse.Namespace, pipeline_factory: PipelineFactory | None, transport: httpx.AsyncBaseTransport | None
) -> Backend:
    if args.url is None:
        return LocalBackend(args.style, pipeline_factory)
    if not args.url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https://, got {args.url!r}")
    return HttpBackend(args.url, args.style, _token(args), args.concurrency, args.timeout, transport)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is None:
        return str(args.token) if args.token else None
    try:
        return args.token_file.read_text().strip() or None
    except OSError as exc:
        raise CliError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from None


def main(
    argv: Sequence[str] | None = None,
    *,
    pipeline_factory: PipelineFactory | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """The CLI; tests pass a pipeline factory or an httpx transport instead of real models or a server."""
    args = _parser().parse_args(argv)
    try:
        if not args.input.is_file():
            raise CliError(f"{args.input}: no such file")
        if args.output.exists() and args.output.resolve() == args.input.resolve():
            raise CliError("the output must not be the input file")
        totals, interrupted = _summarize_file(args, _backend(args, pipeline_factory, transport))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # before or after the run loop, which handles Ctrl-C itself
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # disk full, unreadable input
        print(f"{exc.filename or args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    done = totals.summarized + totals.failed
    if interrupted:
        print(f"interrupted: {done} of {totals.documents} done; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    rate = totals.this_run / totals.elapsed_s if totals.elapsed_s > 0 else 0.0
    print(f"{args.output}: {totals.summarized} summarized, {totals.failed} failed, {totals.invalid} invalid input lines; "
          f"{totals.this_run} this run in {totals.elapsed_s:.1f} s ({rate:.1f} docs/s)")  # fmt: skip
    return EXIT_FAILED if totals.failed or totals.invalid else EXIT_OK

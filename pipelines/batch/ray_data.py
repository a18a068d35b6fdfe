"""The batch job on Ray Data, for corpora that outgrow one machine (optional: requirements-ray.txt).

    python -m pipelines.batch.ray_data INPUT -o OUT_DIR [--address ADDR] [--actors N] [--actor-cpus C]
                                  [--batch-size N] [--style STYLE]

INPUT is a JSONL file or a folder of them, a local path or a URI Ray reads (s3://, gs://, ...), in
`summarize-batch`'s format, one document a line (.gz files are decompressed). Give a big corpus as
many files: each file is read by one task, streaming, so no process holds a whole file.

The job is `summarize-batch` without --url, spread out: a pool of --actors Ray actors, each building
one `LocalPipeline` (the server's models, from the BentoML model store, loaded once per actor) and
calling `LocalPipeline.run` on --batch-size documents at a time. The driver only plans: it never
holds the corpus or the results.

Output: OUT_DIR (new or empty; a path or URI) gets JSONL files with one line per non-blank input
line, in no particular order: the `summarize-batch` result line, whose `line` is the line number in
its own input file. An invalid line (not JSON, no id, no text) is an error line, type InvalidLine,
whose message names its file and line, with the line's id when it has one, else "". Repeated ids
are not detected here (that needs the whole corpus in one place): each line gets its own result.

Models and settings: actors load the models as the server does, from BENTOML_HOME's model store
(`python -m models import-default`). The driver's BENTOML_HOME and SUMMARIZER_* settings are given
to the actors. On a cluster every node needs this package and its requirements installed, and the
models imported under that BENTOML_HOME (or the model store on shared storage); a local OUT_DIR is
written on the driver's node. Without --address a small local Ray instance runs the job and stops.

Exit status: 0 every document summarized; 1 finished, but some documents failed or some lines were
invalid; 2 usage error or fatal (missing input, non-empty output, the job could not run); 130
interrupted. There is no resume: a rerun starts over, into an empty folder.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipelines.errors import SummarizerError

try:
    import pyarrow as pa
    import pyarrow.fs
    import ray
    import ray.data
    from ray.data.block import Block, BlockAccessor
    from ray.data.datasource import Datasink, FileBasedDatasource, WriteResult
except ImportError:  # an optional extra: say how to get it rather than show a traceback
    raise SystemExit("Ray is not installed: pip install -r requirements-ray.txt") from None

if TYPE_CHECKING:
    from ray.data._internal.execution.interfaces import TaskContext

    from pipelines.batch.core import BatchDocument, BatchResult, InvalidLine

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
# Given to the actors, so they load what this shell would (local actors inherit them anyway).
FORWARDED_ENV = ("BENTOML_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "BENTOML_DO_NOT_TRACK")
FORWARDED_PREFIX = "SUMMARIZER_"
# What one read yields at a time (Ray merges these into its own blocks of up to 128 MiB).
BLOCK_LINES = 1_000
BLOCK_BYTES = 8 * 1024 * 1024
READ_BUFFER_BYTES = 1024 * 1024
ROWS_PER_OUTPUT_FILE = 10_000  # results are small (a summary each): fewer, larger output files
# A local instance: blocks and results are small, so a small object store; Ray spills past it.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


class JsonLinesDatasource(FileBasedDatasource):
    """JSONL lines as rows {path, line, raw}, one per non-blank line.

    Not `ray.data.read_text`: it reads a whole file into one string and splits it at every Unicode
    line break, so a document holding U+2028 (common in web text) would become two bad lines, and it
    gives no line numbers. This splits at b"\\n" only, streaming, and counts lines in each file.
    """

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[Block]:
        return read_lines(f, path)


def read_lines(f: Any, path: str, block_lines: int = BLOCK_LINES) -> Iterator[Block]:
    """Blocks {path, line, raw} of a file's non-blank lines, line numbers counting from 1."""
    numbers: list[int] = []
    raws: list[bytes] = []
    size = 0
    for number, raw in enumerate(io.BufferedReader(f, READ_BUFFER_BYTES), start=1):
        if not raw.strip():
            continue  # blank lines are ignored, as summarize-batch ignores them
        numbers.append(number)
        raws.append(raw)
        size += len(raw)
        if len(raws) >= block_lines or size >= BLOCK_BYTES:
            yield _lines_block(path, numbers, raws)
            numbers, raws, size = [], [], 0
    if raws:
        yield _lines_block(path, numbers, raws)


def _lines_block(path: str, numbers: list[int], raws: list[bytes]) -> Block:
    return pa.table(
        {"path": pa.array([path] * len(raws), pa.string()), "line": pa.array(numbers, pa.int64()),
         "raw": pa.array(raws, pa.binary())}
    )  # fmt: skip


def _line_id(raw: bytes) -> str:
    """The id of an invalid line, when it is a JSON object with a string id; else ""."""
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    doc_id = data.get("id") if isinstance(data, dict) else None
    return doc_id if isinstance(doc_id, str) else ""


def invalid_result(path: str, exc: InvalidLine, raw: bytes) -> BatchResult:
    """An invalid line as a result line; with many input files, its message says which file."""
    from pipelines.batch.core import BatchResult, ErrorBody

    error = ErrorBody(type=type(exc).__name__, message=f"{os.path.basename(path)} line {exc.line}: {exc.reason}", status=exc.status_code)
    return BatchResult(id=_line_id(raw), error=error, line=exc.line)


class Pipeline(Protocol):
    def run(self, docs: Sequence[BatchDocument], default_style: str | None = None) -> list[BatchResult]: ...


class SummarizeBatch:
    """The actor: one LocalPipeline (models loaded once), called on each batch of lines."""

    def __init__(self, style: str | None, pipeline: Pipeline | None = None) -> None:
        if pipeline is None:
            # Only the actors import the pipeline (torch, Presidio: seconds); the driver never does.
            from pipelines.batch.inprocess import LocalPipeline

            pipeline = LocalPipeline()
        self.style = style
        self.pipeline = pipeline

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipelines.batch.core import InvalidLine, parse_line

        results: list[BatchResult | None] = []  # None: a document, summarized below
        docs: list[BatchDocument] = []
        for path, number, raw in zip(batch["path"], batch["line"], batch["raw"], strict=True):
            try:
                docs.append(parse_line(raw, int(number)))
                results.append(None)
            except InvalidLine as exc:
                results.append(invalid_result(str(path), exc, bytes(raw)))
        numbers = [int(n) for n, r in zip(batch["line"], results, strict=True) if r is None]
        summarized = self._run(docs)
        for result, number in zip(summarized, numbers, strict=True):
            result.line = number
        pending = iter(summarized)
        done = [r if r is not None else next(pending) for r in results]
        return {
            "result": np.array([r.to_line() for r in done], dtype=object),
            "failed": np.array([r.error is not None for r in done], dtype=bool),
        }

    def _run(self, docs: list[BatchDocument]) -> list[BatchResult]:
        from pipelines.batch.core import BatchResult

        if not docs:
            return []
        try:
            return self.pipeline.run(docs, self.style)
        except SummarizerError as err:  # the whole batch failed: each document's error, as in the CLI
            return [BatchResult.failed(doc.id, err, doc.metadata) for doc in docs]


@dataclass
class Totals:
    documents: int = 0
    failed: int = 0
    files: int = 0


class JsonLinesDatasink(Datasink[tuple[int, int]]):
    """The `result` column as JSONL files under `out_dir` (a path or URI).

    Not `Dataset.write_json`: it goes through pandas, which would re-encode each result; these are
    the result lines as they are. Each write task returns its counts, so the driver learns the
    totals without reading the output back.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.local = isinstance(pyarrow.fs.FileSystem.from_uri(out_dir)[0], pyarrow.fs.LocalFileSystem)
        self.run = uuid.uuid4().hex[:8]
        self.totals = Totals()

    @property
    def supports_distributed_writes(self) -> bool:
        return not self.local  # a local path may exist on this node only: write here (results are small)

    @property
    def min_rows_per_write(self) -> int:
        return ROWS_PER_OUTPUT_FILE

    def write(self, blocks: Iterable[Block], ctx: TaskContext) -> tuple[int, int]:
        filesystem, root = pyarrow.fs.FileSystem.from_uri(self.out_dir)
        filesystem.create_dir(root, recursive=True)  # on another node (Ray Client's head) it may be new
        documents = failed = 0
        # One name per task: a retried task overwrites its own partial file.
        with filesystem.open_output_stream(f"{root}/part-{self.run}-{ctx.task_idx:06d}.jsonl") as out:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                out.write("".join(f"{line}\n" for line in table.column("result").to_pylist()).encode())
                flags = table.column("failed").to_pylist()
                documents += len(flags)
                failed += sum(flags)
        return documents, failed

    def on_write_complete(self, write_result: WriteResult[tuple[int, int]]) -> None:
        for documents, failed in write_result.write_returns:
            self.totals.documents += documents
            self.totals.failed += failed
            self.totals.files += 1


class CliError(Exception):
    """Printed as one line on stderr; exit status 2."""


def actor_env() -> dict[str, str]:
    """The settings and model store this shell would use, for the actors (see FORWARDED_ENV)."""
    return {k: v for k, v in os.environ.items() if k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIX)}


def start_ray(address: str | None, actors: int, actor_cpus: float) -> None:
    """Join a cluster, or start a small local instance: CPUs for the actors plus one for the read
    and write tasks (without it the actors hold every CPU, the reader never runs and the job hangs)."""
    runtime_env = {"env_vars": actor_env()}
    if address:
        ray.init(address=address, runtime_env=runtime_env)
        return
    ray.init(
        num_cpus=math.ceil(actors * actor_cpus) + 1,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        include_dashboard=False,
        runtime_env=runtime_env,
    )


def run_job(input_spec: str, out_dir: str, *, actors: int, actor_cpus: float, batch_size: int, style: str | None) -> Totals:
    """The job itself, on a started Ray: read lines, summarize on the actor pool, write results."""
    cpus = ray.cluster_resources().get("CPU", 0)  # type: ignore[no-untyped-call]
    spare = cpus - actors * actor_cpus
    if spare < 1:
        print(
            f"warning: {actors} actors x {actor_cpus:g} CPUs leave {spare:g} of the cluster's CPUs for reading and "
            "writing; the job waits until the cluster grows (or use fewer --actors)", file=sys.stderr,
        )  # fmt: skip
    sink = JsonLinesDatasink(out_dir)
    (
        ray.data.read_datasource(JsonLinesDatasource(input_spec))
        # Ray's blocks are sized in bytes (MiBs: thousands of documents, an hour of one actor's
        # work). One batch a block makes a batch the unit an actor takes and Ray retries, so the
        # actors stay evenly busy to the end. Streaming: nothing waits for the whole input.
        .repartition(target_num_rows_per_block=batch_size)
        .map_batches(
            SummarizeBatch, fn_constructor_kwargs={"style": style}, batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=actor_cpus,
        )  # fmt: skip
        .write_datasink(sink)
    )
    return sink.totals


def _cause(exc: Exception) -> str:
    """One line for a failed job: an error raised on an actor arrives as its whole traceback, and
    its last line says what went wrong (ModelImportError: ... import it first: ...)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _absolute(spec: str) -> str:
    """Plain paths made absolute (Ray's tasks do not run in this folder); URIs as they are."""
    return spec if "://" in spec else str(Path(spec).resolve())


def _check_output(out_dir: str) -> None:
    filesystem, root = pyarrow.fs.FileSystem.from_uri(out_dir)
    info = filesystem.get_file_info(root)
    if info.type == pyarrow.fs.FileType.NotFound:
        filesystem.create_dir(root, recursive=True)
    elif info.type != pyarrow.fs.FileType.Directory:
        raise CliError(f"{out_dir} is not a folder")
    elif filesystem.get_file_info(pyarrow.fs.FileSelector(root)):
        raise CliError(f"{out_dir} is not empty: the results would mix with an earlier run's")


def _check_style(style: str | None) -> None:
    """Fail fast on an unknown --style, before any actor loads a model."""
    from pipelines.settings import get_settings
    from pipelines.styles import StyleRegistry

    settings = get_settings()
    try:
        StyleRegistry.load(settings.styles_file, settings.default_style).resolve(style)
    except (ValueError, SummarizerError) as exc:  # pydantic's ValidationError is a ValueError
        raise CliError(getattr(exc, "message", None) or str(exc)) from None


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.batch.ray_data", description="Summarize JSONL documents on Ray Data.")
    parser.add_argument("input", help="JSONL file or folder of them: a path or a URI (s3://...)")
    parser.add_argument("-o", "--output", required=True, help="output folder, new or empty: a path or a URI")
    parser.add_argument("--address", help="a running Ray cluster (auto, HOST:6379, ray://HOST:10001); default: a local instance")
    parser.add_argument("--actors", type=_positive, default=1, help="actors, one pipeline each (default: %(default)s)")
    parser.add_argument("--actor-cpus", type=_positive_float, default=1.0, help="CPUs per actor (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive, default=32, help="documents per LocalPipeline.run (default: %(default)s)")
    parser.add_argument("--style", help="style for documents that name none (default: the deployment's default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    input_spec, out_dir = _absolute(args.input), _absolute(args.output)
    started = time.monotonic()
    try:
        if "://" not in input_spec and not Path(input_spec).exists():
            raise CliError(f"{args.input}: no such file or folder")
        _check_style(args.style)
        _check_output(out_dir)
        start_ray(args.address, args.actors, args.actor_cpus)
        try:
            totals = run_job(
                input_spec, out_dir, actors=args.actors, actor_cpus=args.actor_cpus, batch_size=args.batch_size,
                style=args.style,
            )  # fmt: skip
        except Exception as exc:  # e.g. actors that cannot start: the models are not imported
            raise CliError(f"the job failed: {_cause(exc)}") from None
        finally:
            ray.shutdown()
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"interrupted: {args.output} may hold part of the results; rerun into an empty folder", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"{totals.documents} documents, {totals.failed} failed, in {time.monotonic() - started:.1f} s -> {args.output} "
        f"({totals.files} file{'' if totals.files == 1 else 's'})", file=sys.stderr,
    )  # fmt: skip
    return EXIT_FAILED if totals.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

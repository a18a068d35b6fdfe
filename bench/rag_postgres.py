"""What the PostgreSQL knowledge index costs against the files backend, in the same run.

    .venv/bin/python -m bench.rag_postgres [--chunks 10000] [--dim 384] [--admin-url postgresql://postgres@127.0.0.1:5432/test]

Both backends get the same documents (100-word sentences, ten chunks a document) and the same
random unit vectors. Measured (ms unless named): the commit that fills the index; a cold load (a new replica's first
query: everything read into memory); a warm search (no write since the last query: the files
backend stats its manifest, the PostgreSQL one reads the generation); and the first search after
another instance rewrote one document (the files backend reloads its whole snapshot, the
PostgreSQL one only that document). A scratch database is created on the admin URL's server and
dropped afterwards. Writes bench/results/rag_postgres.json; feeds docs/rag.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipelines.postgres.pool import Database
from pipelines.rag.backend import Index, open_index
from pipelines.rag.index import Document
from tests.fixtures.postgres import new_database

REPO = Path(__file__).resolve().parents[1]
TAG = "bench-encoder"
CHUNKS_PER_DOCUMENT = 10


def documents(n_chunks: int, version: int = 0) -> list[Document]:
    """Documents of ten 100-word sentences: one chunk a sentence at chunk_words=120."""
    words = [f"w{i}" for i in range(100)]
    docs = []
    for d in range(n_chunks // CHUNKS_PER_DOCUMENT):
        sentences = [f"Document {d} part {s} version {version} " + " ".join(words[:96]) + "." for s in range(CHUNKS_PER_DOCUMENT)]
        docs.append(Document(f"doc-{d:05d}.md", " ".join(sentences)))
    return docs


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    normalized: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalized


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure(open_: Callable[[], Index], docs: list[Document], dim: int, rng: np.random.Generator) -> dict[str, float]:
    writer = open_()
    plan = writer.plan(docs)
    vectors = unit(rng, len(plan.texts), dim)
    commit_ms = timed(lambda: writer.commit(plan, vectors))
    cold = []
    for _ in range(3):
        reader = open_()
        cold.append(timed(lambda: len(reader)))
        reader.close()
    reader = open_()
    len(reader)
    queries = unit(rng, 500, dim)
    warm = sorted(timed(lambda: reader.search(q, 5)) for q in queries)
    after_write = []
    for i in range(5):
        changed = documents(CHUNKS_PER_DOCUMENT, version=i + 1)[0]  # the first document, rewritten
        one = writer.plan([changed])
        writer.commit(one, unit(rng, len(one.texts), dim))
        after_write.append(timed(lambda: reader.search(queries[i], 5)))
    assert len(reader) == len(plan.texts), "the reader lost chunks"
    tracemalloc.start()  # Python objects only (chunk texts, records); FAISS's vectors are C++ memory
    fresh = open_()
    len(fresh)
    heap_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    return {
        "commit_ms": commit_ms,
        "cold_load_ms": statistics.median(cold),
        "search_p50_ms": warm[len(warm) // 2],
        "search_p95_ms": warm[int(len(warm) * 0.95)],
        "search_after_one_document_changed_ms": statistics.median(after_write),
        "python_heap_mb": heap_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    docs = documents(args.chunks)
    chunks = len(docs) * CHUNKS_PER_DOCUMENT
    vectors_mb = chunks * args.dim * 4 / 1e6
    with tempfile.TemporaryDirectory() as folder:
        files = measure(lambda: open_index(Path(folder), TAG, args.dim), docs, args.dim, np.random.default_rng(1))
    with new_database(args.admin_url) as url:
        databases: list[Database] = []

        def replica() -> Index:
            databases.append(Database(url, pool_size=2))  # a pool per instance, as replicas have
            return open_index(databases[-1], TAG, args.dim)

        try:
            postgres = measure(replica, docs, args.dim, np.random.default_rng(1))
        finally:
            for db in databases:
                db.close()
    result = {"chunks": chunks, "documents": len(docs), "dim": args.dim, "files": files, "postgres": postgres,
              "vectors_mb_per_replica": vectors_mb}  # fmt: skip
    print(f"{chunks} chunks ({len(docs)} documents) of dim {args.dim}; times in ms, PostgreSQL / files")
    for key in files:
        print(f"{key:40s} postgres {postgres[key]:9.2f}   files {files[key]:9.2f}   ratio {postgres[key] / files[key]:6.2f}x")
    print("(python_heap_mb: the chunk texts and records a replica keeps beside the vectors, in MB)")
    print(f"vectors held in memory by each replica: {vectors_mb:.1f} MB (chunks x dim x 4 bytes)")
    out = REPO / "bench" / "results" / "rag_postgres.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}: the figures of docs/rag.md")


if __name__ == "__main__":
    main()

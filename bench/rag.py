"""Retrieval quality against BM25, indexing throughput and search latency at 10k chunks.

    .venv/bin/python -m bench.rag [--eval-dir ../shared/eval] [--runtime torch|onnx|onnx-int8]

Test set, built at run time from the evaluation data (never copied into the repo): the news
articles and bills are the "documentation"; each sentence of a reference summary is a query
whose relevant chunks are those of its own document. recall@k: share of queries with a chunk
of the right document among the first k. The same chunks go to BM25 (bm25s) as the baseline.
Latency: the index is filled to 10,000 chunks (real chunks plus random unit vectors) and
queried with the real query vectors. Writes bench/results/rag.json (PyTorch, the reference), or
rag_<runtime>.json for another encoder runtime: its recall must stay within 1 point of PyTorch's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import bm25s
import numpy as np

from bench.encoder import encoder_for
from pipelines.engines.runtime import RUNTIMES
from pipelines.rag.index import Document, KnowledgeIndex
from pipelines.settings import Settings
from pipelines.text.sentences import split_sentences

REPO = Path(__file__).resolve().parents[1]


def load(eval_dir: Path) -> list[tuple[str, str, list[str]]]:
    """(document id, document, its reference sentences: the queries)."""
    rows = []
    for name in ("news.jsonl", "legal.jsonl"):
        for line in (eval_dir / name).open():
            row = json.loads(line)
            queries = [q for q in split_sentences(row["summary"]) if len(q.split()) >= 5]
            rows.append((f"{name.split('.')[0]}/{row['id']}", row["document"], queries))
    return rows


def recall_at(ranked: list[list[str]], expected: list[str], k: int = 5) -> float:
    return sum(exp in ids[:k] for ids, exp in zip(ranked, expected)) / len(expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    parser.add_argument("--fill", type=int, default=10_000)
    parser.add_argument("--chunk-words", type=int, default=120)
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch", help="encoder runtime (default: %(default)s)")
    args = parser.parse_args()
    rows = load(args.eval_dir)
    encoder = encoder_for(args.runtime, Settings(device="cpu"))
    with tempfile.TemporaryDirectory() as folder:
        index = KnowledgeIndex(Path(folder), "bench-encoder", encoder.dim, chunk_words=args.chunk_words)
        started = time.perf_counter()
        plan = index.add([Document(doc_id, text, {}) for doc_id, text, _ in rows], encoder.encode, progress=True)
        index_s = time.perf_counter() - started
        chunks = len(plan.texts)
        queries = [q for _, _, qs in rows for q in qs]
        expected = [doc_id for doc_id, _, qs in rows for _ in qs]
        query_vectors = encoder.encode(queries)
        dense = [[h.document_id for h in index.search(v, 5)] for v in query_vectors]

        # BM25 over exactly the same chunks.
        chunk_docs = [c.document_id for c in plan.chunks]
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(plan.texts, stopwords="en", show_progress=False), show_progress=False)
        results, _ = retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=5, show_progress=False)
        sparse = [[chunk_docs[int(i)] for i in row] for row in results]

        # Fill to the target size with random unit vectors, then time searches.
        rng = np.random.default_rng(0)
        filler = rng.normal(size=(max(0, args.fill - len(index)), encoder.dim)).astype(np.float32)
        filler /= np.linalg.norm(filler, axis=1, keepdims=True)
        fill_docs = [Document(f"filler/{i}", f"filler chunk {i}", {}) for i in range(len(filler))]
        fill_plan = index.plan(fill_docs)
        index.commit(fill_plan, filler[: len(fill_plan.texts)])
        latencies = []
        for vector in np.tile(query_vectors, (3, 1)):
            t0 = time.perf_counter()
            index.search(vector, 5)
            latencies.append((time.perf_counter() - t0) * 1000)
        quantiles = statistics.quantiles(latencies, n=100)
        result = {
            "documents": len(rows),
            "chunks": chunks,
            "queries": len(queries),
            "recall_at_1": recall_at(dense, expected, 1),
            "bm25_recall_at_1": recall_at(sparse, expected, 1),
            "recall_at_5": recall_at(dense, expected),
            "bm25_recall_at_5": recall_at(sparse, expected),
            "index_chunks_per_s": chunks / index_s,
            "search_chunks": len(index),
            "search_p50_ms": quantiles[49],
            "search_p95_ms": quantiles[94],
        }
    print(f"{len(rows)} documents, {chunks} chunks, {len(queries)} queries")
    for k in (1, 5):
        ours, bm25 = result[f"recall_at_{k}"], result[f"bm25_recall_at_{k}"]
        print(f"recall@{k}: dense {ours:.3f} vs BM25 {bm25:.3f} ({ours / max(bm25, 1e-9):.2f}x)")
    print(f"indexing: {result['index_chunks_per_s']:.1f} chunks/s (chunking, embedding and commit)")
    print(f"search at {result['search_chunks']} chunks: p50 {result['search_p50_ms']:.2f} ms, p95 {result['search_p95_ms']:.2f} ms")
    result["runtime"] = args.runtime
    out = REPO / "bench" / "results" / ("rag.json" if args.runtime == "torch" else f"rag_{args.runtime}.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}: the figures of docs/rag.md")


if __name__ == "__main__":
    main()

"""Durable jobs: throughput against the in-process pipeline, and memory against the job's size.

    .venv/bin/python -m bench.batch [--docs 10000] [--baseline-docs 10000] [--memory-docs 10000 100000]

1. throughput: a job of `--docs` short real documents (4-6 sentences of the eval set's news,
   over the style's budget, so every one is really scored) through `bentoml serve`, submitted
   by path, against `LocalPipeline.run` (the same pipeline class, in this process, batches of
   32) over the first `--baseline-docs` of the same documents. Target: job >= 0.8x in-process.
2. memory: jobs of each `--memory-docs` size on a fresh server, peak RSS of the whole server
   process tree (entry + model service) from submission through the results download, sampled
   every 0.2 s. These documents are one or two short sentences: the job machinery (ingest,
   claims, results, download) is what grows with the job, not the per-document model work.
   Target: within 10 percent.
Writes bench/results/batch.json. Absolute numbers on a shared 2-core machine are noise.

    .venv/bin/python -m bench.batch --database-url postgresql://postgres@127.0.0.1:5432/test

3. backends (issue 18; instead of 1 and 2): the same job of `--docs` documents on one replica
   with the SQLite store and with the PostgreSQL store (a fresh database per job, made through
   that URL's server), in the same run. Target: PostgreSQL >= 0.9x SQLite. Then the same job on
   two replicas of one database (submitted to one, worked by both; on 2 cores they share the
   CPU, so this shows the cost of coordination, not a speed-up), and the memory jobs of 2. on
   PostgreSQL (peak RSS of the one replica's tree). Tiny documents by default (`--corpus tiny`): the model's work is then
   smallest, so the store's share of the time, and any slowdown it brings, is largest.
   Writes bench/results/batch_backends.json.

    .venv/bin/python -m bench.batch --runtimes torch onnx-int8 --docs 2000

4. runtimes (issue 22; instead of 1 and 2): the same job of `--docs` short documents on one
   server per encoder runtime, one after the other, twice in alternating order; the best
   documents/s of each against the first runtime's. Writes bench/results/batch_runtimes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.fixtures.postgres import new_database
from tests.server.conftest import base_env, free_port, run_models_cli

REPO = Path(__file__).resolve().parents[1]
NEWS = REPO.parent / "shared" / "eval" / "news.jsonl"
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def eval_sentences() -> list[str]:
    """Real sentences (8-40 words) from the eval news set; a fixed fallback without it."""
    if not NEWS.is_file():
        return [f"The council discussed item {i} of the budget at length on Monday evening." for i in range(200)]
    sentences = []
    for line in NEWS.open():
        for s in SENTENCE.split(json.loads(line)["document"]):
            if 8 <= len(s.split()) <= 40:
                sentences.append(s.strip())
    return sentences


def write_corpus(path: Path, n: int, sentences: list[str], per_doc: tuple[int, int], seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            text = " ".join(rng.sample(sentences, rng.randint(*per_doc)))
            f.write(json.dumps({"id": f"d{i}", "text": text, "metadata": {"batch": seed}}) + "\n")


def tiny_sentences() -> list[str]:
    rng = random.Random(7)
    return [f"Ticket {rng.randint(1, 10**6)} was closed by the support team." for _ in range(500)]


def baseline(path: Path, limit: int) -> float:
    """In-process documents/s: LocalPipeline.run in batches of 32, the first `limit` documents."""
    from pipelines.batch.core import parse_line
    from pipelines.batch.inprocess import LocalPipeline

    pipeline = LocalPipeline()
    docs = [parse_line(line, i + 1) for i, line in zip(range(limit), path.open("rb"))]
    pipeline.run(docs[:32])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(docs), 32):
        pipeline.run(docs[i : i + 32])
    return len(docs) / (time.perf_counter() - started)


class Server:
    """`bentoml serve` with its own job store; samples the RSS of its process tree."""

    def __init__(
        self, home: Path, data_dir: Path, jobs_dir: Path, database_url: str | None = None, encoder_runtime: str | None = None
    ) -> None:
        port = free_port()
        env = base_env(home)
        env.update(SUMMARIZER_JOBS_DIR=str(jobs_dir), SUMMARIZER_JOBS_DATA_DIR=str(data_dir))
        if encoder_runtime:
            env["SUMMARIZER_ENCODER_RUNTIME"] = encoder_runtime
        if database_url:
            env["SUMMARIZER_DATABASE_URL"] = database_url
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", "service:Summarizer", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("server did not become ready")
        self.peak_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        root = psutil.Process(self.proc.pid)
        while self._sampling:
            try:
                procs = [root, *root.children(recursive=True)]
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.2)

    def run_job(self, file_name: str) -> dict[str, Any]:
        """Submit by path, wait for completion, download the results; timings and peak RSS."""
        self.peak_rss = 0
        self._sampler.start()
        submitted = time.perf_counter()
        response = httpx.post(f"{self.url}/jobs", json={"path": file_name}, timeout=600)
        response.raise_for_status()
        job_id = response.json()["id"]
        ingested = time.perf_counter()
        ingest_s = ingested - submitted
        # Timed here, polling every 0.25 s: the status's timestamps have whole seconds only.
        while (status := httpx.get(f"{self.url}/jobs/{job_id}", timeout=60).json())["status"] in ("queued", "running"):
            time.sleep(0.25)
        run_s = time.perf_counter() - ingested
        downloaded = time.perf_counter()
        ids = set()
        lines = 0
        with httpx.stream("GET", f"{self.url}/jobs/{job_id}/results", timeout=600) as stream:
            for line in stream.iter_lines():
                ids.add(json.loads(line)["id"])
                lines += 1
        download_s = time.perf_counter() - downloaded
        self._sampling = False
        self._sampler.join()
        return {
            "status": status["status"], "total": status["total"], "done": status["done"], "failed": status["failed"],
            "result_lines": lines, "unique_ids": len(ids), "ingest_s": round(ingest_s, 2), "run_s": round(run_s, 2),
            "docs_per_s": round(status["total"] / run_s, 2), "download_s": round(download_s, 2),
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
        }  # fmt: skip

    def stop(self) -> None:
        os.killpg(self.proc.pid, 15)
        self.proc.wait(timeout=60)


def one_job(home: Path, data: Path, jobs_dir: Path, file_name: str, database_url: str | None) -> dict[str, Any]:
    server = Server(home, data, jobs_dir, database_url)
    try:
        return server.run_job(file_name)
    finally:
        server.stop()


def two_replicas(home: Path, data: Path, root: Path, file_name: str, database_url: str) -> dict[str, Any]:
    """One job on two replicas of one database (each with a BentoML home over the same model store)."""
    other_home = root / "home-replica"
    other_home.mkdir()
    (other_home / "models").symlink_to(home / "models", target_is_directory=True)
    first = Server(home, data, root / "jobs-two-a", database_url)
    second = Server(other_home, data, root / "jobs-two-b", database_url)
    try:
        return first.run_job(file_name)
    finally:
        first.stop()
        second.stop()


def workspace(root: Path) -> tuple[Path, Path, Path]:
    """(root, a BentoML home holding the default models, an empty folder for job files) under `root`."""
    home, data = root / "home", root / "data"
    data.mkdir()
    run_models_cli(base_env(home), "import-default")
    return root, home, data


def compare_runtimes(args: argparse.Namespace) -> None:
    """4. in the docstring: one job per runtime, in the order given and then reversed."""
    with tempfile.TemporaryDirectory() as tmp:
        root, home, data = workspace(Path(tmp))
        write_corpus(data / "short.jsonl", args.docs, eval_sentences(), (4, 6), seed=1)
        runs: dict[str, list[dict[str, Any]]] = {r: [] for r in args.runtimes}
        for i, runtime in enumerate([*args.runtimes, *reversed(args.runtimes)]):
            server = Server(home, data, root / f"jobs-{i}", encoder_runtime=runtime)
            try:
                runs[runtime].append(server.run_job("short.jsonl"))
            finally:
                server.stop()
            print(f"{runtime}: {runs[runtime][-1]['docs_per_s']:.2f} docs/s; {runs[runtime][-1]}", flush=True)
    best = {r: max(job["docs_per_s"] for job in jobs) for r, jobs in runs.items()}
    reference = args.runtimes[0]
    ratios = {r: round(v / best[reference], 3) for r, v in best.items()}
    print(f"job of {args.docs} documents, best docs/s: {best}; x {reference}: {ratios}")
    out = REPO / "bench" / "results" / "batch_runtimes.json"
    out.write_text(json.dumps({"docs": args.docs, "runs": runs, "best_docs_per_s": best, f"x_{reference}": ratios}, indent=2))
    print(f"wrote {out.relative_to(REPO)}: the figures of docs/performance.md")


def compare_backends(args: argparse.Namespace) -> None:
    """3. in the docstring: SQLite against PostgreSQL on one replica, then memory on PostgreSQL."""
    with tempfile.TemporaryDirectory() as tmp:
        root, home, data = workspace(Path(tmp))
        if args.corpus == "tiny":
            write_corpus(data / "jobs.jsonl", args.docs, tiny_sentences(), (1, 2), seed=2)
        else:
            write_corpus(data / "jobs.jsonl", args.docs, eval_sentences(), (4, 6), seed=1)
        sqlite = one_job(home, data, root / "jobs-sqlite", "jobs.jsonl", None)
        print(f"SQLite job of {args.docs}: {sqlite['docs_per_s']} docs/s; {sqlite}", flush=True)
        with new_database(args.database_url) as url:
            postgres = one_job(home, data, root / "jobs-postgres", "jobs.jsonl", url)
        ratio = postgres["docs_per_s"] / sqlite["docs_per_s"]
        print(f"PostgreSQL job of {args.docs}: {postgres['docs_per_s']} docs/s = {ratio:.2f}x SQLite; {postgres}", flush=True)
        with new_database(args.database_url) as url:
            two = two_replicas(home, data, root, "jobs.jsonl", url)
        two_ratio = two["docs_per_s"] / postgres["docs_per_s"]
        print(f"two replicas, one job of {args.docs}: {two['docs_per_s']} docs/s = {two_ratio:.2f}x one replica; {two}", flush=True)
        memory = {}
        for n in args.memory_docs:
            write_corpus(data / f"tiny-{n}.jsonl", n, tiny_sentences(), (1, 2), seed=2)
            with new_database(args.database_url) as url:
                memory[n] = one_job(home, data, root / f"jobs-pg-{n}", f"tiny-{n}.jsonl", url)
            print(f"PostgreSQL memory job of {n}: peak RSS {memory[n]['peak_rss_mib']} MiB; {memory[n]}", flush=True)
    sizes = sorted(memory)
    growth = memory[sizes[-1]]["peak_rss_mib"] / memory[sizes[0]]["peak_rss_mib"] if len(sizes) > 1 else 1.0
    print(f"PostgreSQL peak RSS {sizes[-1]} vs {sizes[0]} documents: {growth:.3f}x")
    result = {"corpus": args.corpus, "docs": args.docs, "sqlite": sqlite, "postgres": postgres, "ratio": round(ratio, 3),
              "two_replicas": two, "two_replicas_ratio": round(two_ratio, 3), "memory": memory,
              "memory_growth": round(growth, 3)}  # fmt: skip
    out = REPO / "bench" / "results" / "batch_backends.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}: the figures of docs/scaling.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--baseline-docs", type=int, default=10_000)
    parser.add_argument("--memory-docs", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--database-url", help="compare the SQLite and PostgreSQL job stores (3. above)")
    parser.add_argument("--corpus", choices=["tiny", "short"], default="tiny", help="documents of the comparison")
    parser.add_argument("--runtimes", nargs="+", help="compare encoder runtimes on the same job (4. above)")
    args = parser.parse_args()
    if args.database_url:
        compare_backends(args)
        return
    if args.runtimes:
        compare_runtimes(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root, home, data = workspace(Path(tmp))
        os.environ["BENTOML_HOME"] = str(home)  # the in-process baseline loads the same stored model
        write_corpus(data / "short.jsonl", args.docs, eval_sentences(), (4, 6), seed=1)
        in_process = baseline(data / "short.jsonl", min(args.baseline_docs, args.docs))
        print(f"in-process LocalPipeline: {in_process:.2f} docs/s", flush=True)
        server = Server(home, data, root / "jobs-throughput")
        try:
            job = server.run_job("short.jsonl")
        finally:
            server.stop()
        ratio = job["docs_per_s"] / in_process
        print(f"job of {args.docs}: {job['docs_per_s']:.2f} docs/s = {ratio:.2f}x in-process; {job}", flush=True)
        memory = {}
        for n in args.memory_docs:
            write_corpus(data / f"tiny-{n}.jsonl", n, tiny_sentences(), (1, 2), seed=2)
            server = Server(home, data, root / f"jobs-{n}")
            try:
                memory[n] = server.run_job(f"tiny-{n}.jsonl")
            finally:
                server.stop()
            print(f"memory job of {n}: peak RSS {memory[n]['peak_rss_mib']} MiB; {memory[n]}", flush=True)
    sizes = sorted(memory)
    growth = memory[sizes[-1]]["peak_rss_mib"] / memory[sizes[0]]["peak_rss_mib"] if len(sizes) > 1 else 1.0
    if len(sizes) > 1:
        print(f"peak RSS {sizes[-1]} vs {sizes[0]} documents: {growth:.3f}x")
    result = {"in_process_docs_per_s": round(in_process, 2), "job": job, "ratio": round(ratio, 3),
              "memory": memory, "memory_growth": round(growth, 3)}  # fmt: skip
    out = REPO / "bench" / "results" / "batch.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out.relative_to(REPO)}: the figures of docs/performance.md")


if __name__ == "__main__":
    main()

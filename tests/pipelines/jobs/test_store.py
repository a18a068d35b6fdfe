"""The job store contract, run against both backends (SQLite, PostgreSQL): ingest, claims,
retries with backoff, recovery, control and streams. Tests that need a fake clock run on SQLite
(PostgreSQL's store reads the database's clock); the PostgreSQL-only behaviour (leases across
replicas) is in test_postgres.py."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

import pipelines.jobs.records as records_module
import pipelines.jobs.store as jobs_module
from pipelines.batch.core import BatchDocument, BatchResult
from pipelines.errors import BadInput, Conflict, ModelError, NotFound, NotReady, Overloaded
from pipelines.jobs.postgres import PostgresJobStore
from pipelines.jobs.records import Claimed, JobStorage, RetryPolicy, behind_schedule
from pipelines.jobs.store import JobStore
from pipelines.postgres.pool import Database

SECRET = "jane.doe.secret@example.com"


class FakeClock:
    """Stands in for the `time` module inside pipelines.jobs.store, so backoff and rates are exact."""

    strftime = staticmethod(time.strftime)
    gmtime = staticmethod(time.gmtime)

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(jobs_module, "time", fake)
    monkeypatch.setattr(records_module, "time", fake)
    return fake


MakeStore = Callable[..., JobStorage]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Stores of the backend under test; PostgreSQL ones share one fresh database."""
    if request.param == "sqlite":
        yield lambda **kw: JobStore(tmp_path / "store", **kw)
        return
    db = Database(request.getfixturevalue("database_url"), pool_size=4)
    yield lambda **kw: PostgresJobStore(db, tmp_path / "spool", **kw)
    db.close()


@pytest.fixture
def store(make_store: MakeStore) -> JobStorage:
    return make_store()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "store")


def line(doc_id: str, text: str | None = None, **fields: object) -> str:
    return json.dumps({"id": doc_id, "text": text or f"Text of {doc_id}. More words.", **fields})


def write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(end.join(lines).encode() + end.encode())
    return path


def submit(store: JobStorage, lines: list[str], style: str | None = None) -> str:
    job_id, path = store.new_upload_path()
    write(path, lines)
    store.create(job_id, path, "upload", style)
    return job_id


def ok(claim: Claimed) -> BatchResult:
    return BatchResult(id=claim.doc_id, summary=f"summary of {claim.doc_id}", style="news")


def rows(store: JobStorage, sql: str, *args: object) -> list[tuple[object, ...]]:
    """A query on either backend, written for SQLite (its table names and ? parameters)."""
    if isinstance(store, JobStore):
        with closing(sqlite3.connect(store.path)) as db:
            return db.execute(sql, args).fetchall()
    assert isinstance(store, PostgresJobStore)
    sql = sql.replace("?", "%s").replace("FROM documents", "FROM job_documents").replace("FROM invalid_lines", "FROM job_invalid_lines")
    with psycopg.connect(store.db.url) as db:
        return [tuple(row) for row in db.execute(sql, args).fetchall()]


def read(store: JobStorage, job_id: str, claimed: list[Claimed]) -> list[BatchDocument | BadInput]:
    return store.read(store.get(job_id), claimed)


def results(store: JobStorage, job_id: str) -> list[dict[str, object]]:
    return [json.loads(r) for r in "".join(store.results(job_id)).splitlines()]


# -- ingest ------------------------------------------------------------------------------------


def test_ingest_counts_good_lines_and_records_each_invalid_line_with_its_reason(store: JobStorage) -> None:
    lines = [
        line("a"),  # 1
        "",  # 2 blank
        f'{{"id": "b", "text": "{SECRET}"',  # 3 bad JSON
        f'["{SECRET}"]',  # 4 not an object
        json.dumps({"id": "m", "body": SECRET}),  # 5 no text
        line("b"),  # 6
        "   \t",  # 7 blank
        line("a", f"again {SECRET}"),  # 8 duplicate of line 1
        line("c", style="legal"),  # 9
    ]
    job_id, path = store.new_upload_path()
    write(path, lines)
    job = store.create(job_id, path, "upload", "casual")

    assert (job.id, job.status, job.total, job.invalid, job.default_style) == (job_id, "queued", 3, 4, "casual")
    if isinstance(store, JobStore):
        assert job.input_size == path.stat().st_size and job.input_path == path
    invalid = [json.loads(x) for x in "".join(store.invalid_lines(job_id)).splitlines()]
    assert [x["line"] for x in invalid] == [3, 4, 5, 8]
    reasons = [x["error"] for x in invalid]
    assert "not valid JSON" in reasons[0]
    assert "JSON object" in reasons[1] and "list" in reasons[1]
    assert "text: Field required" in reasons[2]
    assert "duplicate id 'a' (first on line 1)" in reasons[3]
    status = store.status(job_id)
    assert status["invalid_lines"] == 4 and status["invalid"] == invalid
    assert SECRET not in json.dumps(invalid) and SECRET not in json.dumps(status)

    # Each document is found again by its offset, the last line included.
    claimed = store.claim(job_id, 10)
    assert [(c.doc_id, c.line) for c in claimed] == [("a", 1), ("b", 6), ("c", 9)]
    docs = read(store, job_id, claimed)
    assert docs == [BatchDocument(id="a", text="Text of a. More words."), BatchDocument(id="b", text="Text of b. More words."),
                    BatchDocument(id="c", text="Text of c. More words.", style="legal")]  # fmt: skip


def test_crlf_lines_a_bom_and_a_missing_final_newline_are_fine(store: JobStorage, tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line("first").encode() + b"\r\n\r\n" + line("second").encode())
    job = store.create("job-crlf", path, "path:windows.jsonl", None)
    assert (job.total, job.invalid) == (2, 0)
    docs = read(store, job.id, store.claim(job.id, 5))
    assert [d.id for d in docs if isinstance(d, BatchDocument)] == ["first", "second"]


@pytest.mark.parametrize("final_newline", [True, False])
def test_a_line_over_the_cap_is_an_invalid_line_and_the_lines_after_it_still_count(
    make_store: MakeStore, tmp_path: Path, final_newline: bool
) -> None:
    store = make_store(max_line_bytes=200)
    long_line = line("long", "word " * 100)
    at_cap = json.dumps({"id": "at-cap", "text": "x" * (200 - len('{"id": "at-cap", "text": ""}'))})
    assert len(at_cap) == 200 and len(long_line) > 200
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join([line("first"), long_line, at_cap, long_line * 3, line("last")]) + ("\n" if final_newline else ""))
    job = store.create("job-long", path, "path:big.jsonl", None)
    assert (job.total, job.invalid) == (3, 2)
    assert [r[0] for r in rows(store, "SELECT line FROM invalid_lines ORDER BY line")] == [2, 4]
    assert "longer than 200 bytes" in str(rows(store, "SELECT error FROM invalid_lines ORDER BY line")[0][0])
    docs = read(store, job.id, store.claim(job.id, 5))
    assert [d.id for d in docs if isinstance(d, BatchDocument)] == ["first", "at-cap", "last"]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", f'{{"id": "x", "text": "{SECRET}"\nnot json\n[1]\n'.encode()])
def test_a_file_without_one_valid_document_is_rejected_and_leaves_nothing(store: JobStorage, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(BadInput, match="no valid document") as caught:
        store.create("job-x", path, "upload", None)
    assert SECRET not in caught.value.message
    assert store.all() == []
    assert rows(store, "SELECT COUNT(*) FROM invalid_lines") == [(0,)] and rows(store, "SELECT COUNT(*) FROM documents") == [(0,)]
    with pytest.raises(NotFound):
        store.get("job-x")
    # The id is free again: nothing half-registered is in the way.
    write(path, [line("ok")])
    assert store.create("job-x", path, "upload", None).total == 1


def test_invalid_line_messages_are_summarized_when_the_job_is_rejected(store: JobStorage, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", ["nope", "[1]", "{}", "{", "5"])
    with pytest.raises(BadInput) as caught:
        store.create("job-y", path, "upload", None)
    message = caught.value.message
    assert "5 invalid lines" in message and "line 1:" in message and "line 3:" in message and "line 4:" not in message


def test_a_deeply_nested_line_is_an_invalid_line_not_a_crash(store: JobStorage, tmp_path: Path) -> None:
    path = write(tmp_path / "deep.jsonl", [line("a"), "[" * 100_000])
    job = store.create("job-deep", path, "upload", None)
    assert (job.total, job.invalid) == (1, 1)


# -- claims, records, retries ------------------------------------------------------------------


def test_claims_come_in_line_order_and_never_twice(store: JobStorage) -> None:
    ids = [f"{chr(ord('z') - i)}-{i}" for i in range(10)]  # not sorted by id
    job_id = submit(store, [line(i) for i in ids])
    batches = [store.claim(job_id, 3) for _ in range(4)]
    assert [[c.doc_id for c in b] for b in batches] == [ids[0:3], ids[3:6], ids[6:9], ids[9:]]
    assert [c.line for b in batches for c in b] == list(range(1, 11))
    assert store.claim(job_id, 3) == []
    assert store.get(job_id).counts == {"running": 10}


def claim_at_once(stores: list[JobStorage], job_id: str, batch: int, timeout_s: float = 60.0) -> list[list[str]]:
    """One thread per store claiming batches until none is left; the ids each one got."""
    taken: list[list[str]] = [[] for _ in stores]

    def claimer(k: int) -> None:
        while claimed := stores[k].claim(job_id, batch):
            taken[k] += [c.doc_id for c in claimed]

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s)
    return taken


def test_concurrent_claimers_split_the_documents_without_overlap(store: JobStorage) -> None:
    job_id = submit(store, [line(f"d{i}") for i in range(120)])
    everything = [d for part in claim_at_once([store] * 4, job_id, 7) for d in part]
    assert sorted(everything) == sorted(f"d{i}" for i in range(120)) and len(everything) == 120


def test_record_stores_success_and_permanent_errors_and_backs_off_transient_ones(sqlite_store: JobStore, clock: FakeClock) -> None:
    store = sqlite_store
    job_id = submit(store, [line(i) for i in ("ok", "bad", "busy", "down")])
    claimed = store.claim(job_id, 4)
    outcomes = [ok(claimed[0]), BatchResult.failed("bad", BadInput("text is empty")),
                BatchResult.failed("busy", Overloaded("queue full")), BatchResult.failed("down", NotReady())]  # fmt: skip
    policy = RetryPolicy(max_attempts=3, backoff_s=10.0, backoff_max_s=15.0)
    store.record(job_id, claimed, outcomes, policy)

    assert store.get(job_id).counts == {"done": 1, "failed": 1, "pending": 2}
    finished = results(store, job_id)
    assert [(r["id"], r["line"]) for r in finished] == [("ok", 1), ("bad", 2)]
    assert finished[0]["summary"] == "summary of ok" and "error" not in finished[0]
    assert finished[1]["error"] == {"type": "BadInput", "message": "text is empty", "status": 400}
    # Transient: pending again, due after the policy's delay, not before.
    assert store.next_due(job_id) == clock.now + policy.delay(1) == clock.now + 10.0
    assert rows(store, "SELECT doc_id, attempts, status FROM documents WHERE attempts > 0 ORDER BY line") == [
        ("ok", 1, "done"), ("bad", 1, "failed"), ("busy", 1, "pending"), ("down", 1, "pending")]  # fmt: skip
    t0 = clock.now
    clock.now = t0 + 9.99
    assert store.claim(job_id, 4) == []
    clock.now = t0 + 10.0
    again = store.claim(job_id, 4)
    assert [(c.doc_id, c.attempts) for c in again] == [("busy", 1), ("down", 1)]

    # Second transient failure: the delay doubles, capped at backoff_max_s.
    store.record(job_id, again, [BatchResult.failed(c.doc_id, Overloaded("still full")) for c in again], policy)
    assert store.next_due(job_id) == clock.now + 15.0 == clock.now + policy.delay(2)
    clock.now += 15.0
    last = store.claim(job_id, 4)
    # Third: max_attempts reached, the transient error is the result.
    store.record(job_id, last, [BatchResult.failed("busy", Overloaded("gave up")), ok(last[1])], policy)
    assert store.get(job_id).counts == {"done": 2, "failed": 2}
    assert store.next_due(job_id) is None
    by_id = {r["id"]: r for r in results(store, job_id)}
    assert by_id["busy"]["error"] == {"type": "Overloaded", "message": "gave up", "status": 429} and by_id["busy"]["line"] == 3
    assert by_id["down"]["summary"] == "summary of down"
    assert rows(store, "SELECT attempts FROM documents WHERE doc_id = 'busy'") == [(3,)]


def test_retry_policy_delay_doubles_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=9, backoff_s=2.0, backoff_max_s=20.0)
    assert [policy.delay(n) for n in range(0, 6)] == [2.0, 2.0, 4.0, 8.0, 16.0, 20.0]


def test_recover_puts_running_back_and_a_stale_record_never_doubles_a_result(store: JobStorage) -> None:
    job_id = submit(store, [line(f"d{i}") for i in range(6)])
    dead_runner = store.claim(job_id, 3)
    assert store.recover() == 3
    assert store.get(job_id).counts == {"pending": 6}
    new_runner = store.claim(job_id, 10)
    assert [c.doc_id for c in new_runner] == [f"d{i}" for i in range(6)]
    store.record(job_id, new_runner, [ok(c) for c in new_runner], RetryPolicy())
    # The runner that was thought dead reports late: its results must not replace or add lines.
    store.record(job_id, dead_runner, [BatchResult.failed(c.doc_id, ModelError()) for c in dead_runner], RetryPolicy())
    finished = results(store, job_id)
    assert [r["id"] for r in finished] == [f"d{i}" for i in range(6)]
    assert all("error" not in r for r in finished)
    assert store.recover() == 0


def test_results_stream_in_line_order_with_one_line_per_document(store: JobStorage) -> None:
    ids = [f"doc-{i:03d}" for i in range(700)]  # more than one cursor page
    job_id = submit(store, [line(i) for i in reversed(ids)])
    claimed = store.claim(job_id, 1000)
    # Recorded in scattered batches, out of order.
    for part in (claimed[500:], claimed[:100], claimed[300:500], claimed[100:300]):
        store.record(job_id, part[::-1], [ok(c) for c in part[::-1]], RetryPolicy())
    finished = results(store, job_id)
    assert [r["id"] for r in finished] == list(reversed(ids))
    assert [r["line"] for r in finished] == list(range(1, 701))


def test_release_returns_claims_unprocessed(store: JobStorage) -> None:
    job_id = submit(store, [line(f"d{i}") for i in range(4)])
    claimed = store.claim(job_id, 2)
    store.release(job_id, claimed)
    assert store.get(job_id).counts == {"pending": 4}
    assert [c.doc_id for c in store.claim(job_id, 4)] == ["d0", "d1", "d2", "d3"]
    assert rows(store, "SELECT MAX(attempts) FROM documents") == [(0,)]


def test_read_reports_a_line_of_the_file_that_no_longer_parses(sqlite_store: JobStore) -> None:
    store = sqlite_store
    job_id = submit(store, [line("a"), line("b")])
    path = store.get(job_id).input_path
    assert path is not None
    claimed = store.claim(job_id, 2)
    data = path.read_bytes()
    path.write_bytes(data[: claimed[1].offset] + b"#" * (len(data) - claimed[1].offset))
    docs = read(store, job_id, claimed)
    assert isinstance(docs[0], BatchDocument) and isinstance(docs[1], BadInput) and "line 2" in docs[1].message


# -- status ------------------------------------------------------------------------------------


def test_status_counts_percent_rate_and_eta(sqlite_store: JobStore, clock: FakeClock) -> None:
    store = sqlite_store
    job_id = submit(store, [line(f"d{i}") for i in range(8)], style="legal")
    queued = store.status(job_id)
    assert (queued["status"], queued["total"], queued["done"], queued["failed"], queued["pending"]) == ("queued", 8, 0, 0, 8)
    assert (queued["percent"], queued["rate_docs_per_s"], queued["eta_s"]) == (0.0, 0.0, None)
    assert queued["default_style"] == "legal" and queued["results"] == f"/jobs/{job_id}/results"
    assert queued["created_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now)) and queued["started_at"] is None

    store.start(job_id)
    started = store.status(job_id)
    assert started["status"] == "running" and started["rate_docs_per_s"] == 0.0 and started["eta_s"] is None

    clock.now += 10
    claimed = store.claim(job_id, 3)
    store.record(job_id, claimed, [ok(claimed[0]), ok(claimed[1]), BatchResult.failed("d2", BadInput("empty"))], RetryPolicy())
    clock.now += 10
    s = store.status(job_id)
    assert (s["done"], s["failed"], s["pending"], s["percent"]) == (2, 1, 5, 37.5)
    assert s["rate_docs_per_s"] == 0.15  # 3 documents in the 20 s since the run started
    assert s["eta_s"] == round(5 / 0.15, 1)

    clock.now += 120  # nothing finished in the last minute
    idle = store.status(job_id)
    assert idle["rate_docs_per_s"] == 0.0 and idle["eta_s"] is None

    rest = store.claim(job_id, 10)
    store.record(job_id, rest, [ok(c) for c in rest], RetryPolicy())
    store.finish(job_id, "completed")
    done = store.status(job_id)
    assert (done["status"], done["done"], done["pending"], done["percent"], done["eta_s"]) == ("completed", 7, 0, 100.0, None)
    assert done["finished_at"] is not None and done["error"] is None


@pytest.mark.parametrize(
    ("deadline", "remaining", "rate", "now", "behind"),
    [
        (None, 100, 1.0, 0.0, False),  # no deadline: never behind
        (None, 100, None, 10**9, False),
        (100.0, 50, 1.0, 0.0, False),  # done at 50, due at 100
        (100.0, 100, 1.0, 0.0, False),  # done exactly on time
        (100.0, 101, 1.0, 0.0, True),  # one document too many at this rate
        (100.0, 30, 0.5, 50.0, True),  # 60 s left to do, 50 s to go
        (100.0, 100, None, 0.0, False),  # no rate measured yet: no evidence
        (100.0, 100, 0.0, 99.0, False),  # nothing finished lately: no evidence either
        (100.0, 100, None, 100.0, True),  # ... until the deadline passes
        (100.0, 1, 1000.0, 150.0, True),  # past it, however fast
        (100.0, 0, None, 150.0, False),  # nothing left: not behind
    ],
)
def test_behind_schedule(deadline: float | None, remaining: int, rate: float | None, now: float, behind: bool) -> None:
    assert behind_schedule(deadline, remaining, rate, now) is behind


def test_a_deadline_is_stored_and_reported(store: JobStorage) -> None:
    due = 2_000_000_000.25  # 2033-05-18T03:33:20Z and a quarter
    job_id, path = store.new_upload_path()
    write(path, [line("a"), line("b")])
    created = store.create(job_id, path, "upload", None, due)
    plain = submit(store, [line("c")])
    assert created.deadline == store.get(job_id).deadline == due
    assert {j.id: j.deadline for j in store.all()} == {job_id: due, plain: None}
    status = store.status(job_id)
    assert (status["deadline"], status["behind_schedule"]) == ("2033-05-18T03:33:20Z", False)
    assert (store.status(plain)["deadline"], store.status(plain)["behind_schedule"]) == (None, False)


def test_the_status_says_when_a_job_is_behind_its_deadline(sqlite_store: JobStore, clock: FakeClock) -> None:
    store = sqlite_store
    job_id, path = store.new_upload_path()
    write(path, [line(f"d{i}") for i in range(8)])
    store.create(job_id, path, "upload", None, clock.now + 100)
    assert store.status(job_id)["behind_schedule"] is False  # queued, no rate, deadline ahead

    def finish(n: int) -> None:
        claimed = store.claim(job_id, n)
        store.record(job_id, claimed, [ok(c) for c in claimed], RetryPolicy())

    store.start(job_id)
    clock.now += 10
    finish(2)
    clock.now += 10  # 2 documents in 20 s: 6 left take 60 s, done at +80
    assert store.status(job_id)["behind_schedule"] is False
    clock.now += 30  # 2 in 50 s: 6 left take 150 s, done at +200
    assert store.status(job_id)["behind_schedule"] is True
    clock.now += 60  # nothing in the last minute and the deadline has passed
    assert store.status(job_id)["rate_docs_per_s"] == 0.0 and store.status(job_id)["behind_schedule"] is True
    finish(6)
    store.finish(job_id, "completed")
    assert store.status(job_id)["behind_schedule"] is False  # finished: no longer scheduled


# -- an older store file -----------------------------------------------------------------------


def old_store_file(root: Path) -> Path:
    """A store file as the release before deadlines made it: one job, two documents."""
    old_schema = jobs_module.SCHEMA.replace(",\n    deadline REAL", "")
    assert old_schema != jobs_module.SCHEMA
    root.mkdir(parents=True)
    corpus = write(root / "inputs" / "job-old.jsonl", [line("a"), line("b")])
    with closing(sqlite3.connect(root / "jobs.sqlite3")) as db, db:
        db.executescript(old_schema)
        stat = corpus.stat()
        db.execute(
            "INSERT INTO jobs VALUES ('job-old', 1, 'queued', 'upload', ?, ?, ?, NULL, 2, 0, 1000.0, NULL, NULL, NULL, NULL)",
            (str(corpus), stat.st_size, stat.st_mtime_ns),
        )
        db.executemany(
            "INSERT INTO documents (job_id, doc_id, line, offset, length) VALUES ('job-old', ?, ?, ?, ?)",
            [("a", 1, 0, len(line("a")) + 1), ("b", 2, len(line("a")) + 1, len(line("b")) + 1)],
        )
    return root


def columns(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[1] for row in db.execute("PRAGMA table_info(jobs)")]


def test_a_store_file_from_before_deadlines_gets_the_column_and_keeps_its_jobs(tmp_path: Path) -> None:
    root = old_store_file(tmp_path / "store")
    assert "deadline" not in columns(root / "jobs.sqlite3")
    store = JobStore(root)
    assert columns(root / "jobs.sqlite3")[-1] == "deadline"
    old = store.get("job-old")
    assert (old.status, old.total, old.deadline, old.counts) == ("queued", 2, None, {"pending": 2})
    assert (store.status("job-old")["deadline"], store.status("job-old")["behind_schedule"]) == (None, False)
    claimed = store.claim("job-old", 5)
    assert read(store, "job-old", claimed) == [BatchDocument(id="a", text="Text of a. More words."),
                                               BatchDocument(id="b", text="Text of b. More words.")]  # fmt: skip
    # New jobs beside it carry their deadline; opening the file again changes nothing.
    job_id, path = store.new_upload_path()
    write(path, [line("c")])
    store.create(job_id, path, "upload", None, 2_000_000_000.0)
    store.close()
    again = JobStore(root)
    assert [(j.id, j.deadline) for j in again.all()] == [(job_id, 2_000_000_000.0), ("job-old", None)]
    assert columns(root / "jobs.sqlite3").count("deadline") == 1
    again.close()


def test_workers_opening_an_old_store_file_at_once_add_the_column_once(tmp_path: Path) -> None:
    root = old_store_file(tmp_path / "store")
    barrier = threading.Barrier(4)
    stores: list[JobStore] = []

    def open_store() -> None:
        barrier.wait()
        stores.append(JobStore(root))

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stores) == 4 and all(s.get("job-old").deadline is None for s in stores)
    assert columns(root / "jobs.sqlite3").count("deadline") == 1
    for s in stores:
        s.close()


def test_a_row_without_the_added_column_reads_as_no_deadline() -> None:
    """What a read-only view of an old file that could not be upgraded returns (`SELECT *`)."""
    row = ("job-old", 1, "queued", "upload", "/x.jsonl", 10, 1, None, 2, 0, 1000.0, None, None, None, None)
    assert JobStore._job(row, {}).deadline is None
    assert JobStore._job((*row, 5.0), {}).deadline == 5.0


def test_next_job_resumes_a_running_job_before_older_queued_ones(store: JobStorage) -> None:
    first = submit(store, [line("a")])
    second = submit(store, [line("b")])
    next_job = store.next_job()
    assert next_job is not None and next_job.id == first
    store.start(second)
    resumed = store.next_job()
    assert resumed is not None and resumed.id == second
    assert [j.id for j in store.all()] == [second, first]


# -- control -----------------------------------------------------------------------------------


def test_cancel_queued_or_running_keeps_results_and_refuses_finished_jobs(store: JobStorage) -> None:
    queued = submit(store, [line("a")])
    assert store.cancel(queued).status == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        store.cancel(queued)

    running = submit(store, [line("a"), line("b")])
    store.start(running)
    claimed = store.claim(running, 1)
    store.record(running, claimed, [ok(claimed[0])], RetryPolicy())
    cancelled = store.cancel(running)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert cancelled.counts == {"done": 1, "pending": 1}
    assert [r["id"] for r in results(store, running)] == ["a"]
    store.finish(running, "completed")  # a runner finishing late does not undo the cancel
    assert store.job_status(running) == "cancelled"

    completed = submit(store, [line("a")])
    store.start(completed)
    claimed = store.claim(completed, 1)
    store.record(completed, claimed, [ok(claimed[0])], RetryPolicy())
    store.finish(completed, "completed")
    with pytest.raises(Conflict, match="already completed"):
        store.cancel(completed)


def test_delete_refuses_unfinished_jobs_then_removes_rows_and_the_upload(store: JobStorage) -> None:
    job_id = submit(store, [line("a"), "junk", line("b")])
    upload = store.get(job_id).input_path or store.inputs / f"{job_id}.jsonl"
    assert upload.parent == store.inputs
    # SQLite reads the upload by offset while the job runs; PostgreSQL copied its lines in.
    assert upload.exists() == isinstance(store, JobStore)
    with pytest.raises(Conflict, match="cancel it before deleting"):
        store.delete(job_id)
    store.start(job_id)
    with pytest.raises(Conflict):
        store.delete(job_id)
    store.cancel(job_id)
    store.delete(job_id)
    assert not upload.exists()
    for table, key in (("documents", "job_id"), ("invalid_lines", "job_id"), ("jobs", "id")):
        assert rows(store, f"SELECT COUNT(*) FROM {table} WHERE {key} = ?", job_id) == [(0,)]
    with pytest.raises(NotFound):
        store.get(job_id)


def test_delete_keeps_a_file_that_was_submitted_by_path(store: JobStorage, tmp_path: Path) -> None:
    path = write(tmp_path / "data" / "corpus.jsonl", [line("a")])
    job = store.create("job-path", path, "path:corpus.jsonl", None)
    store.cancel(job.id)
    store.delete(job.id)
    assert path.exists() and store.all() == []


def test_unknown_jobs_are_not_found(store: JobStorage) -> None:
    submit(store, [line("a")])
    for call in (store.get, store.status, store.job_status, store.cancel, store.delete,
                 lambda j: list(store.results(j)), lambda j: list(store.invalid_lines(j))):  # fmt: skip
        with pytest.raises(NotFound, match="job-nope"):
            call("job-nope")

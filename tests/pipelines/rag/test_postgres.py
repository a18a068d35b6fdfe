"""The PostgreSQL backend: replicas sharing one database, exact search, the in-memory copy's
reloads, and the database going away and coming back. The contract both backends share is in
test_contract.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest
from psycopg import sql

from pipelines.errors import ConfigError
from pipelines.postgres.connection import DatabaseUnavailable
from pipelines.postgres.pool import Database
from pipelines.rag import postgres as rag_pg
from pipelines.rag.backend import open_index, open_recorded
from pipelines.rag.index import Document, IndexCorrupt, KnowledgeIndex
from pipelines.rag.postgres import PostgresIndex
from tests.fixtures.postgres import ADMIN_URL
from tests.pipelines.rag.fakes import DIM, DOCS, TAG, FakeEmbed, query

Replica = Callable[..., PostgresIndex]


@pytest.fixture
def databases(database_url: str) -> Iterator[list[Database]]:
    """Opened Databases (one per replica), closed after the test."""
    opened: list[Database] = []
    yield opened
    for db in opened:
        db.close()


@pytest.fixture
def replica(database_url: str, databases: list[Database]) -> Iterator[Replica]:
    """Call it for an index on the test's database with a connection pool of its own, as a replica has."""

    def make(tag: str = TAG, dim: int = DIM) -> PostgresIndex:
        databases.append(Database(database_url, pool_size=2, timeout_s=1.0))
        return PostgresIndex(databases[-1], tag, dim)

    yield make


def test_two_replicas_share_one_index(replica: Replica) -> None:
    a, b = replica(), replica()
    a.add(DOCS, FakeEmbed())
    assert b.search(query("why do cats purr"), 1)[0].document_id == "cats.md"
    a.add([Document("cats.md", "# Cats\n\nCats sleep sixteen hours a day.")], FakeEmbed())
    assert b.search(query("cats sleep"), 1)[0].text == "Cats sleep sixteen hours a day."
    assert b.delete(["cats.md"]) == ["cats.md"]
    assert all(h.document_id != "cats.md" for h in a.search(query("cats sleep"), 10)) and len(a) == 2


def test_search_is_exact(replica: Replica) -> None:
    """The same ranking and scores as a brute-force cosine over every stored vector."""
    rng = np.random.default_rng(7)
    index = replica()
    docs = [Document(f"note-{i:04d}.txt", f"Note number {i}.") for i in range(600)]
    plan = index.plan(docs)
    stored = rng.normal(size=(len(plan.texts), DIM)).astype(np.float32)
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    index.commit(plan, stored)
    reader = replica()
    for q in rng.normal(size=(20, DIM)).astype(np.float32):
        q /= np.linalg.norm(q)
        scores = stored @ q
        best = np.argsort(-scores)[:10]
        hits = reader.search(q, 10)
        assert [h.document_id for h in hits] == [plan.chunks[i].document_id for i in best]
        assert np.allclose([h.score for h in hits], scores[best], atol=1e-5)


def test_a_reload_reads_only_what_changed_and_matches_a_fresh_load(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = replica(), replica()
    writer.add([Document(f"d{i}.txt", f"Document {i} says thing {i}.") for i in range(20)], FakeEmbed())
    assert len(reader) == 20
    read: list[int] = []
    real = PostgresIndex._new_chunks

    def counted(self: PostgresIndex, *args: object) -> tuple[list[int], np.ndarray]:
        ids, vectors = real(self, *args)  # type: ignore[arg-type]
        read.append(len(ids))
        return ids, vectors

    monkeypatch.setattr(PostgresIndex, "_new_chunks", counted)
    writer.add([Document("d3.txt", "Document three was rewritten.")], FakeEmbed())
    writer.delete(["d5.txt", "d6.txt"])
    writer.add([Document("new.txt", "A new document arrives.")], FakeEmbed())
    assert len(reader) == 19 and read == [2]  # one reload: the rewritten and the new document's chunks
    fresh = replica()
    assert reader.documents() == fresh.documents()
    for text in ("document three rewritten", "thing 5", "new document arrives", "thing 12"):
        assert reader.search(query(text), 5) == fresh.search(query(text), 5)


def test_a_database_restored_to_an_older_generation_is_loaded_again(replica: Replica, database_url: str) -> None:
    index = replica()
    index.add(DOCS, FakeEmbed())
    index.add([Document("cats.md", "Cats changed.")], FakeEmbed())
    assert len(index) == 3
    with psycopg.connect(database_url) as conn:  # as if restored from a backup taken after the first write
        conn.execute("DELETE FROM rag_documents WHERE id = 'tax.txt'")
        conn.execute("UPDATE rag_meta SET generation = 1")
    assert [d.id for d in index.documents()] == ["cats.md", "dogs.md"] and len(index) == 2


def test_a_damaged_vector_is_named(replica: Replica, database_url: str) -> None:
    replica().add(DOCS, FakeEmbed())
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE rag_chunks SET vector = '\\x00'::bytea WHERE document_id = 'dogs.md'")
    with pytest.raises(IndexCorrupt, match="of 'dogs.md' in postgresql://.* holds 1 bytes, not 32 float32 values"):
        replica().search(query("dogs"), 1)


def _allow_connections(database_url: str, allowed: bool) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(sql.Identifier(name), sql.Literal(allowed)))
        if not allowed:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])


def test_a_database_that_refuses_connections_is_a_503_and_recovers_without_restart(
    replica: Replica, database_url: str
) -> None:
    index = replica()
    index.add(DOCS, FakeEmbed())
    _allow_connections(database_url, False)
    try:
        for call in (lambda: index.search(query("cats purr"), 1), lambda: index.add(DOCS, FakeEmbed()), index.documents):
            with pytest.raises(DatabaseUnavailable) as raised:
                call()
            assert raised.value.status_code == 503
    finally:
        _allow_connections(database_url, True)
    assert index.search(query("cats purr"), 1)[0].document_id == "cats.md"
    assert index.delete(["tax.txt"]) == ["tax.txt"] and len(index) == 2


def test_open_index_picks_the_backend(tmp_path: Path, database_url: str, databases: list[Database]) -> None:
    databases.append(Database(database_url))
    db = databases[-1]
    assert isinstance(open_index(tmp_path / "rag", TAG, DIM), KnowledgeIndex)
    assert isinstance(open_index(db, TAG, DIM, chunk_words=50), PostgresIndex)
    with pytest.raises(ConfigError, match="SUMMARIZER_RAG_STORE=qdrant"):
        open_index(db, TAG, DIM, store="qdrant")
    assert open_recorded(db) is None and open_recorded(tmp_path / "rag") is None
    open_index(db, TAG, DIM).add(DOCS, FakeEmbed())
    recorded = open_recorded(db)
    assert recorded is not None and (recorded.encoder_tag, recorded.dim, len(recorded)) == (TAG, DIM, 3)
    assert rag_pg.recorded_encoder(db) == (TAG, DIM)

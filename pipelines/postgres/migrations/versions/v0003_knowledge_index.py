"""The knowledge index: documents, their chunks with vectors, and one row of bookkeeping.

`rag_meta` holds the encoder tag and dimension every stored vector belongs to ('' and 0 before the
first write), the next chunk id (ids are never reused, so a stale copy can never pass a new chunk
off as its own), and the generation: bumped by every write, in the same transaction, so a replica
tells with one cheap query whether its in-memory copy is current. Writers lock this row.

A document row carries the generation that wrote it, so a replica reloads only what changed since
its copy. Vectors are float32, little-endian, `dim` of them per chunk (stock PostgreSQL has no
vector type, and search happens in each replica's memory anyway).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE rag_meta (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            encoder_tag text NOT NULL DEFAULT '',
            dim integer NOT NULL DEFAULT 0,
            generation bigint NOT NULL DEFAULT 0,
            next_id bigint NOT NULL DEFAULT 0
        );
        INSERT INTO rag_meta DEFAULT VALUES;
        CREATE TABLE rag_documents (
            id text PRIMARY KEY,
            hash text NOT NULL,
            metadata jsonb NOT NULL,
            indexed_at text NOT NULL,
            chunk_words integer NOT NULL,
            generation bigint NOT NULL
        );
        CREATE INDEX rag_documents_by_generation ON rag_documents (generation);
        CREATE TABLE rag_chunks (
            id bigint PRIMARY KEY,
            document_id text NOT NULL REFERENCES rag_documents (id) ON DELETE CASCADE,
            position integer NOT NULL,
            heading text NOT NULL,
            text text NOT NULL,
            vector bytea NOT NULL,
            UNIQUE (document_id, position)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE rag_chunks; DROP TABLE rag_documents; DROP TABLE rag_meta;")

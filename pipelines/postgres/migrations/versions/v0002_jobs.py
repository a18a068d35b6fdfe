"""The job store: jobs, their documents (each input line stored at submission, so every replica
can read it) with their claims and results, and the invalid lines.

Times are seconds since the epoch (double precision), read from the database's clock, so the
leases of replicas whose clocks disagree still expire when they should.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE jobs (
            id text PRIMARY KEY,
            seq bigserial NOT NULL,
            status text NOT NULL,
            source text NOT NULL,
            default_style text,
            total integer NOT NULL,
            invalid integer NOT NULL,
            created_at double precision NOT NULL,
            started_at double precision,
            run_started_at double precision,
            finished_at double precision,
            error text
        );
        CREATE TABLE job_documents (
            job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            doc_id text NOT NULL,
            line integer NOT NULL,
            body text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at double precision NOT NULL DEFAULT 0,
            owner text,
            lease_until double precision,
            finished_at double precision,
            result text,
            PRIMARY KEY (job_id, doc_id)
        );
        CREATE INDEX job_documents_by_state ON job_documents (job_id, status, line);
        CREATE INDEX job_documents_by_line ON job_documents (job_id, line);
        CREATE INDEX job_documents_by_finish ON job_documents (job_id, finished_at);
        CREATE TABLE job_invalid_lines (
            job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            line integer NOT NULL,
            error text NOT NULL,
            PRIMARY KEY (job_id, line)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE job_invalid_lines; DROP TABLE job_documents; DROP TABLE jobs;")

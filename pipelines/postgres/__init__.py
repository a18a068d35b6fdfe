"""PostgreSQL, the state many replicas share: the database URL and its faults (`connection`), the
connection pool the job store and the knowledge index share (`pool`), and the versioned schema
(`migrations`: Alembic revisions under `migrations/versions/`, applied at start-up under an
advisory lock; a database newer than the code is refused). The job store
(`pipelines.jobs.postgres`) and the knowledge index (`pipelines.rag.postgres`) build on it.

May import: only the shared modules.
"""

"""PostgreSQL, the state many replicas share (issue 18, in progress): the database URL and its
faults (`connection`), and the versioned schema (`migrations`: Alembic revisions under
`migrations/versions/`, applied at start-up under an advisory lock; a database newer than the
code is refused). The job store and the knowledge index build their PostgreSQL backends on it.

May import: only the shared modules.
"""

"""A job's deadline: seconds since the epoch, or NULL for none (issue 23: a job behind its deadline
is scheduled ahead of other jobs).

Nullable and added at the end, so the release before this one, running beside it during a rolling
update, still inserts and reads jobs as it did.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN deadline double precision")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN deadline")

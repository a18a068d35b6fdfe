"""Baseline: the revision every later one builds on; it creates nothing.

The job store's and the knowledge index's tables come in the revisions after it.
Revision files are named vNNNN_*.py (a module name mypy accepts); `revision` is the bare number.
"""

from __future__ import annotations

revision = "0001"
down_revision = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

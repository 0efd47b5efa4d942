"""Conversations and logins record their upstream (hailuo, minimax-agent, ...).

Rows made before this revision were all made with the Hailuo web protocol.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("conversations", "logins"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("upstream", sa.String(length=32), nullable=False, server_default="hailuo")
            )


def downgrade() -> None:
    for table in ("conversations", "logins"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("upstream")

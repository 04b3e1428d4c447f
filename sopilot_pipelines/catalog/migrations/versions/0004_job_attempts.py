"""Score and training jobs count their attempts: the runs that took the job on (a retry of a
run whose process died carries its jobs on, as part of the same job).

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-20 12:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ("score_results", "training_results")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        # a job a run has started (or finished) was attempted once, as far as anyone recorded
        op.execute(
            f"UPDATE {table} SET attempts = 1 "
            "WHERE started_at IS NOT NULL OR status IN ('completed', 'skipped', 'rejected')"
        )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("attempts")

"""Training may end `rejected` (a candidate adapter that did not help); index versions record
the fingerprint of the videos they hold and the adapter their vectors went through.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 12:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_OLD = ("queued", "running", "completed", "failed", "skipped", "canceled")
_NEW = _OLD + ("rejected",)


def _statuses(values) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    # batch mode: SQLite cannot alter a CHECK constraint in place, so the table is recreated
    with op.batch_alter_table("training_results") as batch:
        batch.drop_constraint(op.f("ck_training_results_status"), type_="check")
        batch.create_check_constraint(op.f("ck_training_results_status"), _statuses(_NEW))
    with op.batch_alter_table("index_versions") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("adapter", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_versions") as batch:
        batch.drop_column("adapter")
        batch.drop_column("fingerprint")
    op.execute("UPDATE training_results SET status = 'completed' WHERE status = 'rejected'")
    with op.batch_alter_table("training_results") as batch:
        batch.drop_constraint(op.f("ck_training_results_status"), type_="check")
        batch.create_check_constraint(op.f("ck_training_results_status"), _statuses(_OLD))

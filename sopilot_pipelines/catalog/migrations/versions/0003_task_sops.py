"""A task's SOP as a versioned object (task_sops); score jobs record why they ran (trigger), the
score a re-run replaces and the SOP version used; a gold keeps the steps given at upload and its
automatic segmentation.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10 12:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TS = sa.DateTime(timezone=True)  # as in 0001


def upgrade() -> None:
    op.create_table(
        "task_sops",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("gold_video_id", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("per_gold", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "version", name=op.f("pk_task_sops")),
        sa.CheckConstraint("source IN ('auto', 'user')", name=op.f("ck_task_sops_source")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_task_sops_version")),
    )
    # existing scores were all asked for; their SOP version is unknown (NULL)
    with op.batch_alter_table("score_results") as batch:
        batch.add_column(sa.Column("trigger", sa.String(length=16), server_default="request", nullable=False))
        batch.add_column(sa.Column("previous_job_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("sop_version", sa.Integer(), nullable=True))
        batch.create_check_constraint(op.f("ck_score_results_trigger"), "\"trigger\" IN ('request', 'sop_change')")
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("upload_steps", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("auto_steps", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("auto_steps")
        batch.drop_column("upload_steps")
    with op.batch_alter_table("score_results") as batch:
        batch.drop_constraint(op.f("ck_score_results_trigger"), type_="check")
        batch.drop_column("sop_version")
        batch.drop_column("previous_job_id")
        batch.drop_column("trigger")
    op.drop_table("task_sops")

"""Initial catalog: videos, clips, score and training results, index versions, audit exports.

Revision ID: 0001
Revises:
Create Date: 2026-02-08 12:00:00

Written by hand, frozen: later changes go into new revisions, never into this file.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TS = sa.DateTime(timezone=True)  # timestamptz on PostgreSQL, naive UTC text on SQLite


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=True),
        sa.Column("camera_id", sa.String(length=128), nullable=True),
        sa.Column("operator_id_hash", sa.String(length=128), nullable=True),
        sa.Column("original_filename", sa.String(length=512), nullable=True),
        sa.Column("raw_path", sa.Text(), nullable=True),
        sa.Column("raw_embeddings_path", sa.Text(), nullable=True),
        sa.Column("embeddings_path", sa.Text(), nullable=True),
        sa.Column("meta_path", sa.Text(), nullable=True),
        sa.Column("embedding_model", sa.String(length=128), nullable=True),
        sa.Column("num_clips", sa.Integer(), nullable=True),
        sa.Column("source_fps", sa.Float(), nullable=True),
        sa.Column("sampled_fps", sa.Float(), nullable=True),
        sa.Column("duration_sec", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("ingest_run_id", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("gold_version", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
        sa.CheckConstraint("role IN ('gold', 'trainee')", name=op.f("ck_videos_role")),
        sa.CheckConstraint("status IN ('pending', 'ready', 'failed')", name=op.f("ck_videos_status")),
        sa.CheckConstraint("role = 'gold' OR gold_version IS NULL", name=op.f("ck_videos_gold_version_role")),
        sa.UniqueConstraint("task_id", "gold_version", name=op.f("uq_videos_task_id_gold_version")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_videos_task_id"), "videos", ["task_id"])
    op.create_index(op.f("ix_videos_role"), "videos", ["role"])
    op.create_index(op.f("ix_videos_ingest_run_id"), "videos", ["ingest_run_id"])

    op.create_table(
        "clips",
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("clip_idx", sa.Integer(), nullable=False),
        sa.Column("start_sec", sa.Float(), nullable=False),
        sa.Column("end_sec", sa.Float(), nullable=False),
        sa.Column("quality", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("video_id", "clip_idx", name=op.f("pk_clips")),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_clips_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("clip_idx >= 0", name=op.f("ck_clips_clip_idx")),
        sa.CheckConstraint("start_sec >= 0 AND end_sec >= start_sec", name=op.f("ck_clips_times")),
    )

    statuses = "status IN ('queued', 'running', 'completed', 'failed', 'skipped', 'canceled')"

    op.create_table(
        "score_results",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("gold_video_id", sa.Integer(), nullable=False),
        sa.Column("trainee_video_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("result_path", sa.Text(), nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_score_results")),
        sa.CheckConstraint(statuses, name=op.f("ck_score_results_status")),
        sa.CheckConstraint(
            "decision IS NULL OR decision IN ('pass', 'needs_review', 'retrain', 'fail')",
            name=op.f("ck_score_results_decision"),
        ),
    )
    op.create_index(op.f("ix_score_results_created_at"), "score_results", ["created_at"])
    op.create_index(op.f("ix_score_results_run_id"), "score_results", ["run_id"])

    op.create_table(
        "training_results",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("mode", sa.String(length=128), nullable=True),
        sa.Column("adapter_path", sa.Text(), nullable=True),
        sa.Column("videos_used", sa.Integer(), nullable=True),
        sa.Column("clips_used", sa.Integer(), nullable=True),
        sa.Column("embedding_dim", sa.Integer(), nullable=True),
        sa.Column("figures", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("reindex", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_training_results")),
        sa.CheckConstraint("\"trigger\" IN ('manual', 'nightly')", name=op.f("ck_training_results_trigger")),
        sa.CheckConstraint(statuses, name=op.f("ck_training_results_status")),
    )
    op.create_index(op.f("ix_training_results_created_at"), "training_results", ["created_at"])
    op.create_index(op.f("ix_training_results_run_id"), "training_results", ["run_id"])

    op.create_table(
        "index_versions",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("clips_indexed", sa.Integer(), nullable=False),
        sa.Column("videos", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "version", name=op.f("pk_index_versions")),
    )

    op.create_table(
        "audit_exports",
        sa.Column("export_id", sa.String(length=64), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("generated_at", TS, nullable=False),
        sa.Column("algorithm", sa.String(length=32), server_default="hmac-sha256", nullable=False),
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("signature_hex", sa.String(length=256), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("export_id", name=op.f("pk_audit_exports")),
    )
    op.create_index(op.f("ix_audit_exports_generated_at"), "audit_exports", ["generated_at"])


def downgrade() -> None:
    op.drop_table("audit_exports")
    op.drop_table("index_versions")
    op.drop_table("training_results")
    op.drop_table("score_results")
    op.drop_table("clips")
    op.drop_table("videos")

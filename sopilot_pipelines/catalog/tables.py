"""SQLAlchemy Core tables of the SOPilot catalog (domain facts; job *status* lives in Dagster).

The schema is created and evolved by the alembic revisions in ``migrations/versions``; this
module is the Python-side description the catalog queries against. A test compares the two
(alembic autogenerate finds no difference), so change both together.

Portable types only: the same tables run on SQLite (embedded default) and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal, get_args

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# The closed vocabularies, once: the Literal types validate input (models.py), the tuples
# write the tables' CHECK constraints.
Role = Literal["gold", "trainee"]
VideoStatus = Literal["pending", "ready", "failed"]
JobStatus = Literal["queued", "running", "completed", "failed", "skipped", "canceled"]
# a training whose candidate adapter did not beat the live one ends `rejected`; the live one stays
TrainingStatus = Literal[JobStatus, "rejected"]
Decision = Literal["pass", "needs_review", "retrain", "fail"]
TrainingTrigger = Literal["manual", "nightly"]
# why a score job exists: asked for (API, auto-score), or re-run because the task's SOP changed
ScoreTrigger = Literal["request", "sop_change"]
SopSource = Literal["auto", "user"]

ROLES: tuple[str, ...] = get_args(Role)
VIDEO_STATUSES: tuple[str, ...] = get_args(VideoStatus)
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
TRAINING_STATUSES: tuple[str, ...] = get_args(TrainingStatus)
DECISIONS: tuple[str, ...] = get_args(Decision)
TRAINING_TRIGGERS: tuple[str, ...] = get_args(TrainingTrigger)
SCORE_TRIGGERS: tuple[str, ...] = get_args(ScoreTrigger)
SOP_SOURCES: tuple[str, ...] = get_args(SopSource)

# Lengths shared by the tables and the input models in models.py.
TASK_ID_LEN = 64
JOB_ID_LEN = 64
RUN_ID_LEN = 64
LABEL_LEN = 128  # site_id, camera_id, operator_id_hash, requested_by, embedding_model ...

# Deterministic constraint names, so later migrations (batch mode on SQLite) can address them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as naive
    UTC text (fixed-width, so comparisons in SQL stay correct) and come back tagged as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:  # callers are validated; treat a stray naive value as UTC
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


videos = Table(
    "videos",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(TASK_ID_LEN), nullable=False),
    Column("role", String(16), nullable=False),
    Column("site_id", String(LABEL_LEN)),
    Column("camera_id", String(LABEL_LEN)),
    Column("operator_id_hash", String(LABEL_LEN)),
    Column("original_filename", String(512)),
    Column("raw_path", Text),
    Column("raw_embeddings_path", Text),
    Column("embeddings_path", Text),
    Column("meta_path", Text),
    Column("embedding_model", String(LABEL_LEN)),
    Column("num_clips", Integer),
    Column("source_fps", Float),
    Column("sampled_fps", Float),
    Column("duration_sec", Float),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("ingest_run_id", String(RUN_ID_LEN)),
    Column("error_message", Text),
    Column("requested_by", String(LABEL_LEN)),
    # 1, 2, 3 ... per task among gold videos, assigned when a gold video first becomes ready.
    Column("gold_version", Integer),
    # a gold's steps given at upload (POST /gold `steps`): the task's SOP once its ingest completes
    Column("upload_steps", JSON(none_as_null=True)),
    # a gold's automatic segmentation at ingest (the SOP's version 0 while no user defined one)
    Column("auto_steps", JSON(none_as_null=True)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(_in("role", ROLES), name="role"),
    CheckConstraint(_in("status", VIDEO_STATUSES), name="status"),
    CheckConstraint("role = 'gold' OR gold_version IS NULL", name="gold_version_role"),
    UniqueConstraint("task_id", "gold_version"),
    Index(None, "task_id"),
    Index(None, "role"),
    Index(None, "ingest_run_id"),
    sqlite_autoincrement=True,  # never reuse the id of a deleted video
)

clips = Table(
    "clips",
    metadata,
    Column("video_id", Integer, ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
    Column("clip_idx", Integer, nullable=False),
    Column("start_sec", Float, nullable=False),
    Column("end_sec", Float, nullable=False),
    Column("quality", Text),
    PrimaryKeyConstraint("video_id", "clip_idx"),
    CheckConstraint("clip_idx >= 0", name="clip_idx"),
    CheckConstraint("start_sec >= 0 AND end_sec >= start_sec", name="times"),
)


def _job_table(name: str, statuses: tuple[str, ...], *own) -> Table:
    """A job table: its id, Dagster run, requester and status, its own columns, then the error and
    the times; looked up by time and by run."""
    return Table(
        name,
        metadata,
        Column("job_id", String(JOB_ID_LEN), primary_key=True),
        Column("run_id", String(RUN_ID_LEN)),
        Column("requested_by", String(LABEL_LEN)),
        Column("status", String(16), nullable=False, server_default="queued"),
        # runs that took the job on: 1, and one more for each retry run that carried it on
        Column("attempts", Integer, nullable=False, server_default="0"),
        *own,
        Column("error_message", Text),
        Column("created_at", UTCDateTime, nullable=False),
        Column("started_at", UTCDateTime),
        Column("finished_at", UTCDateTime),
        CheckConstraint(_in("status", statuses), name="status"),
        Index(None, "created_at"),
        Index(None, "run_id"),
    )


score_results = _job_table(
    "score_results",
    JOB_STATUSES,
    Column("task_id", String(TASK_ID_LEN), nullable=False),
    # No foreign keys: the audit trail keeps a score after its videos are deleted.
    Column("gold_video_id", Integer, nullable=False),
    Column("trainee_video_id", Integer, nullable=False),
    Column("score", Float),
    Column("decision", String(32)),
    Column("result_path", Text),
    Column("report_path", Text),
    Column("trigger", String(16), nullable=False, server_default="request"),
    Column("previous_job_id", String(JOB_ID_LEN)),  # the score a sop_change re-run replaces
    Column("sop_version", Integer),  # the task SOP version it was scored with (0: automatic)
    CheckConstraint(f"decision IS NULL OR {_in('decision', DECISIONS)}", name="decision"),
    CheckConstraint(_in('"trigger"', SCORE_TRIGGERS), name="trigger"),
)

training_results = _job_table(
    "training_results",
    TRAINING_STATUSES,
    Column("trigger", String(16), nullable=False),
    Column("mode", String(LABEL_LEN)),
    Column("adapter_path", Text),
    Column("videos_used", Integer),
    Column("clips_used", Integer),
    Column("embedding_dim", Integer),
    Column("figures", JSON(none_as_null=True)),  # training metrics (loss curve, ...)
    Column("reindex", JSON(none_as_null=True)),  # old/new index version, clips indexed, tasks
    Column("skip_reason", Text),
    CheckConstraint(_in('"trigger"', TRAINING_TRIGGERS), name="trigger"),
)

# One row per version of a task's SOP (versions 1, 2, ... per task; 0 is the automatic
# segmentation, never stored here). Steps are marked on one gold; per_gold holds them carried to
# the task's other golds by alignment ({video_id: [[start, end], ...]}).
task_sops = Table(
    "task_sops",
    metadata,
    Column("task_id", String(TASK_ID_LEN), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(8), nullable=False),
    Column("gold_video_id", Integer, nullable=False),
    Column("steps", JSON, nullable=False),
    Column("per_gold", JSON(none_as_null=True)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("requested_by", String(LABEL_LEN)),
    PrimaryKeyConstraint("task_id", "version"),
    CheckConstraint(_in("source", SOP_SOURCES), name="source"),
    CheckConstraint("version >= 1", name="version"),
)

index_versions = Table(
    "index_versions",
    metadata,
    Column("task_id", String(TASK_ID_LEN), nullable=False),
    Column("version", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("clips_indexed", Integer, nullable=False),
    Column("videos", Integer, nullable=False),
    Column("fingerprint", String(64)),  # of the ready videos it holds; the index sensor compares it
    Column("adapter", String(LABEL_LEN)),  # training job id of the adapter its vectors went through
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("task_id", "version"),
)

audit_exports = Table(
    "audit_exports",
    metadata,
    Column("export_id", String(JOB_ID_LEN), primary_key=True),
    Column("file_path", Text, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("generated_at", UTCDateTime, nullable=False),
    Column("algorithm", String(32), nullable=False, server_default="hmac-sha256"),
    Column("key_id", String(LABEL_LEN), nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("signature_hex", String(256), nullable=False),
    Column("requested_by", String(LABEL_LEN)),
    Index(None, "generated_at"),
)

"""Response models: the shapes docs/API_REFERENCE.md shows, so OpenAPI documents every field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sopilot_pipelines.catalog.models import Label, TaskId
from sopilot_pipelines.catalog.tables import Role

JobStatus = Literal["queued", "running", "completed", "failed"]
MAX_ID = 2**31 - 1  # ids and indexes are 32-bit in the catalog; larger numbers are refused with 422


class Health(BaseModel):
    status: str  # ok | degraded (a part of the stack is being restarted) | unavailable
    db: bool
    down: dict[str, str] = {}  # part of the stack -> why it is down (from `sopilot up`'s supervisor)


class UploadForm(BaseModel):
    """The form fields of an upload, with the catalog's own limits: checked before anything is
    stored, so a bad one answers 400 (other form fields are not ours and are ignored)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    task_id: TaskId
    role: Role = "trainee"
    site_id: Label = None
    camera_id: Label = None
    operator_id_hash: Label = None


class IngestQueued(BaseModel):
    ingest_job_id: str
    status: JobStatus


class _JobEnd(BaseModel):
    """The fields a job's response ends with. A job model names this as its first base and a model
    of its own fields as the second: pydantic lists a later base's fields first, so these follow."""

    error_message: str | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    # runs that took the job on: 1, plus each retry that carried it on (a run whose process died)
    attempts: int = 0


class _IngestJobOwn(BaseModel):
    ingest_job_id: str
    status: JobStatus
    task_id: str | None
    role: str | None
    requested_by: str | None
    video_id: int | None
    num_clips: int | None
    source_fps: float | None
    sampled_fps: float | None
    embedding_model: str | None


class IngestJob(_JobEnd, _IngestJobOwn):
    pass


class ScoreRequest(BaseModel):
    gold_video_id: int = Field(ge=1, le=MAX_ID)
    trainee_video_id: int = Field(ge=1, le=MAX_ID)


class ScoreQueued(BaseModel):
    score_job_id: str
    status: JobStatus
    score: float | None


class _ScoreJobOwn(BaseModel):
    score_job_id: str
    status: JobStatus
    gold_video_id: int
    trainee_video_id: int
    requested_by: str | None
    score: float | None


class ScoreJob(_JobEnd, _ScoreJobOwn):
    result: dict[str, Any] | None = None


class SearchItem(BaseModel):
    similarity: float
    video_id: int
    clip_idx: int
    start_sec: float
    end_sec: float
    role: str


class SearchResult(BaseModel):
    task_id: str
    query_video_id: int
    query_clip_idx: int
    items: list[SearchItem]


class Video(BaseModel):
    video_id: int
    task_id: str
    role: str
    site_id: str | None
    camera_id: str | None
    num_clips: int | None
    embedding_model: str | None
    created_at: datetime
    original_filename: str | None = None  # the uploaded file's name


class TaskSummary(BaseModel):
    task_id: str
    gold_video_ids: list[int]
    sop_version: int
    sop_source: Literal["auto", "user"]
    video_count: int
    score_count: int
    last_scored_at: datetime | None


class TaskList(BaseModel):
    items: list[TaskSummary]


class SopStepOut(BaseModel):
    index: int
    name: str
    start_sec: float
    end_sec: float
    optional: bool
    group: str | None


class Sop(BaseModel):
    task_id: str
    version: int
    source: Literal["auto", "user"]
    gold_video_id: int
    steps: list[SopStepOut]
    per_gold: dict[str, list[list[float]]]  # the steps carried to the task's other golds, by video id
    updated_at: datetime | None
    updated_by: str | None


class SopPut(BaseModel):
    gold_video_id: int | None = Field(None, ge=1, le=MAX_ID)
    # checked by core.sop.parse_steps, whose messages name the step and the problem (400)
    steps: Any = None
    rescore: bool = True


class SopStored(Sop):
    rescore_job_ids: list[str]


class VideoList(BaseModel):
    items: list[Video]


class VideoDeleted(BaseModel):
    video_id: int
    task_id: str
    removed_files: list[str]
    reindexed_clips: int


class TrainingQueued(BaseModel):
    training_job_id: str
    status: JobStatus
    trigger: str


class _TrainingJobOwn(BaseModel):
    training_job_id: str
    trigger: str
    # rejected: trained but did not beat the live adapter on held-out videos, which stays live
    status: Literal["queued", "running", "completed", "failed", "skipped", "rejected"]
    requested_by: str | None


class TrainingJob(_JobEnd, _TrainingJobOwn):
    result: dict[str, Any] | None = None


class NightlyStatus(BaseModel):
    enabled: bool
    next_run_local: str | None
    hour_local: int
    min_new_videos: int


class AuditItem(BaseModel):
    job_id: str
    job_type: str
    requested_by: str | None
    task_id: str | None
    subject: str | None
    status: str
    model_name: str | None
    score: float | None
    error_message: str | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime | None


class AuditTrail(BaseModel):
    items: list[AuditItem]


class Signature(BaseModel):
    algorithm: str
    key_id: str
    payload_sha256: str
    signature_hex: str


class AuditExport(BaseModel):
    export_id: str
    generated_at: datetime
    item_count: int
    file_path: str
    signature: Signature


class QueueStats(BaseModel):
    key: str
    name: str
    queued: int
    started: int
    failed: int
    finished: int
    deferred: int = 0
    scheduled: int = 0


class Queue(BaseModel):
    backend: str
    redis_ok: bool | None  # the contract's field; null: this deployment has no Redis (Dagster queues the runs)
    daemon_ok: bool  # the Dagster daemon, which dequeues and launches the runs, is healthy
    error: str | None
    queues: list[QueueStats]


class OpsQueue(BaseModel):
    generated_at: datetime
    runtime_mode: str
    queue: Queue
    jobs: dict[str, dict[str, int]]

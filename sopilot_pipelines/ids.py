"""Job ids as the REST contract shows them: score_20260208_120000_abc123, train_..._xyz789."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone


def new_job_id(kind: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{kind}_{now:%Y%m%d_%H%M%S}_{secrets.token_hex(3)}"


def video_key(task_id: str, video_id: int) -> str:
    """A video's partition key, `<task_id>:<video_id>` (the pipelines and the API share it)."""
    return f"{task_id}:{int(video_id)}"


# run tags every SOPilot run carries, so the API and the audit trail can read them back
TAG_JOB_ID = "sopilot/job_id"
TAG_REQUESTED_BY = "sopilot/requested_by"
TAG_TRIGGER = "sopilot/trigger"
TAG_VIDEO_ID = "sopilot/video_id"
TAG_TASK_ID = "sopilot/task_id"

# Dagster's names for our jobs and partition sets: the definitions (defs/*/jobs.py, partitions.py)
# and the API's door to Dagster (sopilot_api/) both read them from here
INGEST_JOB = "ingest_job"
SCORE_JOB = "score_job"
SOP_JOB = "sop_job"
INDEX_JOB = "index_job"
TRAIN_JOB = "train_job"
VIDEOS = "videos"  # partition keys "<task_id>:<video_id>" (video_key)
TASKS = "tasks"  # partition keys: task ids
SCORE_JOBS = "score_jobs"  # partition keys: score job ids

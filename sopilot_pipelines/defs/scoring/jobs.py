"""The scoring domain's jobs (executor and retries: see ingest/jobs.py)."""

import dagster as dg

from ...ids import SCORE_JOB, SOP_JOB
from .assets import SCORE_REPORT, SCORE_RESULT
from .sop import TASK_SOP

score_job = dg.define_asset_job(
    SCORE_JOB,
    selection=dg.AssetSelection.assets(SCORE_RESULT, SCORE_REPORT),
    description="Score trainee videos against the gold, with their PDF reports (one score job, or a re-score's range)",
)
sop_job = dg.define_asset_job(
    SOP_JOB,
    selection=dg.AssetSelection.assets(TASK_SOP),
    description="Record a new version of a task's SOP and carry it to the task's other golds",
)

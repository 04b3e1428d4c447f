"""The search domain's job (executor and retries: see ingest/jobs.py)."""

import dagster as dg

from ...ids import INDEX_JOB
from .assets import TASK_INDEX

index_job = dg.define_asset_job(
    INDEX_JOB, selection=dg.AssetSelection.assets(TASK_INDEX), description="Build a new version of a task's clip index"
)

"""The SOPilot code location: every domain's assets, checks, jobs, sensors and schedules."""

import dagster as dg

from .defs.ingest.assets import CLIPS, EMBEDDINGS, ingest_video
from .defs.ingest.sensors import inbox_sensor
from .defs.policy import TRAINING_QUEUE
from .defs.scoring.assets import SCORE_REPORT, SCORE_RESULT, score_assets
from .defs.scoring.sensors import auto_score_sensor
from .defs.scoring.sop import TASK_SOP, task_sop
from .defs.search.assets import task_index
from .defs.search.sensors import index_sensor
from .defs.training.assets import feature_adapter
from .defs.training.schedules import build_nightly_schedule
from .resources import default_resources
from .settings import settings

# The executor and the retry policy are not set per job: the executor is the location's default
# (Definitions below) and the retry policy sits on each asset, so a UI materialization or a
# backfill (Dagster's implicit asset job) runs exactly like the named jobs.
ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(CLIPS, EMBEDDINGS),
    description="Ingest one video: clips, raw and adapted embeddings",
)
score_job = dg.define_asset_job(
    "score_job",
    selection=dg.AssetSelection.assets(SCORE_RESULT, SCORE_REPORT),
    description="Score trainee videos against the gold, with their PDF reports (one score job, or a re-score's range)",
)
sop_job = dg.define_asset_job(
    "sop_job",
    selection=dg.AssetSelection.assets(TASK_SOP),
    description="Record a new version of a task's SOP and carry it to the task's other golds",
)
index_job = dg.define_asset_job(
    "index_job", selection=[task_index], description="Build a new version of a task's clip index"
)
# the queue tag lets dagster.yaml's tag_concurrency_limits run one training at a time (the asset
# carries it too, for runs launched without this job)
train_job = dg.define_asset_job(
    "train_job",
    selection=[feature_adapter],
    tags=TRAINING_QUEUE,
    description="Train the feature adapter; if it helps, reindex everything through it",
)


def build_defs(resources: dict | None = None) -> dg.Definitions:
    """The whole location; tests pass resources pointing at their own data dir."""
    return dg.Definitions(
        assets=[ingest_video, score_assets, task_sop, task_index, feature_adapter],
        jobs=[ingest_job, score_job, sop_job, index_job, train_job],
        sensors=[inbox_sensor, auto_score_sensor, index_sensor],
        schedules=[build_nightly_schedule()],
        resources=resources or default_resources(),
        executor=build_executor(),
    )


def build_executor() -> dg.ExecutorDefinition:
    """SOPILOT_EXECUTOR: `in_process` (default: small runs in one process; a subprocess per step
    costs ~2 s here) or `celery` (each step a task on `sopilot worker` processes, workers.py)."""
    s = settings()
    if s.executor == "celery":
        from dagster_celery import celery_executor

        from .workers import executor_config

        return celery_executor.configured(executor_config(s), name="celery")
    return dg.in_process_executor


defs = build_defs()

"""The SOPilot code location: every domain's assets, checks, jobs, sensors and schedules."""

import dagster as dg

from .defs.ingest.assets import video_clips, video_embeddings
from .defs.ingest.sensors import inbox_sensor
from .defs.scoring.assets import score_report, score_result
from .defs.scoring.sensors import auto_score_sensor
from .defs.search.assets import task_index
from .defs.search.sensors import index_sensor
from .defs.training.assets import feature_adapter
from .defs.training.schedules import build_nightly_schedule
from .resources import default_resources

# Small jobs run in one process: a subprocess per step costs ~2 s here. Transient errors
# (I/O, database) are retried; bad input raises Failure(allow_retries=False) and is not.
_job = {"executor_def": dg.in_process_executor, "op_retry_policy": dg.RetryPolicy(max_retries=2, delay=2)}

ingest_job = dg.define_asset_job("ingest_job", selection=[video_clips, video_embeddings],
                                 description="Ingest one video: clips, raw and adapted embeddings", **_job)  # fmt: skip
score_job = dg.define_asset_job("score_job", selection=[score_result, score_report],
                                description="Score a trainee video against the gold, with its PDF report", **_job)  # fmt: skip
index_job = dg.define_asset_job("index_job", selection=[task_index],
                                description="Build a new version of a task's clip index", **_job)  # fmt: skip
# the queue tag lets dagster.yaml's tag_concurrency_limits run one training at a time
train_job = dg.define_asset_job("train_job", selection=[feature_adapter], tags={"sopilot/queue": "training"},
                                description="Train the feature adapter; if it helps, reindex everything through it", **_job)  # fmt: skip



def build_defs(resources: dict | None = None) -> dg.Definitions:
    """The whole location; tests pass resources pointing at their own data dir."""
    return dg.Definitions(
        assets=[video_clips, video_embeddings, score_result, score_report, task_index, feature_adapter],
        jobs=[ingest_job, score_job, index_job, train_job],
        sensors=[inbox_sensor, auto_score_sensor, index_sensor],
        schedules=[build_nightly_schedule()],
        resources=resources or default_resources(),
    )


defs = build_defs()

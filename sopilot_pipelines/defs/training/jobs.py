"""The training domain's job (executor and retries: see ingest/jobs.py)."""

import dagster as dg

from ...ids import TRAIN_JOB
from ..policy import TRAINING_QUEUE
from .assets import FEATURE_ADAPTER

# the queue tag lets dagster.yaml's tag_concurrency_limits run one training at a time (the asset
# carries it too, for runs launched without this job)
train_job = dg.define_asset_job(
    TRAIN_JOB,
    selection=dg.AssetSelection.assets(FEATURE_ADAPTER),
    tags=TRAINING_QUEUE,
    description="Train the feature adapter; if it helps, reindex everything through it",
)

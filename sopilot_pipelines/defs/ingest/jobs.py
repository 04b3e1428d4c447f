"""The ingest domain's job. The executor and the retry policy are not set per job: the executor
is the location's default (definitions.py) and the retry policy sits on each asset, so a UI
materialization or a backfill (Dagster's implicit asset job) runs exactly like the named jobs."""

import dagster as dg

from ...ids import INGEST_JOB
from .assets import CLIPS, EMBEDDINGS

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(CLIPS, EMBEDDINGS),
    description="Ingest one video: clips, raw and adapted embeddings",
)

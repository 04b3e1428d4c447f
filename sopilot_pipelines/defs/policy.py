"""What every run of an asset gets, however it is launched (named job, UI, backfill, sensor), and
how every sensor runs."""

import dagster as dg

# Transient errors (I/O, database) are retried; bad input raises Failure(allow_retries=False) and
# is not. On the assets, not the jobs: the UI's and a backfill's implicit asset job has no
# op_retry_policy of its own.
RETRY = dg.RetryPolicy(max_retries=2, delay=2)

# Asset tags under this key are copied onto every run that materializes the asset (see
# run_queue.py), so dagster.yaml's tag_concurrency_limits apply to UI and backfill runs too.
QUEUE_TAG = "sopilot/queue"
TRAINING_QUEUE = {QUEUE_TAG: "training"}


def sensor(job, description: str):
    """A sensor of ``job`` that is on from the start (no UI toggle needed) and ticks every 4 s."""
    return dg.sensor(
        job=job,
        minimum_interval_seconds=4,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )

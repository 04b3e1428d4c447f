"""Run-side timings for Prometheus, across processes.

Dagster runs execute in their own processes; the API serves /metrics. prometheus_client's
multiprocess mode connects them: every process that observes writes to files under
$PROMETHEUS_MULTIPROC_DIR (`sopilot up` points it at <data dir>/metrics), and the API merges
those files at scrape time. Without the variable, observations go to this process's registry.
"""

from __future__ import annotations

from functools import lru_cache

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@lru_cache(maxsize=1)
def _metrics():
    from prometheus_client import Histogram

    return {
        "job": Histogram("sopilot_job_duration_seconds", "time a job's work took in its run", ["job_type"], buckets=BUCKETS),
        "dtw": Histogram("sopilot_dtw_execution_seconds", "DTW alignment time", ["gpu"], buckets=BUCKETS),
        "embed": Histogram("sopilot_embedding_generation_seconds", "clip embedding time per video", ["embedder"], buckets=BUCKETS),
    }


def observe_job(job_type: str, seconds: float) -> None:
    _metrics()["job"].labels(job_type).observe(seconds)


def observe_dtw(gpu: bool, seconds: float) -> None:
    _metrics()["dtw"].labels(str(bool(gpu)).lower()).observe(seconds)


def observe_embedding(embedder: str, seconds: float) -> None:
    _metrics()["embed"].labels(embedder).observe(seconds)

"""Prometheus metrics. Job counters come from Dagster's run storage at scrape time, so they count
work done in run processes, not only what this API process saw."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .runs import DagsterUnavailable, JOB_TYPES


class _DagsterCollector:
    def __init__(self, door):
        self.door = door

    def collect(self):
        try:
            counts, training = self.door.job_counts(), self.door.training_counts()
        except DagsterUnavailable:
            counts, training = None, {}
        for kind, name in (("ingest", "sopilot_ingest_jobs"), ("score", "sopilot_score_jobs")):
            fam = CounterMetricFamily(name, f"{kind} jobs by status (from Dagster's run storage)", labels=["status"])
            for status, n in (counts or {}).get(kind, {}).items():
                fam.add_metric([status], n)
            yield fam
        fam = CounterMetricFamily("sopilot_training_jobs", "training jobs by status and trigger", labels=["status", "trigger"])
        for (status, trigger), n in training.items():
            fam.add_metric([status, trigger], n)
        yield fam
        depth = GaugeMetricFamily("sopilot_queue_depth", "runs waiting in Dagster's queue", labels=["queue"])
        workers = GaugeMetricFamily("sopilot_active_workers", "runs executing now", labels=["queue"])
        for kind in JOB_TYPES:
            c = (counts or {}).get(kind, {})
            depth.add_metric([kind], c.get("queued", 0))
            workers.add_metric([kind], c.get("running", 0))
        yield depth
        yield workers
        gpu = GaugeMetricFamily("sopilot_gpu_memory_bytes", "GPU memory of this host (0 without a GPU)", labels=["kind"])
        for kind in ("allocated", "reserved", "total"):
            gpu.add_metric([kind], 0)
        yield gpu


def render(door, metrics_dir: Path | None = None) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(_DagsterCollector(door))
    if metrics_dir is not None and metrics_dir.is_dir():
        # timings observed inside Dagster run processes (sopilot_pipelines/telemetry.py)
        multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    return generate_latest(registry), CONTENT_TYPE_LATEST

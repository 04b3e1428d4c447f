"""Prometheus metrics. Job counters are read at scrape time, so they count work done in run
processes, not only what this API process saw: score jobs from the catalog (a run scores many),
the others from Dagster's run storage, as jobs (a run and its retries count once); the queue
gauges count runs."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from sopilot_pipelines.telemetry import BUCKETS, GPU_MEMORY, GPU_MEMORY_HELP, HISTOGRAMS

from .runs import JOB_TYPES, DagsterUnavailable


class _DagsterCollector:
    def __init__(self, door, score_jobs):
        self.door, self.score_jobs = door, score_jobs

    def collect(self):
        try:
            (counts, runs), training = self.door.job_and_run_counts(), self.door.training_counts()
        except DagsterUnavailable:
            counts, runs, training = None, None, {}
        jobs = {"ingest": (counts or {}).get("ingest", {}), "score": self.score_jobs()}
        for kind, name in (("ingest", "sopilot_ingest_jobs"), ("score", "sopilot_score_jobs")):
            fam = CounterMetricFamily(name, f"{kind} jobs by status", labels=["status"])
            for status, n in jobs[kind].items():
                fam.add_metric([status], n)
            yield fam
        fam = CounterMetricFamily(
            "sopilot_training_jobs", "training jobs by status and trigger", labels=["status", "trigger"]
        )
        for (status, trigger), n in training.items():
            fam.add_metric([status, trigger], n)
        yield fam
        depth = GaugeMetricFamily("sopilot_queue_depth", "runs waiting in Dagster's queue", labels=["queue"])
        workers = GaugeMetricFamily("sopilot_active_workers", "runs executing now", labels=["queue"])
        for kind in JOB_TYPES:
            c = (runs or {}).get(kind, {})
            depth.add_metric([kind], c.get("queued", 0))
            workers.add_metric([kind], c.get("running", 0))
        yield depth
        yield workers


class _NoGpuSeen:
    """sopilot_gpu_memory_bytes as 0s while no run has written real figures. The runs write them
    from torch (telemetry.record_gpu_memory); this process never imports torch."""

    def __init__(self, runs: multiprocess.MultiProcessCollector | None):
        self.runs = runs

    def collect(self):
        if self.runs is not None and any(f.name == GPU_MEMORY and f.samples for f in self.runs.collect()):
            return
        gpu = GaugeMetricFamily(GPU_MEMORY, GPU_MEMORY_HELP, labels=["device", "kind"])
        for kind in ("allocated", "reserved", "total"):
            gpu.add_metric(["none", kind], 0)
        yield gpu


class _NotYetObserved:
    """The run-side histograms before any run observed them: listed from the start (at 0 for
    the label values known in advance), so an alert on them is defined on a fresh stack."""

    def __init__(self, runs: multiprocess.MultiProcessCollector | None):
        self.runs = runs

    def collect(self):
        seen = {f.name for f in self.runs.collect() if f.samples} if self.runs is not None else set()
        for name, help_, label, known in HISTOGRAMS.values():
            if name in seen:
                continue
            fam = HistogramMetricFamily(name, help_, labels=[label])
            for value in known:
                fam.add_metric([value], buckets=[(str(float(b)), 0) for b in BUCKETS] + [("+Inf", 0)], sum_value=0)
            yield fam


def render(door, metrics_dir: Path | None = None, score_jobs=dict) -> tuple[bytes, str]:
    """``score_jobs``: score job counts per status, read at scrape time."""
    registry = CollectorRegistry()
    registry.register(_DagsterCollector(door, score_jobs))
    runs = None
    if metrics_dir is not None and metrics_dir.is_dir():
        # timings and GPU memory observed inside Dagster run processes (sopilot_pipelines/telemetry.py)
        runs = multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    registry.register(_NoGpuSeen(runs))
    registry.register(_NotYetObserved(runs))
    return generate_latest(registry), CONTENT_TYPE_LATEST

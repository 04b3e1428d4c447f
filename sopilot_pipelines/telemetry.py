"""Run-side timings for Prometheus, across processes.

Dagster runs execute in their own processes; the API serves /metrics. prometheus_client's
multiprocess mode connects them: every process that observes writes to files under
$PROMETHEUS_MULTIPROC_DIR (`sopilot up` points it at <data dir>/metrics), and the API merges
those files at scrape time. Without the variable, observations go to this process's registry.
"""

from __future__ import annotations

import sys
from functools import lru_cache

GPU_MEMORY = "sopilot_gpu_memory_bytes"
GPU_MEMORY_HELP = "GPU memory by device, as torch's allocator in the runs last saw it (0 while no run has seen a GPU)"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


# name -> (help, label, the label values known before anything ran: listed at 0 from the start)
HISTOGRAMS = {
    "job": (
        "sopilot_job_duration_seconds",
        "time a job's work took in its run",
        "job_type",
        ("ingest", "score", "training"),
    ),
    "dtw": ("sopilot_dtw_execution_seconds", "DTW alignment time", "gpu", ("false",)),
    "embed": ("sopilot_embedding_generation_seconds", "clip embedding time per video", "embedder", ()),
}


@lru_cache(maxsize=1)
def _metrics():
    from prometheus_client import Gauge, Histogram

    return {
        **{
            key: Histogram(name, help_, [label], buckets=BUCKETS) for key, (name, help_, label, _) in HISTOGRAMS.items()
        },
        # the latest reading any run took (runs are short-lived processes: a live sum would count the dead)
        "gpu": Gauge(GPU_MEMORY, GPU_MEMORY_HELP, ["device", "kind"], multiprocess_mode="mostrecent"),
    }


def observe_job(job_type: str, seconds: float) -> None:
    _metrics()["job"].labels(job_type).observe(seconds)
    record_gpu_memory()


def record_gpu_memory() -> None:
    """This process's GPU memory per device from torch, where torch is loaded and sees a GPU.

    Only a process that has imported torch already reports: one that never needed it does not
    load it for a metric (the API never does; it serves what the runs wrote).
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return
    gauge = _metrics()["gpu"]
    for i in range(torch.cuda.device_count()):
        gauge.labels(str(i), "allocated").set(torch.cuda.memory_allocated(i))
        gauge.labels(str(i), "reserved").set(torch.cuda.memory_reserved(i))
        gauge.labels(str(i), "total").set(torch.cuda.get_device_properties(i).total_memory)


def observe_dtw(gpu: bool, seconds: float) -> None:
    _metrics()["dtw"].labels(str(bool(gpu)).lower()).observe(seconds)


def observe_embedding(embedder: str, seconds: float) -> None:
    _metrics()["embed"].labels(embedder).observe(seconds)

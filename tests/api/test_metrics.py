"""sopilot_gpu_memory_bytes: the run processes write it from torch into the multiprocess files,
the API serves it without importing torch, and 0 stands only where no run has seen a GPU."""

import os
import re
import socket
import subprocess
import sys

import pytest
import torch

GPU_LINE = re.compile(r'^sopilot_gpu_memory_bytes\{device="([^"]+)",kind="(\w+)"\} (\S+)$', re.M)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(metrics_dir) -> str:
    """/metrics as the API renders it, in a fresh process (Dagster unreachable: job counts are
    left out, the rest is served); fails if rendering pulled torch in."""
    code = (
        "import sys; from pathlib import Path; from sopilot_api.metrics import render; "
        f"from sopilot_api.runs import Dagster; body, _ = render(Dagster('http://127.0.0.1:{_closed_port()}'), Path(sys.argv[1])); "
        "assert 'torch' not in sys.modules, 'the API imported torch'; sys.stdout.write(body.decode())"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(metrics_dir)], capture_output=True, text=True, check=True
    ).stdout


def _in_a_run(metrics_dir, code: str) -> None:
    """``code`` in a process that writes to the multiprocess files, as a Dagster run does."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)


def _gpu(text: str) -> dict[tuple[str, str], float]:
    return {(device, kind): float(v) for device, kind, v in GPU_LINE.findall(text)}


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_zero_while_no_run_saw_a_gpu(tmp_path):
    assert _gpu(_scrape(tmp_path)) == {("none", "allocated"): 0, ("none", "reserved"): 0, ("none", "total"): 0}
    # a run that loaded torch on a machine without a GPU writes nothing: the 0s still mean "none"
    _in_a_run(tmp_path, "import torch; from sopilot_pipelines import telemetry; telemetry.observe_job('score', 0.1)")
    assert set(_gpu(_scrape(tmp_path))) == {("none", "allocated"), ("none", "reserved"), ("none", "total")}


def test_figures_a_run_wrote_replace_the_zeros(tmp_path):
    gauge = "from sopilot_pipelines import telemetry; g = telemetry._metrics()['gpu']; "
    _in_a_run(tmp_path, gauge + "g.labels('0', 'allocated').set(123); g.labels('0', 'total').set(1000)")
    assert _gpu(_scrape(tmp_path)) == {("0", "allocated"): 123, ("0", "total"): 1000}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_run_on_a_gpu_reports_what_torch_allocated(tmp_path):
    allocate = "import torch; x = torch.empty(64 * 2**20, dtype=torch.uint8, device='cuda:0'); "
    _in_a_run(tmp_path, allocate + "from sopilot_pipelines import telemetry; telemetry.observe_job('score', 0.1)")
    gpu = _gpu(_scrape(tmp_path))
    assert gpu[("0", "allocated")] >= 64 * 2**20 and gpu[("0", "reserved")] >= gpu[("0", "allocated")]
    assert gpu[("0", "total")] > gpu[("0", "reserved")]


def test_histograms_are_listed_before_any_run_observed_them(tmp_path):
    fresh = _scrape(tmp_path)
    for name in (
        "sopilot_job_duration_seconds",
        "sopilot_dtw_execution_seconds",
        "sopilot_embedding_generation_seconds",
    ):
        assert f"# TYPE {name} histogram" in fresh, name
    assert 'sopilot_job_duration_seconds_count{job_type="score"} 0.0' in fresh
    # once a run observed one, its real figures are served, once
    _in_a_run(tmp_path, "from sopilot_pipelines import telemetry; telemetry.observe_job('score', 0.25)")
    after = _scrape(tmp_path)
    assert re.findall(r'^sopilot_job_duration_seconds_count\{job_type="score"\} (\S+)$', after, re.M) == ["1.0"]
    assert after.count("# TYPE sopilot_job_duration_seconds histogram") == 1

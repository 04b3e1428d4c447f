"""One settings object: every SOPILOT_* variable is a field, the README's table is generated from
the fields, and the core never reads the environment."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from sopilot_pipelines.settings import Settings, markdown_table, settings
from tests.helpers import ROOT


def test_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", readme, re.S)
    assert block, "README.md lost its settings table markers"
    assert block.group(1).strip() == markdown_table().strip(), "regenerate with: python -m sopilot_pipelines.settings"


def test_no_module_reads_the_environment_directly():
    """Settings come from sopilot_pipelines/settings.py alone (instance.py hands the environment
    on to the processes it starts, unread)."""
    offenders = []
    for path in [*ROOT.glob("sopilot_pipelines/**/*.py"), *ROOT.glob("sopilot_api/**/*.py")]:
        text = path.read_text()
        for m in re.finditer(r"os\.environ\.get|os\.getenv|os\.environ\[", text):
            offenders.append(f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}")
    assert offenders == []


def test_groups_read_flat_variables_and_build_core_configs(monkeypatch):
    monkeypatch.setenv("SOPILOT_SAMPLE_FPS", "10")
    monkeypatch.setenv("SOPILOT_FFMPEG_THREADS", "1")
    monkeypatch.setenv("SOPILOT_OVER_TIME_RATIO", "2.5")
    monkeypatch.setenv("SOPILOT_EMBEDDER", "builtin")
    monkeypatch.setenv("SOPILOT_UPLOAD_MAX_MB", "7")
    s = Settings()
    assert s.video.clips().sample_fps == 10.0 and s.video.decode().threads == 1
    assert s.scoring.config().over_time_ratio == 2.5
    assert s.embedding.build().name == "builtin:v1"
    assert s.api.upload_max_mb == 7


@pytest.mark.parametrize(
    "var, value",
    [
        ("SOPILOT_NIGHTLY_HOUR_LOCAL", "25"),
        ("SOPILOT_LOG_FORMAT", "xml"),
        ("SOPILOT_WEIGHT_SWAP", "lots"),
        ("SOPILOT_TORCH_THREADS", "0"),
        ("SOPILOT_AUTO_SCORE", "perhaps"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    settings.cache_clear()
    try:
        with pytest.raises(ValueError, match=var):
            settings()
    finally:
        settings.cache_clear()


def test_the_api_process_imports_no_heavy_module_for_its_settings():
    code = (
        "import sys; from sopilot_pipelines.settings import settings; settings(); "
        "print(sorted(m for m in ('torch', 'numba', 'faiss', 'scipy', 'dagster') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"

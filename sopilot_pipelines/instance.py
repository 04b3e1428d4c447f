"""The Dagster home for a data dir: <data dir>/dagster with the repo's instance config.

Embedded default: dagster.yaml (SQLite under DAGSTER_HOME). Production: dagster.postgres.yaml,
chosen when SOPILOT_DAGSTER_PG_URL is set (or backend="postgres").
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CONFIGS = {"sqlite": "dagster.yaml", "postgres": "dagster.postgres.yaml"}


def prepare_home(data_dir: str | Path, backend: str | None = None) -> Path:
    """Create <data dir>/dagster with the instance config; returns it (for DAGSTER_HOME)."""
    if backend is None:
        from .settings import settings

        backend = "postgres" if settings().dagster_pg_url else "sqlite"
    if backend not in CONFIGS:
        raise ValueError(f"unknown Dagster backend {backend!r}; choose sqlite or postgres")
    home = Path(data_dir).resolve() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).resolve().parent.parent / CONFIGS[backend], home / "dagster.yaml")
    return home


def stack_env(data_dir: str | Path, backend: str | None = None) -> dict[str, str]:
    """Environment for Dagster processes (webserver, daemon, runs) serving this data dir."""
    env = dict(os.environ)
    env["SOPILOT_DATA_DIR"] = str(Path(data_dir).resolve())
    env["DAGSTER_HOME"] = str(prepare_home(data_dir, backend))
    # run processes record timings here; the API merges them into /metrics (see telemetry.py)
    metrics_dir = Path(data_dir).resolve() / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    return env


__all__ = ["prepare_home", "stack_env"]

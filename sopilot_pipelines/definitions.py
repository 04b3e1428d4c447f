"""The SOPilot code location: every domain folder under defs/ (its assets, checks, jobs, sensors
and schedules, found by Dagster's `load_from_defs_folder`; `dg check defs` reads the same), with
the resources and the executor, which are the location's, not a domain's."""

from pathlib import Path

import dagster as dg

from .resources import default_resources
from .settings import settings


def build_defs(resources: dict | None = None) -> dg.Definitions:
    """The whole location; tests pass resources pointing at their own data dir."""
    return dg.Definitions.merge(
        # the project root is found from here (pyproject.toml's [tool.dg]); installs are editable
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=resources or default_resources(), executor=build_executor()),
    )


def build_executor() -> dg.ExecutorDefinition:
    """SOPILOT_EXECUTOR: `in_process` (default: small runs in one process; a subprocess per step
    costs ~2 s here) or `celery` (each step a task on `sopilot worker` processes, workers.py).
    The executor and the retry policy are not set per job (see defs/ingest/jobs.py)."""
    s = settings()
    if s.executor == "celery":
        from dagster_celery import celery_executor

        from .workers import executor_config

        return celery_executor.configured(executor_config(s), name="celery")
    return dg.in_process_executor


defs = build_defs()

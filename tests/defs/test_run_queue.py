"""The instance's run coordinator sets the backfill daemon's pace from dagster.yaml."""

import shutil

import pytest
from dagster import DagsterInstance
from dagster._daemon import controller

from tests.helpers import ROOT


def test_dagster_yaml_sets_the_backfill_daemons_pass(tmp_path, monkeypatch):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", 30)
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        instance.run_coordinator  # noqa: B018 - built on first use, as the daemon does
        assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 2
    finally:
        instance.dispose()


def test_a_dagster_without_the_constant_is_refused(monkeypatch):
    from sopilot_pipelines.defs.run_queue import SopilotRunCoordinator

    monkeypatch.delattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS")
    with pytest.raises(RuntimeError, match="DEFAULT_DAEMON_INTERVAL_SECONDS"):
        SopilotRunCoordinator(backfill_interval_seconds=2)

"""The instance's run launcher checks a STARTED run's worker process, so Dagster's own run
monitoring fails a run whose worker is gone (and the instance's run retry takes it on). A real
instance from dagster.yaml, real processes; the stack-level test is in tests/stack/test_resilience.py."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time

import dagster as dg
from dagster._core.launcher import LaunchRunContext, WorkerStatus
from dagster._core.storage.tags import WILL_RETRY_TAG
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from sopilot_pipelines.defs import run_launcher
from sopilot_pipelines.defs.run_launcher import WARM_TAG, SopilotRunLauncher, process_alive, run_worker
from sopilot_pipelines.instance import prepare_home


def _worker() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def _started_run(instance, pid: int | None):
    run = create_run_for_test(instance, job_name="ingest_job", status=dg.DagsterRunStatus.STARTED)
    if pid is not None:  # what the worker itself writes first (dagster/_grpc/impl.py)
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run)
    return run


def test_dagster_yaml_uses_the_checking_launcher(tmp_path):
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "data"))) as instance:
        assert isinstance(instance.run_launcher, SopilotRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_launcher.warm_workers and instance.run_launcher.worker_niceness == 0
        # a run whose worker died before it STARTED (no health check applies yet) is failed within 60 s
        assert (
            instance.run_monitoring_start_timeout_seconds + instance.run_monitoring_settings["poll_interval_seconds"]
            <= 60
        )
        assert instance.run_monitoring_enabled and instance.run_retries_enabled


def test_a_started_run_whose_worker_is_gone_is_failed_by_run_monitoring_and_retried(tmp_path):
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "data"))) as instance:
        launcher = instance.run_launcher
        launcher.worker_gone_grace_seconds = 1
        worker = _worker()
        run = _started_run(instance, worker.pid)
        try:
            assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
            record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
            monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # alive: untouched
        finally:
            worker.kill()
            worker.wait()
        # gone: the first check waits for the grace (the code server, if alive, reports it first)
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        time.sleep(1.1)
        record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
        monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        assert failed.tags.get(WILL_RETRY_TAG) == "true"  # a crash, not a step failure: the retry takes it on
        failure = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_run_failure]
        assert f"the run worker process (pid {worker.pid}) is gone" in failure[-1].dagster_event.message


def test_a_run_with_no_worker_recorded_yet_is_left_alone(tmp_path):
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "data"))) as instance:
        instance.run_launcher.worker_gone_grace_seconds = 0
        run = _started_run(instance, None)
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING


def test_a_reused_pid_is_not_the_worker(tmp_path):
    worker = _worker()
    try:
        assert process_alive(worker.pid) and process_alive(worker.pid, since=time.time())
        # the event that named this pid was written before this process existed: another process had it
        assert not process_alive(worker.pid, since=time.time() - 60)
    finally:
        worker.kill()
        worker.wait()
    assert not process_alive(worker.pid)


def _warm_run(instance, pid: int, host: str):
    run = create_run_for_test(
        instance, job_name="score_job", status=dg.DagsterRunStatus.STARTED, tags={WARM_TAG: f"{host}:{pid}"}
    )
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run)
    return run


def test_a_warm_workers_run_is_canceled_by_interrupting_its_worker(tmp_path):
    # a worker as `run_worker` is: SIGINT is the cancel; it exits 3 when it got one
    code = "import signal, sys, time\nsignal.signal(signal.SIGINT, lambda *a: sys.exit(3))\nprint('ready', flush=True)\ntime.sleep(600)"
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "ready"  # its handler is installed
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "data"))) as instance:
        launcher = instance.run_launcher
        elsewhere = _warm_run(instance, worker.pid, "another-host")
        assert launcher.check_run_worker_health(elsewhere).status == WorkerStatus.RUNNING  # not ours to check
        assert launcher.terminate(elsewhere.run_id) is False  # nor to signal: the pid is another host's
        assert worker.poll() is None
        run = _warm_run(instance, worker.pid, socket.gethostname())
        assert launcher.terminate(run.run_id) is True
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELING
        assert worker.wait(timeout=30) == 3
        assert launcher.terminate(run.run_id) is False  # its worker is gone: nothing to signal


def test_a_run_canceled_while_its_warm_worker_forks_is_canceled_not_started(tmp_path, monkeypatch):
    with dg.DagsterInstance.from_config(str(prepare_home(tmp_path / "data"))) as instance:
        run = create_run_for_test(instance, job_name="score_job", status=dg.DagsterRunStatus.STARTING)
        tags_at_fork = []

        class Forked:  # the forkserver's Process, which only records what the run's tags are as it forks
            pid = 4242

            def __init__(self, **kw):
                pass

            def start(self):
                tags_at_fork.append(instance.get_run_by_id(run.run_id).tags.get(WARM_TAG))

        monkeypatch.setattr(run_launcher, "_warm_context", lambda: type("Ctx", (), {"Process": Forked})())
        instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        # tagged this host's before the fork, so a cancel from then on is this launcher's (not the code server's)
        assert tags_at_fork == [socket.gethostname()]
        assert instance.get_run_by_id(run.run_id).tags[WARM_TAG] == f"{socket.gethostname()}:4242"
        instance.add_run_tags(run.run_id, {WARM_TAG: socket.gethostname()})  # as while it forks
        assert instance.run_launcher.terminate(run.run_id) is True  # this launcher's cancel, not the code server's
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELING
        run_worker(run.run_id, instance.get_ref())  # the worker, once forked, finds it canceling
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
        assert not any(e.event_type_value == "PIPELINE_START" for e in events)  # no step of it ran

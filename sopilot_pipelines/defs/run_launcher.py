"""The instance's run launcher (dagster.yaml `run_launcher`): Dagster's default one, plus the
run worker health check Dagster's run monitoring asks every launcher for.

Dagster 1.13's `DefaultRunLauncher` has none (`supports_check_run_worker_health` is False), so
its run monitoring only times out runs that never started: a STARTED run whose worker process is
gone stays STARTED and holds its run slot until the next start of the stack (recovery.py). The
code server that spawned a worker notices its death, but only while that code server lives; a
worker that dies with it (or after it) is noticed by nobody.

This launcher answers the check from the worker's own record: the run's "Started process for
run (pid: N)" engine event names the worker, and `/proc` says whether that process still lives
(and is the same process: a pid the kernel gave to a newer process does not count). A worker
found gone on two checks `worker_gone_grace_seconds` apart (the code server, when alive, reports
its death first) is reported FAILED; the run monitoring daemon then fails the run, saying so, and
the instance's run retry (dagster.yaml) re-runs it, so its jobs carry on. With the monitoring
daemon's `poll_interval_seconds: 10` a dead worker is noticed within about 20 s.

The check sees only processes on this host, which with the default launcher are all of them: the
run queue daemon launches every run through its own local code servers. A run launched through a
code server on another host is never reported gone (RUNNING, "not checked").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dagster import Field, IntSource
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG

STARTED_PROCESS = "Started process for run (pid: "  # dagster/_grpc/impl.py, dagster/_cli/api.py
LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}
# a process started this long after the event naming its pid is a newer process given that pid
PID_REUSE_SLACK_S = 2.0
MAX_REMEMBERED = 10_000


class SopilotRunLauncher(DefaultRunLauncher):
    def __init__(self, inst_data=None, worker_gone_grace_seconds: int = 5):
        super().__init__(inst_data=inst_data)
        self.worker_gone_grace_seconds = worker_gone_grace_seconds
        self._workers: dict[str, tuple[int, float]] = {}  # run id -> (worker pid, when its event was written)
        self._gone_since: dict[str, float] = {}  # run id -> when its worker was first found gone

    @classmethod
    def config_type(cls):
        return {
            "worker_gone_grace_seconds": Field(
                IntSource,
                is_required=False,
                default_value=5,
                description="A worker found gone is reported failed when found gone again this much later",
            )
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if not _launched_here(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not checked: its code server is on another host")
        worker = self._worker(run.run_id)
        if worker is None:  # the worker has not said who it is yet (or an older Dagster wrote no pid)
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid recorded yet")
        pid, since = worker
        if process_alive(pid, since):
            self._gone_since.pop(run.run_id, None)
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} alive", run_worker_id=str(pid))
        now = time.monotonic()
        first = self._gone_since.setdefault(run.run_id, now)
        if now - first < self.worker_gone_grace_seconds:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} gone; checking again")
        self._gone_since.pop(run.run_id, None)
        self._workers.pop(run.run_id, None)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker process (pid {pid}) is gone: it was killed or crashed while the run was in flight",
            run_worker_id=str(pid),
        )

    def _worker(self, run_id: str) -> tuple[int, float] | None:
        """(pid, time) of the run's latest "Started process for run" event (a resumed run has
        several; this launcher's runs are never resumed, so the first one found is kept)."""
        if run_id in self._workers:
            return self._workers[run_id]
        found = None
        for record in self._instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            if not (record.message or "").startswith(STARTED_PROCESS):
                continue
            try:
                found = (int(record.message[len(STARTED_PROCESS) :].split(")")[0]), float(record.timestamp))
            except ValueError:
                continue
        if found is not None:
            if len(self._workers) >= MAX_REMEMBERED:  # runs that ended are never checked again
                for old in list(self._workers)[: MAX_REMEMBERED // 2]:
                    del self._workers[old]
            self._workers[run_id] = found
        return found


def _launched_here(run: DagsterRun) -> bool:
    raw = run.tags.get(GRPC_INFO_TAG)
    if not raw:
        return True  # no code server recorded: launched in process by this host's daemon
    try:
        info = json.loads(raw)
    except ValueError:
        return False
    return info.get("socket") is not None or info.get("host") in LOCAL_HOSTS


def process_alive(pid: int, since: float | None = None) -> bool:
    """Whether process ``pid`` lives (a zombie does not), and, with ``since`` (epoch seconds), was
    already running then: a pid reused by a process started later is another process."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        text = stat.read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): existence is all we can tell
        return _signal_zero(pid)
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X", "x"):  # exited, not yet reaped
        return False
    if since is None:
        return True
    started = boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime
    return started <= since + PID_REUSE_SLACK_S


def _signal_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0

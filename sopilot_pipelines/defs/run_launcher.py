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

Warm run workers (`warm_workers`, on by default). The code server starts each run in a fresh
interpreter (multiprocessing "spawn"): importing Dagster and the code location took ~2.7 s here
before any work, then the run's first score loaded numba's kernels and the report modules (~1.3 s).
This launcher instead forks each run worker from a forkserver of its own process (the daemon's
run queue) that has already paid for all that once (`sopilot_pipelines/warm.py`, its preload),
and the child runs the run as `dagster api execute_run` does. A cancel is that command's own
interrupt (SIGINT to the worker, from the start event's pid); a run canceled before its worker
wrote that event is not started. The health check above reads the same event. The
forkserver loads the code as it is when it starts: after a code change the stack is restarted,
as it is for the code servers. Where the forkserver cannot start a worker, the run goes through
the code server as before.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import time
from pathlib import Path

from dagster import BoolSource, Field, IntSource
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

STARTED_PROCESS = "Started process for run (pid: "  # dagster/_grpc/impl.py, dagster/_cli/api.py
LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}
# a process started this long after the event naming its pid is a newer process given that pid
PID_REUSE_SLACK_S = 2.0
MAX_REMEMBERED = 10_000
WARM_TAG = "sopilot/warm_worker"  # "<host>:<pid>" of a warm run worker ("<host>" while it forks)
WARM_PRELOAD = "sopilot_pipelines.warm"

log = logging.getLogger("sopilot.run_launcher")


class SopilotRunLauncher(DefaultRunLauncher):
    def __init__(
        self, inst_data=None, worker_gone_grace_seconds: int = 5, warm_workers: bool = True, worker_niceness: int = 0
    ):
        super().__init__(inst_data=inst_data)
        self.worker_gone_grace_seconds = worker_gone_grace_seconds
        self.warm_workers, self.worker_niceness = warm_workers, worker_niceness
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
            ),
            "warm_workers": Field(
                BoolSource,
                is_required=False,
                default_value=True,
                description="Fork run workers from a process that has loaded the code location (else: code server)",
            ),
            "worker_niceness": Field(
                IntSource,
                is_required=False,
                default_value=0,
                description="A warm worker's nice increment (>0: the API's requests before runs, on a host of its own)",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if not self.warm_workers:
            return super().launch_run(context)
        host = socket.gethostname()
        # tagged before the fork: a cancel from here on is this launcher's (terminate), not the code server's
        self._instance.add_run_tags(run.run_id, {WARM_TAG: host})
        try:
            worker = _warm_context().Process(
                target=run_worker,
                args=(run.run_id, self._instance.get_ref(), self.worker_niceness),
                name=f"run-{run.run_id[:8]}",
            )
            worker.start()
        except Exception as exc:  # the forkserver could not start or fork: the code server's way
            log.warning("run %s: no warm worker (%s); launching it through the code server", run.run_id, exc)
            self._instance.add_run_tags(run.run_id, {WARM_TAG: ""})  # not a warm worker's after all
            return super().launch_run(context)
        self._instance.add_run_tags(run.run_id, {WARM_TAG: f"{host}:{worker.pid}"})
        self._run_ids.add(run.run_id)
        multiprocessing.active_children()  # forget the workers that have ended

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or not run.tags.get(WARM_TAG):
            return super().terminate(run_id)
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        worker = self._worker(run_id)
        if worker is None:  # not started yet: it finds the run canceling and does not start (run_worker)
            return True
        pid, since = worker
        if not _launched_here(run) or not process_alive(pid, since):
            self._instance.report_engine_event(f"no run worker pid {pid} on this host to cancel", run, cls=type(self))
            return False
        os.kill(pid, signal.SIGINT)  # the worker cancels the run at its next safe point, as on a code server
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


_warm: multiprocessing.context.ForkServerContext | None = None


def _warm_context() -> multiprocessing.context.ForkServerContext:
    """This process's forkserver context, its preload the warm-up (started on first use)."""
    global _warm
    if _warm is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([WARM_PRELOAD])
        _warm = ctx
    return _warm


def run_worker(run_id: str, instance_ref, niceness: int = 0) -> None:
    """A forked run worker: what `dagster api execute_run` does with a run (its start event
    names this pid; SIGINT, under capture_interrupts, cancels the run at a safe point)."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import DagsterInstance
    from dagster._utils.interrupts import capture_interrupts

    if niceness:
        os.nice(niceness)  # on a shared machine the API's requests and the daemon's loops come first

    with capture_interrupts(), DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status == DagsterRunStatus.CANCELING:  # canceled while it was forked
            instance.report_run_canceled(run, message="Canceled before its run worker started.")
            return
        # from its start event on (written under capture_interrupts), a cancel is a SIGINT (terminate)
        _execute_run_command_body(run_id, instance, write_stream_fn=lambda event: None, set_exit_code_on_failure=False)


def _launched_here(run: DagsterRun) -> bool:
    if run.tags.get(WARM_TAG):
        return run.tags[WARM_TAG].split(":", 1)[0] == socket.gethostname()
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

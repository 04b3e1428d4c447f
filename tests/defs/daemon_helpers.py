"""What the daemon, backfill, Celery and lineage tests share: a real `dagster-daemon` over a data
dir of its own (test_daemon's, test_backfills' and test_celery's stacks), Dagster's GraphQL as the
UI sends it, and the stale status the UI shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.scheduler.instigation import TickStatus
from dagster_graphql.test.utils import execute_dagster_graphql

from sopilot_pipelines.catalog import Catalog
from tests.helpers import ROOT

DAEMON = Path(sys.executable).parent / "dagster-daemon"
TASK = "daemon_assembly"  # test_daemon's task: the index Stack.diagnose reports
SENSORS = ("inbox_sensor", "auto_score_sensor", "index_sensor")
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


class Stack:
    """A data dir, its Dagster instance and catalog (read in-process), and the daemon."""

    def __init__(self, backend: str, tmp: Path, env: dict[str, str], catalog_url: str):
        self.backend, self.tmp, self.env = backend, tmp, env
        self.data = Path(env["SOPILOT_DATA_DIR"])
        self.home = Path(env["DAGSTER_HOME"])
        self.log_path = tmp / "daemon.log"
        # create both schemas before the daemon starts, so no two processes race to migrate
        self.instance = DagsterInstance.from_config(str(self.home))
        self.catalog = Catalog(catalog_url)
        self.proc: subprocess.Popen | None = None
        self.killed = False  # SIGKILL was needed

    def start(self) -> None:
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [str(DAEMON), "run", "-w", "workspace.yaml"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # Dagster copies SIGINT's handler onto SIGTERM: if this pytest was started with
                # SIGINT ignored (background shell), the daemon would ignore SIGTERM too.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        finally:
            log.close()

    def stop(self, grace_s: float = 20.0) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the daemon leads its own process group
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace_s
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        # the code server and run workers are in the same group: wait for them as well
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.proc.poll() is None or _group_members(pgid):
            self.killed = True
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            for _ in range(50):
                if not _group_members(pgid):
                    break
                time.sleep(0.1)
        self.proc = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.instance.dispose()
            self.catalog.close()

    # ---- reads

    def runs(self, job_name: str | None = None) -> list:
        records = self.instance.get_run_records(dg.RunsFilter(job_name=job_name) if job_name else None)
        return sorted(records, key=lambda r: r.create_timestamp)

    def daemon_log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no daemon log: {exc})"
        return text[-chars:]

    def diagnose(self, headline: str) -> str:
        """What went wrong, in enough detail to act on without re-running."""
        out = [headline, f"backend: {self.backend}, data dir: {self.data}"]
        if self.proc is not None and self.proc.poll() is not None:
            out.append(f"daemon EXITED with code {self.proc.returncode}")
        try:
            for v in self.catalog.list_videos(limit=None):
                out.append(
                    f"video {v['video_id']} {v['role']} {v['status']} run={v.get('ingest_run_id')}"
                    f" err={v.get('error_message')}"
                )
            for s in self.catalog.list_scores(limit=None):
                out.append(f"score {s['job_id']} {s['status']} run={s['run_id']} err={s['error_message']}")
            out.append(f"index: {self.catalog.current_index_version(TASK)}")
        except Exception as exc:
            out.append(f"(catalog unreadable: {exc!r})")
        try:
            for r in self.runs():
                run = r.dagster_run
                out.append(f"run {run.run_id} {run.job_name} {run.status.value} tags={dict(run.tags)}")
                if run.status != DagsterRunStatus.SUCCESS:
                    out.append(_event_log_tail(self.instance, run.run_id))
            for name, ticks in self.ticks().items():
                for t in ticks:
                    if t.status.value == "FAILURE":
                        out.append(f"sensor {name} tick FAILED: {t.error.to_string() if t.error else '?'}")
        except Exception as exc:
            out.append(f"(Dagster storage unreadable: {exc!r})")
        out.append("---- daemon log (tail) ----")
        out.append(self.daemon_log_tail())
        return "\n".join(out)

    def ticks(self, after: float | None = None, finished: bool = False) -> dict[str, list]:
        """Each sensor's ticks (newest first), optionally only those created after a timestamp
        and only those whose evaluation has finished."""
        out: dict[str, list] = {}
        for state in self.instance.all_instigator_state():
            if state.name in SENSORS:
                ticks = self.instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
                out[state.name] = [t for t in ticks if not finished or t.status != TickStatus.STARTED]
        return out


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _event_log_tail(instance: DagsterInstance, run_id: str, n: int = 25) -> str:
    lines = [f"  -- event log of {run_id} (last {n}) --"]
    for entry in instance.all_logs(run_id)[-n:]:
        ev = entry.dagster_event
        kind = ev.event_type_value if ev else "LOG"
        line = f"  {kind} {entry.step_key or ''}: {entry.user_message or ''}"
        error = getattr(getattr(ev, "event_specific_data", None), "error", None) if ev else None
        if error is not None:
            line += "\n    " + error.to_string().replace("\n", "\n    ")
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------- Dagster's GraphQL (what the UI sends)

BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }"""


def gql(ctx, query, variables):
    result = execute_dagster_graphql(ctx.create_request_context(), query, variables)
    assert not result.errors, result.errors
    return next(iter(result.data.values()))


# --------------------------------------------------------------------------- the UI's stale status


def stale_resolver(instance, asset_graph) -> CachingStaleStatusResolver:
    """What the UI's stale status comes from (the workspace's loader builds it the same way)."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._time import get_current_datetime

    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    return CachingStaleStatusResolver(instance, asset_graph, loading_context=view)

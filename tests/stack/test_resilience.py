"""`sopilot up` as an operator runs it: a supervisor that restarts what dies, one stack per data
dir, nothing left behind when it is killed, recovery at start. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

SOPILOT = str(Path(sys.executable).with_name("sopilot"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (process group, command line) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":  # zombies are gone already
            out[int(d.name)] = (int(fields[2]), cmd)
    return out


def _wait(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def _health(port: int) -> dict | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        return r.json() if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


class Up:
    """One `sopilot up` on a data dir, as an operator starts it."""

    def __init__(self, data: Path, env_extra: dict[str, str] | None = None):
        self.data, self.port, self.dagster_port = data, _free_port(), _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOPILOT_")}
        env.update({"SOPILOT_API_TOKEN": "t", "SOPILOT_EMBEDDER": "builtin", **(env_extra or {})})
        self.proc = subprocess.Popen(
            [
                SOPILOT,
                "up",
                "--data-dir",
                str(data),
                "--port",
                str(self.port),
                "--dagster-port",
                str(self.dagster_port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait_up(self, timeout: float = 240) -> None:
        _wait(
            lambda: self.proc.poll() is not None or (_health(self.port) or {}).get("status") == "ok",
            timeout,
            "stack up",
        )
        assert self.proc.poll() is None, self.proc.stdout.read()

    def group(self) -> set[int]:
        """The pids of the stack's process group (the webserver leads it)."""
        procs = _processes()
        leaders = [pid for pid, (pg, cmd) in procs.items() if pid == pg and f"-p {self.dagster_port}" in cmd]
        return {pid for pid, (pg, _) in procs.items() if leaders and pg == leaders[0]}

    def pid_of(self, needle: str) -> int:
        return next(pid for pid in self.group() if needle in _processes().get(pid, (0, ""))[1])

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.stdout.read()


def test_supervisor_restarts_a_dead_daemon_and_one_stack_per_data_dir(tmp_path):
    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    partial = data / "uploads" / ".upload-cutoff"
    partial.write_bytes(b"x" * 1000)  # what an upload killed mid-way leaves
    up = Up(data)
    try:
        up.wait_up()
        assert not partial.exists()  # recovery at start removes partial spool files

        second = subprocess.run(
            [SOPILOT, "up", "--data-dir", str(data), "--port", str(_free_port()), "--dagster-port", str(_free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and "in use by another `sopilot up`" in second.stderr, second.stderr
        assert (_health(up.port) or {}).get("status") == "ok"  # the running stack is untouched

        daemon = up.pid_of("dagster-daemon")
        os.kill(daemon, signal.SIGKILL)
        seen = _wait(lambda: (h := _health(up.port)) and h["status"] == "degraded" and h, 30, "health degraded")
        assert "daemon" in seen["down"] and "exited with code -9" in seen["down"]["daemon"]
        _wait(lambda: (_health(up.port) or {}).get("status") == "ok", 60, "health ok again")
        assert up.pid_of("dagster-daemon") != daemon
        assert up.proc.poll() is None  # the stack carried on
    finally:
        out = up.stop()
    assert "daemon exited with code -9; restarting" in out and "daemon restarted" in out
    assert up.proc.returncode == 0


def test_a_killed_sopilot_up_leaves_no_process_and_its_data_dir_free(tmp_path):
    data = tmp_path / "data"
    up = Up(data)
    try:
        up.wait_up()
        members = up.group()
        assert len(members) >= 3  # webserver, daemon, API (and their code servers)
        os.kill(up.proc.pid, signal.SIGKILL)
        alive = lambda: members & set(_processes())  # noqa: E731
        _wait(lambda: not alive(), 20, f"the stack's processes gone (left: {alive()})")
        with socket.socket() as s:  # the API's port is free again: no listener left on it
            # SO_REUSEADDR, as a server restarting sets it: the closed connections' TIME_WAIT
            # entries (the kernel's, for a minute) do not hold the port, a live listener does.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", up.port))
            s.listen()
        again = Up(data)  # the lock died with its holder
        try:
            again.wait_up()
        finally:
            again.stop()
        assert again.proc.returncode == 0
    finally:
        up.stop()


def test_runs_left_in_flight_are_failed_at_start_with_a_reason(tmp_path):
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    from sopilot_pipelines.instance import prepare_home
    from sopilot_pipelines.recovery import INTERRUPTED, recover

    home = prepare_home(tmp_path / "data")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        cut = create_run_for_test(instance, job_name="index_job", status=dg.DagsterRunStatus.STARTED)
        done = create_run_for_test(instance, job_name="index_job", status=dg.DagsterRunStatus.SUCCESS)
    assert recover(str(home)) == [cut.run_id]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(cut.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(done.run_id).status == dg.DagsterRunStatus.SUCCESS
        failure = [e for e in instance.all_logs(cut.run_id) if e.dagster_event and e.dagster_event.is_run_failure]
        assert failure and INTERRUPTED in failure[-1].dagster_event.message
    assert recover(str(home)) == []  # nothing left in flight

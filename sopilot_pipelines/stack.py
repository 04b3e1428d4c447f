"""`sopilot up`: the Dagster webserver, the daemon and the API on loopback, as one supervised unit.

* One process group for everything the stack starts (children and their children: code
  servers, run workers), so one `killpg` reaches them all. A watchdog process holds a pipe from
  `sopilot up`: when `sopilot up` dies, even by SIGKILL, the pipe closes and the watchdog kills the
  group. Children run with SIGINT reset to the default (a background `dagster` inherits an
  ignored SIGINT and copies it onto SIGTERM, after which only SIGKILL stops it).
* A child that dies is restarted with backoff and logged; the API's /health says `degraded`
  and which part is down (read from `<data dir>/stack/status.json`) until it is back. A child
  that dies 5 times within 60 s makes the stack give up: everything stops, exit code 1.
  Ctrl-C or SIGTERM stops everything: SIGTERM to the group, SIGKILL after a grace period.
* One stack per data dir: a lock file (`<data dir>/stack/lock`, flock, with the pid) refuses a
  second `sopilot up` clearly.
* Recovery at start: partial upload spool files are removed, and runs left STARTING/STARTED by
  a stack that died are failed with a reason (the instance's run retries re-run them once),
  their score jobs with them.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from .instance import stack_env

ROOT = Path(__file__).resolve().parent.parent
GIVE_UP_DEATHS, GIVE_UP_WINDOW_S = 5, 60.0  # a child dying this often is not coming back
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)

# Kills the stack's process group when the pipe from `sopilot up` closes (its parent died).
_WATCHDOG = """
import os, signal, sys
sys.stdin.buffer.read()
try:
    os.killpg(int(sys.argv[1]), signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class StackInUse(RuntimeError):
    """Another `sopilot up` holds this data dir."""


@dataclass
class Stack:
    data_dir: Path
    port: int = 8000
    dagster_port: int = 3000
    workers: int = 0  # local Celery workers (`sopilot up --workers N`, SOPILOT_EXECUTOR=celery)
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    pgid: int | None = None
    _lock: IO[str] | None = None
    _watchdog: subprocess.Popen | None = None
    _env: dict[str, str] = field(default_factory=dict)
    _deaths: dict[str, deque] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.dagster_port}"

    @property
    def state_dir(self) -> Path:
        return Path(self.data_dir).resolve() / "stack"

    def _commands(self) -> dict[str, list[str]]:
        bin_dir = Path(sys.executable).parent
        workspace = str(ROOT / "workspace.yaml")
        return {
            "webserver": [
                str(bin_dir / "dagster-webserver"),
                "-w",
                workspace,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.dagster_port),
            ],
            "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
            "api": [
                sys.executable,
                "-m",
                "uvicorn",
                "sopilot_api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            **{
                f"worker{i}": [sys.executable, "-m", "sopilot_pipelines.cli", "worker", "--name", f"worker{i}"]
                for i in range(1, self.workers + 1)
            },
        }

    def _take_lock(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        f = open(self.state_dir / "lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise StackInUse(
                f"data dir {Path(self.data_dir).resolve()} is in use by another `sopilot up` (pid {holder}); "
                "stop it first, or use another --data-dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock = f  # held open: the kernel releases it when this process dies

    def _spawn(self, name: str) -> None:
        logs = Path(self._env["SOPILOT_DATA_DIR"]) / "logs"
        with open(logs / f"{name}.log", "ab") as log:
            try:
                p = self._popen(name, log)
            except PermissionError:  # every member of the group died: it is gone, start a new one
                self._release_watchdog()
                self.pgid = None
                p = self._popen(name, log)
        if self.pgid is None:
            self.pgid = p.pid
            # its own session: a signal to `sopilot up`'s group (Ctrl-C, killpg) does not reach it
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(self.pgid)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = p

    def _popen(self, name: str, log) -> subprocess.Popen:
        # the first child leads a new process group (in this session, so it can be joined); the
        # others join it. cwd = DAGSTER_HOME: from the repo root Dagster warns that ./dagster.yaml
        # is not the one in use
        return subprocess.Popen(
            self._commands()[name],
            cwd=self._env["DAGSTER_HOME"],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_reset_signals,
            process_group=0 if self.pgid is None else self.pgid,
        )

    def _release_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.stdin is not None:
            self._watchdog.stdin.close()  # its group is gone already: its kill finds nothing
            self._watchdog.wait()
            self._watchdog = None

    def start(self, timeout: float = 120.0) -> "Stack":
        self._take_lock()
        env = stack_env(self.data_dir)
        env.update({"SOPILOT_DAGSTER_URL": self.dagster_url, "PYTHONUNBUFFERED": "1"}, **self.env_extra)
        self._env = env
        _remove_partial_uploads(Path(env["SOPILOT_DATA_DIR"]))
        # once, before both start (they would race to create it); in a child, for the env above
        subprocess.run(
            [sys.executable, "-m", "sopilot_pipelines.recovery", env["DAGSTER_HOME"]],
            env=env,
            cwd=env["DAGSTER_HOME"],
            check=True,
        )
        (Path(env["SOPILOT_DATA_DIR"]) / "logs").mkdir(parents=True, exist_ok=True)
        self.write_status({})
        for name in self._commands():
            self._spawn(name)
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float) -> None:
        logs = Path(self._env["SOPILOT_DATA_DIR"]) / "logs"
        deadline = time.monotonic() + timeout
        pending = {"webserver", "api", "daemon"}
        with httpx.Client(timeout=5) as client:
            while pending and time.monotonic() < deadline:
                for name, p in self.procs.items():
                    if p.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {p.returncode}; see {logs / (name + '.log')}")
                for name in ("webserver", "api", "daemon"):  # the API and the daemon are asked through the webserver
                    if name in pending and (name == "webserver" or "webserver" not in pending):
                        if self._answers(name, client):
                            pending.discard(name)
                time.sleep(0.5)
        if pending:
            raise TimeoutError(f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))}; logs in {logs}")

    def write_status(self, down: dict[str, str]) -> None:
        """What the API's /health reports: the parts that are down, and why."""
        path = self.state_dir / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "down": down}))
        os.replace(tmp, path)

    def supervise(self, should_stop) -> int:
        """Restart children that die, with backoff, until ``should_stop()``; 1 when a child keeps
        dying (everything is stopped then), else 0."""
        down: dict[str, tuple[float, str]] = {}  # name -> (restart at, reason)
        coming: dict[str, tuple[float, str]] = {}  # restarted, not answering yet: (when, reason), still down
        client = httpx.Client(timeout=2)

        def report() -> None:
            self.write_status({**{k: v[1] for k, v in coming.items()}, **{k: v[1] for k, v in down.items()}})

        while not should_stop():
            now = time.monotonic()
            for name, p in list(self.procs.items()):
                if name in down or p.poll() is None:
                    continue
                coming.pop(name, None)
                deaths = self._deaths.setdefault(name, deque())
                deaths.append(now)
                while deaths and now - deaths[0] > GIVE_UP_WINDOW_S:
                    deaths.popleft()
                if len(deaths) >= GIVE_UP_DEATHS:
                    print(
                        f"{name} died {len(deaths)} times within {GIVE_UP_WINDOW_S:.0f} s (last exit code {p.returncode}); "
                        "giving up, stopping everything",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                wait = BACKOFF_S[min(len(deaths) - 1, len(BACKOFF_S) - 1)]
                reason = f"exited with code {p.returncode}; restarting in {wait:.0f} s"
                print(f"{name} {reason}", file=sys.stderr, flush=True)
                down[name] = (now + wait, reason)
                report()
            for name, (at, reason) in list(down.items()):
                if time.monotonic() >= at:
                    self._spawn(name)
                    print(f"{name} restarted (pid {self.procs[name].pid})", file=sys.stderr, flush=True)
                    del down[name]
                    coming[name] = (time.time(), reason.split(";")[0] + "; restarted, not answering yet")
                    report()
            back = [name for name, (since, _) in coming.items() if self._answers(name, client, since)]
            for name in back:
                del coming[name]
            if back:
                report()
            time.sleep(0.5)
        client.close()
        return 0

    def _answers(self, name: str, client: httpx.Client, since: float = 0.0) -> bool:
        """Whether a child (restarted at ``since``, epoch seconds) answers: what start() waits for,
        and a restart counts as done (a worker: running)."""
        if name == "webserver":
            return _ok(client, f"{self.dagster_url}/server_info")
        if name == "api":
            return _ok(client, f"{self.api_url}/health")
        if name == "daemon":
            return _daemon_ok(client, self.dagster_url, since)
        return self.procs[name].poll() is None

    def stop(self, grace: float = 20.0) -> None:
        if self.pgid is not None:
            _signal_group(self.pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for p in self.procs.values():
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            # whatever is left of the group (a child's children included)
            _signal_group(self.pgid, signal.SIGKILL)
            for p in self.procs.values():
                p.wait()
        self._release_watchdog()
        self.procs.clear()
        self.pgid = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _remove_partial_uploads(data_dir: Path) -> None:
    """Spool files of uploads cut off by a crash (`uploads/.upload-*`): nothing refers to them."""
    for path in (data_dir / "uploads").glob(".upload-*"):
        path.unlink(missing_ok=True)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _ok(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _daemon_ok(client: httpx.Client, dagster_url: str, since: float = 0.0) -> bool:
    """Every required daemon healthy, with a heartbeat from ``since`` (epoch seconds) on: a daemon
    just killed still looks healthy on its last heartbeats for a while."""
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required lastHeartbeatTime } } } }"
    try:
        data = client.post(f"{dagster_url}/graphql", json={"query": query}).json()
        statuses = data["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return False
    required = [d for d in statuses if d["required"]]
    return bool(required) and all(d["healthy"] and (d["lastHeartbeatTime"] or 0.0) >= since for d in required)


def run_forever(stack: Stack, already_started: bool = False) -> int:
    """Start, print where everything is, supervise until Ctrl-C or SIGTERM, stop cleanly. Exit
    status 1 when a child kept dying (a service manager restarting on failure then restarts
    the whole stack), 2 when the data dir is in use."""
    stopping = {"flag": False}

    def _stop(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if not already_started:
        try:
            stack.start()
        except StackInUse as exc:
            print(f"sopilot up: {exc}", file=sys.stderr)
            return 2
    print(
        f"SOPilot is up (data dir {stack.data_dir})\n  API:       {stack.api_url}  (docs: {stack.api_url}/docs)\n"
        f"  Dagster:   {stack.dagster_url}\nCtrl-C stops everything.",
        flush=True,
    )
    try:
        code = stack.supervise(lambda: stopping["flag"])
    finally:
        stack.stop()
        print("stopped", flush=True)
    return code

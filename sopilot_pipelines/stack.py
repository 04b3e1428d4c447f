"""`sopilot up`: the Dagster webserver, the daemon and the API on loopback, as one unit.

Children run in their own process groups with SIGINT reset to the default (a background
`dagster` inherits an ignored SIGINT and copies it onto SIGTERM, after which only SIGKILL stops
it). Ctrl-C or SIGTERM stops all three: SIGTERM to each group, SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .instance import stack_env

ROOT = Path(__file__).resolve().parent.parent


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Stack:
    data_dir: Path
    port: int = 8000
    dagster_port: int = 3000
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.dagster_port}"

    def start(self, timeout: float = 120.0) -> "Stack":
        env = stack_env(self.data_dir)
        env.update({"SOPILOT_DAGSTER_URL": self.dagster_url, "PYTHONUNBUFFERED": "1"}, **self.env_extra)
        # once, before both start (they would race to create it); in a child, for the env above
        subprocess.run([sys.executable, "-c", "import sys; from sopilot_pipelines.instance import init_storage; "
                        "init_storage(sys.argv[1])", env["DAGSTER_HOME"]], env=env, cwd=env["DAGSTER_HOME"], check=True)  # fmt: skip
        logs = Path(env["SOPILOT_DATA_DIR"]) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        workspace = str(ROOT / "workspace.yaml")
        commands = {
            "webserver": [str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(self.dagster_port)],
            "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
            "api": [sys.executable, "-m", "uvicorn", "sopilot_api.main:app", "--host", "127.0.0.1", "--port", str(self.port),
                    "--no-access-log"],
        }  # fmt: skip
        for name, cmd in commands.items():
            log = open(logs / f"{name}.log", "ab")
            # cwd = DAGSTER_HOME: from the repo root Dagster warns that ./dagster.yaml is not the one in use
            self.procs[name] = subprocess.Popen(cmd, cwd=env["DAGSTER_HOME"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_reset_signals)  # fmt: skip
        try:
            self._wait_healthy(timeout, logs)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout: float, logs: Path) -> None:
        deadline = time.monotonic() + timeout
        pending = {"webserver", "api", "daemon"}
        with httpx.Client(timeout=5) as client:
            while pending and time.monotonic() < deadline:
                for name, p in self.procs.items():
                    if p.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {p.returncode}; see {logs / (name + '.log')}")
                if "webserver" in pending and _ok(client, f"{self.dagster_url}/server_info"):
                    pending.discard("webserver")
                if "api" in pending and "webserver" not in pending and _ok(client, f"{self.api_url}/health"):
                    pending.discard("api")
                if "daemon" in pending and "webserver" not in pending and _daemon_ok(client, self.dagster_url):
                    pending.discard("daemon")
                time.sleep(0.5)
        if pending:
            raise TimeoutError(f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))}; logs in {logs}")

    def stop(self, grace: float = 20.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()
        self.procs.clear()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


def _ok(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _daemon_ok(client: httpx.Client, dagster_url: str) -> bool:
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
    try:
        data = client.post(f"{dagster_url}/graphql", json={"query": query}).json()
        statuses = data["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return False
    required = [d for d in statuses if d["required"]]
    return bool(required) and all(d["healthy"] for d in required)


def run_forever(stack: Stack, already_started: bool = False) -> int:
    """Start, print where everything is, block until Ctrl-C or SIGTERM, stop cleanly."""
    stopping = {"flag": False}

    def _stop(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if not already_started:
        stack.start()
    print(f"SOPilot is up (data dir {stack.data_dir})\n  API:       {stack.api_url}  (docs: {stack.api_url}/docs)\n"
          f"  Dagster:   {stack.dagster_url}\nCtrl-C stops everything.", flush=True)  # fmt: skip
    try:
        while not stopping["flag"]:
            for name, p in stack.procs.items():
                if p.poll() is not None:
                    print(f"{name} exited with code {p.returncode}; stopping", file=sys.stderr)
                    stopping["flag"] = True
            time.sleep(0.5)
    finally:
        stack.stop()
        print("stopped", flush=True)
    return 0

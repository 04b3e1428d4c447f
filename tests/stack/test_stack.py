"""`sopilot up` starts webserver, daemon and API, and SIGTERM or Ctrl-C stops every process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, free_port


def _processes_using(marker: str) -> list[int]:
    """Pids whose environment mentions marker (our data dir): every process the stack started."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if marker.encode() in (d / "environ").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_serves_and_stops_cleanly(tmp_path, sig):
    data = tmp_path / "stack-data"
    port, dport = free_port(), free_port()
    env = dict(os.environ, SOPILOT_API_TOKEN="t0ken", PYTHONUNBUFFERED="1")
    cmd = [
        str(Path(sys.executable).with_name("sopilot")),
        "up",
        "--data-dir",
        str(data),
        "--port",
        str(port),
        "--dagster-port",
        str(dport),
    ]
    # start_new_session: like a background job, SIGINT would be ignored if the stack did not reset it
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        lines, deadline = [], time.monotonic() + 150
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line or (not line and proc.poll() is not None):
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}" in out and f"http://127.0.0.1:{dport}" in out, out
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok", "db": True, "down": {}}
        assert (
            httpx.get(f"http://127.0.0.1:{port}/videos", headers={"Authorization": "Bearer t0ken"}).status_code == 200
        )
        assert httpx.get(f"http://127.0.0.1:{dport}/server_info").status_code == 200
        started = _processes_using(str(data))
        assert len(started) >= 3, started
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while _processes_using(str(data)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_using(str(data)) == []
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _processes_using(str(data)):
            os.kill(pid, signal.SIGKILL)

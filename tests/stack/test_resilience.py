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

from sopilot_api.score_queue import is_claim
from tests.helpers import long_video

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
        assert any(_of_data_dir(pid, data) for pid in _listeners(up.port))  # the API, found as below
        os.kill(up.proc.pid, signal.SIGKILL)
        alive = lambda: members & set(_processes())  # noqa: E731
        _wait(lambda: not alive(), 20, f"the stack's processes gone (left: {alive()})")
        # no listener left on the API's port (the kernel's table: binding it to see would also
        # trip over another test's outgoing connection that happens to use the same port number)
        # no process of this stack (its data dir in the environment) left listening on the API's
        # port; another test's server may have been given the freed port number meanwhile
        owners = {pid: _processes().get(pid, (0, "?"))[1] for pid in _listeners(up.port)}
        assert not [pid for pid in owners if _of_data_dir(pid, data)], owners
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


def _graphql(dagster_port: int, query: str, **variables) -> dict:
    r = httpx.post(
        f"http://127.0.0.1:{dagster_port}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    return r.json()["data"]


def _worker_of(dagster_port: int, run_id: str) -> int | None:
    """The pid of a STARTED run's worker, from the event it writes first ("Started process for run (pid: N).")."""
    data = _graphql(
        dagster_port,
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } }
             logsForRun(runId: $id) { ... on EventConnection { events { ... on EngineEvent { message } } } } }""",
        id=run_id,
    )
    if (data["runOrError"] or {}).get("status") != "STARTED":
        return None
    for event in data["logsForRun"].get("events") or []:
        message = (event or {}).get("message") or ""
        if message.startswith("Started process for run (pid: "):
            return int(message.split("pid: ")[1].split(")")[0])
    return None


def _run_failure(dagster_port: int, run_id: str) -> str | None:
    data = _graphql(
        dagster_port,
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } }
             logsForRun(runId: $id) { ... on EventConnection { events { __typename ... on RunFailureEvent { message } } } } }""",
        id=run_id,
    )
    if (data["runOrError"] or {}).get("status") != "FAILURE":
        return None
    failures = [e["message"] for e in data["logsForRun"].get("events") or [] if e["__typename"] == "RunFailureEvent"]
    return failures[-1] if failures else None


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_a_run_whose_worker_dies_with_its_parent_is_failed_and_retried_while_the_stack_runs(tmp_path):
    """A STARTED ingest run whose worker is SIGKILLed together with the process it was forked from
    (the run launcher's warm forkserver; the code server where warm workers are off), so that
    nothing but Dagster's run monitoring can notice (the run launcher's worker health
    check): the run is failed, saying its worker is gone, which frees its slot; it is retried, and
    the ingest job (the first run and its retry) ends completed with 2 attempts. Its status only
    moves forward meanwhile, its queued_at stays. The deadlines are liveness bounds, not timings."""
    video = long_video(tmp_path / "long_gold.mp4")  # long enough to be caught mid-ingest
    up = Up(tmp_path / "data")
    try:
        up.wait_up()
        api = httpx.Client(base_url=f"http://127.0.0.1:{up.port}", headers={"Authorization": "Bearer t"}, timeout=60)
        with api, open(video, "rb") as f:
            r = api.post("/gold", files={"file": (video.name, f, "video/mp4")}, data={"task_id": "killed_task"})
            assert r.status_code == 200, r.text
            job_id = r.json()["ingest_job_id"]
            worker = _wait(lambda: _worker_of(up.dagster_port, job_id), 120, "the ingest run STARTED", step=0.1)
            parent = _parent(worker)
            assert parent in up.group() and parent != up.pid_of("dagster-daemon")
            # a warm worker: forked from the forkserver the daemon's launcher keeps, not a cold code server's child
            assert "forkserver" in _processes()[parent][1], _processes()[parent]
            os.kill(parent, signal.SIGKILL)  # first, so that it cannot report its child's death
            os.kill(worker, signal.SIGKILL)
            killed = time.monotonic()
            first = api.get(f"/videos/jobs/{job_id}").json()
            assert first["status"] == "running", first

            # the liveness bound: run monitoring polls every 10 s and checks twice
            failure = _wait(lambda: _run_failure(up.dagster_port, job_id), 90, "the run with a dead worker failed")
            assert f"the run worker process (pid {worker}) is gone" in failure, failure
            print(f"run failed {time.monotonic() - killed:.0f} s after its worker and its parent were killed")

            seen = []

            def ended():
                job = api.get(f"/videos/jobs/{job_id}").json()
                seen.append(job["status"])
                return job["status"] in ("completed", "failed") and job

            job = _wait(ended, 240, "the ingest job ended")
            print(
                f"job {job['status']} after {job['attempts']} attempts, {time.monotonic() - killed:.0f} s after the kill"
            )
            rank = {"queued": 0, "running": 1, "completed": 2, "failed": 2}
            assert all(rank[a] <= rank[b] for a, b in zip(seen, seen[1:])), seen  # only forward
            assert job["queued_at"] == first["queued_at"]  # the first run's, not the retry's
            # the retry made it (Dagster's, or, when Dagster gave it up because the daemon's code
            # server was gone, the one the API's job watch launched through the webserver)
            assert job["status"] == "completed" and job["attempts"] == 2 and job["num_clips"] > 0, job
            assert api.get(f"/videos/{job['video_id']}").json()["num_clips"] == job["num_clips"]
            group = "query($id: ID!) { runGroupOrError(runId: $id) { ... on RunGroup { runs { status } } } }"
            statuses = sorted(
                r["status"] for r in _graphql(up.dagster_port, group, id=job_id)["runGroupOrError"]["runs"]
            )
            assert statuses == ["FAILURE", "SUCCESS"], statuses
            # one job, counted once: not a failed run and a completed one (the counts read the runs,
            # whose last events may land after the catalog says the job is done)
            one = {"queued": 0, "running": 0, "completed": 1, "failed": 0}
            last: dict = {}

            def counted_once():
                last.update(api.get("/ops/queue").json())
                return last["jobs"]["ingest"] == one

            # every ingest_job run of the stack, not only this job's group: a count of one more
            # running job (seen once in CI) came from a run outside it
            runs = (
                'query { runsOrError(filter: {pipelineName: "ingest_job"}) { ... on Runs { results {'
                " runId status rootRunId tags { key value } } } } }"
            )
            try:
                _wait(counted_once, 30, f"/ops/queue counts {one}")
            except AssertionError as exc:  # what it counted instead, and from which runs
                tags = _graphql(up.dagster_port, runs)["runsOrError"]["results"]
                raise AssertionError(
                    f"{exc}; last: {last['jobs']['ingest']}, error {last['queue']['error']}; job {job_id}: {tags}"
                ) from exc
    finally:
        up.stop()


def test_a_score_run_whose_worker_is_killed_is_retried_and_every_job_of_it_completes(tmp_path):
    """A batched score run (one run, many jobs) SIGKILLed mid-run: run monitoring fails it (its
    worker is gone), Dagster's run retry re-runs its range, and every one of its jobs ends
    completed, none failed, each status only moving forward, each queued_at kept. The deadlines
    are liveness bounds, not timings."""
    from sopilot_pipelines.catalog import Catalog

    gold, trainee = (
        long_video(tmp_path / "gold.mp4", seconds=12, size="320x180"),
        long_video(tmp_path / "trainee.mp4", seconds=15, size="320x180"),
    )
    up = Up(tmp_path / "data")
    try:
        up.wait_up()
        api = httpx.Client(base_url=f"http://127.0.0.1:{up.port}", headers={"Authorization": "Bearer t"}, timeout=60)
        with api:
            ids = []
            for path, route in ((gold, "/gold"), (trainee, "/videos")):
                with open(path, "rb") as f:
                    r = api.post(route, files={"file": (path.name, f, "video/mp4")}, data={"task_id": "score_kill"})
                assert r.status_code == 200, r.text
                ingest = f"/videos/jobs/{r.json()['ingest_job_id']}"
                job = _wait(lambda url=ingest: _ended(api.get(url).json()), 180, "the ingest ended")
                assert job["status"] == "completed", job
                ids.append(job["video_id"])
            pair = {"gold_video_id": ids[0], "trainee_video_id": ids[1]}
            jobs = [api.post("/score", json=pair).json()["score_job_id"] for _ in range(40)]
            first = {j: api.get(f"/score/{j}").json() for j in jobs}
            with Catalog.open(data_dir=up.data) as cat:

                def batch_run_started():  # a run of many (the first job goes alone, at once)
                    rows = [cat.get_score(j) for j in jobs[1:]]
                    for run_id in sorted({r["run_id"] for r in rows if r["run_id"] and not is_claim(r["run_id"])}):
                        mine = [r for r in rows if r["run_id"] == run_id]
                        done = sum(r["status"] == "completed" for r in mine)
                        if len(mine) > 10 and 0 < done < len(mine) - 5:  # mid-run: some scored, more to come
                            worker = _worker_of(up.dagster_port, run_id)
                            if worker:
                                return run_id, worker
                    return None

                try:
                    run_id, worker = _wait(batch_run_started, 180, "a batched score run in flight", step=0.1)
                except AssertionError as exc:  # how the jobs were batched instead
                    runs: dict = {}
                    for row in (cat.get_score(j) for j in jobs):
                        runs.setdefault(row["run_id"], []).append(row["status"])
                    raise AssertionError(f"{exc}; jobs per run: {runs}") from exc
                os.kill(worker, signal.SIGKILL)
                failure = _wait(lambda: _run_failure(up.dagster_port, run_id), 90, "the run with a dead worker failed")
                assert f"the run worker process (pid {worker}) is gone" in failure, failure
                seen: dict[str, list[str]] = {j: [first[j]["status"]] for j in jobs}

                def all_ended():
                    ended = True
                    for j in jobs:
                        status = api.get(f"/score/{j}").json()["status"]
                        seen[j].append(status)
                        ended = ended and status in ("completed", "failed")
                    return ended

                _wait(all_ended, 240, "every score job ended", step=1.0)
            rank = {"queued": 0, "running": 1, "completed": 2, "failed": 2}
            for j in jobs:
                job = api.get(f"/score/{j}").json()
                assert job["status"] == "completed" and job["score"] is not None, job
                assert all(rank[a] <= rank[b] for a, b in zip(seen[j], seen[j][1:])), (j, seen[j])
                assert job["queued_at"] == first[j]["queued_at"] and 1 <= job["attempts"] <= 2, job
            group = "query($id: ID!) { runGroupOrError(runId: $id) { ... on RunGroup { runs { status } } } }"

            def statuses():
                return sorted(
                    r["status"] for r in _graphql(up.dagster_port, group, id=run_id)["runGroupOrError"]["runs"]
                )

            _wait(
                lambda: statuses() == ["FAILURE", "SUCCESS"], 60, "the killed run and its retry, which scored the rest"
            )
            assert api.get("/ops/queue").json()["jobs"]["score"] == {
                "queued": 0,
                "running": 0,
                "completed": len(jobs),
                "failed": 0,
            }
    finally:
        up.stop()


def _listeners(port: int) -> set[int]:
    """The pids holding a socket that listens on ``port`` (TCP, IPv4 or IPv6), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and inodes:
            try:
                if any(os.readlink(fd) in inodes for fd in (d / "fd").iterdir()):
                    pids.add(int(d.name))
            except OSError:
                continue
    return pids


def _of_data_dir(pid: int, data: Path) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"SOPILOT_DATA_DIR={data}".encode() in env or f"SOPILOT_DATA_DIR={data.resolve()}".encode() in env


def _ended(job: dict) -> dict | None:
    return job if job["status"] in ("completed", "failed") else None

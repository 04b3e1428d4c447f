"""The whole pipeline under a real `dagster-daemon run -w workspace.yaml`: queued runs, sensors
ticking, run workers in their own processes. Twice: on the embedded default (SQLite for Dagster
and the catalog) and on a PostgreSQL server (two fresh databases: Dagster storage and catalog).

A gold and a trainee (steps 1 and 2 swapped) are dropped into the inbox; the inbox sensor ingests
both, the auto-score sensor scores the trainee, the index sensor builds the task's index. Then,
after every sensor has ticked twice more, nothing new may have been started (exactly once).

PostgreSQL: 127.0.0.1:5432, user postgres, trust auth (override with SOPILOT_TEST_POSTGRES_URL).
An unreachable server FAILS the PostgreSQL test unless SOPILOT_SKIP_POSTGRES=1.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from sopilot_pipelines.core import synth
from sopilot_pipelines.defs.ingest.partitions import video_key
from sopilot_pipelines.indexes import task_fingerprint
from sopilot_pipelines.instance import stack_env
from tests.defs.daemon_helpers import SENSORS, TASK, TERMINAL, Stack
from tests.helpers import fresh_postgres_databases

PIPELINE_TIMEOUT_S = 180
QUIET_TICKS = 2  # ticks of every sensor after the pipeline finished, for the exactly-once check
QUEUE_EVENTS = {
    DagsterEventType.RUN_ENQUEUED,
    DagsterEventType.RUN_STARTING,
    DagsterEventType.RUN_START,
    DagsterEventType.RUN_SUCCESS,
    DagsterEventType.RUN_FAILURE,
}
# What a queued run goes through, in order. (Dagster 1.13 no longer writes RUN_DEQUEUED: the
# daemon's launch writes RUN_STARTING; a run submitted straight to a launcher has no ENQUEUED.)
QUEUED_PATH = ["PIPELINE_ENQUEUED", "PIPELINE_STARTING", "PIPELINE_START", "PIPELINE_SUCCESS"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Gold + the swap variant, rendered once for both backends."""
    return synth.render_suite(tmp_path_factory.mktemp("daemon_suite"), variants=("swap",))


@pytest.fixture()
def pg_urls():
    """(Dagster storage URL, catalog URL): two fresh PostgreSQL databases, dropped at the end."""
    with fresh_postgres_databases("sopilot_daemon", ("_dagster", "_catalog")) as urls:
        yield tuple(u.render_as_string(hide_password=False) for u in urls)


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request, tmp_path, monkeypatch):
    backend = request.param
    data = tmp_path / "data"
    env = stack_env(data, backend)
    for name in ("SOPILOT_DATABASE_URL", "SOPILOT_DAGSTER_PG_URL"):
        env.pop(name, None)
        monkeypatch.delenv(name, raising=False)
    env.update(SOPILOT_AUTO_SCORE="true", SOPILOT_INBOX_SETTLE_SECONDS="0.5", PYTHONUNBUFFERED="1")
    catalog_url = f"sqlite:///{data / 'catalog.db'}"
    if backend == "postgres":
        dagster_url, catalog_url = request.getfixturevalue("pg_urls")
        env.update(SOPILOT_DATABASE_URL=catalog_url, SOPILOT_DAGSTER_PG_URL=dagster_url)
        monkeypatch.setenv("SOPILOT_DAGSTER_PG_URL", dagster_url)  # the in-process instance reads it
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    s = Stack(backend, tmp_path, env, catalog_url)
    try:
        yield s
    finally:
        s.close()


# --------------------------------------------------------------------------- helpers


def _drop(src: Path, folder: Path) -> None:
    """Copy under a hidden name, then rename: the sensor never sees a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    hidden = folder / f".{src.name}.part"
    shutil.copyfile(src, hidden)
    os.replace(hidden, folder / src.name)


def _pipeline_state(s: Stack) -> dict | None:
    """The finished state, None while work is still going on; raises on a failure."""
    if s.proc.poll() is not None:
        raise AssertionError(s.diagnose(f"the daemon exited early (code {s.proc.returncode})"))
    runs = s.runs()
    failed = [r for r in runs if r.dagster_run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)]
    if failed:
        raise AssertionError(s.diagnose(f"{len(failed)} run(s) failed"))
    videos = s.catalog.list_videos(task_id=TASK, limit=None)
    if any(v["status"] == "failed" for v in videos):
        raise AssertionError(s.diagnose("a video failed to ingest"))
    if len(videos) < 2 or any(v["status"] != "ready" for v in videos):
        return None
    scores = s.catalog.list_scores(task_id=TASK, limit=None)
    if not scores:
        no_gold = [t.skip_reason for t in s.ticks().get("auto_score_sensor", []) if "no gold" in (t.skip_reason or "")]
        if no_gold:  # the trainee finished ingesting before the gold: it will never be scored
            raise AssertionError(s.diagnose(f"auto_score_sensor skipped the trainee for good: {no_gold}"))
    if any(j["status"] == "failed" for j in scores):
        raise AssertionError(s.diagnose("a score job failed"))
    if not scores or any(j["status"] != "completed" or not j["run_id"] for j in scores):
        return None
    score_runs = [s.instance.get_run_by_id(j["run_id"]) for j in scores]
    if any(r is None or r.status != DagsterRunStatus.SUCCESS for r in score_runs):
        return None
    # The current index version must hold the final set of ready videos (the sensor's run key
    # names the fingerprint it built for), through the live (identity) adapter.
    index = s.catalog.current_index_version(TASK)
    if index is None or index["fingerprint"] != task_fingerprint(videos) or index["adapter"] != "identity":
        return None
    if index["clips_indexed"] != sum(v["num_clips"] for v in videos):
        return None
    if any(r.dagster_run.status not in TERMINAL for r in runs):
        return None
    return {"videos": videos, "scores": scores, "index": index, "runs": runs}


def _queue_timeline(instance: DagsterInstance, record) -> dict[str, float]:
    """Event timestamps of one run by event type (first occurrence)."""
    out: dict[str, float] = {}
    for entry in instance.all_logs(record.dagster_run.run_id, of_type=QUEUE_EVENTS):
        out.setdefault(entry.dagster_event.event_type_value, entry.timestamp)
    return out


def _latency_report(s: Stack, runs: list, t_drop: float, t_done: float) -> str:
    lines = [f"[{s.backend}] drop -> all done: {t_done - t_drop:.1f}s"]
    for r in runs:
        tl = _queue_timeline(s.instance, r)
        enq, deq = tl.get("PIPELINE_ENQUEUED"), tl.get("PIPELINE_STARTING")
        start, end = tl.get("PIPELINE_START"), tl.get("PIPELINE_SUCCESS") or tl.get("PIPELINE_FAILURE")

        def d(a, b):
            return f"{b - a:5.1f}s" if a is not None and b is not None else "    ?"

        lines.append(
            f"  {r.dagster_run.job_name:11s} {r.dagster_run.tags.get('dagster/partition', ''):28s}"
            f" drop->enqueued {d(t_drop, enq)}  queued {d(enq, deq)}"
            f"  launch->RUN_START {d(deq, start)}  start->end {d(start, end)}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the test


def test_pipeline_under_daemon(stack, rendered):
    s = stack
    t0 = time.monotonic()
    s.start()

    inbox = s.data / "inbox" / TASK
    t_drop = time.time()
    _drop(rendered["gold"].path, inbox / "gold")
    _drop(rendered["swap"].path, inbox)

    state, deadline = None, time.monotonic() + PIPELINE_TIMEOUT_S
    while state is None:
        if time.monotonic() > deadline:
            raise AssertionError(s.diagnose(f"pipeline not finished after {PIPELINE_TIMEOUT_S}s"))
        time.sleep(1)
        state = _pipeline_state(s)
    t_done = time.time()
    videos, scores, index, runs = state["videos"], state["scores"], state["index"], state["runs"]
    diag = s.diagnose  # every assertion message below carries the whole picture

    # ingest: one run per dropped file, requested by the inbox sensor, through the run queue
    by_role = {v["role"]: v for v in videos}
    assert sorted(by_role) == ["gold", "trainee"], diag(f"videos: {videos}")
    assert by_role["gold"]["original_filename"] == rendered["gold"].path.name
    assert by_role["trainee"]["original_filename"] == rendered["swap"].path.name
    ingest = [r for r in runs if r.dagster_run.job_name == "ingest_job"]
    assert len(ingest) == 2, diag(f"{len(ingest)} ingest runs, expected 2")
    assert {r.dagster_run.tags.get("dagster/run_key") for r in ingest} == {f"inbox-{v['video_id']}" for v in videos}, (
        diag("ingest run keys")
    )
    assert {r.dagster_run.tags.get("dagster/partition") for r in ingest} == {
        video_key(TASK, v["video_id"]) for v in videos
    }, diag("ingest partitions")
    for r in ingest + [s.instance.get_run_record_by_id(j["run_id"]) for j in scores]:
        run = r.dagster_run
        assert run.status == DagsterRunStatus.SUCCESS, diag(f"run {run.run_id} is {run.status}")
        assert run.tags.get("dagster/sensor_name") in SENSORS, diag(f"run {run.run_id} tags {run.tags}")
        tl = _queue_timeline(s.instance, r)
        assert all(k in tl for k in QUEUED_PATH), diag(f"run {run.run_id} did not go through the queue: {tl}")
        assert [tl[k] for k in QUEUED_PATH] == sorted(tl.values()), diag(f"run {run.run_id}: {tl}")
    assert {r.dagster_run.tags["dagster/sensor_name"] for r in ingest} == {"inbox_sensor"}

    # score: exactly one auto-score job, the swap found and nothing else
    assert len(scores) == 1, diag(f"score jobs: {scores}")
    job = scores[0]
    assert (job["gold_video_id"], job["trainee_video_id"]) == (
        by_role["gold"]["video_id"],
        by_role["trainee"]["video_id"],
    ), diag(f"score job: {job}")
    score_run = s.instance.get_run_by_id(job["run_id"])
    assert score_run.job_name == "score_job" and score_run.tags["dagster/sensor_name"] == "auto_score_sensor"
    result = json.loads(Path(job["result_path"]).read_text())
    found = [(d["type"], d["gold_step"], d.get("swapped_with")) for d in result["deviations"]]
    expected = [(e.type, e.gold_step, e.swapped_with) for e in rendered["swap"].expected]
    assert expected == [("order_swap", 1, 2)]
    assert found == expected, diag(f"deviations {found} != expected {expected}")
    assert Path(job["report_path"]).read_bytes()[:4] == b"%PDF", diag(f"report {job['report_path']}")

    # index: a version over both videos' clips, written where the catalog says
    assert index["videos"] == 2, diag(f"index: {index}")
    assert (Path(index["path"]) / "index.faiss").is_file(), diag(f"index: {index}")
    index_runs = [r for r in runs if r.dagster_run.job_name == "index_job"]
    assert index_runs and all(r.dagster_run.tags.get("dagster/sensor_name") == "index_sensor" for r in index_runs)

    print("\n" + _latency_report(s, runs, t_drop, t_done))

    # exactly once: every sensor evaluates twice more on the final state (ticks created after the
    # last run ended) and nothing new is started; the inbox is empty
    after = max(r.end_time for r in runs)
    t_quiet = time.time()
    quiet_deadline = time.monotonic() + 5 * 5 * QUIET_TICKS + 10
    while True:
        ticks = s.ticks(after=after, finished=True)
        if all(len(ticks.get(name, [])) >= QUIET_TICKS for name in SENSORS):
            break
        if time.monotonic() > quiet_deadline:
            raise AssertionError(diag(f"sensors stopped ticking: { ({n: len(t) for n, t in ticks.items()}) }"))
        time.sleep(1)
    assert [r.dagster_run.run_id for r in s.runs()] == [r.dagster_run.run_id for r in runs], diag(
        "runs were started after the pipeline had finished"
    )
    assert len(s.runs("ingest_job")) == 2
    assert [p for p in (s.data / "inbox").rglob("*") if p.is_file()] == [], diag("files left in the inbox")
    failed_ticks = {
        n: [t.error.to_string() if t.error else "?" for t in ts if t.status.value == "FAILURE"]
        for n, ts in s.ticks().items()
    }
    assert not any(failed_ticks.values()), diag(f"failed sensor ticks: {failed_ticks}")

    t_stop = time.monotonic()
    s.stop()
    print(
        f"[{s.backend}] test body {t_stop - t0:.1f}s (quiet window {time.time() - t_quiet:.1f}s),"
        f" daemon stop {time.monotonic() - t_stop:.1f}s{' (SIGKILL needed)' if s.killed else ''}"
    )
    assert not s.killed, "the daemon (or a process it started) ignored SIGTERM for 20 s"

"""Backfills and UI launches under a real `dagster-daemon run -w workspace.yaml`, on both
instance configs (SQLite, PostgreSQL), launched through Dagster's own GraphQL schema (what the
UI sends), in process against a workspace loaded from workspace.yaml.

A task has one video ingested and an index over it. A backfill of the task's three videos (the
first again, a corrupt upload, a new one) materializes two, each with its own metadata, and fails
the corrupt one with its reason; the index is then stale (the new video) until "Materialize" of
task_index rebuilds it. A UI-style launch of feature_adapter (asset selection, not train_job)
runs in process with the training queue tag. The index sensor is stopped first, as a data
engineer relying on staleness would, so nothing rebuilds the index behind the test's back.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRunStatus
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from sopilot_pipelines.definitions import build_defs
from sopilot_pipelines.defs.ingest.partitions import video_key
from sopilot_pipelines.ids import TAG_REQUESTED_BY
from sopilot_pipelines.instance import stack_env
from sopilot_pipelines.resources import CatalogResource, StorageResource
from tests.defs.daemon_helpers import BACKFILL, TERMINAL, Stack, gql, stale_resolver
from tests.helpers import ROOT, fresh_postgres_databases

TASK = "backfill_assembly"
EMB, INDEX = dg.AssetKey("video_embeddings"), dg.AssetKey("task_index")
REPO = {"repositoryLocationName": "sopilot", "repositoryName": "__repository__"}

LAUNCH = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }"""
STOP_SENSOR = """mutation($id: String!, $sel: String!) { stopSensor(jobOriginId: $id, jobSelectorId: $sel) {
  __typename ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request, tmp_path, monkeypatch):
    backend = request.param
    data = tmp_path / "data"
    env = stack_env(data, backend)
    for name in ("SOPILOT_DATABASE_URL", "SOPILOT_DAGSTER_PG_URL", "SOPILOT_AUTO_SCORE"):
        env.pop(name, None)
        monkeypatch.delenv(name, raising=False)
    env.update(PYTHONUNBUFFERED="1")
    catalog_url = f"sqlite:///{data / 'catalog.db'}"
    with (
        fresh_postgres_databases("sopilot_backfill", ("_dagster", "_catalog")) if backend == "postgres" else _nothing()
    ) as urls:
        if urls:
            dagster_url, catalog_url = (u.render_as_string(hide_password=False) for u in urls)
            env.update(SOPILOT_DATABASE_URL=catalog_url, SOPILOT_DAGSTER_PG_URL=dagster_url)
        for k in ("DAGSTER_HOME", "SOPILOT_DATA_DIR", "SOPILOT_DATABASE_URL", "SOPILOT_DAGSTER_PG_URL"):
            if k in env:  # the in-process instance and the workspace's code server read them
                monkeypatch.setenv(k, env[k])
        s = Stack(backend, tmp_path, env, catalog_url)
        try:
            yield s
        finally:
            s.close()


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _launch_assets(ctx, keys, partition=None) -> str:
    """What the UI's "Materialize" sends: the implicit asset job with an asset selection."""
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    out = gql(
        ctx,
        LAUNCH,
        {
            "p": {
                "selector": {**REPO, "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": [k]} for k in keys]},
                "executionMetadata": {"tags": tags},
                "runConfigData": {},
            }
        },
    )
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def _wait_run(s, run_id, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = s.instance.get_run_by_id(run_id)
        if run and run.status in TERMINAL:
            return run
        time.sleep(0.5)
    raise AssertionError(s.diagnose(f"run {run_id} not finished after {timeout}s"))


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return path


@pytest.mark.slow
def test_backfill_isolates_a_bad_video_and_ui_launches_behave_like_jobs(stack, suite, tmp_path):
    s = stack
    resources = {
        "storage": StorageResource(data_dir=str(s.data)),
        "catalog": CatalogResource(database_url=s.env.get("SOPILOT_DATABASE_URL", ""), data_dir=str(s.data)),
    }
    defs = build_defs(resources)
    cat, store = resources["catalog"].catalog, resources["storage"].store

    def register(path, role="trainee"):
        vid = cat.add_video(TASK, role, original_filename=path.name)
        dest = store.raw_video(vid, path.suffix)
        shutil.copyfile(path, dest)
        cat.set_video_paths(vid, raw_path=str(dest))
        return vid, video_key(TASK, vid)

    # before: one video ingested and indexed (in process, on the same instance)
    v1, k1 = register(suite["gold"].path, "gold")
    s.instance.add_dynamic_partitions("videos", [k1])
    s.instance.add_dynamic_partitions("tasks", [TASK])
    assert defs.resolve_job_def("ingest_job").execute_in_process(partition_key=k1, instance=s.instance).success
    assert defs.resolve_job_def("index_job").execute_in_process(partition_key=TASK, instance=s.instance).success
    bad, kb = register(_corrupt(tmp_path / "broken_upload.mp4"))
    v2, k2 = register(suite["swap"].path)
    s.instance.add_dynamic_partitions("videos", [kb, k2])

    with WorkspaceProcessContext(s.instance, WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")])) as ctx:
        # the index sensor is stopped before the daemon starts: a tick of it running while the
        # backfill completes would rebuild the index and leave nothing stale to check
        repo = ctx.create_request_context().get_code_location("sopilot").get_repository("__repository__")
        sensor = repo.get_sensor("index_sensor")
        stopped = gql(ctx, STOP_SENSOR, {"id": sensor.get_remote_origin_id(), "sel": sensor.selector_id})
        assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped
        s.start()

        # the backfill, as the UI's "Materialize" of the task's partitions launches it
        out = gql(
            ctx,
            BACKFILL,
            {
                "p": {
                    "assetSelection": [{"path": ["video_clips"]}, {"path": ["video_embeddings"]}],
                    "partitionNames": [k1, kb, k2],
                    "fromFailure": False,
                }
            },
        )
        assert out["__typename"] == "LaunchBackfillSuccess", out
        backfill_id = out["backfillId"]
        deadline = time.monotonic() + 240
        while True:
            backfill = s.instance.get_backfill(backfill_id)
            if backfill.status not in (
                BulkActionStatus.REQUESTED,
                BulkActionStatus.CANCELING,
                BulkActionStatus.FAILING,
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(s.diagnose(f"backfill {backfill_id} still {backfill.status} after 240s"))
            time.sleep(0.25)
        t_marked = time.time()
        runs = s.instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 1, s.diagnose(f"{len(runs)} runs for one single-run backfill")
        run = runs[0].dagster_run
        assert run.status == DagsterRunStatus.FAILURE and run.tags["sopilot/videos_failed"] == "1", s.diagnose(
            "backfill run"
        )
        assert backfill.status == BulkActionStatus.COMPLETED_FAILED, backfill.status

        started = runs[0].create_timestamp.timestamp() - backfill.backfill_timestamp
        ended = runs[0].end_time
        completed = (backfill.backfill_end_timestamp or t_marked) - ended
        print(
            f"\n[{s.backend}] backfill: created -> run created {started:.1f}s;"
            f" run {ended - runs[0].start_time:.1f}s; run ended -> backfill complete {completed:.1f}s"
        )
        # the pace is reported, not asserted: a timed assertion fails on a loaded machine (CI ran
        # 11.5 s under load where 3-4 s is usual), and speed belongs to the benchmarks
        assert started >= 0 and completed >= 0, (started, completed)

        # each good partition: its own materialization and metadata; the corrupt one failed, why
        logs = s.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        mats = {
            (
                e.dagster_event.asset_key.to_user_string(),
                e.dagster_event.partition,
            ): e.dagster_event.step_materialization_data.materialization.metadata
            for e in logs
        }
        assert sorted(k for k in mats if k[0] != "task_sop") == sorted(
            (a, k) for a in ("video_clips", "video_embeddings") for k in (k1, k2)
        )
        assert [k for k in mats if k[0] == "task_sop"] == [("task_sop", TASK)]  # the gold's ingest recorded its SOP
        for key, vid in ((k1, v1), (k2, v2)):
            assert mats[("video_clips", key)]["clips"].value == cat.get_video(vid)["num_clips"]
        failure = next(e for e in s.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE))
        message = failure.dagster_event.step_failure_data.error.message
        assert "1 of 3 videos failed" in message and kb in message and "cannot decode video" in message
        assert cat.get_video(bad)["status"] == "failed" and "cannot decode" in cat.get_video(bad)["error_message"]

        # the task's index: stale (the new video), then "Materialize" rebuilds it
        sensed = s.instance.get_runs(dg.RunsFilter(tags={TAG_REQUESTED_BY: "sensor:index"}))
        assert not sensed, s.diagnose(f"the stopped index sensor launched {len(sensed)} run(s)")
        causes = stale_resolver(s.instance, ctx.create_request_context().asset_graph).get_stale_causes(INDEX, TASK)
        assert (EMB, k2) in {(c.dependency.asset_key, c.dependency.partition_key) for c in causes}, causes
        index_run = _wait_run(s, _launch_assets(ctx, ["task_index"], partition=TASK))
        assert index_run.status == DagsterRunStatus.SUCCESS, s.diagnose("index run")
        assert cat.current_index_version(TASK)["videos"] == 2
        assert not stale_resolver(s.instance, ctx.create_request_context().asset_graph).get_stale_causes(INDEX, TASK)

        # feature_adapter from the UI: in process, with the training queue tag and the retry policy
        train_run = _wait_run(s, _launch_assets(ctx, ["feature_adapter"]))
        assert train_run.job_name == "__ASSET_JOB" and train_run.status == DagsterRunStatus.SUCCESS, s.diagnose(
            "training run"
        )
        assert train_run.tags.get("sopilot/queue") == "training", train_run.tags
        engine = [
            e.user_message for e in s.instance.all_logs(train_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        ]
        assert any("in process" in m for m in engine) and not any("multiprocess" in m for m in engine), engine
    s.stop()
    assert not s.killed

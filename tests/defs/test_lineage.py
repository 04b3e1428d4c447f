"""Lineage, staleness, per-partition results and failure isolation, on a real (SQLite, on-disk)
Dagster instance, read the way the UI reads them (asset graph, stale status, partition status)."""

import os

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from sopilot_pipelines.defs.ingest.assets import TAG_VIDEOS_FAILED
from sopilot_pipelines.defs.ingest.partitions import videos
from tests.defs.daemon_helpers import stale_resolver
from tests.helpers import TASK

# every test runs on a Dagster instance and definitions of its own (conftest's `env`), and all but
# one ingest rendered videos: slow
pytestmark = pytest.mark.slow

CLIPS, EMB, INDEX = dg.AssetKey("video_clips"), dg.AssetKey("video_embeddings"), dg.AssetKey("task_index")
SOP, SCORE = dg.AssetKey("task_sop"), dg.AssetKey("score_result")


def test_asset_graph_edges(env):
    graph = env.defs.resolve_asset_graph()
    parents = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    assert parents == {
        "video_clips": [],
        "video_embeddings": ["feature_adapter", "video_clips"],
        "feature_adapter": ["video_clips"],
        "task_index": ["feature_adapter", "video_embeddings"],
        "task_sop": [],
        "score_result": ["feature_adapter", "task_sop", "video_embeddings"],
        "score_report": ["score_result"],
    }
    # a built-in mapping: the only kind Dagster's remote asset graph (UI, daemon) keeps
    assert isinstance(graph.get_partition_mapping(INDEX, EMB), dg.AllPartitionMapping)
    assert isinstance(graph.get_partition_mapping(dg.AssetKey("score_result"), EMB), dg.AllPartitionMapping)
    assert isinstance(
        graph.get_partition_mapping(dg.AssetKey("score_result"), dg.AssetKey("task_sop")), dg.AllPartitionMapping
    )
    # one behaviour however launched: the implicit asset job (UI, backfills) runs in process
    assert env.defs.resolve_implicit_global_asset_job_def().executor_def is dg.in_process_executor
    assert graph.get(dg.AssetKey("feature_adapter")).tags.get("sopilot/queue") == "training"


def _range_run(env, keys, **kw):
    job = env.defs.resolve_job_def("ingest_job")
    return job.execute_in_process(
        instance=env.instance,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        **kw,
    )


def _corrupt(tmp_path):
    bad = tmp_path / "broken_upload.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return bad


def test_a_corrupt_video_in_a_range_run_fails_only_its_partition(env, suite, tmp_path):
    good1, k1 = env.register(suite["swap"].path, "trainee")
    bad, kb = env.register(_corrupt(tmp_path), "trainee")
    good2, k2 = env.register(suite["over_time"].path, "trainee")
    result = _range_run(env, [k1, kb, k2])

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message
    assert "1 of 3 videos failed (2 materialized)" in failure and kb in failure and "cannot decode video" in failure
    assert env.instance.get_run_by_id(result.run_id).tags[TAG_VIDEOS_FAILED] == "1"
    assert not any(e.event_type_value == "STEP_RESTARTED" for e in result.all_events)  # bad input is not retried
    assert [env.cat.get_video(v)["status"] for v in (good1, bad, good2)] == ["ready", "failed", "ready"]
    assert not env.store.proxy(bad).exists()

    # one materialization per good partition and asset, each with its own video's figures
    mats = result.asset_materializations_for_node("ingest_video")
    by = {(m.asset_key, m.partition): m.metadata for m in mats}
    assert sorted(by) == sorted((a, k) for a in (CLIPS, EMB) for k in (k1, k2))
    for key, vid in ((k1, good1), (k2, good2)):
        md, row = by[(CLIPS, key)], env.cat.get_video(vid)
        assert md["video_id"].value == vid and md["clips"].value == row["num_clips"]
        assert md["duration_sec"].value == row["duration_sec"] and md["source_fps"].value == row["source_fps"]
        assert md["decode_sec"].value > 0 and md["total_sec"].value > 0
        assert md["proxy_sec"].value > 0 and env.store.proxy(vid).is_file()  # the browser proxy, at ingest
        assert md["proxy_bytes"].value == env.store.proxy(vid).stat().st_size > 0
        assert md["proxy_path"].value == str(env.store.proxy(vid))
        assert by[(EMB, key)]["clips"].value == row["num_clips"]
    assert by[(CLIPS, k1)]["clips"].value != by[(CLIPS, k2)]["clips"].value

    # the partition view: the two good ones materialized, the bad one failed
    for asset in (CLIPS, EMB):
        status = get_and_update_asset_status_cache_value(env.instance, asset, videos)
        assert set(status.deserialize_materialized_partition_subsets(videos).get_partition_keys()) == {k1, k2}
        assert set(status.deserialize_failed_partition_subsets(videos).get_partition_keys()) == {kb}


def test_a_proxy_that_cannot_be_written_does_not_fail_the_ingest(env, suite):
    """The browser proxy is for watching; the video decoded and embedded, so it is ready and can
    be scored: a file system that refuses the proxy (here its directory is a file) is logged and
    named in the metadata, and the UI's /stream serves the original."""
    vid, key = env.register(suite["swap"].path, "trainee")
    (env.data / "proxies").write_text("not a directory")
    result = env.ingest(key)
    assert result.success
    assert env.cat.get_video(vid)["status"] == "ready"
    md = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("ingest_video")}[CLIPS]
    assert "proxy_sec" not in md and "proxy_bytes" not in md
    assert "proxies" in md["proxy_error"].value  # what refused it
    warnings = [r.user_message for r in env.instance.all_logs(result.run_id) if r.level >= 30]
    assert any(f"video {vid}: no browser proxy" in w for w in warnings), warnings


def _status(env, key, partition):
    resolver = stale_resolver(env.instance, env.defs.resolve_asset_graph())
    return resolver.get_status(key, partition), resolver.get_stale_causes(key, partition)


def test_index_is_stale_after_its_videos_change_and_fresh_after_a_rebuild(env, suite):
    _, k1 = env.register(suite["gold"].path, "gold")
    assert env.ingest(k1).success
    assert env.index().success
    assert _status(env, INDEX, TASK)[0] == StaleStatus.FRESH

    _, k2 = env.register(suite["swap"].path, "trainee")
    assert env.ingest(k2).success  # a new video of the task
    status, causes = _status(env, INDEX, TASK)
    assert status == StaleStatus.STALE
    assert {(c.dependency.asset_key, c.dependency.partition_key) for c in causes} >= {(EMB, k2)}

    assert env.index().success
    assert _status(env, INDEX, TASK)[0] == StaleStatus.FRESH
    # re-ingesting a video whose embeddings come out the same is no change (content data versions)
    assert env.ingest(k1).success
    assert _status(env, INDEX, TASK)[0] == StaleStatus.FRESH


def test_a_training_that_changes_no_adapter_leaves_the_index_fresh(env, suite):
    assert env.train("train_0").success  # skipped (no clips): the adapter asset's first record
    _, k1 = env.register(suite["gold"].path, "gold")
    env.ingest(k1)
    env.index()
    assert env.train("train_a").success
    assert env.cat.get_training("train_a")["status"] == "rejected"  # only a gold: nothing to judge on
    # feature_adapter's data version is the live adapter's name, unchanged by a rejected training
    assert _status(env, INDEX, TASK)[0] == StaleStatus.FRESH
    resolver = stale_resolver(env.instance, env.defs.resolve_asset_graph())
    assert resolver.get_current_data_version(dg.AssetKey("feature_adapter")) == dg.DataVersion("identity")


def _sop_records(env) -> list[tuple]:
    """The task's task_sop materializations, oldest first: (version, steps, per_gold, data version)."""
    records = env.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SOP, asset_partitions=[TASK]), limit=100, ascending=True
    ).records
    mats = [r.asset_materialization for r in records]
    assert all(m.metadata["worker"].value == "in-process" for m in mats)  # where each was recorded
    return [
        (
            m.metadata["version"].value,
            m.metadata["steps"].value,
            m.metadata["per_gold"].value,
            m.tags["dagster/data_version"],
        )
        for m in mats
    ]


def test_a_gold_ingest_records_the_task_sop_and_stales_older_scores(env, suite):
    gold, k1 = env.register(suite["gold"].path, "gold")
    assert env.ingest(k1).success
    [(version, steps, _, data_version)] = _sop_records(env)  # version 0: the gold's automatic steps
    assert (version, data_version) == (0, f"v0@{gold}") and len(steps) >= 2 and steps[0]["name"] == "Step 1"
    trainee, k2 = env.register(suite["swap"].path, "trainee")
    assert env.ingest(k2).success
    job_id, result = env.score(gold, trainee)
    assert result.success and SOP not in {c.dependency.asset_key for c in _status(env, SCORE, job_id)[1]}

    marked = [{**st, "name": f"Part {k + 1}"} for k, st in enumerate(env.cat.get_video(gold)["auto_steps"])]
    env.cat.add_sop(TASK, gold_video_id=gold, steps=marked, requested_by="test")  # as a gold's upload steps store it
    second, k3 = env.register(suite["correct_slower"].path, "gold")
    assert env.ingest(k3).success  # a new gold: the SOP carried to it is recorded by the ingest itself, no PUT
    version, steps, per_gold, data_version = _sop_records(env)[-1]
    assert (version, data_version) == (1, f"v1@{gold}") and [s["name"] for s in steps] == [s["name"] for s in marked]
    assert len(per_gold[str(second)]) == len(marked)
    status, causes = _status(env, SCORE, job_id)  # the score made before is older than the SOP in force
    assert status == StaleStatus.STALE and SOP in {c.dependency.asset_key for c in causes}

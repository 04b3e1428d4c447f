"""Adapter training through Dagster on generated videos: judged, rejected when poisoned,
accepted and reindexed when it helps; and the task index under a concurrent reader."""

import threading

import numpy as np
import pytest

from sopilot_pipelines.core.adapter import FeatureAdapter
from sopilot_pipelines.core.index import open_version
from sopilot_pipelines.core.synth import VARIANTS
from tests.helpers import TASK

# every test ingests and scores a gold and eight trainees first (66 to 105 s a test in a run on 2 shared cores)
pytestmark = pytest.mark.slow

# synth's correct and single-deviation trainee variants (not two_errors, reversed)
TRAINEES = tuple(v for v in VARIANTS if v not in ("gold", "two_errors", "reversed"))


@pytest.fixture()
def scored(env, suite):
    """A gold and eight trainees ingested, each trainee scored, the task indexed once."""
    gold_id, key = env.register(suite["gold"].path, "gold")
    assert env.ingest(key).success
    trainees = []
    for variant in TRAINEES:
        vid, key = env.register(suite[variant].path, "trainee")
        assert env.ingest(key).success
        job_id, result = env.score(gold_id, vid)
        assert result.success
        trainees.append((vid, job_id))
    assert env.index().success
    return gold_id, trainees


def _adapted(env, ids):
    return {v: np.load(env.store.embeddings(v)["adapted"]) for v in ids}


def test_poisoned_labels_are_rejected_then_clean_training_goes_live_and_reindexes(env, scored, monkeypatch):
    gold_id, trainees = scored
    ids = [gold_id] + [v for v, _ in trainees]
    before = _adapted(env, ids)
    version_before = env.cat.current_index_version(TASK)

    # poison: every stored score says each trainee clip belongs to the next gold step
    clean = {}
    for _, job_id in trainees:
        path = env.store.score_steps(job_id)
        clean[path] = path.read_bytes()
        with np.load(path) as z:
            gold_labels, labels = z["gold_labels"], z["trainee_labels"]
        k = int(gold_labels.max()) + 1
        np.savez(path, gold_labels=gold_labels, trainee_labels=np.where(labels >= 0, (labels + 1) % k, labels))
    assert env.train("train_poisoned").success
    row = env.cat.get_training("train_poisoned")
    figures = row["figures"]
    assert row["status"] == "rejected" and row["adapter_path"] is None and row["reindex"] is None
    # the judge labels held-out clips by a fresh alignment, and the stored labels disagree with it
    assert "disagree with a fresh alignment" in row["skip_reason"] and figures["accepted"] is False
    assert len(figures["suspect_stored_labels"]) == figures["train_videos"] - 1  # every scored train trainee
    assert figures["labelled_clips"]["score"] > 0 and figures["baseline"] is not None
    assert env.cat.live_adapter() is None  # identity stays live
    assert env.cat.current_index_version(TASK)["version"] == version_before["version"]  # nothing reindexed
    assert all(np.array_equal(before[v], a) for v, a in _adapted(env, ids).items())

    for path, data in clean.items():
        path.write_bytes(data)
    # what scoring would use while the reindex runs: still the previous (identity) adapter
    from sopilot_pipelines import indexes
    from sopilot_pipelines.adapters import load_for_scoring

    during, build = [], indexes.build_task_index

    def probe(cat, store, task_id, live):
        _, ev = load_for_scoring(cat, store, trainees[0][0])
        raw = np.load(store.embeddings(trainees[0][0])["raw"])
        during.append(
            (live.name, cat.live_adapter(), np.allclose(ev.embeddings, FeatureAdapter().apply(raw), atol=1e-6))
        )
        return build(cat, store, task_id, live)

    monkeypatch.setattr(indexes, "build_task_index", probe)
    result = env.train("train_clean")
    assert during == [("train_clean", None, True)]
    assert result.success
    row = env.cat.get_training("train_clean")
    figures = row["figures"]
    assert row["status"] == "completed", row["skip_reason"]
    assert figures["candidate"] >= figures["baseline"] + figures["min_improvement"] and figures["accepted"] is True
    assert row["mode"] == "builtin_feature_adapter" and row["adapter_path"].endswith("feature_adapter_train_clean.npz")
    assert env.cat.live_adapter()["job_id"] == "train_clean"

    # reindex: every video re-adapted, the task index has a new version built through the new adapter
    adapter = FeatureAdapter.load(row["adapter_path"])
    reindex = row["reindex"]
    version = env.cat.current_index_version(TASK)
    assert reindex["old_index_version"] == f"v{version_before['version']}"
    assert (
        reindex["new_index_version"] == f"v{version['version']}" and version["version"] == version_before["version"] + 1
    )
    assert reindex["videos_refreshed"] == len(ids) and reindex["tasks_touched"] == [TASK]
    assert reindex["clips_indexed"] == version["clips_indexed"] == sum(len(b) for b in before.values())
    assert row["embedding_dim"] == before[gold_id].shape[1]
    for v, adapted in _adapted(env, ids).items():
        raw = np.load(env.store.embeddings(v)["raw"])
        assert np.allclose(adapted, adapter.apply(raw), atol=1e-6) and not np.allclose(adapted, before[v], atol=1e-3)
    opened = open_version(version["path"])
    assert version["adapter"] == opened.meta["adapter"] == "train_clean"
    assert np.allclose(
        opened.vector_of(gold_id, 3), adapter.apply(np.load(env.store.embeddings(gold_id)["raw"]))[3], atol=1e-5
    )
    # the run recorded what it re-materialized, for the UI's lineage
    mats = {
        (m.asset_key.to_user_string(), m.partition)
        for m in (
            e.event_specific_data.materialization
            for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        )
    }
    assert ("task_index", TASK) in mats and sum(1 for k, _ in mats if k == "video_embeddings") == len(ids)
    [trained] = [
        m.metadata
        for m in result.asset_materializations_for_node("feature_adapter")
        if m.asset_key.to_user_string() == "feature_adapter"
    ]
    assert trained["status"].value == "completed" and trained["worker"].value == "in-process"  # where it ran

    # scoring now runs through the new adapter, and a search reads the new version
    job_id, res = env.score(gold_id, trainees[0][0])
    assert res.success and env.cat.get_score(job_id)["status"] == "completed"


def test_a_reader_never_sees_a_half_built_index_version(env, scored):
    """Searches run continuously while new versions are built and switched."""
    gold_id, _ = scored
    errors, seen, stop = [], set(), threading.Event()

    def reader():
        while not stop.is_set():
            try:
                current = env.cat.current_index_version(TASK)
                opened = open_version(current["path"])
                assert opened.ntotal == len(opened.ids) == current["clips_indexed"]
                q = opened.vector_of(gold_id, 5)
                sims, rows = opened.search(q.reshape(1, -1), 5)
                assert tuple(opened.ids[rows[0][0]]) == (gold_id, 5) and sims[0][0] > 0.999
                seen.add(current["version"])
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            assert env.index().success
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert len(seen) >= 3  # the readers really ran across version switches


def test_index_sensor_rebuilds_stale_indexes_but_waits_for_a_training(env, scored):
    import dagster as dg
    from dagster._core.test_utils import create_run_for_test

    from sopilot_pipelines.defs.search.sensors import index_sensor

    def tick():
        return index_sensor(dg.build_sensor_context(instance=env.instance, resources=env.resources))

    assert "every task's index is current" in tick().skip_message
    # an adapter went live: the index is now in the wrong space
    live = FeatureAdapter(
        "projection", np.full(685, 0.01, np.float32), np.eye(685, dtype=np.float32), np.zeros(685, np.float32)
    ).save(env.store.adapter("feature_adapter_train_x"))
    env.cat.record_training("train_x", trigger="manual")
    env.cat.update_training("train_x", status="completed", adapter_path=str(live))
    run = create_run_for_test(env.instance, job_name="train_job", status=dg.DagsterRunStatus.STARTED)
    assert "training is in progress" in tick().skip_message  # it reindexes everything itself
    env.instance.report_run_failed(run)
    (request,) = tick().run_requests
    assert request.partition_key == TASK and request.run_key.endswith("-train_x")
    assert env.index().success
    current = env.cat.current_index_version(TASK)
    assert current["adapter"] == "train_x" and open_version(current["path"]).meta["adapter_path"] == str(live)
    assert "every task's index is current" in tick().skip_message


def test_a_large_task_gets_a_calibrated_approximate_index(env, scored, monkeypatch):
    from sopilot_pipelines.settings import settings

    monkeypatch.setenv("SOPILOT_INDEX_APPROX_MIN_CLIPS", "100")  # this task's ~470 clips count as large
    settings.cache_clear()
    result = env.index()
    md = result.asset_materializations_for_node("task_index")[0].metadata
    assert md["kind"].value == "ivf" and md["recall_at_5"].value >= 0.95 and md["nprobe"].value >= 1
    current = env.cat.current_index_version(TASK)
    opened = open_version(current["path"])
    gold_id = scored[0]
    raw = np.load(env.store.embeddings(gold_id)["raw"])
    assert np.allclose(opened.vector_of(gold_id, 7), FeatureAdapter().apply(raw)[7], atol=1e-5)
    sims, rows = opened.search(opened.vector_of(gold_id, 7).reshape(1, -1), 5)
    assert tuple(opened.ids[rows[0][0]]) == (gold_id, 7) and np.all(np.diff(sims[0]) <= 1e-6)

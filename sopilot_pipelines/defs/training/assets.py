"""The feature adapter (unpartitioned): trained on the clips collected so far, judged on held-out
videos, and only then made live, after every video and task index has been moved to it.

Each run is a training job (catalog row `train_<...>`, id from the run's job-id tag). It ends
- `skipped` when there are too few clips (the reason is recorded);
- `rejected` when the candidate does not beat the live adapter on the held-out figure (the live
  adapter stays; figures and reason are recorded);
- `completed` when it does: adapted embeddings of every ready video are rewritten and every
  task index gets a new version through the new adapter; the `reindex` block says what changed.
  The adapter becomes live only after that, so scoring meanwhile keeps using the previous one.
"""

import time
from typing import Any

import dagster as dg
import numpy as np

from ... import indexes, telemetry
from ...adapters import LiveAdapter, catch_up, live_adapter, live_adapter_name, reindex_videos, training_videos
from ...ids import TAG_JOB_ID, TAG_REQUESTED_BY, TAG_TRIGGER, TASKS, new_job_id, video_key
from ...logs import job_transition
from ...resources import CatalogResource, StorageResource
from ...workers import where
from ..policy import RETRY, TRAINING_QUEUE

MIN_CLIPS = 20  # fewer clips than this say nothing useful about the embedding distribution
FEATURE_ADAPTER = dg.AssetKey("feature_adapter")
MODE = "builtin_feature_adapter"  # a residual linear projection trained with torch, applied in numpy


# tags: the queue tag rides on the asset, so a UI or backfill run of it queues like train_job
@dg.asset(
    group_name="training",
    kinds={"torch", "numpy"},
    deps=[dg.AssetKey("video_clips")],
    retry_policy=RETRY,
    tags=TRAINING_QUEUE,
    description="Feature adapter trained on every ready video's clips; goes live only if it beats the live one on held-out videos",
)
def feature_adapter(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    from ...core.adapter_training import TrainingConfig, train_and_judge

    cat, store = catalog.catalog, storage.store
    tags = context.run.tags
    job_id = tags.get(TAG_JOB_ID) or new_job_id("train")
    cat.record_training(
        job_id,
        trigger=tags.get(TAG_TRIGGER, "manual"),
        requested_by=tags.get(TAG_REQUESTED_BY),
        run_id=context.run.run_id,
        exist_ok=True,
    )
    cat.update_training(job_id, status="running", run_id=context.run.run_id)
    job_transition("training", job_id, "running", run_id=context.run.run_id)
    ready = cat.list_videos(status="ready", limit=None)
    raws = [np.load(store.embeddings(v["video_id"])["raw"], mmap_mode="r") for v in ready]  # headers only
    dims = {r.shape[1] for r in raws}
    clips = sum(len(r) for r in raws)
    if clips < MIN_CLIPS or len(dims) != 1:
        reason = (
            f"only {clips} clips from {len(ready)} ready videos; at least {MIN_CLIPS} are needed"
            if len(dims) <= 1
            else f"videos have different embedding sizes {sorted(dims)}"
        )
        cat.update_training(job_id, status="skipped", skip_reason=reason, videos_used=len(ready), clips_used=clips)
        context.log.info(f"training {job_id} skipped: {reason}")
        job_transition("training", job_id, "skipped", reason=reason)
        return dg.MaterializeResult(
            metadata={"job_id": job_id, "status": "skipped", "reason": reason, **where()},
            data_version=_live_version(cat),
        )

    t0 = time.perf_counter()
    live = live_adapter(cat)
    outcome = train_and_judge(training_videos(cat, store, ready, live), live.adapter, TrainingConfig())
    dim = int(next(iter(dims)))
    common: dict[str, Any] = {
        "mode": MODE,
        "videos_used": len(ready),
        "clips_used": clips,
        "embedding_dim": dim,
        "figures": outcome.figures,
    }
    summary = {"job_id": job_id, "live_adapter": live.name, **_figure_metadata(outcome.figures)}
    candidate = outcome.adapter if outcome.accepted else None
    if candidate is not None:
        path = candidate.save(store.adapter(f"feature_adapter_{job_id}"))
        common["embedding_dim"] = candidate.embedding_dim(dim)
        try:
            reindex = reindex_all(context, cat, store, ready, LiveAdapter(candidate, job_id, str(path)), live)
        except ValueError as exc:  # the candidate gives unusable vectors for some video
            outcome.accepted, outcome.reason = False, f"rejected during reindex: {exc}"
            outcome.figures.update(accepted=False, reason=outcome.reason)
    telemetry.observe_job("training", time.perf_counter() - t0)
    if candidate is None or not outcome.accepted:
        cat.update_training(job_id, status="rejected", skip_reason=outcome.reason, **common)
        context.log.info(f"training {job_id} rejected, {live.name} stays live: {outcome.reason}")
        job_transition("training", job_id, "rejected", reason=outcome.reason)
        return dg.MaterializeResult(
            metadata={**summary, "status": "rejected", "reason": outcome.reason, **where()},
            data_version=_live_version(cat),
        )
    # the switch: from here on scoring, ingest and the index sensor use the new adapter
    cat.update_training(job_id, status="completed", adapter_path=str(path), reindex=reindex, **common)
    late = catch_up(cat, store, {v["video_id"] for v in ready}, LiveAdapter(candidate, job_id, str(path)))
    job_transition("training", job_id, "completed", videos_used=len(ready), clips_used=clips, late_videos=late)
    return dg.MaterializeResult(
        metadata={
            **summary,
            "status": "completed",
            "videos_used": len(ready),
            "clips_used": clips,
            "embedding_dim": common["embedding_dim"],
            "old_index_version": reindex["old_index_version"],
            "new_index_version": reindex["new_index_version"],
            "tasks_touched": ", ".join(reindex["tasks_touched"]),
            "path": dg.MetadataValue.path(str(path)),
            **where(),  # the worker, host and pid that trained it
        },
        data_version=_live_version(cat),
    )


def _live_version(cat) -> dg.DataVersion:
    """The asset's data version is the live adapter: a skipped or rejected training changes
    nothing downstream, so the indexes and scores do not turn stale over it."""
    return dg.DataVersion(live_adapter_name(cat))


def reindex_all(context, cat, store, ready: list[dict], candidate: LiveAdapter, live: LiveAdapter) -> dict:
    """Every ready video's adapted embeddings, then every task's index, through the candidate.

    Videos first: a video the candidate cannot embed sanely stops the reindex before any index
    moves (adapters.reindex_videos); each rewrite and build is logged as a materialization."""
    from ..ingest.assets import embeddings_materialization
    from ..search.assets import index_metadata

    done = reindex_videos(store, ready, candidate, live)
    for v, n in done:  # with a data version, so the indexes and scores that read them turn stale
        key = video_key(v["task_id"], v["video_id"])
        adapted = np.load(store.embeddings(v["video_id"])["adapted"])
        md = {"video_id": v["video_id"], "clips": n, "adapter": candidate.name, "reason": "reindex after training"}
        context.log_event(embeddings_materialization(key, md, adapted, candidate.name))
    task_ids = sorted({v["task_id"] for v in cat.list_videos(status="ready", limit=None)})
    new_parts = [t for t in task_ids if not context.instance.has_dynamic_partition(TASKS, t)]
    if new_parts:
        context.instance.add_dynamic_partitions(TASKS, new_parts)
    versions = {}
    for task_id in task_ids:
        try:
            built = indexes.build_task_index(cat, store, task_id, candidate)
        except indexes.IndexBuildError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
        versions[task_id] = {
            "old": built["previous_version"],
            "new": built["index_version"],
            "clips": built["clips"],
            "kind": built["kind"],
        }
        context.log_event(
            dg.AssetMaterialization(asset_key="task_index", partition=task_id, metadata=index_metadata(built))
        )
    return {
        "old_index_version": _label({t: v["old"] for t, v in versions.items()}),
        "new_index_version": _label({t: v["new"] for t, v in versions.items()}),
        "videos_refreshed": len(done),
        "clips_indexed": sum(v["clips"] for v in versions.values()),
        "tasks_touched": task_ids,
        "versions": versions,
    }


def _label(by_task: dict) -> str | None:
    """One task: its version ("v4"); several: each task's ("a:v4, b:v9"); per task in `versions`."""
    if len(by_task) == 1:
        return next(iter(by_task.values()))
    return ", ".join(f"{t}:{v or 'none'}" for t, v in by_task.items()) or None


def _figure_metadata(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if isinstance(v, (int, float, str))}

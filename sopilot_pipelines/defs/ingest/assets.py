"""Per-video assets: clips + raw embeddings + clip metadata (`video_clips`), then adapted
embeddings (`video_embeddings`), computed by one op, video by video.

One op for both, so that in a range run (a single-run backfill) each video goes all the way
through on its own: a bad file fails its own partitions with the reason in words and nothing
written, the others materialize, and the step fails at the end naming the failed keys (Dagster
marks a range run's planned-but-unmaterialized partitions failed). Each partition's
materialization is logged with its own metadata (clips, fps, duration, timings), never a batch
total. A transient error (I/O, database) is not caught here: the retry policy retries the step.
"""

import hashlib
import os
import time

import dagster as dg
import numpy as np

from ... import telemetry
from ...adapters import live_adapter, live_adapter_name, sanity_problems
from ...catalog import IngestSuperseded
from ...logs import job_transition
from ...resources import CatalogResource, StorageResource
from ...settings import settings
from ...storage import atomic_write_npy
from ...workers import where
from ..policy import RETRY
from .partitions import video_id_of, videos

CLIPS, EMBEDDINGS = dg.AssetKey("video_clips"), dg.AssetKey("video_embeddings")
CHECK = "embeddings_are_sane"
# run tags that summarise a range run in the runs list (the step's failure names the keys)
TAG_VIDEOS_DONE, TAG_VIDEOS_FAILED = "sopilot/videos_materialized", "sopilot/videos_failed"
# Dagster's own tag keys for a materialization's data version. Materializations logged from the
# op body get none by default, and without one a downstream asset never turns stale.
_DATA_VERSION_TAG, _USER_PROVIDED_TAG = "dagster/data_version", "dagster/data_version_is_user_provided"
ROOT_RUN_TAG = "dagster/root_run_id"  # on a re-execution (a retry): the first run of its group


class VideoFailed(Exception):
    """A video that cannot be ingested for a reason that a retry will not change."""


def uploader_facing(message: str, row: dict) -> str:
    """An error as the uploader reads it: the file they uploaded by its name, never the server's
    path to it (which says where the data lives)."""
    raw = str(row.get("raw_path") or "")
    if not raw:
        return message
    name = row.get("original_filename") or f"video {row['video_id']}"
    return message.replace(raw, name).replace(os.path.basename(raw), name)


def versioned_materialization(asset_key, partition: str, metadata: dict, content: bytes) -> dg.AssetMaterialization:
    """A per-partition materialization whose data version is the hash of what was written, so
    Dagster's staleness sees a change exactly when the content changed."""
    version = hashlib.sha256(content).hexdigest()[:24]
    return dg.AssetMaterialization(
        asset_key=asset_key,
        partition=partition,
        metadata=metadata,
        tags={_DATA_VERSION_TAG: version, _USER_PROVIDED_TAG: "true"},
    )


@dg.multi_asset(
    name="ingest_video",
    partitions_def=videos,
    group_name="ingest",
    can_subset=True,  # video_embeddings alone re-adapts from the raw files (and breaks the cycle via feature_adapter)
    # on Celery workers one video per run, so a backfill's videos spread over the workers (N runs
    # under the run queue's limits); in process one range run
    backfill_policy=dg.BackfillPolicy.multi_run(1)
    if settings().executor == "celery"
    else dg.BackfillPolicy.single_run(),
    retry_policy=RETRY,
    specs=[
        dg.AssetSpec(
            CLIPS,
            kinds={"ffmpeg", "numpy"},
            skippable=True,
            description="Decode (fps and scale inside ffmpeg), cut clips, embed: video_<id>.raw.npy + video_<id>.json;"
            " the browser proxy proxies/video_<id>.mp4 (H.264) the review UI plays",
        ),
        dg.AssetSpec(
            EMBEDDINGS,
            kinds={"numpy"},
            skippable=True,
            deps=[CLIPS, dg.AssetKey("feature_adapter")],  # the adapter it goes through, for the lineage
            description="Raw embeddings through the current feature adapter: video_<id>.npy; marks the video ready",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=EMBEDDINGS,
            blocking=True,
            description="finite, unit-length rows, one per clip, at least 2 clips",
        )
    ],
)
def ingest_video(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    # Outputs are never yielded: every partition's materialization is logged by itself below
    # (skippable specs), so a range run does not stamp one result onto all of its partitions.
    cat, store = catalog.catalog, storage.store
    selected = context.selected_asset_keys
    live = live_adapter(cat) if EMBEDDINGS in selected else None
    done, failed = [], {}
    for key in context.partition_keys:
        try:
            row = _begin(context, cat, key)
            if CLIPS in selected:
                context.log_event(_clips(context, cat, store, row, key))
            if EMBEDDINGS in selected:
                context.log_event(_embeddings(context, cat, store, key, live))
            done.append(key)
        except VideoFailed as exc:
            failed[key] = str(exc)
            context.log.error(f"{key}: {exc}")
    if EMBEDDINGS in selected and dg.AssetCheckKey(EMBEDDINGS, CHECK) in context.selected_asset_check_keys:
        yield dg.AssetCheckResult(
            asset_key=EMBEDDINGS,
            check_name=CHECK,
            passed=not any("embeddings_are_sane" in r for r in failed.values()),
            metadata={"videos_checked": len(done) + len(failed), "videos_failed": len(failed)},
        )
    if len(context.partition_keys) > 1:
        context.instance.add_run_tags(
            context.run.run_id, {TAG_VIDEOS_DONE: str(len(done)), TAG_VIDEOS_FAILED: str(len(failed))}
        )
    if failed:
        reasons = "; ".join(f"{k}: {r}" for k, r in failed.items())
        summary = (
            next(iter(failed.values()))
            if len(context.partition_keys) == 1
            else f"{len(failed)} of {len(context.partition_keys)} videos failed ({len(done)} materialized): {reasons}"
        )
        raise dg.Failure(
            summary,
            allow_retries=False,
            metadata={"failed": len(failed), "materialized": len(done), "failed_keys": ", ".join(failed)},
        )


def _begin(context, cat, key: str) -> dict:
    """The video, taken on by this run (catalog's begin_ingest). The attempt is the run's first
    run: Dagster's retries of a run carry on its ingest; a new run re-ingests a failed video."""
    video_id = video_id_of(key)
    try:
        row = cat.begin_ingest(video_id, context.run.tags.get(ROOT_RUN_TAG) or context.run.run_id)
    except IngestSuperseded as exc:
        raise VideoFailed(str(exc)) from exc
    if row is None:
        raise VideoFailed(f"video {video_id} is not in the catalog (deleted?)")
    return row


def _clips(context, cat, store, row: dict, key: str) -> dg.AssetMaterialization:
    from ...core.embedders import EmbedderError
    from ...core.embedding import embed_video
    from ...core.video import VideoDecodeError

    video_id = row["video_id"]
    t0 = time.perf_counter()
    job_transition("ingest", context.run.run_id, "running", video_id=video_id, task_id=row["task_id"])
    try:
        s = settings()
        ev = embed_video(row["raw_path"], s.video.clips(), s.embedding.build(), s.video.decode())
    except (VideoDecodeError, EmbedderError, FileNotFoundError) as exc:
        reason = uploader_facing(str(exc), row)
        cat.mark_video_failed(video_id, reason)
        job_transition("ingest", context.run.run_id, "failed", video_id=video_id, error=reason)
        raise VideoFailed(f"video {video_id} could not be ingested: {reason}") from exc
    paths = store.embeddings(video_id)
    ev.save(paths["raw"], paths["meta"])
    proxy = _proxy(context, store, row, s.video.decode().threads)
    telemetry.observe_embedding(ev.model, ev.timings.get("embed_sec", 0.0))
    telemetry.observe_job("ingest", time.perf_counter() - t0)
    cat.set_video_paths(video_id, raw_embeddings_path=str(paths["raw"]), meta_path=str(paths["meta"]))
    md = {
        "video_id": video_id,
        "task_id": row["task_id"],
        "role": row["role"],
        "clips": ev.n_clips,
        "source_fps": ev.source_fps,
        "sampled_fps": ev.sampled_fps,
        "duration_sec": ev.duration_sec,
        "embedder": ev.model,
        "dim": int(ev.embeddings.shape[1]),
        "decode_sec": ev.timings.get("decode_sec", 0.0),
        "embed_sec": ev.timings.get("embed_sec", 0.0),
        "total_sec": round(time.perf_counter() - t0, 3),
        "quality_flagged_clips": sum(bool(q) for q in ev.quality),
        **proxy,
        "path": dg.MetadataValue.path(str(paths["raw"])),
        **where(),  # the worker, host and pid that ran it (the Dagster UI shows where each video went)
    }
    context.log.info(f"{key}: {ev.n_clips} clips, {ev.model}, {md['total_sec']}s")
    return versioned_materialization(CLIPS, key, md, ev.embeddings.astype(np.float32).tobytes() + ev.model.encode())


def _proxy(context, store, row: dict, threads: int) -> dict:
    """The browser proxy the review UI plays (the original may be a codec or container Chromium
    cannot play). Not fatal: the video decoded and embedded, so it can be scored; without a proxy
    GET /videos/{id}/stream tries again on first need and serves the original if that fails too.
    Neither ffmpeg's failure nor the file system's (the proxies directory unwritable, the disk full)
    loses the ingest: it is logged and named in the metadata (``proxy_error``)."""
    from ...core.video import VideoDecodeError, write_proxy

    try:
        dest = store.proxy(row["video_id"])  # makes the proxies directory
        sec = write_proxy(row["raw_path"], dest, threads=threads)
        size = dest.stat().st_size
    except (VideoDecodeError, OSError) as exc:
        reason = uploader_facing(str(exc), row)
        context.log.warning(f"video {row['video_id']}: no browser proxy (the original is served): {reason}")
        return {"proxy_error": reason}
    return {"proxy_sec": round(sec, 3), "proxy_bytes": size, "proxy_path": dg.MetadataValue.path(str(dest))}


def _embeddings(context, cat, store, key: str, live) -> dg.AssetMaterialization:
    from ...core.embedding import EmbeddedVideo

    video_id = video_id_of(key)
    row = cat.get_video(video_id)
    paths = store.embeddings(video_id)
    if row is None or not paths["raw"].exists():
        raise VideoFailed(f"video {video_id}: no raw embeddings; materialize video_clips first")
    ev = EmbeddedVideo.load(paths["raw"], paths["meta"])
    adapted = live.adapter.apply(ev.embeddings)
    problems = sanity_problems(key, adapted, ev.embeddings)
    if problems:  # a broken video is never marked ready, and the run says why
        cat.mark_video_failed(video_id, "; ".join(problems))
        job_transition("ingest", context.run.run_id, "failed", video_id=video_id, error="; ".join(problems))
        raise VideoFailed(f"embeddings_are_sane failed: {'; '.join(problems)}")
    atomic_write_npy(paths["adapted"], adapted.astype(np.float32))
    try:
        cat.mark_video_ready(
            video_id,
            embedding_model=ev.model,
            num_clips=ev.n_clips,
            source_fps=ev.source_fps,
            sampled_fps=ev.sampled_fps,
            duration_sec=ev.duration_sec,
            embeddings_path=str(paths["adapted"]),
            raw_embeddings_path=str(paths["raw"]),
            meta_path=str(paths["meta"]),
            clips=[
                {"clip_idx": i, "start_sec": float(s), "end_sec": float(e), "quality": ",".join(q) or None}
                for i, (s, e, q) in enumerate(zip(ev.clip_starts, ev.clip_ends, ev.quality))
            ],
        )
    except IngestSuperseded as exc:  # timed out meanwhile: what this run made comes too late
        raise VideoFailed(str(exc)) from exc
    name = live.name
    if live_adapter_name(cat) != live.name:  # a training switched adapters meanwhile; its catch-up may have missed us
        current = live_adapter(cat)
        adapted, name = current.adapter.apply(ev.embeddings), current.name
        atomic_write_npy(paths["adapted"], adapted.astype(np.float32))
    sop = {}
    if row["role"] == "gold":
        from ..scoring.sop import gold_ready, task_sop_materialization

        ev.embeddings = adapted
        sop = gold_ready(cat, store, row, ev)
        # a new gold changes the SOP in force (steps given at upload, boundaries carried to it, or
        # version 0 on it): recorded as a task_sop materialization, as a sop_job run records a PUT
        context.log_event(task_sop_materialization(context, cat, store, row["task_id"]))
    job_transition("ingest", context.run.run_id, "completed", video_id=video_id, clips=int(adapted.shape[0]))
    md = {
        "video_id": video_id,
        "task_id": row["task_id"],
        "clips": int(adapted.shape[0]),
        "dim": int(adapted.shape[1]),
        "adapter": name,
        "embedder": ev.model,
        "path": dg.MetadataValue.path(str(paths["adapted"])),
        **sop,
        **where(),
    }
    return embeddings_materialization(key, md, adapted, name)


def embeddings_materialization(key: str, metadata: dict, adapted: np.ndarray, adapter: str) -> dg.AssetMaterialization:
    return versioned_materialization(EMBEDDINGS, key, metadata, adapted.astype(np.float32).tobytes() + adapter.encode())

"""Per-video assets: clips + raw embeddings + clip metadata, then adapted embeddings.

A bad file fails its run at once (no retry) with the reason in words and nothing written; a
transient error (I/O, database) is retried by the job's retry policy. Re-embedding a task's
videos is one backfill: the single-run policy hands a run every selected partition in a range.
"""


import time

import dagster as dg
import numpy as np

from ... import telemetry
from ...ids import video_key
from ...logs import job_transition
from ...resources import CatalogResource, StorageResource
from ...storage import atomic_write_npy
from ..training.live import live_adapter, live_adapter_name
from .partitions import video_id_of, videos


@dg.asset(
    partitions_def=videos,
    group_name="ingest",
    kinds={"ffmpeg", "numpy"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Decode (fps and scale inside ffmpeg), cut clips, embed: video_<id>.raw.npy + video_<id>.json",
)
def video_clips(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    from ...core.embedders import EmbedderError
    from ...core.embedding import embed_video
    from ...core.video import VideoDecodeError

    cat, store = catalog.catalog, storage.store
    done: list[dict] = []
    for key in context.partition_keys:
        video_id = video_id_of(key)
        row = cat.get_video(video_id)
        if row is None:
            raise dg.Failure(f"video {video_id} is not in the catalog (deleted?)", allow_retries=False)
        if not row["ingest_run_id"]:
            cat.set_ingest_run(video_id, context.run.run_id)
        t0 = time.perf_counter()
        job_transition("ingest", context.run.run_id, "running", video_id=video_id, task_id=row["task_id"])
        try:
            ev = embed_video(row["raw_path"])
        except (VideoDecodeError, EmbedderError, FileNotFoundError) as exc:
            cat.mark_video_failed(video_id, str(exc))
            job_transition("ingest", context.run.run_id, "failed", video_id=video_id, error=str(exc))
            raise dg.Failure(f"video {video_id} could not be ingested: {exc}", allow_retries=False) from exc
        paths = store.embeddings(video_id)
        ev.save(paths["raw"], paths["meta"])
        telemetry.observe_embedding(ev.model, ev.timings.get("embed_sec", 0.0))
        telemetry.observe_job("ingest", time.perf_counter() - t0)
        cat.set_video_paths(video_id, raw_embeddings_path=str(paths["raw"]), meta_path=str(paths["meta"]))
        done.append({
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
                "path": str(paths["raw"]),
        })
        context.log.info(f"{key}: {ev.n_clips} clips, {ev.model}, {done[-1]['total_sec']}s")
    return _result(done)


@dg.asset(
    partitions_def=videos,
    group_name="ingest",
    deps=[video_clips, dg.AssetKey("feature_adapter")],  # the adapter it goes through, for the lineage
    kinds={"numpy"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("embeddings_are_sane", asset="video_embeddings", blocking=True,
                                   description="finite, unit-length rows, one per clip, at least 2 clips")],
    description="Raw embeddings through the current feature adapter: video_<id>.npy; marks the video ready",
)
def video_embeddings(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    from ...core.embedding import EmbeddedVideo

    cat, store = catalog.catalog, storage.store
    live = live_adapter(cat)
    done: list[dict] = []
    for key in context.partition_keys:
        video_id = video_id_of(key)
        row = cat.get_video(video_id)
        paths = store.embeddings(video_id)
        if row is None or not paths["raw"].exists():
            raise dg.Failure(f"video {video_id}: no raw embeddings; materialize video_clips first", allow_retries=False)
        ev = EmbeddedVideo.load(paths["raw"], paths["meta"])
        adapted = live.adapter.apply(ev.embeddings)
        problems = sanity_problems(key, adapted, ev.embeddings)
        if problems:  # a broken video is never marked ready, and the run says why
            cat.mark_video_failed(video_id, "; ".join(problems))
            job_transition("ingest", context.run.run_id, "failed", video_id=video_id, error="; ".join(problems))
            raise dg.Failure(f"embeddings_are_sane failed: {'; '.join(problems)}", allow_retries=False)
        atomic_write_npy(paths["adapted"], adapted.astype(np.float32))
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
        if live_adapter_name(cat) != live.name:  # a training switched adapters meanwhile; its catch-up may have missed us
            atomic_write_npy(paths["adapted"], live_adapter(cat).adapter.apply(ev.embeddings).astype(np.float32))
        job_transition("ingest", context.run.run_id, "completed", video_id=video_id, clips=int(adapted.shape[0]))
        done.append({
                "video_id": video_id,
                "task_id": row["task_id"],
                "clips": int(adapted.shape[0]),
                "dim": int(adapted.shape[1]),
                "adapter": live.name,
                "embedder": ev.model,
                "path": str(paths["adapted"]),
        })
    check = dg.AssetCheckResult(check_name="embeddings_are_sane", passed=True, metadata={"videos_checked": len(done)})
    return _result(done, [check])


def sanity_problems(key: str, emb: np.ndarray, raw: np.ndarray) -> list[str]:
    """What later steps rely on: finite, unit rows, one per clip, enough clips to align."""
    problems = []
    if not np.isfinite(emb).all():
        problems.append(f"{key}: NaN or inf in embeddings")
    if emb.shape != raw.shape:
        problems.append(f"{key}: adapted {emb.shape} != raw {raw.shape}")
    if emb.shape[0] < 2:
        problems.append(f"{key}: only {emb.shape[0]} clip(s); a video needs at least 2 to be scored")
    elif not np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3):
        problems.append(f"{key}: rows are not unit length")
    return problems


def _result(done: list[dict], checks: list | None = None) -> dg.MaterializeResult:
    """One video: its own metadata. A backfill batch: totals, so the UI shows what the run did."""
    if len(done) == 1:
        md = dict(done[0])
        md["path"] = dg.MetadataValue.path(md["path"])
        return dg.MaterializeResult(metadata=md, check_results=checks)
    return dg.MaterializeResult(
        check_results=checks,
        metadata={
            "videos": len(done),
            "clips": sum(d["clips"] for d in done),
            "tasks": ", ".join(sorted({d["task_id"] for d in done})),
        }
    )


def refresh_adapted(store, video: dict, adapter) -> int:
    """Re-write a ready video's adapted embeddings (catalog row `video`) through another adapter;
    returns its clips. Raises ValueError when the result is not sane, FileNotFoundError when the
    video was deleted meanwhile."""
    paths = store.embeddings(video["video_id"])
    raw = np.load(paths["raw"])
    adapted = adapter.apply(raw)
    problems = sanity_problems(video_key(video["task_id"], video["video_id"]), adapted, raw)
    if problems:
        raise ValueError("; ".join(problems))
    atomic_write_npy(paths["adapted"], adapted.astype(np.float32))
    return int(adapted.shape[0])

"""Feature adapters in the running system: which one is live (the newest training that
completed with an adapter file; rejected and skipped trainings never change it, identity is live
before the first), what a training learns from, and moving every video to another adapter.
Plain functions over the catalog and the data store; the training asset (defs/training) calls them."""

from dataclasses import dataclass

import numpy as np

from .core.adapter import FeatureAdapter
from .ids import video_key
from .settings import settings
from .storage import atomic_write_npy


@dataclass(frozen=True)
class LiveAdapter:
    adapter: FeatureAdapter
    name: str  # the training job id, or "identity"
    path: str | None


IDENTITY = "identity"


def live_adapter_name(catalog) -> str:
    """The live adapter's name without loading its file (sensors ask every few seconds)."""
    job = catalog.live_adapter()
    return job["job_id"] if job else IDENTITY


def live_adapter(catalog) -> LiveAdapter:
    job = catalog.live_adapter()
    if job is None:
        return LiveAdapter(FeatureAdapter(), IDENTITY, None)
    return LiveAdapter(FeatureAdapter.load(job["adapter_path"]), job["job_id"], job["adapter_path"])


class VideoUnavailable(ValueError):
    """A video a job needs is deleted or not ingested: a retry will not change that."""


def load_for_scoring(cat, store, video_id: int, live=None, cache: dict | None = None):
    """A video's clips and embeddings through the *current* adapter (or ``live``), so both sides
    of a score always share one embedding space even while a reindex is under way. ``cache``: a
    run's loaded videos by (video, adapter), so a batch of scores loads each gold once."""
    from .core.embedding import EmbeddedVideo

    row = cat.get_video(video_id)
    if row is None:
        raise VideoUnavailable(f"video {video_id} does not exist (deleted?)")
    if row["status"] != "ready":
        raise VideoUnavailable(f"video {video_id} is not ingested yet (status {row['status']})")
    live = live or live_adapter(cat)
    key = (video_id, row.get("embedding_model"), live.name)
    if cache is not None and key in cache:
        return row, cache[key]
    paths = store.embeddings(video_id)
    ev = EmbeddedVideo.load(paths["raw"], paths["meta"])
    ev.embeddings = live.adapter.apply(ev.embeddings)
    if cache is not None:
        cache[key] = ev
    return row, ev


def training_videos(cat, store, ready: list[dict], live: LiveAdapter) -> list:
    """Every ready video with its raw embeddings; a trainee also with the per-clip gold-step
    labels of its newest completed score against its task's gold, when those labels were made
    with the gold segmented as it is in the live space (otherwise they would name other steps)."""
    from .core.adapter_training import TrainingVideo, gold_steps
    from .core.embedding import EmbeddedVideo

    evs = {
        v["video_id"]: EmbeddedVideo.load(*(store.embeddings(v["video_id"])[k] for k in ("raw", "meta"))) for v in ready
    }
    golds = {}
    for v in sorted(ready, key=lambda v: v["video_id"]):
        if v["role"] == "gold":
            golds[v["task_id"]] = v["video_id"]  # the newest gold of the task
    config = settings().scoring.config()
    gold_labels = {gid: gold_steps(evs[gid], live.adapter, config) for gid in golds.values()}
    labels: dict[int, np.ndarray] = {}
    for job in cat.list_scores(limit=None, status="completed"):  # newest first
        tid = job["trainee_video_id"]
        gid = job["gold_video_id"]
        path = store.score_steps(job["job_id"])
        if tid in labels or tid not in evs or golds.get(job["task_id"]) != gid or not path.exists():
            continue
        with np.load(path) as z:
            g, t = z["gold_labels"], z["trainee_labels"]
        if np.array_equal(g, gold_labels[gid]) and len(t) == evs[tid].n_clips:
            labels[tid] = t
    return [
        TrainingVideo(
            video_id=v["video_id"],
            task_id=v["task_id"],
            role=v["role"],
            ev=evs[v["video_id"]],
            stored_labels=labels.get(v["video_id"]),
        )
        for v in ready
    ]


def reindex_videos(store, ready: list[dict], candidate: LiveAdapter, live: LiveAdapter) -> list[tuple[dict, int]]:
    """Every ready video's adapted embeddings through the candidate; (video, clips) of each.

    A video the candidate cannot embed sanely (ValueError) stops it, and the files already
    rewritten are put back through the live adapter before the error goes on."""
    done = []
    try:
        for v in ready:
            try:
                done.append((v, refresh_adapted(store, v, candidate.adapter)))
            except FileNotFoundError:
                continue  # deleted since the training listed it
    except ValueError:
        for v, _ in done:
            try:
                refresh_adapted(store, v, live.adapter)
            except FileNotFoundError:
                pass
        raise
    return done


def catch_up(cat, store, seen: set[int], live: LiveAdapter) -> int:
    """Videos that became ready while the reindex ran were adapted by the previous adapter:
    rewrite them; the index sensor then rebuilds their tasks through the live one."""
    late = [v for v in cat.list_videos(status="ready", limit=None) if v["video_id"] not in seen]
    for v in late:
        refresh_adapted(store, v, live.adapter)
    return len(late)


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

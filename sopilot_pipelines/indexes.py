"""Per task: the clip index (FAISS) over its ready videos' clips, through one adapter, versioned.
Plain functions over the catalog and the data store; the task_index asset (defs/search) and the
training's reindex call them."""

import hashlib
import json
import shutil
import time
import uuid

import numpy as np

from .adapters import LiveAdapter
from .settings import settings


class IndexBuildError(Exception):
    """A build that a retry would not mend (the task's videos need re-embedding)."""


def task_fingerprint(videos: list[dict]) -> str:
    """Changes whenever a task's set of ready videos or any of their embeddings changes."""
    parts = sorted(f"{v['video_id']}@{v['updated_at'].isoformat()}" for v in videos)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def build_task_index(cat, store, task_id: str, live: LiveAdapter) -> dict:
    """Write a new index version of the task and make it current; returns what was built.

    Vectors are the raw embeddings through `live` (not the per-video adapted files), so an index
    version is in one adapter's space even while a reindex rewrites those files; its meta names
    the adapter, which lets a search embed a query clip the index does not hold yet."""
    from .core.index import write_version

    ready = sorted(cat.list_videos(task_id=task_id, status="ready", limit=None), key=lambda v: v["video_id"])
    vectors, ids = [], []
    for v in ready:
        emb = live.adapter.apply(np.load(store.embeddings(v["video_id"])["raw"]))
        vectors.append(emb)
        ids.append(np.stack([np.full(len(emb), v["video_id"]), np.arange(len(emb))], axis=1))
    dims = {e.shape[1] for e in vectors}
    if len(dims) > 1:
        raise IndexBuildError(f"task {task_id}: videos have different embedding sizes {sorted(dims)}; re-embed them")
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)
    id_rows = np.concatenate(ids) if ids else np.zeros((0, 2), np.int64)
    previous = cat.current_index_version(task_id)
    fingerprint = task_fingerprint(ready)
    s = settings()
    # every build gets its own directory (a retry too), complete before the catalog makes it current
    build = f"{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:8]}"
    meta = {
        "task_id": task_id,
        "fingerprint": fingerprint,
        "videos": len(ready),
        "adapter": live.name,
        "adapter_path": live.path,
    }
    final = write_version(
        store.index_build_dir(task_id, build), matrix, id_rows, meta, approx_min_clips=s.index_approx_min_clips
    )
    version = cat.add_index_version(
        task_id, str(final), clips=len(id_rows), videos=len(ready), fingerprint=fingerprint, adapter=live.name
    )
    prune(cat, task_id, keep=s.index_versions_kept)
    info = json.loads((final / "meta.json").read_text()).get("index", {})
    return {
        "task_id": task_id,
        "index_version": f"v{version}",
        "previous_version": f"v{previous['version']}" if previous else None,
        "videos": len(ready),
        "clips": int(len(id_rows)),
        "dim": int(matrix.shape[1]) if len(id_rows) else 0,
        "kind": info.get("kind"),
        "recall_at_5": info.get("recall_at_5"),
        "nprobe": info.get("nprobe"),
        "build_sec": info.get("build_sec"),
        "adapter": live.name,
        "fingerprint": fingerprint,
        "path": str(final),
    }


def prune(cat, task_id: str, keep: int) -> None:
    """Delete the directories of all but the newest `keep` versions; the catalog rows stay as
    history. The current version and the ones before it stay readable for searches in flight."""
    for row in cat.list_index_versions(task_id, limit=None)[keep:]:
        shutil.rmtree(row["path"], ignore_errors=True)

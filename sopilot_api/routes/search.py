"""GET /search: similar clips in a task, from the task's materialized FAISS index."""

from __future__ import annotations

import threading
from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Query

from sopilot_pipelines.catalog import validate_task_id

from ..auth import Viewer
from ..deps import CatalogDep, StoreDep
from ..schemas import MAX_ID, SearchItem, SearchResult

router = APIRouter(tags=["search"])
_cache: dict[str, tuple[str, object]] = {}  # task_id -> (version path, OpenIndex); a version never changes
_lock = threading.Lock()


def _open(task_id: str, path: str):
    """The task's current version, opened once; opening a newer one drops the older from memory
    (a request still holding it finishes on it)."""
    with _lock:
        cached = _cache.get(task_id)
        if cached is None or cached[0] != path:
            # faiss is imported here, on the first search only: it is heavy and most requests never need it
            from sopilot_pipelines.core.index import open_version

            _cache[task_id] = cached = (path, open_version(path))
        return cached[1]


def _query(opened, store, video_id: int, clip_idx: int) -> np.ndarray:
    """The clip's vector in the index's own space: stored in the index, or (a video newer than
    this version) its raw embedding through the adapter the version was built with."""
    vec = opened.vector_of(video_id, clip_idx)
    if vec is None:
        from sopilot_pipelines.core.adapter import FeatureAdapter

        raw = np.load(store.embeddings(video_id)["raw"], mmap_mode="r")[clip_idx : clip_idx + 1]
        vec = FeatureAdapter.load(opened.meta.get("adapter_path")).apply(raw)[0]
    return np.ascontiguousarray(np.asarray(vec, dtype=np.float32).reshape(1, -1))


@router.get(
    "/search",
    response_model=SearchResult,
    responses={
        400: {"description": "task_id does not match the video, or clip_idx out of range"},
        404: {"description": "Unknown video"},
    },
)
def search(
    cat: CatalogDep,
    store: StoreDep,
    _: Viewer,
    task_id: Annotated[str, Query(max_length=64)],
    video_id: Annotated[int, Query(ge=1, le=MAX_ID)],
    clip_idx: Annotated[int, Query(ge=0, le=MAX_ID)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
):
    try:
        task_id = validate_task_id(task_id)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    video = cat.get_video(video_id)
    if video is None:
        raise HTTPException(404, f"video {video_id} not found")
    if video["task_id"] != task_id:
        raise HTTPException(400, f"video {video_id} belongs to task {video['task_id']!r}, not {task_id!r}")
    if video["status"] != "ready":
        raise HTTPException(409, f"video {video_id} is not ingested yet")
    if clip_idx >= (video["num_clips"] or 0):
        raise HTTPException(400, f"clip_idx {clip_idx} out of range: video {video_id} has {video['num_clips']} clips")
    version = cat.current_index_version(task_id)
    if version is None:
        return SearchResult(task_id=task_id, query_video_id=video_id, query_clip_idx=clip_idx, items=[])
    opened = _open(task_id, version["path"])
    if opened.ntotal == 0:
        return SearchResult(task_id=task_id, query_video_id=video_id, query_clip_idx=clip_idx, items=[])
    ids = opened.ids
    # a few spare results: the query clip itself and clips of videos deleted since the build are dropped
    sims, rows = opened.search(_query(opened, store, video_id, clip_idx), min(k + 16, opened.ntotal))
    clips = {}
    items = []
    for sim, row in zip(sims[0], rows[0]):
        if row < 0:
            continue
        vid, cidx = int(ids[row][0]), int(ids[row][1])
        if (vid, cidx) == (video_id, clip_idx):
            continue  # never the query clip itself
        if vid not in clips:
            meta = cat.get_video(vid)
            if meta is None:  # deleted since this index version was built
                continue
            clips[vid] = (meta["role"], {c["clip_idx"]: c for c in cat.clips_of(vid)})
        role, by_idx = clips[vid]
        c = by_idx.get(cidx)
        if c is None:
            continue
        items.append(
            SearchItem(
                similarity=round(float(sim), 4),
                video_id=vid,
                clip_idx=cidx,
                start_sec=c["start_sec"],
                end_sec=c["end_sec"],
                role=role,
            )
        )
        if len(items) == k:
            break
    return SearchResult(task_id=task_id, query_video_id=video_id, query_clip_idx=clip_idx, items=items)

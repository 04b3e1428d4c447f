"""GET /search: similar clips in a task, from the task's materialized FAISS index."""

from __future__ import annotations

import threading

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from sopilot_pipelines.catalog import validate_task_id

from .. import deps
from ..auth import Principal, require
from ..schemas import MAX_ID, SearchItem, SearchResult

router = APIRouter(tags=["search"])
_cache: dict[str, tuple] = {}  # index path -> (faiss index, ids); a version's files never change
_lock = threading.Lock()


def _open(path: str):
    with _lock:
        if path not in _cache:
            import faiss  # loaded on the first search only: it is heavy and most requests never need it

            _cache[path] = (faiss.read_index(f"{path}/index.faiss"), np.load(f"{path}/ids.npy"))
        return _cache[path]


@router.get("/search", response_model=SearchResult, responses={
    400: {"description": "task_id does not match the video, or clip_idx out of range"}, 404: {"description": "Unknown video"}})  # fmt: skip
def search(request: Request, task_id: str = Query(..., max_length=64), video_id: int = Query(..., ge=1, le=MAX_ID),
           clip_idx: int = Query(..., ge=0, le=MAX_ID), k: int = Query(5, ge=1, le=50), _: Principal = Depends(require("viewer"))):  # fmt: skip
    cat, store = deps.catalog(request), deps.store(request)
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
    index, ids = _open(version["path"])
    query = np.load(store.embeddings(video_id)["adapted"], mmap_mode="r")[clip_idx : clip_idx + 1].astype(np.float32)
    sims, rows = index.search(np.ascontiguousarray(query), min(k + 1, index.ntotal))
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
        items.append(SearchItem(similarity=round(float(sim), 4), video_id=vid, clip_idx=cidx,
                                start_sec=c["start_sec"], end_sec=c["end_sec"], role=role))  # fmt: skip
        if len(items) == k:
            break
    return SearchResult(task_id=task_id, query_video_id=video_id, query_clip_idx=clip_idx, items=items)

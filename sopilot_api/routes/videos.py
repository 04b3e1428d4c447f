"""Video ingest and management: POST /videos, POST /gold, GET /videos/jobs/{id}, GET/DELETE /videos/{id}."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from sopilot_pipelines.catalog import validate_task_id
from sopilot_pipelines.ids import TAG_REQUESTED_BY, TAG_TASK_ID, TAG_VIDEO_ID, video_key

from .. import deps
from ..auth import Principal, require
from ..schemas import MAX_ID, IngestJob, IngestQueued, Video, VideoDeleted, VideoList
from ..uploads import UPLOAD_OPENAPI, receive_upload

router = APIRouter(tags=["videos"])
VIDEO_KEYS = ("video_id", "task_id", "role", "site_id", "camera_id", "num_clips", "embedding_model", "created_at")


def _video(row: dict) -> Video:
    return Video(**{k: row[k] for k in VIDEO_KEYS})


async def _ingest(request: Request, principal: Principal, forced_role: str | None) -> IngestQueued:
    from sopilot_pipelines.core.video import VideoDecodeError, probe

    settings, cat, store, door = request.app.state.settings, deps.catalog(request), deps.store(request), deps.dagster(request)
    up = await receive_upload(request, store.dir("uploads"), settings.upload_max_mb * 1024 * 1024)
    try:
        task_id = up.fields.get("task_id", "")
        if not task_id:
            raise HTTPException(400, "task_id is required")
        try:
            task_id = validate_task_id(task_id)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        role = forced_role or (up.fields.get("role") or "trainee")
        if role not in ("trainee", "gold"):
            raise HTTPException(400, f"unknown role {role!r}: use 'trainee' or 'gold'")
        try:
            await run_in_threadpool(probe, up.file_path)
        except VideoDecodeError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise HTTPException(400, f"{up.filename or 'the file'} is not a readable video: {reason}") from None
        video_id = cat.add_video(
            task_id, role, site_id=up.fields.get("site_id") or None, camera_id=up.fields.get("camera_id") or None,
            operator_id_hash=up.fields.get("operator_id_hash") or None,
            original_filename=os.path.basename(up.filename or "")[:200] or None, requested_by=principal.requested_by,
        )  # fmt: skip
        dest = store.raw_video(video_id, Path(up.filename or "").suffix)
        os.replace(up.file_path, dest)
        cat.set_video_paths(video_id, raw_path=str(dest))
    finally:
        if up.file_path is not None:
            up.file_path.unlink(missing_ok=True)
    key = video_key(task_id, video_id)
    try:
        door.add_partition("videos", key)
        door.add_partition("tasks", task_id)
        run_id = door.launch("ingest_job", partition_key=key, tags={
            TAG_REQUESTED_BY: principal.requested_by, TAG_VIDEO_ID: str(video_id), TAG_TASK_ID: task_id})  # fmt: skip
    except Exception as exc:
        cat.mark_video_failed(video_id, f"could not queue the ingest run: {exc}")
        raise
    cat.set_ingest_run(video_id, run_id)
    return IngestQueued(ingest_job_id=run_id, status="queued")


@router.post("/videos", response_model=IngestQueued, openapi_extra=UPLOAD_OPENAPI,
             responses={400: {"description": "Invalid file or parameters"}, 413: {"description": "Exceeds SOPILOT_UPLOAD_MAX_MB"}})  # fmt: skip
async def upload_video(request: Request, principal: Principal = Depends(require("operator"))):
    """Upload a trainee (or, with role=gold, a gold) video; its ingest run is queued."""
    return await _ingest(request, principal, None)


@router.post("/gold", response_model=IngestQueued, openapi_extra=UPLOAD_OPENAPI,
             responses={400: {"description": "Invalid file or parameters"}, 413: {"description": "Exceeds SOPILOT_UPLOAD_MAX_MB"}})  # fmt: skip
async def upload_gold(request: Request, principal: Principal = Depends(require("operator"))):
    """Upload a gold-standard video (role forced to gold)."""
    return await _ingest(request, principal, "gold")


@router.get("/videos/jobs/{ingest_job_id}", response_model=IngestJob, responses={404: {"description": "Job ID does not exist"}})
def ingest_job(ingest_job_id: Annotated[str, PathParam(max_length=64)], request: Request, _: Principal = Depends(require("viewer"))):
    run = deps.dagster(request).run(ingest_job_id)
    if run is None or run.job_name != "ingest_job":
        raise HTTPException(404, f"no ingest job {ingest_job_id!r}")
    cat = deps.catalog(request)
    video_id = int(run.tags[TAG_VIDEO_ID]) if run.tags.get(TAG_VIDEO_ID, "").isdigit() else None
    row = cat.get_video(video_id) if video_id else None
    error = None
    if run.status == "failed":
        error = (row or {}).get("error_message") or deps.dagster(request).run_error(run.run_id) or "the ingest run failed"
    return IngestJob(
        ingest_job_id=run.run_id, status=run.status, task_id=run.tags.get(TAG_TASK_ID) or (row or {}).get("task_id"),
        role=(row or {}).get("role"), requested_by=run.tags.get(TAG_REQUESTED_BY), video_id=video_id,
        num_clips=(row or {}).get("num_clips"), source_fps=(row or {}).get("source_fps"),
        sampled_fps=(row or {}).get("sampled_fps"), embedding_model=(row or {}).get("embedding_model"),
        error_message=error, queued_at=run.queued_at, started_at=run.started_at, finished_at=run.finished_at,
    )  # fmt: skip


@router.get("/videos", response_model=VideoList)
def list_videos(request: Request, task_id: str | None = Query(None, max_length=64), limit: int = Query(50, ge=1, le=500),
                _: Principal = Depends(require("viewer"))):  # fmt: skip
    if task_id is not None:
        try:
            validate_task_id(task_id)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
    return VideoList(items=[_video(v) for v in deps.catalog(request).list_videos(task_id=task_id, limit=limit)])


def _get(request: Request, video_id: int) -> dict:
    row = deps.catalog(request).get_video(video_id)
    if row is None:
        raise HTTPException(404, f"video {video_id} not found")
    return row


@router.get("/videos/{video_id}", response_model=Video, responses={404: {"description": "Video not found"}})
def get_video(video_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], request: Request, _: Principal = Depends(require("viewer"))):
    return _video(_get(request, video_id))


@router.get("/videos/{video_id}/file", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}}}, 404: {"description": "Video not found"}})  # fmt: skip
def video_file(video_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], request: Request, _: Principal = Depends(require("viewer"))):
    row = _get(request, video_id)
    if not row["raw_path"] or not Path(row["raw_path"]).exists():
        raise HTTPException(404, f"video {video_id} has no stored file")
    name = row["original_filename"] or Path(row["raw_path"]).name
    return FileResponse(row["raw_path"], media_type="video/mp4", filename=name)


@router.delete("/videos/{video_id}", response_model=VideoDeleted,
               responses={403: {"description": "Admin role required"}, 404: {"description": "Video not found"}})  # fmt: skip
def delete_video(video_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], request: Request, principal: Principal = Depends(require("admin"))):
    cat, store, door = deps.catalog(request), deps.store(request), deps.dagster(request)
    row = _get(request, video_id)
    removed = []
    for p in [row["raw_path"], *map(str, store.embeddings(video_id).values())]:
        if p and Path(p).exists():
            Path(p).unlink()
            removed.append(str(p))
    cat.delete_video(video_id)
    door.delete_partition("videos", video_key(row["task_id"], video_id))
    remaining = cat.list_videos(task_id=row["task_id"], status="ready", limit=None)
    door.add_partition("tasks", row["task_id"])
    door.launch("index_job", partition_key=row["task_id"],
                tags={TAG_REQUESTED_BY: principal.requested_by, TAG_TASK_ID: row["task_id"]})  # fmt: skip
    return VideoDeleted(video_id=video_id, task_id=row["task_id"], removed_files=removed,
                        reindexed_clips=sum(v["num_clips"] or 0 for v in remaining))  # fmt: skip

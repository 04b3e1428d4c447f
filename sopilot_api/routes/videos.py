"""Video ingest and management: POST /videos, POST /gold, GET /videos/jobs/{id}, GET/DELETE /videos/{id}."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from sopilot_pipelines.catalog import Catalog, validate_task_id
from sopilot_pipelines.catalog.models import check
from sopilot_pipelines.ids import (
    INDEX_JOB,
    INGEST_JOB,
    TAG_REQUESTED_BY,
    TAG_TASK_ID,
    TAG_VIDEO_ID,
    TASKS,
    VIDEOS,
    video_key,
)

from ..auth import Admin, Operator, Viewer
from ..deps import CatalogDep, DagsterDep, SettingsDep, StoreDep
from ..schemas import MAX_ID, IngestJob, IngestQueued, UploadForm, Video, VideoDeleted, VideoList
from ..uploads import UPLOAD_OPENAPI, receive_upload

router = APIRouter(tags=["videos"])
VIDEO_KEYS = (
    "video_id",
    "task_id",
    "role",
    "site_id",
    "camera_id",
    "num_clips",
    "embedding_model",
    "created_at",
    "original_filename",
)


def _video(row: dict) -> Video:
    return Video(**{k: row[k] for k in VIDEO_KEYS})


@dataclass
class _Upload:
    """What an upload route needs, as dependencies (FastAPI builds this from its fields)."""

    request: Request
    principal: Operator
    settings: SettingsDep
    cat: CatalogDep
    store: StoreDep
    door: DagsterDep

    async def ingest(self, forced_role: str | None) -> IngestQueued:
        up = await receive_upload(self.request, self.store.dir("uploads"), self.settings.upload_max_mb * 1024 * 1024)
        # the catalog, ffmpeg's probe and Dagster's GraphQL block: off the event loop, so /health
        # and other requests are answered while uploads are registered
        return await run_in_threadpool(self._register, up, forced_role)

    def _register(self, up, forced_role: str | None) -> IngestQueued:
        from sopilot_pipelines.core.video import VideoDecodeError, container_suffix, probe

        cat, store, door, principal = self.cat, self.store, self.door, self.principal
        try:
            fields = {k: v for k, v in up.fields.items() if v}  # a blank field is one not sent
            if forced_role:
                fields["role"] = forced_role
            upload_steps = _upload_steps(fields.pop("steps", None), fields.get("role"))
            try:
                form = check(UploadForm, **fields)
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
            task_id = form.task_id
            try:
                info = probe(up.file_path)
            except VideoDecodeError as exc:
                reason = str(exc).split(": ", 1)[-1]
                raise HTTPException(400, f"{up.filename or 'the file'} is not a readable video: {reason}") from None
            video_id = cat.add_video(
                **form.model_dump(),
                # the client's name for the file, kept as a label: what the catalog cannot store is dropped
                original_filename=os.path.basename((up.filename or "").replace("\x00", ""))[:200] or None,
                requested_by=principal.requested_by,
                upload_steps=upload_steps,
            )
            # stored under its container's extension, whatever the client named it: /file's media type
            dest = store.raw_video(video_id, container_suffix(info, Path(up.filename or "").suffix))
            os.replace(up.file_path, dest)
            cat.set_video_paths(video_id, raw_path=str(dest))
        finally:
            if up.file_path is not None:
                up.file_path.unlink(missing_ok=True)
        key = video_key(task_id, video_id)
        try:
            door.add_partition(VIDEOS, key)
            door.add_partition(TASKS, task_id)
            tags = {TAG_REQUESTED_BY: principal.requested_by, TAG_VIDEO_ID: str(video_id), TAG_TASK_ID: task_id}
            run_id = door.launch(INGEST_JOB, partition_key=key, tags=tags)
        except Exception as exc:
            cat.mark_video_failed(video_id, f"could not queue the ingest run: {exc}")
            raise
        cat.set_ingest_run(video_id, run_id)
        return IngestQueued(ingest_job_id=run_id, status="queued")


def _upload_steps(text: str | None, role: str | None) -> list[dict] | None:
    """The optional `steps` form field: the gold's SOP (JSON), checked now except against the
    gold's duration, which its ingest checks."""
    from sopilot_pipelines.core.sop import StepsError, parse_steps

    if text is None:
        return None
    if role != "gold":
        raise HTTPException(400, "steps: only a gold video carries the task's steps")
    try:
        steps = parse_steps(json.loads(text), source="steps")
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"steps: not valid JSON ({exc})") from None
    except StepsError as exc:
        raise HTTPException(400, str(exc)) from None
    return [st.as_dict() for st in steps]


UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid file or parameters"},
    413: {"description": "Exceeds SOPILOT_UPLOAD_MAX_MB"},
}


@router.post("/videos", response_model=IngestQueued, openapi_extra=UPLOAD_OPENAPI, responses=UPLOAD_RESPONSES)
async def upload_video(upload: Annotated[_Upload, Depends()]):
    """Upload a trainee (or, with role=gold, a gold) video; its ingest run is queued."""
    return await upload.ingest(None)


@router.post("/gold", response_model=IngestQueued, openapi_extra=UPLOAD_OPENAPI, responses=UPLOAD_RESPONSES)
async def upload_gold(upload: Annotated[_Upload, Depends()]):
    """Upload a gold-standard video (role forced to gold)."""
    return await upload.ingest("gold")


VideoIdPath = Annotated[int, PathParam(ge=1, le=MAX_ID)]

# The media type of a stored video by its container: the stored file's extension, which upload and
# inbox set from ffmpeg's probe of the file (core.video.container_suffix), not from the client's
# name; a browser or player given the wrong one may refuse the file.
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".ts": "video/mp2t",
    ".3gp": "video/3gpp",
    ".ogv": "video/ogg",
    ".wmv": "video/x-ms-wmv",
    ".flv": "video/x-flv",
}


def media_type(path: str | Path) -> str:
    return MEDIA_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


@router.get(
    "/videos/jobs/{ingest_job_id}", response_model=IngestJob, responses={404: {"description": "Job ID does not exist"}}
)
def ingest_job(ingest_job_id: Annotated[str, PathParam(max_length=64)], cat: CatalogDep, door: DagsterDep, _: Viewer):
    """The job is its first run and Dagster's retries of it (runs.JobRuns): a run whose process
    died and whose retry made the video ready reads `completed`, with `attempts` 2. A video the
    catalog has failed (a bad file, the ingest time-out) reads `failed` whatever a run does later."""
    job = door.job_runs(ingest_job_id)
    first = job.runs[0] if job is not None else None
    if job is None or first is None or first.run_id != ingest_job_id or first.job_name != INGEST_JOB:
        raise HTTPException(404, f"no ingest job {ingest_job_id!r}")
    video_id = int(first.tags[TAG_VIDEO_ID]) if first.tags.get(TAG_VIDEO_ID, "").isdigit() else None
    row = (cat.get_video(video_id) if video_id else None) or {}
    status, finished_at = job.status, job.finished_at
    if row.get("status") == "failed" and status != "failed":
        status, finished_at = "failed", finished_at or row.get("updated_at")
    error = None
    if status == "failed":
        error = row.get("error_message") or door.run_error(job.last.run_id) or "the ingest run failed"
    return IngestJob(
        ingest_job_id=first.run_id,
        status=status,
        task_id=first.tags.get(TAG_TASK_ID) or row.get("task_id"),
        requested_by=first.tags.get(TAG_REQUESTED_BY),
        video_id=video_id,
        error_message=error,
        queued_at=job.queued_at,
        started_at=job.started_at,
        finished_at=finished_at,
        attempts=job.attempts,
        **{k: row.get(k) for k in ("role", "num_clips", "source_fps", "sampled_fps", "embedding_model")},
    )


@router.get("/videos", response_model=VideoList)
def list_videos(
    cat: CatalogDep,
    _: Viewer,
    task_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
):
    if task_id is not None:
        try:
            validate_task_id(task_id)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
    return VideoList(items=[_video(v) for v in cat.list_videos(task_id=task_id, limit=limit)])


def _get(cat: Catalog, video_id: int) -> dict:
    row = cat.get_video(video_id)
    if row is None:
        raise HTTPException(404, f"video {video_id} not found")
    return row


@router.get("/videos/{video_id}", response_model=Video, responses={404: {"description": "Video not found"}})
def get_video(video_id: VideoIdPath, cat: CatalogDep, _: Viewer):
    return _video(_get(cat, video_id))


@router.get(
    "/videos/{video_id}/file",
    response_class=FileResponse,
    responses={
        200: {"content": {t: {} for t in [*dict.fromkeys(MEDIA_TYPES.values()), "application/octet-stream"]}},
        206: {"description": "Partial content (Range)"},
        404: {"description": "Video not found"},
    },
)
def video_file(video_id: VideoIdPath, cat: CatalogDep, _: Viewer):
    """The original upload as stored, with the media type of its container; HTTP Range works."""
    row = _get(cat, video_id)
    if not row["raw_path"] or not Path(row["raw_path"]).exists():
        raise HTTPException(404, f"video {video_id} has no stored file")
    name = row["original_filename"] or Path(row["raw_path"]).name
    return FileResponse(row["raw_path"], media_type=media_type(row["raw_path"]), filename=name)


@router.delete(
    "/videos/{video_id}",
    response_model=VideoDeleted,
    responses={403: {"description": "Admin role required"}, 404: {"description": "Video not found"}},
)
def delete_video(video_id: VideoIdPath, cat: CatalogDep, store: StoreDep, door: DagsterDep, principal: Admin):
    row = _get(cat, video_id)
    removed = []
    for p in [row["raw_path"], str(store.proxy(video_id)), *map(str, store.embeddings(video_id).values())]:
        if p and Path(p).exists():
            Path(p).unlink()
            removed.append(str(p))
    cat.delete_video(video_id)
    door.delete_partition(VIDEOS, video_key(row["task_id"], video_id))
    remaining = cat.list_videos(task_id=row["task_id"], status="ready", limit=None)
    door.add_partition(TASKS, row["task_id"])
    tags = {TAG_REQUESTED_BY: principal.requested_by, TAG_TASK_ID: row["task_id"]}
    door.launch(INDEX_JOB, partition_key=row["task_id"], tags=tags)
    reindexed = sum(v["num_clips"] or 0 for v in remaining)
    return VideoDeleted(video_id=video_id, task_id=row["task_id"], removed_files=removed, reindexed_clips=reindexed)

"""Scoring: POST /score, GET /score/{id}, GET /score/{id}/report.pdf."""

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from sopilot_pipelines.ids import new_job_id

from ..auth import Operator, Viewer
from ..deps import CatalogDep, DagsterDep, ScoreQueueDep
from ..runs import Dagster
from ..schemas import ScoreJob, ScoreQueued, ScoreRequest
from ..score_queue import is_claim

router = APIRouter(tags=["scoring"])


@router.post(
    "/score",
    response_model=ScoreQueued,
    responses={
        400: {"description": "Invalid video IDs or mismatched task_id"},
        404: {"description": "Unknown video"},
        409: {"description": "A video's ingest has not completed"},
    },
)
def request_score(body: ScoreRequest, cat: CatalogDep, queue: ScoreQueueDep, principal: Operator):
    """Queue a score of a trainee video against a gold video of the same task. Both must be
    ingested (completed) first: a video still ingesting answers 409, so a client polls its
    ingest job and retries rather than having a score fail later. Queued jobs are scored in
    batches, several to a Dagster run."""
    gold, trainee = cat.get_video(body.gold_video_id), cat.get_video(body.trainee_video_id)
    if gold is None or trainee is None:
        name, vid = ("gold", body.gold_video_id) if gold is None else ("trainee", body.trainee_video_id)
        raise HTTPException(404, f"{name} video {vid} not found")
    if gold["role"] != "gold":
        raise HTTPException(400, f"video {gold['video_id']} is a {gold['role']} video, not a gold video")
    if gold["task_id"] != trainee["task_id"]:
        raise HTTPException(400, f"videos belong to different tasks: {gold['task_id']!r} and {trainee['task_id']!r}")
    for row in (gold, trainee):
        if row["status"] == "failed":
            raise HTTPException(400, f"video {row['video_id']} failed to ingest: {row['error_message']}")
        if row["status"] != "ready":
            raise HTTPException(
                409, f"video {row['video_id']} is still being ingested; retry when its ingest job is completed"
            )
    if gold["embedding_model"] != trainee["embedding_model"]:
        raise HTTPException(
            400,
            f"videos were embedded by different models ({gold['embedding_model']} vs "
            f"{trainee['embedding_model']}); re-embed one of them",
        )
    job_id = new_job_id("score")
    cat.record_score(
        job_id,
        task_id=gold["task_id"],
        gold_video_id=gold["video_id"],
        trainee_video_id=trainee["video_id"],
        requested_by=principal.requested_by,
    )
    queue.wake()  # the dispatcher hands it to Dagster (score_queue.py): this request only records it
    return ScoreQueued(score_job_id=job_id, status="queued", score=None)


def _job(cat: CatalogDep, score_job_id: str) -> dict:
    """The score job of the path, or 404 (a dependency of the routes below)."""
    job = cat.get_score(score_job_id) if score_job_id.startswith("score_") else None
    if job is None:
        raise HTTPException(404, f"no score job {score_job_id!r}")
    return job


ScoreJobRow = Annotated[dict, Depends(_job)]


def job_state(door: Dagster, job: dict) -> tuple[str, dict]:
    """(contract status, timestamps) of a score job. The catalog says where the job is (its run
    marks it running, then completed or failed, only ever forward; a run scores many jobs); the
    run is asked only about a job the catalog has not finished: a run that ended without
    finishing it (its process was killed, it was canceled) failed it, unless Dagster retries it."""
    times = {"queued_at": job["created_at"], "started_at": job.get("started_at"), "finished_at": job.get("finished_at")}
    status = job["status"] if job["status"] in ("queued", "running", "completed", "failed") else "queued"
    if status in ("completed", "failed") or not job.get("run_id") or is_claim(job["run_id"]):
        return status, times
    run = door.run(job["run_id"])
    if run is not None and run.status in ("completed", "failed") and run.tags.get("dagster/will_retry") != "true":
        return "failed", {**times, "finished_at": times["finished_at"] or run.finished_at}
    return status, times


@router.get("/score/{score_job_id}", response_model=ScoreJob, responses={404: {"description": "Job not found"}})
def get_score(score_job_id: str, _: Viewer, job: ScoreJobRow, door: DagsterDep):  # the caller is checked first
    status, times = job_state(door, job)
    result = None
    if status == "completed" and job.get("result_path") and Path(job["result_path"]).exists():
        result = json.loads(Path(job["result_path"]).read_text())
    error = None
    if status == "failed":
        error = job.get("error_message") or door.run_error(job["run_id"]) or "the score run failed"
    return ScoreJob(
        score_job_id=job["job_id"],
        status=status,
        gold_video_id=job["gold_video_id"],
        trainee_video_id=job["trainee_video_id"],
        requested_by=job["requested_by"],
        score=result["score"] if result else None,
        error_message=error,
        result=result,
        **times,
    )


@router.get(
    "/score/{score_job_id}/report.pdf",
    response_class=FileResponse,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Job not found or not completed"}},
)
def score_report(score_job_id: str, _: Viewer, job: ScoreJobRow, door: DagsterDep):
    status, _times = job_state(door, job)
    if status != "completed" or not job.get("report_path") or not Path(job["report_path"]).exists():
        raise HTTPException(404, f"score job {score_job_id} has no report yet (status {status})")
    return FileResponse(job["report_path"], media_type="application/pdf", filename=f"{score_job_id}.pdf")

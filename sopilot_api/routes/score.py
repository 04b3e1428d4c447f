"""Scoring: POST /score, GET /score/{id}, GET /score/{id}/report.pdf."""

import json
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from ..auth import Operator, Viewer
from ..deps import CatalogDep, DagsterDep, ScoreQueueDep
from ..runs import Dagster
from ..schemas import ScoreJob, ScoreQueued, ScoreRequest
from ..score_queue import is_claim

router = APIRouter(tags=["scoring"])
# POST /score's catalog work: a burst spread over the thread pool's 40 threads only contends
# for the GIL (and SQLite takes one writer at a time); two threads answer it sooner
_SCORE_THREADS = anyio.CapacityLimiter(2)


@router.post(
    "/score",
    response_model=ScoreQueued,
    responses={
        400: {"description": "Invalid video IDs or mismatched task_id"},
        404: {"description": "Unknown video"},
        409: {"description": "A video's ingest has not completed"},
    },
)
async def request_score(body: ScoreRequest, cat: CatalogDep, queue: ScoreQueueDep, principal: Operator):
    """Queue a score of a trainee video against a gold video of the same task. Both must be
    ingested (completed) first: a video still ingesting answers 409, so a client polls its
    ingest job and retries rather than having a score fail later. Queued jobs are scored in
    batches, several to a Dagster run."""
    return await anyio.to_thread.run_sync(_record_score, body, cat, queue, principal, limiter=_SCORE_THREADS)


def _record_score(body: ScoreRequest, cat, queue, principal) -> ScoreQueued:
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
    job_id = cat.new_score(gold, trainee, requested_by=principal.requested_by)
    queue.wake()  # the dispatcher hands it to Dagster (score_queue.py): this request only records it
    return ScoreQueued(score_job_id=job_id, status="queued", score=None)


def _job(cat: CatalogDep, score_job_id: str) -> dict:
    """The score job of the path, or 404 (a dependency of the routes below)."""
    job = cat.get_score(score_job_id) if score_job_id.startswith("score_") else None
    if job is None:
        raise HTTPException(404, f"no score job {score_job_id!r}")
    return job


ScoreJobRow = Annotated[dict, Depends(_job)]


def job_state(door: Dagster, job: dict, cat=None) -> tuple[str, dict]:
    """(contract status, timestamps) of a score job (see ``current_job``)."""
    _job, status, times = current_job(door, job, cat)
    return status, times


def current_job(door: Dagster, job: dict, cat=None) -> tuple[dict, str, dict]:
    """(the job, its contract status, its timestamps). The catalog says where the job is (its run
    marks it running, then completed or failed, only ever forward; a run scores many jobs); the
    runs are asked only about a job the catalog has not finished: when its run and Dagster's
    retries of it (runs.JobRuns) ended without finishing it (a process killed with no retry left,
    a run canceled), it is failed, and the dispatcher records that (score_queue.py). With ``cat``
    the job is read again first, in case it finished between the two reads."""
    times = {"queued_at": job["created_at"], "started_at": job.get("started_at"), "finished_at": job.get("finished_at")}
    status = job["status"] if job["status"] in ("queued", "running", "completed", "failed") else "queued"
    if status in ("completed", "failed") or not job.get("run_id") or is_claim(job["run_id"]):
        return job, status, times
    runs = door.job_runs(job["run_id"])
    if runs is None or runs.status not in ("completed", "failed"):
        return job, status, times
    again = cat.get_score(job["job_id"]) if cat is not None else None
    if again is not None and again["status"] in ("completed", "failed"):
        return current_job(door, again)
    last = runs.last
    reason = (door.run_error(last.run_id) if last.status == "failed" else None) or (
        f"the score run ended ({last.dagster_status.lower()}) without finishing this job"
    )
    return (
        {**job, "error_message": job.get("error_message") or reason},
        "failed",
        {**times, "finished_at": runs.finished_at},
    )


@router.get("/score/{score_job_id}", response_model=ScoreJob, responses={404: {"description": "Job not found"}})
def get_score(
    score_job_id: str, _: Viewer, job: ScoreJobRow, cat: CatalogDep, door: DagsterDep
):  # the caller is checked first
    job, status, times = current_job(door, job, cat)
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
        attempts=job.get("attempts") or 0,
        **times,
    )


@router.get(
    "/score/{score_job_id}/report.pdf",
    response_class=FileResponse,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "Job not found or not completed"}},
)
def score_report(score_job_id: str, _: Viewer, job: ScoreJobRow, cat: CatalogDep, door: DagsterDep):
    job, status, _times = current_job(door, job, cat)
    if status != "completed" or not job.get("report_path") or not Path(job["report_path"]).exists():
        raise HTTPException(404, f"score job {score_job_id} has no report yet (status {status})")
    return FileResponse(job["report_path"], media_type="application/pdf", filename=f"{score_job_id}.pdf")

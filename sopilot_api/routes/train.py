"""Training: POST /train/nightly, GET /train/jobs/{id}, GET /train/nightly/status."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException

from sopilot_pipelines.catalog.jobs import RANK
from sopilot_pipelines.ids import TAG_JOB_ID, TAG_REQUESTED_BY, TAG_TRIGGER, TRAIN_JOB, new_job_id
from sopilot_pipelines.settings import Settings

from ..auth import Admin, Viewer
from ..deps import CatalogDep, DagsterDep
from ..runs import JobRuns
from ..schemas import NightlyStatus, TrainingJob, TrainingQueued

router = APIRouter(tags=["training"])


@router.post(
    "/train/nightly", response_model=TrainingQueued, responses={409: {"description": "A training is already running"}}
)
def trigger_training(cat: CatalogDep, door: DagsterDep, principal: Admin):
    """Queue a training of the feature adapter now (trigger: manual). One training at a time."""
    for job in cat.list_trainings(5):
        if job["status"] in ("queued", "running") and job.get("run_id"):
            status, _ = training_state(door, job)
            if status in ("queued", "running"):
                raise HTTPException(409, f"training {job['job_id']} is already {status}; wait for it to finish")
    job_id = new_job_id("train")
    cat.record_training(job_id, trigger="manual", requested_by=principal.requested_by)
    run_id = door.launch(
        TRAIN_JOB, tags={TAG_JOB_ID: job_id, TAG_TRIGGER: "manual", TAG_REQUESTED_BY: principal.requested_by}
    )
    cat.update_training(job_id, run_id=run_id)
    return TrainingQueued(training_job_id=job_id, status="queued", trigger="manual")


@router.get(
    "/train/jobs/{training_job_id}", response_model=TrainingJob, responses={404: {"description": "Job not found"}}
)
def training_job(training_job_id: str, cat: CatalogDep, door: DagsterDep, _: Viewer):
    job = cat.get_training(training_job_id)
    if job is None:
        raise HTTPException(404, f"no training job {training_job_id!r}")
    status, runs = training_state(door, job)
    if runs is not None and status in ("completed", "failed") and job["status"] in ("queued", "running"):
        job = cat.get_training(training_job_id) or job  # it may have finished between the two reads
        status, runs = training_state(door, job)
    times = {
        "queued_at": job["created_at"],
        "started_at": job.get("started_at") or (runs.started_at if runs else None),
        "finished_at": job.get("finished_at") or (runs.finished_at if runs and status != "running" else None),
    }
    result = None
    if status in ("completed", "skipped", "rejected"):
        result = {
            "status": status,
            "mode": job.get("mode"),
            "adapter_path": job.get("adapter_path"),
            "videos_used": job.get("videos_used"),
            "clips_used": job.get("clips_used"),
            "embedding_dim": job.get("embedding_dim"),
            "reindex": job.get("reindex"),
            "figures": job.get("figures"),
            "reason": job.get("skip_reason"),  # why skipped / rejected
        }
    error = job.get("error_message") or (door.run_error(runs.last.run_id) if runs and status == "failed" else None)
    return TrainingJob(
        training_job_id=job["job_id"],
        trigger=job["trigger"],
        status=status,
        requested_by=job["requested_by"],
        error_message=error,
        result=result,
        attempts=job.get("attempts") or 0,
        **times,
    )


def training_state(door, job: dict) -> tuple[str, JobRuns | None]:
    """(contract status, the job's runs). The catalog's status once it is terminal (the training
    writes completed, skipped or rejected); before that the runs': the run and Dagster's retries
    of it (runs.JobRuns), so a retry that carried the training on is part of it, and a chain that
    ended without the training finishing it failed it. Only forward: never behind the catalog."""
    if job["status"] not in ("queued", "running") or not job.get("run_id"):
        return job["status"], None
    runs = door.job_runs(job["run_id"])
    if runs is None:
        return job["status"], None
    status = runs.status if RANK[runs.status] > RANK[job["status"]] else job["status"]
    return status, runs


@router.get("/train/nightly/status", response_model=NightlyStatus)
def nightly_status(_: Viewer):
    s = Settings()
    tz = ZoneInfo(s.timezone)
    now = datetime.now(tz)
    nxt = now.replace(hour=s.nightly_hour_local, minute=0, second=0, microsecond=0)
    if nxt <= now:
        nxt = (nxt + timedelta(days=1)).replace(hour=s.nightly_hour_local)
    return NightlyStatus(
        enabled=s.nightly_enabled,
        next_run_local=nxt.strftime("%Y-%m-%dT%H:%M:%S") if s.nightly_enabled else None,
        hour_local=s.nightly_hour_local,
        min_new_videos=s.nightly_min_new_videos,
    )

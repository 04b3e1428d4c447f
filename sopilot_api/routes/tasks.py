"""Tasks and their SOP: GET /tasks, GET /tasks/{task_id}/sop, PUT /tasks/{task_id}/sop."""

from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam

from sopilot_pipelines.catalog import validate_task_id
from sopilot_pipelines.catalog.models import ID_PATTERN
from sopilot_pipelines.ids import SOP_JOB, TAG_REQUESTED_BY, TAG_TASK_ID, TASKS, new_job_id
from sopilot_pipelines.sop_view import sop_in_force

from ..auth import Admin, Viewer
from ..deps import CatalogDep, DagsterDep, ScoreQueueDep, StoreDep
from ..schemas import Sop, SopPut, SopStored, TaskList, TaskSummary

router = APIRouter(tags=["tasks"])
TaskIdPath = Annotated[str, PathParam(pattern=ID_PATTERN)]
SOP_CHANGE = "sop_change"  # the trigger of a re-score after an SOP change (the catalog's ScoreTrigger)
# Dagster's tags for a run over a range of partitions (one run re-scores every affected job)


@router.get("/tasks", response_model=TaskList)
def list_tasks(cat: CatalogDep, _: Viewer):
    return TaskList(items=[TaskSummary(**t) for t in cat.list_tasks()])


def _sop(sop: dict) -> dict:
    return {
        "task_id": sop["task_id"],
        "version": sop["version"],
        "source": sop["source"],
        "gold_video_id": sop["gold_video_id"],
        "steps": [{"index": k, "optional": False, "group": None, **st} for k, st in enumerate(sop["steps"])],
        "per_gold": sop.get("per_gold") or {},
        "updated_at": sop["created_at"],
        "updated_by": sop["requested_by"],
    }


@router.get("/tasks/{task_id}/sop", response_model=Sop, responses={404: {"description": "The task has no gold video"}})
def get_sop(task_id: TaskIdPath, cat: CatalogDep, store: StoreDep, _: Viewer):
    sop = sop_in_force(cat, store, validate_task_id(task_id))
    if sop is None:
        raise HTTPException(404, f"task {task_id!r} has no gold video")
    return Sop(**_sop(sop))


@router.put(
    "/tasks/{task_id}/sop",
    response_model=SopStored,
    responses={
        400: {"description": "Invalid steps, or a gold that is not this task's or not ingested"},
        403: {"description": "Admin role required"},
        404: {"description": "The task has no gold video"},
    },
)
def put_sop(
    task_id: TaskIdPath, body: SopPut, cat: CatalogDep, door: DagsterDep, queue: ScoreQueueDep, principal: Admin
):
    """Store a new version of the task's SOP, marked on one of its golds; with `rescore` (the
    default) the task's latest score of each trainee is re-run against it, in one Dagster run.
    Everything is checked before anything is stored: a refused PUT changes nothing."""
    from sopilot_pipelines.core.sop import StepsError, parse_steps

    current = cat.sop_view(validate_task_id(task_id))
    if current is None:
        raise HTTPException(404, f"task {task_id!r} has no gold video")
    gold_id = body.gold_video_id or current["gold_video_id"]
    gold = cat.get_video(gold_id)
    if gold is None or gold["task_id"] != task_id or gold["role"] != "gold":
        raise HTTPException(400, f"video {gold_id} is not a gold video of task {task_id!r}")
    if gold["status"] != "ready":
        raise HTTPException(
            400, f"gold video {gold_id} is not ingested yet (status {gold['status']}); retry when it is"
        )
    try:
        steps = parse_steps(body.steps, gold["duration_sec"], source="steps")
    except StepsError as exc:
        raise HTTPException(400, str(exc)) from None
    sop = cat.add_sop(
        task_id, gold_video_id=gold_id, steps=[st.as_dict() for st in steps], requested_by=principal.requested_by
    )
    tags = {TAG_REQUESTED_BY: principal.requested_by, TAG_TASK_ID: task_id}
    door.add_partition(TASKS, task_id)
    door.launch(SOP_JOB, partition_key=task_id, tags=tags)
    job_ids = _rescore(cat, queue, task_id, principal.requested_by) if body.rescore else []
    return SopStored(**_sop(sop), rescore_job_ids=job_ids)


def _rescore(cat, queue, task_id: str, requested_by: str) -> list[str]:
    """A new score job (trigger sop_change) for the latest score of each trainee, handed to
    Dagster by the score dispatcher (score_queue.py) together: one run unless the batch is large."""
    job_ids = []
    for prev in cat.latest_scores_by_trainee(task_id):
        job_id = new_job_id("score")
        cat.record_score(
            job_id,
            task_id=task_id,
            gold_video_id=prev["gold_video_id"],
            trainee_video_id=prev["trainee_video_id"],
            requested_by=requested_by,
            trigger=SOP_CHANGE,
            previous_job_id=prev["job_id"],
        )
        job_ids.append(job_id)
    if job_ids:
        queue.wake()
    return job_ids

"""Rebuilds a task's clip index when its current version is stale: its ready videos (or their
embeddings) changed, or it went through another adapter than the live one.

Why a sensor and not an AutomationCondition on task_index: the asset's lineage from the videos
is all-to-all (see search/assets.py), so a declarative condition would rebuild every task's index
whenever any video changed; the catalog's per-task fingerprint says which task changed."""

import dagster as dg

from ...adapters import live_adapter_name
from ...ids import TAG_REQUESTED_BY, TAG_TASK_ID, TASKS, TRAIN_JOB
from ...indexes import task_fingerprint
from ...resources import CatalogResource
from ..policy import TRAINING_QUEUE, sensor
from .jobs import index_job
from .partitions import tasks

_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@sensor(index_job, "Requests a task_index build for each task whose current index version is stale")
def index_sensor(context: dg.SensorEvaluationContext, catalog: CatalogResource):
    # a training is train_job, or feature_adapter launched from the UI or a backfill (queue tag)
    if context.instance.get_runs_count(
        dg.RunsFilter(job_name=TRAIN_JOB, statuses=_ACTIVE)
    ) or context.instance.get_runs_count(dg.RunsFilter(tags=TRAINING_QUEUE, statuses=_ACTIVE)):
        # the training rebuilds every index when it finishes; building now would use the old adapter
        return dg.SkipReason("an adapter training is in progress; it reindexes every task when done")
    cat = catalog.catalog
    live = live_adapter_name(cat)
    by_task: dict[str, list[dict]] = {}
    for v in cat.list_videos(status="ready", limit=None):
        by_task.setdefault(v["task_id"], []).append(v)
    requests, new_tasks = [], []
    for task_id, vids in sorted(by_task.items()):
        fp = task_fingerprint(vids)
        current = cat.current_index_version(task_id)
        if current is not None and current.get("fingerprint") == fp and current.get("adapter") == live:
            continue
        if not context.instance.has_dynamic_partition(TASKS, task_id):
            new_tasks.append(task_id)
        # the run key makes one build per (videos, adapter) state, however many ticks see it stale
        requests.append(
            dg.RunRequest(
                run_key=f"index-{task_id}-{fp}-{live}",
                partition_key=task_id,
                tags={TAG_REQUESTED_BY: "sensor:index", TAG_TASK_ID: task_id},
            )
        )
    if not requests:
        return dg.SkipReason("every task's index is current")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[tasks.build_add_request(new_tasks)] if new_tasks else [],
    )

"""Rebuilds a task's clip index when its set of ready videos (or their embeddings) changed."""


import json

import dagster as dg

from ...ids import TAG_REQUESTED_BY, TAG_TASK_ID
from ...resources import CatalogResource
from .assets import task_fingerprint
from .partitions import tasks


@dg.sensor(job_name="index_job", minimum_interval_seconds=4, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Requests a task_index build for each task whose ready videos changed")  # fmt: skip
def index_sensor(context: dg.SensorEvaluationContext, catalog: CatalogResource):
    cat = catalog.catalog
    seen = json.loads(context.cursor) if context.cursor else {}
    by_task: dict[str, list[dict]] = {}
    for v in cat.list_videos(status="ready", limit=None):
        by_task.setdefault(v["task_id"], []).append(v)
    requests, new_tasks = [], []
    for task_id, vids in sorted(by_task.items()):
        fp = task_fingerprint(vids)
        if seen.get(task_id) == fp:
            continue
        seen[task_id] = fp
        if not context.instance.has_dynamic_partition(tasks.name, task_id):
            new_tasks.append(task_id)
        requests.append(dg.RunRequest(run_key=f"index-{task_id}-{fp}", partition_key=task_id,
                                      tags={TAG_REQUESTED_BY: "sensor:index", TAG_TASK_ID: task_id}))  # fmt: skip
    if not requests:
        return dg.SkipReason("no task's ready videos changed since its last index build")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[tasks.build_add_request(new_tasks)] if new_tasks else [],
        cursor=json.dumps(seen),
    )

"""Auto-score: each newly ingested trainee video is scored against its task's current gold,
when SOPILOT_AUTO_SCORE is true. The cursor is a watermark: every trainee video at or below it
has been scored or skipped for a reason that will not change (no gold: see the skip reason)."""

import dagster as dg

from ...ids import TAG_JOB_ID, TAG_REQUESTED_BY, TAG_TASK_ID
from ...resources import CatalogResource
from ...settings import settings
from ..policy import sensor
from .jobs import score_job
from .partitions import score_jobs

REQUESTED_BY = "sensor:auto_score"
HANDED_OVER = "sensor:auto_score"  # a job's run id until its run starts and writes its own


@sensor(score_job, "Scores each newly ingested trainee video against its task's current gold (SOPILOT_AUTO_SCORE=true)")
def auto_score_sensor(context: dg.SensorEvaluationContext, catalog: CatalogResource):
    if not settings().auto_score:
        return dg.SkipReason("auto-score is off (set SOPILOT_AUTO_SCORE=true to score new trainee videos)")
    cat = catalog.catalog
    watermark = int(context.cursor or 0)
    trainees = sorted(
        (v for v in cat.list_videos(role="trainee", limit=None) if v["video_id"] > watermark),
        key=lambda v: v["video_id"],
    )
    requests, keys, skipped, new_mark = [], [], [], watermark
    for v in trainees:
        if v["status"] == "pending":
            break  # keep the watermark below videos still being ingested
        gold = cat.current_gold(v["task_id"])
        if (
            gold is None
            and v["status"] == "ready"
            and cat.list_videos(task_id=v["task_id"], role="gold", status="pending", limit=1)
        ):
            break  # the task's gold is still being ingested: wait for it rather than skip this trainee
        new_mark = v["video_id"]
        if v["status"] != "ready":
            skipped.append(f"video {v['video_id']}: ingest failed")
            continue
        if gold is None:
            skipped.append(f"video {v['video_id']}: task {v['task_id']} has no gold video yet")
            continue
        if gold["embedding_model"] != v["embedding_model"]:
            skipped.append(
                f"video {v['video_id']}: embedded by {v['embedding_model']}, the gold by {gold['embedding_model']}"
            )
            continue
        # run_id: not the API's to hand over (sopilot_api/score_queue.py): this tick's run is
        job_id = cat.new_score(gold, v, requested_by=REQUESTED_BY, run_id=HANDED_OVER)
        keys.append(job_id)
        requests.append(
            dg.RunRequest(
                run_key=job_id,
                partition_key=job_id,
                tags={TAG_JOB_ID: job_id, TAG_REQUESTED_BY: REQUESTED_BY, TAG_TASK_ID: v["task_id"]},
            )
        )
    for reason in skipped:
        context.log.info(f"auto-score skipped {reason}")
    if not requests:
        why = "; ".join(skipped) if skipped else "no newly ingested trainee videos"
        return dg.SensorResult(skip_reason=dg.SkipReason(why), cursor=str(new_mark))
    return dg.SensorResult(
        run_requests=requests, dynamic_partitions_requests=[score_jobs.build_add_request(keys)], cursor=str(new_mark)
    )

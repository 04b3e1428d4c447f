"""Nightly training at SOPILOT_NIGHTLY_HOUR_LOCAL in SOPILOT_TIMEZONE, only when at least
SOPILOT_NIGHTLY_MIN_NEW_VIDEOS videos arrived since the last adapter; otherwise the tick records
why it skipped. SOPILOT_NIGHTLY_ENABLED=false turns it off (the tick says so)."""

from datetime import datetime, timezone

import dagster as dg

from ...ids import TAG_JOB_ID, TAG_REQUESTED_BY, TAG_TRIGGER
from ...resources import CatalogResource
from ...settings import settings
from .jobs import train_job

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def nightly_decision(cat, s, scheduled: datetime) -> dg.RunRequest | dg.SkipReason:
    if not s.nightly_enabled:
        return dg.SkipReason("nightly training is disabled (SOPILOT_NIGHTLY_ENABLED=false)")
    # a rejected training counts too: the next one should wait for new material, not retry the same
    done = [j for j in (cat.latest_training(status="completed"), cat.latest_training(status="rejected")) if j]
    last = max(done, key=lambda j: j.get("finished_at") or j["created_at"]) if done else None
    since = (last.get("finished_at") or last["created_at"]) if last else EPOCH
    new = cat.videos_since(since, status="ready")
    if new < s.nightly_min_new_videos:
        what = f"since the last training ({last['job_id']}, {last['status']})" if last else "and no adapter trained yet"
        return dg.SkipReason(
            f"{new} new video(s) {what}; nightly training needs at least {s.nightly_min_new_videos} "
            "(SOPILOT_NIGHTLY_MIN_NEW_VIDEOS)"
        )
    job_id = f"train_{scheduled.astimezone(timezone.utc):%Y%m%d_%H%M%S}_nightly"
    return dg.RunRequest(
        run_key=job_id, tags={TAG_JOB_ID: job_id, TAG_TRIGGER: "nightly", TAG_REQUESTED_BY: "schedule:nightly"}
    )


def build_nightly_schedule() -> dg.ScheduleDefinition:
    s = settings()

    @dg.schedule(
        name="nightly_training",
        cron_schedule=f"0 {s.nightly_hour_local} * * *",
        execution_timezone=s.timezone,
        job=train_job,
        default_status=dg.DefaultScheduleStatus.RUNNING if s.nightly_enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Trains the feature adapter at {s.nightly_hour_local:02d}:00 {s.timezone} when enough new videos arrived",
    )
    def nightly_training(context: dg.ScheduleEvaluationContext, catalog: CatalogResource):
        return nightly_decision(catalog.catalog, settings(), context.scheduled_execution_time)

    return nightly_training


# built per load, not at import: the schedule's hour, time zone and status are settings, and a
# test (or a code-location reload) that changes them gets a schedule that follows
@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(schedules=[build_nightly_schedule()])

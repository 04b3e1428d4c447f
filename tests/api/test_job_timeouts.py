"""No job stays queued or running forever: an ingest or a training older than its time-out is
failed, saying so, and its run stopped (sopilot_api/job_watch.py; score jobs: score_queue.py).
The live stack (conftest's `stack`), its real Dagster webserver and daemon; the watch is asked
with a clock moved past the time-out instead of waiting an hour."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from sopilot_api.job_watch import JobWatch
from sopilot_api.runs import Dagster
from sopilot_pipelines.catalog import Catalog
from sopilot_pipelines.ids import new_job_id
from tests.helpers import client, long_video, upload

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _later(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def test_an_ingest_older_than_its_time_out_is_failed_saying_so_and_its_run_stopped(stack, tmp_path):
    video = long_video(tmp_path / "slow.mp4", size="320x180", crf=38)  # under the stack's 3 MB upload cap
    assert video.stat().st_size < 3 * 2**20
    with client(stack, "operator") as c:
        r = upload(c, video, "timeout_task")
        assert r.status_code == 200, r.text
        job_id = r.json()["ingest_job_id"]
    door = Dagster(stack.dagster_url)
    with Catalog.open(data_dir=stack.data_dir) as cat:
        watch = JobWatch(cat, door, ingest_timeout_s=60, training_timeout_s=3600)
        assert watch.sweep(now=_later(30))["ingest"] == []  # not yet past its time-out
        done = watch.sweep(now=_later(61))  # its ingest is still in flight (it takes tens of seconds)
        assert len(done["ingest"]) == 1
        video_id = done["ingest"][0]
        deadline = time.monotonic() + 120
        while (chain := door.job_runs(job_id)).status not in ("completed", "failed"):  # its run stops
            assert time.monotonic() < deadline, chain
            time.sleep(0.5)
        # stopped; or, when it reached the video after the time-out, failed by the catalog's refusal
        last = chain.runs[-1]
        assert last.dagster_status == "CANCELED" or (
            last.dagster_status == "FAILURE"
            and "was failed while this run ingested it" in (door.run_error(last.run_id) or "")
        ), chain
        assert cat.get_video(video_id)["status"] == "failed"
    with client(stack, "viewer") as c:
        job = c.get(f"/videos/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["video_id"] == video_id, job
    assert "not ingested within 60 s of its upload (SOPILOT_INGEST_JOB_TIMEOUT_S)" in job["error_message"], job
    assert job["finished_at"] is not None
    door.close()


def test_a_training_older_than_its_time_out_is_failed_saying_so(stack):
    job_id = new_job_id("train")
    door = Dagster(stack.dagster_url)
    with Catalog.open(data_dir=stack.data_dir) as cat:
        # recorded, never handed to Dagster (an API that stopped in between): it would wait forever
        cat.record_training(job_id, trigger="manual", requested_by="test:stuck")
        watch = JobWatch(cat, door, ingest_timeout_s=3600, training_timeout_s=120)
        assert job_id not in watch.sweep(now=_later(60))["training"]
        assert job_id in watch.sweep(now=_later(121))["training"]
        assert job_id not in watch.sweep(now=_later(122))["training"]  # once
    with client(stack, "viewer") as c:
        job = c.get(f"/train/jobs/{job_id}").json()
    assert job["status"] == "failed", job
    assert "not finished within 120 s of its request (SOPILOT_TRAINING_JOB_TIMEOUT_S)" in job["error_message"], job
    door.close()

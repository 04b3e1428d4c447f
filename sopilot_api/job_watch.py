"""Keeps the ingest and training jobs in the catalog truthful while the stack runs (the score
jobs' own: score_queue.py), from the score dispatcher's thread, every few seconds:

* a job whose runs ended without finishing it (its run failed or was canceled, and Dagster's run
  retry will not take it on, or already did and that failed too) is failed in the catalog with
  the run's reason: a video no run will ingest any more reads `failed`, not `pending`;
* a job not finished within its time-out (SOPILOT_INGEST_JOB_TIMEOUT_S after the upload,
  SOPILOT_TRAINING_JOB_TIMEOUT_S after the request) is failed, saying so, and its runs still in
  flight are stopped; a run that would finish it late finds it failed, and it stays failed;
* a run Dagster's run retry should have re-run but could not (it tries once: when the daemon's
  code server died with the run's worker, the daemon reaches no code server until it reloads its
  workspace, up to 60 s later, and the retry is given up) is re-run through the webserver, as that
  retry would have been (runs.JobRuns.retry_owed), for jobs of every kind, score jobs included.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from .runs import IN_FLIGHT, RETRY_NUMBER, Dagster, DagsterUnavailable, JobRuns

log = logging.getLogger("sopilot.job_watch")


class JobWatch:
    def __init__(self, cat, door: Dagster, ingest_timeout_s: int, training_timeout_s: int):
        self.cat, self.door = cat, door
        self.ingest_timeout_s, self.training_timeout_s = ingest_timeout_s, training_timeout_s

    def sweep(self, now: datetime | None = None) -> dict[str, list]:
        """One pass; returns what it did: video ids of ingests failed, training job ids failed,
        run ids of retries launched."""
        now = now or datetime.now(timezone.utc)
        # every job not finished: the ones in flight now, few; one request for all their runs
        videos = self.cat.pending_ingests_before(now)
        trainings = self.cat.unfinished_trainings()
        runs = [v["ingest_run_id"] for v in videos] + [j["run_id"] for j in trainings]
        runs += sorted(self.cat.unfinished_score_runs())
        chains = self.door.jobs_runs([r for r in runs if _is_run_id(r)])
        return {
            "retried": self.owed_retries(chains),
            "ingest": self.ingests(videos, chains, now),
            "training": self.trainings(trainings, chains, now),
        }

    def owed_retries(self, chains: dict[str, JobRuns]) -> list[str]:
        launched, seen = [], set()
        for chain in chains.values():
            run = chain.retry_owed
            if run is None or run.run_id in seen:
                continue
            seen.add(run.run_id)
            try:
                new = self.door.reexecute(run.run_id, {RETRY_NUMBER: str(len(chain.runs))})
            except DagsterUnavailable as exc:  # tried again on the next pass
                log.warning("could not re-run run %s, whose retry Dagster gave up: %s", run.run_id, exc)
                continue
            launched.append(new)
            log.warning("re-ran run %s as %s: Dagster's run retry could not launch it", run.run_id, new)
        return launched

    def ingests(self, videos: list[dict], chains: dict[str, JobRuns], now: datetime) -> list[int]:
        cutoff = now - timedelta(seconds=self.ingest_timeout_s)
        failed = []
        for video in videos:
            chain = chains.get(video["ingest_run_id"])
            # a completed run: the catalog says ready next
            reason = self._why_failed(
                chain,
                "ingest",
                video["created_at"] < cutoff,
                f"not ingested within {self.ingest_timeout_s} s of its upload "
                "(SOPILOT_INGEST_JOB_TIMEOUT_S); its run was stopped; upload it again",
            )
            if reason is None:
                continue
            if self.cat.fail_pending_video(video["video_id"], reason):  # only if still pending
                failed.append(video["video_id"])
                log.warning("ingest of video %s failed: %s", video["video_id"], reason)
            if chain is not None:
                self._stop(chain)
        return failed

    def trainings(self, jobs: list[dict], chains: dict[str, JobRuns], now: datetime) -> list[str]:
        cutoff = now - timedelta(seconds=self.training_timeout_s)
        failed = []
        for job in jobs:
            chain = chains.get(job.get("run_id") or "")
            # a completed run: the training records its own outcome before its run ends
            reason = self._why_failed(
                chain,
                "training",
                job["created_at"] < cutoff,
                f"not finished within {self.training_timeout_s} s of its request "
                "(SOPILOT_TRAINING_JOB_TIMEOUT_S); its run was stopped",
            )
            if reason is None:
                continue
            if self.cat.update_training(job["job_id"], status="failed", error_message=reason)["status"] == "failed":
                failed.append(job["job_id"])
                log.warning("training %s failed: %s", job["job_id"], reason)
            if chain is not None:
                self._stop(chain)
        return failed

    def _why_failed(self, chain: JobRuns | None, kind: str, overdue: bool, timeout_reason: str) -> str | None:
        """Why a job is to be failed now (its runs failed, or it is overdue), or None: its runs
        completed, or it still has time."""
        if chain is not None and chain.status == "completed":
            return None
        if chain is not None and chain.status == "failed":
            return self._reason(chain, kind)
        return timeout_reason if overdue else None

    def _reason(self, chain: JobRuns, kind: str) -> str:
        last = chain.last
        if last.dagster_status == "FAILURE":
            return self.door.run_error(last.run_id) or f"the {kind} run failed"
        return f"the {kind} run ended ({last.dagster_status.lower()}) without finishing"

    def _stop(self, chain: JobRuns) -> None:
        for run in chain.runs:
            if run.dagster_status in IN_FLIGHT and run.dagster_status != "CANCELING":
                try:
                    self.door.terminate(run.run_id)
                except Exception as exc:  # the job is failed already; the run ends by itself
                    log.warning("could not stop run %s: %s", run.run_id, exc)


def _is_run_id(run_id: str | None) -> bool:
    import uuid

    try:
        uuid.UUID(run_id or "")
        return True
    except ValueError:
        return False

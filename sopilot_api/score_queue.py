"""Hands recorded score jobs to Dagster in batches.

`POST /score` (and a re-score after an SOP change) only records the job in the catalog and wakes
this dispatcher, so accepting a request costs a database insert, not a Dagster round trip. The
dispatcher, a thread of the API process, hands the queued jobs to Dagster as score runs of many
jobs each: a run process starts once (seconds) for a batch, and loads each gold once.

When to launch: at once while no score run is waiting to start, so a lone request starts
immediately; while one is waiting (queued behind the run slots, or its process starting), new
jobs wait for it to start and then go together in the next run. A batch larger than
`SOPILOT_SCORE_BATCH_MAX` is split into runs of near-equal size, so the run slots share it.

A job is claimed in the catalog (its run id set to a claim) before its run is launched, so two
dispatchers (API replicas) never hand over the same job; a claim whose dispatcher died before
launching is given back after CLAIM_TTL_S. Dagster unavailable: the jobs stay queued and are
handed over when it answers again, so a job is never lost between the request and its run.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from sopilot_pipelines.ids import SCORE_JOB, SCORE_JOBS, TAG_JOB_ID, TAG_REQUESTED_BY, TAG_TASK_ID, TAG_TRIGGER

from .job_watch import JobWatch
from .runs import Dagster

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
CLAIM = "dispatch:"  # a claimed job's run id: dispatch:<epoch>:<random>, until its run is launched
CLAIM_TTL_S = 60.0
POLL_S = 1.0  # a job recorded without a wake-up (another replica, a restart) waits at most this
RECONCILE_S = 5.0  # how often the jobs of runs that ended are checked
RETRY_S = (1.0, 2.0, 5.0, 10.0)  # pauses after failed hand-overs (Dagster down), then 10 s each

log = logging.getLogger("sopilot.score_queue")


def is_claim(run_id: str | None) -> bool:
    """A run id that names who hands the job over (a dispatcher's claim, the auto-score sensor),
    not yet a Dagster run: Dagster's run ids are UUIDs."""
    if not run_id:
        return False
    try:
        uuid.UUID(run_id)
        return False
    except ValueError:
        return True


class ScoreQueue:
    def __init__(
        self,
        cat,
        dagster_url: str,
        batch_max: int,
        timeout_s: int = 3600,
        ingest_timeout_s: int = 7200,
        training_timeout_s: int = 21600,
    ):
        self.cat, self.batch_max, self.timeout_s = cat, batch_max, timeout_s
        self.door = Dagster(dagster_url)  # its own client: the dispatcher never waits on a request's
        # the other jobs' failures and time-outs, from this thread (job_watch.py)
        self.watch = JobWatch(cat, self.door, ingest_timeout_s, training_timeout_s)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = self._last_reconcile = self._last_watch = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="score-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.door.close()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            try:
                self.release_stale_claims()
                self.fail_jobs_of_ended_runs()
                self.watch_other_jobs()
                while not self._stop.is_set() and self.dispatch_once():
                    pass
                failures = 0
            except Exception as exc:  # Dagster or the catalog unreachable: the jobs stay queued
                pause = RETRY_S[min(failures, len(RETRY_S) - 1)]
                failures += 1
                log.warning("score jobs not handed to Dagster (retrying in %.0f s): %s", pause, exc)
                self._stop.wait(pause)

    def release_stale_claims(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        if now - self._last_sweep < CLAIM_TTL_S / 4:
            return 0
        self._last_sweep, released = now, 0
        for claim in self.cat.score_claims(CLAIM):
            try:
                claimed_at = float(claim.split(":")[1])
            except (IndexError, ValueError):
                claimed_at = 0.0
            if now - claimed_at > CLAIM_TTL_S:
                released += self.cat.release_score_claim(claim)
        if released:
            log.warning("gave %d score job(s) claimed by a dispatcher that stopped back to the queue", released)
        return released

    def watch_other_jobs(self, now: float | None = None) -> dict[str, list]:
        """The job watch's pass (job_watch.py); its trouble is logged, never in the way of scoring."""
        now = time.monotonic() if now is None else now
        if now - self._last_watch < RECONCILE_S:
            return {}
        self._last_watch = now
        try:
            return self.watch.sweep()
        except Exception as exc:
            log.warning("job watch pass failed (tried again in %.0f s): %s", RECONCILE_S, exc)
            return {}

    def fail_jobs_of_ended_runs(self, now: float | None = None) -> list[str]:
        """Jobs a run ended without finishing (its process was killed and Dagster's run monitoring
        failed it, it was canceled) are failed with the run's reason, so the catalog, and the job
        counts of /ops/queue and /metrics, say what happened. A run Dagster retries is left alone:
        the retry carries its jobs on (runs.JobRuns: the job follows its run's retries, and fails
        when the last of them ended without it). A job older than its time-out is failed,
        whatever its run."""
        now = time.monotonic() if now is None else now
        if now - self._last_reconcile < RECONCILE_S:
            return []
        self._last_reconcile = now
        failed = self.cat.fail_scores_older_than(
            datetime.now(timezone.utc) - timedelta(seconds=self.timeout_s),
            f"not finished within {self.timeout_s} s of its request (SOPILOT_SCORE_JOB_TIMEOUT_S); request it again",
        )
        chains = self.door.jobs_runs(sorted(r for r in self.cat.unfinished_score_runs() if not is_claim(r)))
        for run_id, chain in chains.items():
            if chain.status not in ("completed", "failed"):
                continue  # in flight, or a retry of it is coming
            last = chain.last
            reason = (self.door.run_error(last.run_id) if last.status == "failed" else None) or (
                f"the score run ended ({last.dagster_status.lower()}) without finishing this job"
            )
            failed += self.cat.fail_unfinished_scores(run_id, reason)
        if failed:
            log.warning("failed %d score job(s) timed out or whose run ended without them", len(failed))
        return failed

    def dispatch_once(self) -> int:
        """Launch runs for the queued jobs if no score run is waiting to start; returns how many
        jobs were handed over (0: nothing to do now)."""
        if self.door.waiting_runs(SCORE_JOB):
            return 0  # they join the next run, launched once the waiting one starts
        claim = f"{CLAIM}{time.time():.3f}:{uuid.uuid4().hex[:8]}"
        jobs = self.cat.claim_pending_scores(claim, limit=4 * self.batch_max)
        if not jobs:
            return 0
        keys = [j["job_id"] for j in jobs]
        by_key = {j["job_id"]: j for j in jobs}
        launched: set[str] = set()
        try:
            self.door.add_partitions(SCORE_JOBS, keys)
            # keys added after ours come after them: the newest keys hold ours, with what came between
            order = self.door.last_partition_keys(SCORE_JOB, len(keys) + 100)
            for block in adjacent_blocks(order, keys):
                for chunk in split(block, self.batch_max):
                    run_id = self._launch([by_key[k] for k in chunk])
                    for key in chunk:
                        self.cat.update_score(key, run_id=run_id)
                        launched.add(key)
        finally:
            if len(launched) < len(keys):
                self.cat.release_score_claim(claim)  # the rest go again on the next pass
        log.info("handed %d score job(s) to Dagster", len(launched))
        return len(launched)

    def _launch(self, jobs: list[dict]) -> str:
        first, last = jobs[0]["job_id"], jobs[-1]["job_id"]
        tags = {}
        for tag, column in ((TAG_TASK_ID, "task_id"), (TAG_REQUESTED_BY, "requested_by"), (TAG_TRIGGER, "trigger")):
            values = {j[column] for j in jobs}
            if len(values) == 1 and None not in values:
                tags[tag] = str(values.pop())  # a batch of one task's, one requester's, jobs says so
        if len(jobs) == 1:
            return self.door.launch(SCORE_JOB, partition_key=first, tags={**tags, TAG_JOB_ID: first})
        return self.door.launch(
            SCORE_JOB, tags={**tags, TAG_JOB_ID: f"{first}..{last}", RANGE_START: first, RANGE_END: last}
        )


def split(block: list[str], size: int) -> list[list[str]]:
    """``block`` in runs of at most ``size`` keys, of near-equal length (adjacent keys stay adjacent)."""
    parts = max(1, math.ceil(len(block) / size))
    step = math.ceil(len(block) / parts)
    return [block[i : i + step] for i in range(0, len(block), step)]


def adjacent_blocks(order: list[str], keys: list[str]) -> list[list[str]]:
    """``keys`` grouped into runs of keys adjacent in ``order`` (a stretch of Dagster's key order),
    in that order; a key not in ``order`` is a block of its own. A run over a range of partitions
    takes every key between its two ends, so a range may only span keys of one block."""
    wanted, blocks, block = set(keys), [], []
    for key in order:
        if key in wanted:
            block.append(key)
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    seen = {k for b in blocks for k in b}
    return blocks + [[k] for k in keys if k not in seen]

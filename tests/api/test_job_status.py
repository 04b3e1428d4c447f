"""A job's status from its runs (sopilot_api/runs.py): the run it was handed to and Dagster's
retries of it are one job, whose status only moves forward and whose queued_at is the first
run's. The runs are the ones Dagster's GraphQL returns; the live checks are in
tests/stack/test_resilience.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from sopilot_api.runs import MAX_RETRIES, STATUS, RunInfo, _jobs_of, job_runs
from tests.helpers import ROOT

T0 = datetime(2027, 1, 20, 12, 0, tzinfo=timezone.utc)
RANK = {"queued": 0, "running": 1, "completed": 2, "failed": 2}


def _run(run_id: str, status: str, at: float, *, started: float | None = None, ended: float | None = None, **tags):
    return RunInfo(
        run_id=run_id,
        job_name="ingest_job",
        status=STATUS[status],
        dagster_status=status,
        tags={k.replace("__", "/"): v for k, v in tags.items()},
        queued_at=T0 + timedelta(seconds=at),
        started_at=None if started is None else T0 + timedelta(seconds=started),
        finished_at=None if ended is None else T0 + timedelta(seconds=ended),
    )


NOW = T0 + timedelta(seconds=600)

# what a client polling an ingest whose run worker was killed sees, snapshot by snapshot
KILLED_AND_RETRIED = [
    [_run("a", "QUEUED", 0)],
    [_run("a", "STARTING", 0)],
    [_run("a", "STARTED", 0, started=2)],
    [_run("a", "FAILURE", 0, started=2, ended=20)],  # the retry decision is being written
    [_run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="true")],
    [_run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="true"), _run("b", "QUEUED", 21)],
    [_run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="true"), _run("b", "STARTED", 21, started=23)],
    [
        _run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="true"),
        _run("b", "SUCCESS", 21, started=23, ended=30),
    ],
]


def test_a_killed_run_whose_retry_made_it_reads_completed_and_never_moves_back():
    seen = [job_runs(runs, now=T0 + timedelta(seconds=25)) for runs in KILLED_AND_RETRIED]
    statuses = [j.status for j in seen]
    assert statuses == ["queued", "running", "running", "running", "running", "running", "running", "completed"]
    assert all(RANK[a] <= RANK[b] for a, b in zip(statuses, statuses[1:]))
    assert {j.queued_at for j in seen} == {T0}  # the first run's, never the retry's
    done = seen[-1]
    assert done.attempts == 2 and done.last.run_id == "b"
    assert done.started_at == T0 + timedelta(seconds=2) and done.finished_at == T0 + timedelta(seconds=30)
    assert [j.attempts for j in seen] == [0, 1, 1, 1, 1, 1, 2, 2]  # a retry counts once it is launched
    # the old mapping read the job's own (first) run alone: failed, though the retry made it
    assert STATUS[KILLED_AND_RETRIED[-1][0].dagster_status] == "failed"


def test_a_failed_run_with_no_retry_to_come_is_a_failed_job():
    # an asset failed (a bad file): never retried
    runs = [
        _run(
            "a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="false", dagster__failure_reason="STEP_FAILURE"
        )
    ]
    job = job_runs(runs, now=NOW)
    assert (job.status, job.attempts, job.finished_at) == ("failed", 1, T0 + timedelta(seconds=20))
    # the retry failed too, and Dagster retries no more
    runs = [
        _run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="true"),
        _run("b", "FAILURE", 21, started=23, ended=40, dagster__will_retry="false"),
    ]
    job = job_runs(list(reversed(runs)), now=NOW)  # in any order
    assert (job.status, job.attempts, job.last.run_id, job.queued_at) == ("failed", 2, "b", T0)
    assert job_runs([_run("a", "CANCELED", 0, ended=5)], now=NOW).status == "failed"


def test_a_failed_run_without_a_retry_decision_is_failed_once_the_decision_is_overdue():
    runs = [_run("a", "FAILURE", 0, started=2, ended=20)]
    assert job_runs(runs, now=T0 + timedelta(seconds=25)).status == "running"
    assert job_runs(runs, now=NOW).status == "failed"


def test_a_retry_promised_but_not_yet_created_keeps_the_job_running():
    runs = [_run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="true")]
    job = job_runs(runs, now=NOW)
    assert (job.status, job.finished_at) == ("running", None)


def test_a_retry_dagster_gave_up_launching_is_owed_and_the_job_stays_running():
    """Dagster's run retry tries once; when it could not reach a code server it writes
    will_retry false. A crash with a retry left is still owed one (the API's job watch launches
    it): the job reads running, not failed, and then follows that retry."""
    crashed = _run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="false")
    job = job_runs([crashed], now=NOW)
    assert (job.status, job.retry_owed) == ("running", crashed)
    retried = job_runs([crashed, _run("b", "SUCCESS", 30, started=31, ended=40)], now=NOW)
    assert (retried.status, retried.attempts, retried.retry_owed) == ("completed", 2, None)
    # not owed: an asset's failure (a bad file), a retry already spent, a backfill's run, max_retries 0
    for tags in (
        {"dagster__failure_reason": "STEP_FAILURE"},
        {"dagster__backfill": "bf1"},
        {"dagster__max_retries": "0"},
    ):
        run = _run("a", "FAILURE", 0, started=2, ended=20, dagster__will_retry="false", **tags)
        assert job_runs([run], now=NOW).status == "failed" and job_runs([run], now=NOW).retry_owed is None
    twice = [crashed, _run("b", "FAILURE", 30, started=31, ended=40, dagster__will_retry="false")]
    assert job_runs(twice, now=NOW).status == "failed"


def test_the_retry_rules_are_the_instances():
    for name in ("dagster.yaml", "dagster.postgres.yaml"):
        retries = yaml.safe_load((ROOT / name).read_text())["run_retries"]
        assert retries == {"enabled": True, "max_retries": MAX_RETRIES, "retry_on_asset_or_op_failure": False}


def test_no_runs_is_no_job():
    with pytest.raises(ValueError):
        job_runs([])


def _counts(prefix: str, **c: int) -> dict[str, int]:
    keys = ["queued", "running", "completed", "failed", "retrying"]
    keys += [f"retries{n}" for n in (1, 2, 3)] + [f"queued_retries{n}" for n in (1, 2, 3)]
    return {f"{prefix}|{k}": c.get(k, 0) for k in keys}


@pytest.mark.parametrize(
    "runs, jobs",
    [
        # one job killed and retried, the retry completed: 1 completed job, not 1 failed + 1 completed
        ({"completed": 1, "failed": 1, "retrying": 1, "retries1": 1}, (0, 0, 1, 0)),
        # its retry queued: the job had started, it is running
        ({"queued": 1, "failed": 1, "retrying": 1, "retries1": 1, "queued_retries1": 1}, (0, 1, 0, 0)),
        # the retry promised, not yet created
        ({"failed": 1, "retrying": 1}, (0, 1, 0, 0)),
        # the retry failed too: one failed job
        ({"failed": 2, "retrying": 1, "retries1": 1}, (0, 0, 0, 1)),
        # Dagster gave the retry up (will_retry false) and the API launched it: still one job
        ({"completed": 1, "failed": 1, "retries1": 1}, (0, 0, 1, 0)),
        # plain runs, one job each
        ({"queued": 2, "running": 1, "completed": 3, "failed": 1}, (2, 1, 3, 1)),
    ],
)
def test_counts_are_of_jobs_not_runs(runs, jobs):
    got = _jobs_of(_counts("ingest", **runs), "ingest")
    assert (got["queued"], got["running"], got["completed"], got["failed"]) == jobs

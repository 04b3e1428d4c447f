"""What `sopilot up` does before it starts anything: Dagster's storage created (or migrated)
once (started together on an empty home, the webserver and the daemon would both try to create
the schema and one would fail), and runs a dead stack left in flight failed with a reason.

Only one stack runs per data dir (its lock), so at this point no run worker of this instance
is alive: a run still STARTING or STARTED was cut off. It is marked failed, saying so; the
instance's run retries (`dagster.yaml`: once) then run it again, and the retry carries its
score or ingest job on, so a job's status only ever moves forward.
"""

from __future__ import annotations

import sys

INTERRUPTED = (
    "the stack stopped while this run was in flight (found at the next start); Dagster's run retry runs it again"
)


def recover(home: str) -> list[str]:
    """Create or migrate the storage; fail the runs left in flight. Returns their ids."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    failed = []
    with DagsterInstance.from_config(str(home)) as instance:
        in_flight = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]))
        for run in in_flight:
            instance.report_run_failed(run, INTERRUPTED)
            failed.append(run.run_id)
    return failed


if __name__ == "__main__":
    runs = recover(sys.argv[1])
    if runs:
        print(f"failed {len(runs)} run(s) left in flight by a stopped stack: {', '.join(runs)}", flush=True)

"""The facade's only door to Dagster: GraphQL on the webserver, over plain HTTP.

Speaking GraphQL (rather than importing dagster) keeps the API process small and fast to start;
the webserver and daemon own the instance. Runs go through the queued run coordinator like any
run launched from the UI, so the daemon's concurrency cap applies to them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

from sopilot_pipelines.ids import INDEX_JOB, INGEST_JOB, SCORE_JOB, TRAIN_JOB

LOCATION = "sopilot"
REPOSITORY = "__repository__"  # the name Dagster gives a Definitions object's repository

# Dagster run status -> the contract's job status
STATUS = {
    "QUEUED": "queued",
    "NOT_STARTED": "queued",
    "MANAGED": "queued",
    "STARTING": "running",
    "STARTED": "running",
    "CANCELING": "running",
    "SUCCESS": "completed",
    "FAILURE": "failed",
    "CANCELED": "failed",
}
STATUS_GROUPS = {
    "queued": ["QUEUED", "NOT_STARTED"],
    "running": ["STARTING", "STARTED", "CANCELING"],
    "completed": ["SUCCESS"],
    "failed": ["FAILURE", "CANCELED"],
}
JOB_TYPES = {"ingest": INGEST_JOB, "score": SCORE_JOB, "training": TRAIN_JOB, "index": INDEX_JOB}
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING")
NOT_LAUNCHED = ("QUEUED", "NOT_STARTED", "MANAGED")
WILL_RETRY = "dagster/will_retry"  # set on a failed run when Dagster's run retry will re-run it
RETRY_NUMBER = "dagster/retry_number"  # on a retry run: 1 for the first retry, ...
# A failed run's WILL_RETRY tag is written right after its failure (the same call, in the process
# that reported it); a failed run without the tag is read as "retry decision pending" this long.
RETRY_DECISION_S = 30.0
# dagster.yaml's run_retries (max_retries 1, retry_on_asset_or_op_failure false), which decide
# whether a failed run is retried (tests/api/test_job_status.py keeps them in step)
MAX_RETRIES = 1
FAILURE_REASON = "dagster/failure_reason"  # STEP_FAILURE: an asset failed (a bad file): no retry
RUN_FIELDS = "runId jobName status creationTime startTime endTime rootRunId parentRunId tags { key value }"


class DagsterUnavailable(RuntimeError):
    """The webserver did not answer or refused the request; the message says which."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    job_name: str
    status: str  # the contract's: queued / running / completed / failed
    dagster_status: str
    tags: dict[str, str]
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    root_run_id: str | None = None
    parent_run_id: str | None = None


@dataclass(frozen=True)
class JobRuns:
    """A job as its runs tell it: the run it was handed to and Dagster's retries of that run (a
    run whose process died is retried as a new run, which carries the job on: part of the job).

    ``status`` only moves forward as the runs go on: ``queued`` until a run is launched,
    ``running`` while one is in flight or a failed one's retry is coming, then ``completed`` when
    a run of the chain succeeded, or ``failed`` when the last one failed (or was canceled) with no
    retry to come. ``queued_at`` is the first run's, whatever the retries."""

    runs: tuple[RunInfo, ...]  # oldest first
    status: str
    attempts: int  # runs launched so far: 1, plus each retry started
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None  # once completed or failed

    @property
    def last(self) -> RunInfo:
        """The run that decided the status: the one that succeeded, else the newest."""
        return next((r for r in self.runs if r.dagster_status == "SUCCESS"), self.runs[-1])

    @property
    def retry_owed(self) -> RunInfo | None:
        """The newest run, when Dagster's run retry should have re-run it and could not: it
        tried once and gave up (`will_retry` false after "Failed to retry run", as when the
        daemon's code server had died with the run's worker). The job stays running; the API's
        job watch launches that retry through the webserver (job_watch.py)."""
        newest = self.runs[-1]
        owed = newest.dagster_status == "FAILURE" and newest.tags.get(WILL_RETRY) == "false"
        return newest if owed and _retriable(newest, len(self.runs)) else None


def job_runs(runs: list[RunInfo], now: datetime | None = None) -> JobRuns:
    """The job of a chain of runs (a run and its retries, in any order)."""
    if not runs:
        raise ValueError("a job has at least one run")
    now = now or datetime.now(timezone.utc)
    chain = tuple(sorted(runs, key=lambda r: (r.queued_at or now, r.run_id)))
    newest = chain[-1]
    success = next((r for r in chain if r.dagster_status == "SUCCESS"), None)
    if success is not None:
        status, finished = "completed", success.finished_at
    elif newest.dagster_status in IN_FLIGHT:
        launched = len(chain) > 1 or newest.dagster_status not in NOT_LAUNCHED
        status, finished = ("running" if launched else "queued"), None
    elif newest.dagster_status == "FAILURE" and (_retry_coming(newest, now) or _retry_failed(newest, len(chain))):
        status, finished = "running", None
    else:
        status, finished = "failed", newest.finished_at
    started = [r.started_at for r in chain if r.started_at is not None]
    attempts = sum(1 for r in chain if r.dagster_status not in NOT_LAUNCHED or r.started_at is not None)
    return JobRuns(
        runs=chain,
        status=status,
        attempts=attempts,
        queued_at=chain[0].queued_at,
        started_at=min(started) if started else None,
        finished_at=finished,
    )


def _retriable(run: RunInfo, runs: int) -> bool:
    """Whether Dagster's run retry, as dagster.yaml sets it, re-runs this failed run (the newest of
    ``runs``): a crash, not an asset's failure, with retries left, outside a backfill (whose own
    state decides)."""
    if run.tags.get(FAILURE_REASON) == "STEP_FAILURE" or "dagster/backfill" in run.tags:
        return False
    try:
        allowed = int(run.tags.get("dagster/max_retries", MAX_RETRIES))
    except ValueError:
        return False
    return runs <= allowed


def _retry_failed(run: RunInfo, runs: int) -> bool:
    return run.tags.get(WILL_RETRY) == "false" and _retriable(run, runs)


def _retry_coming(run: RunInfo, now: datetime) -> bool:
    tag = run.tags.get(WILL_RETRY)
    if tag is not None:
        return tag == "true"
    ended = run.finished_at or run.queued_at
    return ended is not None and (now - ended).total_seconds() < RETRY_DECISION_S


def _ts(value) -> datetime | None:
    return datetime.fromtimestamp(float(value), tz=timezone.utc) if value else None


class Dagster:
    def __init__(self, base_url: str, timeout: float = 30.0):
        self.url = base_url.rstrip("/") + "/graphql"
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def _query(self, query: str, variables: dict | None = None) -> dict:
        try:
            response = self._client.post(self.url, json={"query": query, "variables": variables or {}})
        except httpx.HTTPError as exc:
            raise DagsterUnavailable(f"the Dagster webserver at {self.url} did not answer: {exc}") from exc
        if response.status_code != 200:
            raise DagsterUnavailable(
                f"the Dagster webserver answered HTTP {response.status_code}: {response.text[:300]}"
            )
        body = response.json()
        if body.get("errors"):
            raise DagsterUnavailable(f"Dagster GraphQL error: {body['errors'][0].get('message')}")
        return body["data"]

    def ping(self) -> bool:
        try:
            self._query("{ version }")
            return True
        except DagsterUnavailable:
            return False

    def add_partition(self, partitions_def: str, key: str) -> None:
        self.add_partitions(partitions_def, [key])

    def add_partitions(self, partitions_def: str, keys: list[str]) -> None:
        """Add keys to a dynamic partitions definition in one request, in this order (the fields
        of a GraphQL mutation run one after another), so a run over a range of them covers them."""
        if not keys:
            return
        fields = " ".join(
            f"""k{i}: addDynamicPartition(partitionsDefName: $name, partitionKey: $k{i}, repositorySelector: $repo) {{
                 __typename ... on PythonError {{ message }} ... on UnauthorizedError {{ message }} }}"""
            for i in range(len(keys))
        )
        args = "".join(f", $k{i}: String!" for i in range(len(keys)))
        data = self._query(
            f"mutation($name: String!, $repo: RepositorySelector!{args}) {{ {fields} }}",
            {
                "name": partitions_def,
                "repo": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY},
                **{f"k{i}": key for i, key in enumerate(keys)},
            },
        )
        for i, key in enumerate(keys):
            out = data[f"k{i}"]
            if out["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                raise DagsterUnavailable(
                    f"could not add partition {key!r} to {partitions_def}: {out.get('message', out['__typename'])}"
                )

    def delete_partition(self, partitions_def: str, key: str) -> None:
        self._query(
            """mutation($name: String!, $keys: [String!]!, $repo: RepositorySelector!) {
                 deleteDynamicPartitions(partitionsDefName: $name, partitionKeys: $keys, repositorySelector: $repo) {
                   __typename } }""",
            {
                "name": partitions_def,
                "keys": [key],
                "repo": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY},
            },
        )

    def last_partition_keys(self, job_name: str, limit: int) -> list[str]:
        """The newest ``limit`` partition keys of a partitioned job, in Dagster's order (the order
        in which a run over a partition range takes the keys between its two ends)."""
        data = self._query(
            """query($repo: RepositorySelector!, $name: String!, $limit: Int!) {
                 partitionSetOrError(repositorySelector: $repo, partitionSetName: $name) {
                   __typename ... on Error { message }
                   ... on PartitionSet { partitionsOrError(limit: $limit, reverse: true) {
                     __typename ... on Partitions { results { name } } ... on PythonError { message } } } } }""",
            {
                "repo": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY},
                "name": f"{job_name}_partition_set",
                "limit": limit,
            },
        )["partitionSetOrError"]
        parts = data.get("partitionsOrError") or {}
        if data["__typename"] != "PartitionSet" or parts.get("__typename") != "Partitions":
            raise DagsterUnavailable(
                f"could not read the partitions of {job_name}: {data.get('message') or parts.get('message')}"
            )
        return [p["name"] for p in parts["results"]]

    def launch(self, job_name: str, tags: dict[str, str], partition_key: str | None = None) -> str:
        """Submit a run (it enters the queue); returns the run id."""
        tags = dict(tags)
        if partition_key is not None:
            tags["dagster/partition"] = partition_key
        data = self._query(
            """mutation($params: ExecutionParams!) {
                 launchRun(executionParams: $params) {
                   __typename
                   ... on LaunchRunSuccess { run { runId } }
                   ... on PythonError { message }
                   ... on RunConfigValidationInvalid { errors { message } }
                   ... on Error { message } } }""",
            {
                "params": {
                    "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job_name},
                    "runConfigData": {},
                    "executionMetadata": {"tags": [{"key": k, "value": str(v)} for k, v in tags.items()]},
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            detail = (
                data.get("message") or "; ".join(e["message"] for e in data.get("errors", [])) or data["__typename"]
            )
            raise DagsterUnavailable(f"Dagster refused to launch {job_name}: {detail}")
        return data["run"]["runId"]

    def run(self, run_id: str) -> RunInfo | None:
        data = self._query(
            f"""query($id: ID!) {{ runOrError(runId: $id) {{ __typename ... on Run {{ {RUN_FIELDS} }} }} }}""",
            {"id": run_id},
        )["runOrError"]
        if data["__typename"] != "Run":
            return None
        return _run_info(data)

    def job_runs(self, run_id: str) -> JobRuns | None:
        """The job of ``run_id``'s run group (the run it was handed to, and the retries of that
        run), or None for a run Dagster does not know."""
        return self.jobs_runs([run_id]).get(run_id)

    def jobs_runs(self, run_ids: list[str]) -> dict[str, JobRuns]:
        """``job_runs`` of several runs in one request (ids Dagster does not know are left out)."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        args = ", ".join(f"$r{i}: ID!" for i in range(len(ids)))
        fields = " ".join(
            f"g{i}: runGroupOrError(runId: $r{i}) {{ __typename ... on RunGroup {{ runs {{ {RUN_FIELDS} }} }} }}"
            for i in range(len(ids))
        )
        data = self._query(f"query({args}) {{ {fields} }}", {f"r{i}": rid for i, rid in enumerate(ids)})
        out = {}
        for i, rid in enumerate(ids):
            group = data[f"g{i}"] or {}
            runs = [_run_info(r) for r in group.get("runs") or [] if r]
            if group.get("__typename") == "RunGroup" and runs:
                out[rid] = job_runs(runs)
        return out

    def reexecute(self, run_id: str, tags: dict[str, str]) -> str:
        """Re-execute a failed run from its failure, as Dagster's run retry does (its tags, and
        ``tags`` over them); returns the new run's id (it joins the run's group)."""
        data = self._query(
            """mutation($params: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $params) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }""",
            {
                "params": {
                    "parentRunId": run_id,
                    "strategy": "FROM_FAILURE",
                    "extraTags": [{"key": k, "value": v} for k, v in tags.items()],
                }
            },
        )["launchRunReexecution"]
        if data["__typename"] != "LaunchRunSuccess":
            raise DagsterUnavailable(f"Dagster refused to re-execute run {run_id}: {data.get('message')}")
        return data["run"]["runId"]

    def terminate(self, run_id: str) -> bool:
        """Ask Dagster to stop a run (a queued one is canceled at once, a running one's worker is
        told to stop); True when Dagster took the request."""
        data = self._query(
            """mutation($id: String!) { terminateRun(runId: $id) { __typename
                 ... on TerminateRunFailure { message } ... on PythonError { message } } }""",
            {"id": run_id},
        )["terminateRun"]
        return data["__typename"] == "TerminateRunSuccess"

    def run_error(self, run_id: str) -> str | None:
        """The first step failure (or the run failure) message of a failed run, in words."""
        data = self._query(
            """query($id: ID!) { logsForRun(runId: $id, limit: 1000) { __typename
                 ... on EventConnection { events { __typename
                   ... on ExecutionStepFailureEvent { error { message } }
                   ... on RunFailureEvent { message } } } } }""",
            {"id": run_id},
        )["logsForRun"]
        events = data.get("events") or []
        for e in events:
            if e["__typename"] == "ExecutionStepFailureEvent" and e.get("error"):
                return _first_line(e["error"]["message"])
        for e in events:
            if e["__typename"] == "RunFailureEvent":
                return e["message"]
        return None

    def _counts(self, filters: dict[str, dict]) -> dict[str, int]:
        """Run counts for several RunsFilters in one GraphQL request (aliases q0, q1, ...)."""
        names = list(filters)
        args = ", ".join(f"$f{i}: RunsFilter" for i in range(len(names)))
        fields = " ".join(f"q{i}: runsOrError(filter: $f{i}) {{ ... on Runs {{ count }} }}" for i in range(len(names)))
        data = self._query(f"query({args}) {{ {fields} }}", {f"f{i}": filters[n] for i, n in enumerate(names)})
        return {n: int((data[f"q{i}"] or {}).get("count", 0)) for i, n in enumerate(names)}

    def runs_status(self, run_ids: list[str]) -> dict[str, RunInfo]:
        """Several runs in one request (ids Dagster does not know are left out)."""
        if not run_ids:
            return {}
        data = self._query(
            f"""query($ids: [String!]) {{ runsOrError(filter: {{runIds: $ids}}) {{ __typename
                 ... on Runs {{ results {{ {RUN_FIELDS} }} }} }} }}""",
            {"ids": list(run_ids)},
        )["runsOrError"]
        return {r["runId"]: _run_info(r) for r in data.get("results") or []}

    def waiting_runs(self, job_name: str) -> int:
        """Runs of a job submitted but not yet running (queued, or their process starting)."""
        statuses = ["QUEUED", "NOT_STARTED", "STARTING"]
        return self._counts({"w": {"pipelineName": job_name, "statuses": statuses}})["w"]

    def job_counts(self) -> dict[str, dict[str, int]]:
        """Per job type: queued / running / completed / failed jobs (not runs) from the run storage."""
        return self.job_and_run_counts()[0]

    def job_and_run_counts(self) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        """(jobs, runs) per job type and contract status, from one request. A job is its run and
        Dagster's retries of it (JobRuns), counted once, by where the chain is: a failed run that
        will be retried is no failed job (its job is running), a queued retry no queued job."""
        filters = {}
        for kind, job in JOB_TYPES.items():
            filters.update(_chain_filters(kind, {"pipelineName": job}))
        counts = self._counts(filters)
        return (
            {kind: _jobs_of(counts, kind) for kind in JOB_TYPES},
            {kind: {g: counts[f"{kind}|{g}"] for g in STATUS_GROUPS} for kind in JOB_TYPES},
        )

    def training_counts(self) -> dict[tuple[str, str], int]:
        """(status, trigger) -> training jobs (as job_counts), from the runs' sopilot/trigger tag."""
        filters = {}
        for t in ("manual", "nightly"):
            tag = {"key": "sopilot/trigger", "value": t}
            filters.update(_chain_filters(t, {"pipelineName": JOB_TYPES["training"], "tags": [tag]}))
        counts = self._counts(filters)
        return {(g, t): n for t in ("manual", "nightly") for g, n in _jobs_of(counts, t).items()}

    def daemon_health(self) -> dict:
        data = self._query("""{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }""")[
            "instance"
        ]["daemonHealth"]["allDaemonStatuses"]
        required = [d for d in data if d["required"]]
        return {
            "healthy": bool(required) and all(d["healthy"] for d in required),
            "daemons": {d["daemonType"]: bool(d["healthy"]) for d in data},
        }


MAX_RETRY_NUMBER = 3  # retries counted per run (dagster.yaml: max_retries 1)


def _chain_filters(prefix: str, base: dict) -> dict[str, dict]:
    """The run counts `_jobs_of` needs for one kind of job, as RunsFilters named ``prefix|...``."""
    tags = base.get("tags", [])
    out = {f"{prefix}|{g}": {**base, "statuses": st} for g, st in STATUS_GROUPS.items()}
    out[f"{prefix}|retrying"] = {**base, "statuses": ["FAILURE"], "tags": [*tags, {"key": WILL_RETRY, "value": "true"}]}
    for n in range(1, MAX_RETRY_NUMBER + 1):
        retry = [*tags, {"key": RETRY_NUMBER, "value": str(n)}]
        out[f"{prefix}|retries{n}"] = {**base, "tags": retry}
        out[f"{prefix}|queued_retries{n}"] = {**base, "statuses": STATUS_GROUPS["queued"], "tags": retry}
    return out


def _jobs_of(counts: dict[str, int], prefix: str) -> dict[str, int]:
    """Jobs per status from run counts: each retry's parent is a failed run that will retry, so
    those are taken from the failed and the job counted where its newest run is (a retry still
    queued: running, as its job had started; a retry not yet created: running)."""
    c = {k.split("|", 1)[1]: n for k, n in counts.items() if k.startswith(prefix + "|")}
    retries = sum(c[f"retries{n}"] for n in range(1, MAX_RETRY_NUMBER + 1))
    queued_retries = sum(c[f"queued_retries{n}"] for n in range(1, MAX_RETRY_NUMBER + 1))
    # every retry has one failed parent: those that will retry, or whose retry the API launched
    # after Dagster's failed (their will_retry false), are no failed jobs
    retried = max(c["retrying"], retries)
    return {
        "queued": max(0, c["queued"] - queued_retries),
        "running": c["running"] + queued_retries + max(0, c["retrying"] - retries),
        "completed": c["completed"],
        "failed": max(0, c["failed"] - retried),
    }


def _run_info(data: dict) -> RunInfo:
    return RunInfo(
        run_id=data["runId"],
        job_name=data["jobName"],
        status=STATUS.get(data["status"], "queued"),
        dagster_status=data["status"],
        tags={t["key"]: t["value"] for t in data["tags"]},
        queued_at=_ts(data["creationTime"]),
        started_at=_ts(data["startTime"]),
        finished_at=_ts(data["endTime"]),
        root_run_id=data.get("rootRunId"),
        parent_run_id=data.get("parentRunId"),
    )


def _first_line(message: str) -> str:
    # Dagster prefixes the error class ("dagster._core.definitions.events.Failure: ..."); keep the words
    line = message.strip().splitlines()[0] if message.strip() else message
    return line.split(": ", 1)[1] if ": " in line and line.split(": ", 1)[0].count(".") >= 1 else line

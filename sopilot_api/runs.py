"""The facade's only door to Dagster: GraphQL on the webserver, over plain HTTP.

Speaking GraphQL (rather than importing dagster) keeps the API process small and fast to start;
the webserver and daemon own the instance. Runs go through the queued run coordinator like any
run launched from the UI, so the daemon's concurrency cap applies to them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

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
JOB_TYPES = {"ingest": "ingest_job", "score": "score_job", "training": "train_job", "index": "index_job"}


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
            """query($id: ID!) { runOrError(runId: $id) { __typename
                 ... on Run { runId jobName status creationTime startTime endTime tags { key value } } } }""",
            {"id": run_id},
        )["runOrError"]
        if data["__typename"] != "Run":
            return None
        return _run_info(data)

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
            """query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) { __typename
                 ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } } } }""",
            {"ids": list(run_ids)},
        )["runsOrError"]
        return {r["runId"]: _run_info(r) for r in data.get("results") or []}

    def waiting_runs(self, job_name: str) -> int:
        """Runs of a job submitted but not yet running (queued, or their process starting)."""
        statuses = ["QUEUED", "NOT_STARTED", "STARTING"]
        return self._counts({"w": {"pipelineName": job_name, "statuses": statuses}})["w"]

    def job_counts(self) -> dict[str, dict[str, int]]:
        """Per job type: queued / running / completed / failed counts from the run storage."""
        filters = {
            f"{kind}|{g}": {"pipelineName": job, "statuses": st}
            for kind, job in JOB_TYPES.items()
            for g, st in STATUS_GROUPS.items()
        }
        counts = self._counts(filters)
        return {kind: {g: counts[f"{kind}|{g}"] for g in STATUS_GROUPS} for kind in JOB_TYPES}

    def training_counts(self) -> dict[tuple[str, str], int]:
        """(status, trigger) -> training runs, from the runs' sopilot/trigger tag."""
        filters = {
            f"{g}|{t}": {
                "pipelineName": JOB_TYPES["training"],
                "statuses": st,
                "tags": [{"key": "sopilot/trigger", "value": t}],
            }
            for g, st in STATUS_GROUPS.items()
            for t in ("manual", "nightly")
        }
        return {(k.split("|")[0], k.split("|")[1]): n for k, n in self._counts(filters).items()}

    def daemon_health(self) -> dict:
        data = self._query("""{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }""")[
            "instance"
        ]["daemonHealth"]["allDaemonStatuses"]
        required = [d for d in data if d["required"]]
        return {
            "healthy": bool(required) and all(d["healthy"] for d in required),
            "daemons": {d["daemonType"]: bool(d["healthy"]) for d in data},
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
    )


def _first_line(message: str) -> str:
    # Dagster prefixes the error class ("dagster._core.definitions.events.Failure: ..."); keep the words
    line = message.strip().splitlines()[0] if message.strip() else message
    return line.split(": ", 1)[1] if ": " in line and line.split(": ", 1)[0].count(".") >= 1 else line

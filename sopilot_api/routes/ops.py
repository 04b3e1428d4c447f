"""Operations: GET /health, GET /metrics, GET /ops/queue."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..auth import Operator
from ..deps import CatalogDep, DagsterDep, StoreDep
from ..runs import JOB_TYPES, DagsterUnavailable
from ..schemas import Health, OpsQueue, Queue, QueueStats

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Database unavailable"}})
def health(cat: CatalogDep, door: DagsterDep, store: StoreDep):
    """200 when the catalog and Dagster's storage (through the webserver) answer, `degraded` while
    `sopilot up` is restarting a part of the stack (`down` says which, and why); 503 otherwise."""
    ok = cat.ping() and door.ping()
    down = stack_down(store)
    body = {"status": ("degraded" if down else "ok") if ok else "unavailable", "db": ok, "down": down}
    return JSONResponse(body, status_code=200 if ok else 503)


def stack_down(store) -> dict[str, str]:
    """The parts of the stack its supervisor reports down (`<data dir>/stack/status.json`)."""
    try:
        return dict(json.loads((store.root / "stack" / "status.json").read_text()).get("down") or {})
    except (OSError, ValueError, AttributeError):
        return {}


@router.get("/ops/queue", response_model=OpsQueue)
def ops_queue(cat: CatalogDep, door: DagsterDep, _: Operator):
    error, daemon_ok = None, False
    counts = {k: {"queued": 0, "running": 0, "completed": 0, "failed": 0} for k in JOB_TYPES}
    try:
        counts = door.job_counts()
        daemon_ok = door.daemon_health()["healthy"]
    except DagsterUnavailable as exc:
        error = str(exc)
    counts["score"] = score_job_counts(cat)
    queues = [
        QueueStats(
            key=job, name=kind, queued=c["queued"], started=c["running"], failed=c["failed"], finished=c["completed"]
        )
        for (kind, job), c in zip(JOB_TYPES.items(), counts.values())
    ]
    # Dagster's run queue, not Redis: redis_ok stays null, the daemon's health is daemon_ok
    queue = Queue(backend="dagster", redis_ok=None, daemon_ok=daemon_ok, error=error, queues=queues)
    return OpsQueue(generated_at=datetime.now(timezone.utc), runtime_mode="api", queue=queue, jobs=counts)


def score_job_counts(cat) -> dict[str, int]:
    """Score jobs per contract status, from the catalog: a run scores many jobs, so its runs
    are no count of them."""
    by_status = cat.score_status_counts()
    return {s: by_status.get(s, 0) for s in ("queued", "running", "completed", "failed")}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(cat: CatalogDep, door: DagsterDep, store: StoreDep):
    """Prometheus text format; job counts are read at scrape time (score jobs from the catalog,
    the others from Dagster's run storage)."""
    from ..metrics import render

    body, content_type = render(door, store.root / "metrics", score_jobs=lambda: score_job_counts(cat))
    return Response(body, media_type=content_type)

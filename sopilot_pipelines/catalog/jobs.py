"""Score and training jobs: one table helper (``JobTable``) records, updates, reads and lists
both; the methods of ``JobsMixin`` give each kind its own signature."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Connection

from sopilot_pipelines.catalog import models as m
from sopilot_pipelines.catalog import tables as t
from sopilot_pipelines.catalog.base import CatalogBase, NotFoundError, limited, plain, written
from sopilot_pipelines.catalog.tables import utcnow
from sopilot_pipelines.ids import new_job_id

TERMINAL_STATUSES = ("completed", "failed", "skipped", "canceled", "rejected")
# A job's status only moves forward: queued -> running -> one terminal status, never back.
RANK = {"queued": 0, "running": 1, **{s: 2 for s in TERMINAL_STATUSES}}


@dataclass(frozen=True)
class JobTable:
    table: Table
    kind: str  # "score" / "training", for messages
    new: type[BaseModel]  # a new job's fields
    changes: Any  # TypedDict: the fields an update may set
    filters: Any  # TypedDict: the columns a listing may filter on

    def record(self, cat: CatalogBase, exist_ok: bool, **values: Any) -> dict:
        """Insert a job; an existing one is returned with ``exist_ok`` (re-tried runs), else ValueError."""
        values["created_at"] = values["created_at"] or utcnow()
        row = m.check(self.new, **values).model_dump()
        with cat._write() as conn:
            existing = self._get(conn, row["job_id"])
            if existing is not None:
                if exist_ok:
                    return existing
                raise ValueError(f"{self.kind} job {row['job_id']!r} already recorded")
            conn.execute(insert(self.table).values(**row))
            return written(self._get(conn, row["job_id"]))

    def update(self, cat: CatalogBase, job_id: Any, fields: dict[str, Any]) -> dict:
        """Set ``fields``; moving to ``running`` stamps started_at, to a terminal status
        finished_at, unless given or already set. Returns the job.

        The status only moves forward: a status at or behind the job's (``running`` again, or
        anything after a terminal one: a run that comes late to a timed-out job) is not written,
        nor the run id given with it; the other fields are. A run taking the job on (``running`` with a run id other than the
        job's, or from ``queued``) counts one more attempt: a retry run carrying it on is the
        job's second."""
        job_id = m.check_value(m.JobId, job_id, "job_id")
        allowed = self.changes.__annotations__
        unknown = set(fields) - set(allowed)
        if unknown:
            raise ValueError(
                f"unknown {self.kind} field(s): {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}"
            )
        values = m.check_value(self.changes, fields)
        key = self.table.c.job_id
        with cat._write() as conn:
            row = conn.execute(select(self.table).where(key == job_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"{self.kind} job {job_id!r} not found")
            values = _forward_only(values, row._mapping)
            values = _with_status_times(values, row._mapping, utcnow())
            if values:
                conn.execute(update(self.table).where(key == job_id).values(**values))
            return written(self._get(conn, job_id))

    def get(self, cat: CatalogBase, job_id: Any) -> dict | None:
        if not isinstance(job_id, str) or not re.fullmatch(m.ID_PATTERN, job_id):
            return None  # cannot exist; lets the API answer 404 for any path segment
        with cat._read() as conn:
            return self._get(conn, job_id)

    def list(self, cat: CatalogBase, limit: Any, **filters: Any) -> list[dict]:
        """Jobs, newest first, where each given (non-None) filter matches."""
        given = m.check_value(self.filters, {k: v for k, v in filters.items() if v is not None})
        query = select(self.table).where(*(self.table.c[k] == v for k, v in given.items()))
        query = query.order_by(self.table.c.created_at.desc(), self.table.c.job_id.desc())
        return cat._rows(limited(query, limit))

    def _get(self, conn: Connection, job_id: str) -> dict | None:
        return plain(conn.execute(select(self.table).where(self.table.c.job_id == job_id)).first())


def _forward_only(values: dict, row: Any) -> dict:
    status = values.get("status")
    if status is None:
        return values
    taken_on = status == "running" and (
        row["status"] == "queued" or ("run_id" in values and values["run_id"] != row["run_id"])
    )
    if taken_on and RANK[row["status"]] <= RANK["running"]:
        values = {**values, "attempts": row["attempts"] + 1}
    if RANK[status] < RANK[row["status"]] or (RANK[status] == RANK[row["status"]] == 2 and status != row["status"]):
        values = {k: v for k, v in values.items() if k not in ("status", "attempts", "run_id")}
    return values


def _with_status_times(values: dict, row: Any, now: datetime) -> dict:
    status = values.get("status")
    if status == "running" and "started_at" not in values and row["started_at"] is None:
        values["started_at"] = now
    if status in TERMINAL_STATUSES and "finished_at" not in values and row["finished_at"] is None:
        values["finished_at"] = now
    return values


SCORES = JobTable(t.score_results, "score", m.NewScore, m.ScoreUpdate, m.ScoreFilter)
TRAININGS = JobTable(t.training_results, "training", m.NewTraining, m.TrainingUpdate, m.TrainingFilter)


class JobsMixin(CatalogBase):
    # -- score jobs

    def record_score(
        self,
        job_id: str,
        *,
        task_id: str,
        gold_video_id: int,
        trainee_video_id: int,
        requested_by: str | None = None,
        run_id: str | None = None,
        status: str = "queued",
        created_at: datetime | None = None,
        exist_ok: bool = False,
        trigger: str = "request",
        previous_job_id: str | None = None,
    ) -> dict:
        """Record a score job (e.g. when it is submitted). With ``exist_ok`` an existing job is
        returned unchanged instead of raising ValueError (re-tried runs). ``trigger``: request,
        or sop_change for a re-run of ``previous_job_id`` against a new SOP version."""
        return SCORES.record(
            self,
            exist_ok,
            job_id=job_id,
            task_id=task_id,
            gold_video_id=gold_video_id,
            trainee_video_id=trainee_video_id,
            requested_by=requested_by,
            run_id=run_id,
            status=status,
            created_at=created_at,
            trigger=trigger,
            previous_job_id=previous_job_id,
        )

    def new_score(self, gold: dict, trainee: dict, **fields: Any) -> str:
        """Record a new score job of the ``trainee`` video against the ``gold`` one (video rows of
        one task; ``fields`` as record_score's); returns its id."""
        job_id = new_job_id("score")
        self.record_score(
            job_id,
            task_id=trainee["task_id"],
            gold_video_id=gold["video_id"],
            trainee_video_id=trainee["video_id"],
            **fields,
        )
        return job_id

    def update_score(self, job_id: str, **fields: Any) -> dict:
        """Update a score job's fields (run_id, status, score, decision, result_path,
        report_path, sop_version, error_message, started_at, finished_at); returns the job.

        Moving to ``running`` stamps started_at, to a terminal status stamps finished_at,
        unless given or already set.
        """
        return SCORES.update(self, job_id, fields)

    def get_score(self, job_id: str) -> dict | None:
        return SCORES.get(self, job_id)

    def claim_pending_scores(self, claim: str, limit: int) -> list[dict]:
        """Mark up to ``limit`` queued score jobs not yet handed to Dagster (no run id), oldest
        first, as claimed by ``claim`` (written as their run id until their run is launched), and
        return them. A job is claimed once however many dispatchers ask at the same moment."""
        table = SCORES.table
        with self._read() as conn:
            ids = [
                r.job_id
                for r in conn.execute(
                    select(table.c.job_id)
                    .where(table.c.status == "queued", table.c.run_id.is_(None))
                    .order_by(table.c.created_at, table.c.job_id)
                    .limit(limit)
                )
            ]
        if not ids:
            return []
        with self._write() as conn:
            conn.execute(
                update(table)
                .where(table.c.job_id.in_(ids), table.c.run_id.is_(None), table.c.status == "queued")
                .values(run_id=claim)
            )
            rows = conn.execute(
                select(table).where(table.c.run_id == claim).order_by(table.c.created_at, table.c.job_id)
            ).all()
            return [written(plain(r)) for r in rows]

    def score_claims(self, prefix: str) -> set[str]:
        """The claims (see claim_pending_scores) starting with ``prefix`` held by queued jobs."""
        table = SCORES.table
        query = select(table.c.run_id).where(
            table.c.run_id.startswith(prefix, autoescape=True), table.c.status == "queued"
        )
        with self._read() as conn:
            return {r.run_id for r in conn.execute(query.distinct())}

    def release_score_claim(self, claim: str) -> int:
        """Give a claim's jobs back to the queue (its dispatcher died before launching their run)."""
        table = SCORES.table
        with self._write() as conn:
            query = update(table).where(table.c.run_id == claim, table.c.status == "queued").values(run_id=None)
            return conn.execute(query).rowcount

    def score_status_counts(self) -> dict[str, int]:
        """Score jobs per status (jobs, not the runs that score them: a run scores many)."""
        table = SCORES.table
        with self._read() as conn:
            rows = conn.execute(select(table.c.status, func.count()).group_by(table.c.status)).all()
        return {status: int(n) for status, n in rows}

    def unfinished_score_runs(self) -> set[str]:
        """The run ids held by score jobs still queued or running (claims included)."""
        table = SCORES.table
        query = select(table.c.run_id).where(table.c.status.in_(("queued", "running")), table.c.run_id.is_not(None))
        with self._read() as conn:
            return {r.run_id for r in conn.execute(query.distinct())}

    def fail_unfinished_scores(self, run_id: str, reason: str) -> list[str]:
        """Fail the jobs of ``run_id`` its run left queued or running (it ended without them)."""
        return self._fail_unfinished_scores(SCORES.table.c.run_id == run_id, reason=reason)

    def fail_scores_older_than(self, cutoff: datetime, reason: str) -> list[str]:
        """Fail the score jobs still queued or running that were requested before ``cutoff``."""
        return self._fail_unfinished_scores(SCORES.table.c.created_at < cutoff, reason=reason)

    def _fail_unfinished_scores(self, *where: Any, reason: str) -> list[str]:
        table = SCORES.table
        where = (*where, table.c.status.in_(("queued", "running")))
        with self._write() as conn:
            ids = [r.job_id for r in conn.execute(select(table.c.job_id).where(*where))]
            if ids:
                values = {"status": "failed", "error_message": reason, "finished_at": utcnow()}
                conn.execute(update(table).where(table.c.job_id.in_(ids)).values(**values))
            return ids

    def list_scores(
        self,
        limit: int | None = 50,
        *,
        task_id: str | None = None,
        status: str | None = None,
        trainee_video_id: int | None = None,
        trigger: str | None = None,
    ) -> list[dict]:
        """Score jobs, newest first."""
        return SCORES.list(
            self, limit, task_id=task_id, status=status, trainee_video_id=trainee_video_id, trigger=trigger
        )

    # -- training jobs

    def record_training(
        self,
        job_id: str,
        *,
        trigger: str,
        requested_by: str | None = None,
        run_id: str | None = None,
        status: str = "queued",
        created_at: datetime | None = None,
        exist_ok: bool = False,
    ) -> dict:
        """Record a training job (trigger 'manual' or 'nightly')."""
        return TRAININGS.record(
            self,
            exist_ok,
            job_id=job_id,
            trigger=trigger,
            requested_by=requested_by,
            run_id=run_id,
            status=status,
            created_at=created_at,
        )

    def update_training(self, job_id: str, **fields: Any) -> dict:
        """Update a training job's fields (run_id, status, mode, adapter_path, videos_used,
        clips_used, embedding_dim, figures, reindex, skip_reason, error_message, started_at,
        finished_at); returns the job. Status times are stamped as in update_score."""
        return TRAININGS.update(self, job_id, fields)

    def get_training(self, job_id: str) -> dict | None:
        return TRAININGS.get(self, job_id)

    def list_trainings(
        self, limit: int | None = 50, *, status: str | None = None, trigger: str | None = None
    ) -> list[dict]:
        """Training jobs, newest first."""
        return TRAININGS.list(self, limit, status=status, trigger=trigger)

    def unfinished_trainings(self) -> list[dict]:
        """Training jobs still queued or running, oldest first."""
        table = TRAININGS.table
        query = select(table).where(table.c.status.in_(("queued", "running"))).order_by(table.c.created_at)
        return self._rows(query)

    def latest_training(self, status: str | None = None, trigger: str | None = None) -> dict | None:
        """The newest training job (optionally with that status / trigger), or None."""
        jobs = self.list_trainings(1, status=status, trigger=trigger)
        return jobs[0] if jobs else None

"""The audit trail (every ingest, score and training job) and its signed exports."""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from sopilot_pipelines.catalog import models as m
from sopilot_pipelines.catalog import tables as t
from sopilot_pipelines.catalog.base import CatalogBase, plain, written
from sopilot_pipelines.catalog.tables import utcnow

_VIDEO_TO_JOB_STATUS = {"pending": "queued", "ready": "completed", "failed": "failed"}


class AuditMixin(CatalogBase):
    def record_export(
        self,
        export_id: str,
        *,
        file_path: str | os.PathLike,
        item_count: int,
        key_id: str,
        payload_sha256: str,
        signature_hex: str,
        generated_at: datetime | None = None,
        algorithm: str = "hmac-sha256",
        requested_by: str | None = None,
    ) -> dict:
        """Record a signed audit export; returns it."""
        new = m.check(
            m.NewExport,
            export_id=export_id,
            file_path=file_path,
            item_count=item_count,
            key_id=key_id,
            payload_sha256=payload_sha256,
            signature_hex=signature_hex,
            generated_at=generated_at or utcnow(),
            algorithm=algorithm,
            requested_by=requested_by,
        )
        key = t.audit_exports.c.export_id
        with self._write() as conn:
            if conn.execute(select(key).where(key == new.export_id)).first() is not None:
                raise ValueError(f"export {new.export_id!r} already recorded")
            conn.execute(insert(t.audit_exports).values(**new.model_dump()))
            return written(plain(conn.execute(select(t.audit_exports).where(key == new.export_id)).first()))

    def get_export(self, export_id: str) -> dict | None:
        if not isinstance(export_id, str) or not re.fullmatch(m.ID_PATTERN, export_id):
            return None
        rows = self._rows(select(t.audit_exports).where(t.audit_exports.c.export_id == export_id))
        return rows[0] if rows else None

    def audit_trail(self, limit: int = 100) -> list[dict]:
        """Ingest, score and training jobs, newest first, in the contract's audit-trail shape
        (job_id, job_type, requested_by, task_id, subject, status, model_name, score,
        error_message, queued_at, started_at, finished_at, created_at) plus run_id and, for
        ingest jobs, video_id.

        ``status`` is the catalog's record; the API may overlay live Dagster status by run_id.
        An ingest job's id is its Dagster run id (``video_<id>`` before a run is attached).
        """
        limit = m.check_value(m.Limit, limit, "limit") if limit is not None else 100
        v, s, tr = t.videos, t.score_results, t.training_results
        with self._read() as conn:
            ingests = conn.execute(select(v).order_by(v.c.created_at.desc(), v.c.id.desc()).limit(limit)).all()
            scores = conn.execute(select(s).order_by(s.c.created_at.desc(), s.c.job_id.desc()).limit(limit)).all()
            trainings = conn.execute(select(tr).order_by(tr.c.created_at.desc(), tr.c.job_id.desc()).limit(limit)).all()
        items = [_ingest_item(r) for r in ingests]
        items += [
            _job_item(r, "score", r.task_id, f"{r.gold_video_id}\u2192{r.trainee_video_id}", None, r.score)
            for r in scores
        ]
        items += [_job_item(r, "training", None, r.trigger, r.mode, None) for r in trainings]
        items.sort(key=lambda i: (i["created_at"], i["job_id"]), reverse=True)
        return items[:limit]


def _ingest_item(r: Any) -> dict:
    done = r.status in ("ready", "failed")
    return {
        "job_id": r.ingest_run_id or f"video_{r.id}",
        "job_type": "ingest",
        "requested_by": r.requested_by,
        "task_id": r.task_id,
        "subject": f"{r.role}:{r.id}",
        "status": _VIDEO_TO_JOB_STATUS[r.status],
        "model_name": r.embedding_model,
        "score": None,
        "error_message": r.error_message,
        "queued_at": r.created_at,
        "started_at": None,
        "finished_at": r.updated_at if done else None,
        "created_at": r.created_at,
        "run_id": r.ingest_run_id,
        "video_id": r.id,
    }


def _job_item(
    r: Any, job_type: str, task_id: str | None, subject: str, model_name: str | None, score: float | None
) -> dict:
    return {
        "job_id": r.job_id,
        "job_type": job_type,
        "requested_by": r.requested_by,
        "task_id": task_id,
        "subject": subject,
        "status": r.status,
        "model_name": model_name,
        "score": score,
        "error_message": r.error_message,
        "queued_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "created_at": r.created_at,
        "run_id": r.run_id,
    }

"""Videos and their clips: registration, ingest facts, gold versions, listing, deletion."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from sopilot_pipelines.catalog import models as m
from sopilot_pipelines.catalog import tables as t
from sopilot_pipelines.catalog.base import CatalogBase, IngestSuperseded, NotFoundError, limited, next_in_task, written
from sopilot_pipelines.catalog.engine import LOCK_GOLD_VERSION
from sopilot_pipelines.catalog.tables import utcnow


def _superseded(row: Any) -> IngestSuperseded:
    return IngestSuperseded(f"video {row.id} was failed while this run ingested it: {row.error_message}")


def validate_task_id(task_id: Any) -> str:
    """``task_id`` if it is a valid task id (1-64 of letters, digits, '_', '-', '.'), else ValueError."""
    return m.check_value(m.TaskId, task_id, "task_id")


def _video(row: Any) -> dict:
    d = dict(row._mapping)
    return {"video_id": d.pop("id"), **d}


def _video_or_none(row: Any) -> dict | None:
    return None if row is None else _video(row)


def _video_id(value: Any) -> int:
    return m.check_value(m.VideoId, value, "video_id")


def _where(query, filters: dict[str, Any]):
    given = m.check_value(m.VideoFilter, {k: v for k, v in filters.items() if v is not None})
    return query.where(*(t.videos.c[k] == v for k, v in given.items()))


class VideosMixin(CatalogBase):
    def add_video(
        self,
        task_id: str,
        role: str,
        *,
        site_id: str | None = None,
        camera_id: str | None = None,
        operator_id_hash: str | None = None,
        original_filename: str | None = None,
        raw_path: str | os.PathLike | None = None,
        requested_by: str | None = None,
        upload_steps: list[dict] | None = None,
    ) -> int:
        """Insert a pending video; returns its integer id (increasing, never reused).
        ``upload_steps``: a gold's steps given at upload, the task's SOP once it is ingested."""
        new = m.check(
            m.NewVideo,
            task_id=task_id,
            role=role,
            site_id=site_id,
            camera_id=camera_id,
            operator_id_hash=operator_id_hash,
            original_filename=original_filename,
            raw_path=raw_path,
            requested_by=requested_by,
            upload_steps=upload_steps,
        )
        if new.upload_steps is not None and new.role != "gold":
            raise ValueError("upload_steps: only a gold video carries the task's steps")
        now = utcnow()
        with self._write() as conn:
            values = {**new.model_dump(), "status": "pending", "created_at": now, "updated_at": now}
            key = conn.execute(insert(t.videos).values(**values)).inserted_primary_key
            assert key is not None  # an INSERT with an autoincrement key has one
            return int(key[0])

    def set_video_paths(
        self,
        video_id: int,
        *,
        raw_path: str | os.PathLike | None = None,
        raw_embeddings_path: str | os.PathLike | None = None,
        embeddings_path: str | os.PathLike | None = None,
        meta_path: str | os.PathLike | None = None,
        original_filename: str | None = None,
    ) -> dict:
        """Set the given (non-None) file paths; returns the video."""
        video_id = _video_id(video_id)
        paths = m.check(
            m.VideoPaths,
            raw_path=raw_path,
            raw_embeddings_path=raw_embeddings_path,
            embeddings_path=embeddings_path,
            meta_path=meta_path,
            original_filename=original_filename,
        )
        return self._update_video(video_id, paths.model_dump(exclude_none=True))

    def set_ingest_run(self, video_id: int, run_id: str) -> dict:
        """Record the Dagster run ingesting the video (the contract's ingest_job_id)."""
        video_id = _video_id(video_id)
        run_id = m.check_value(m.RunId, run_id, "run_id")
        if run_id is None:
            raise ValueError("run_id is required")
        return self._update_video(video_id, {"ingest_run_id": run_id})

    def begin_ingest(self, video_id: int, attempt: str) -> dict | None:
        """A run (``attempt``: its first run's id, which Dagster's retries of it share) starts
        ingesting the video; returns the video, or None if it is not in the catalog.

        A video failed under another attempt is taken on again: pending, with this attempt as its
        ingest run (a data engineer re-materializing it). A video failed under this very attempt
        was failed while it ran (its time-out): IngestSuperseded, and it stays failed."""
        video_id = _video_id(video_id)
        attempt = m.check_value(m.RunId, attempt, "attempt")
        with self._write() as conn:
            row = conn.execute(select(t.videos).where(t.videos.c.id == video_id).with_for_update()).first()
            if row is None:
                return None
            if row.status == "failed" and row.ingest_run_id == attempt:
                raise _superseded(row)
            values: dict[str, Any] = {}
            if row.status == "failed":
                values = {"status": "pending", "error_message": None, "ingest_run_id": attempt}
            elif not row.ingest_run_id:
                values = {"ingest_run_id": attempt}
            if values:
                values["updated_at"] = utcnow()
                conn.execute(update(t.videos).where(t.videos.c.id == video_id).values(**values))
            return written(self._get_video(conn, video_id))

    def mark_video_ready(
        self,
        video_id: int,
        *,
        embedding_model: str,
        num_clips: int,
        source_fps: float,
        sampled_fps: float,
        duration_sec: float,
        embeddings_path: str | os.PathLike | None,
        raw_embeddings_path: str | os.PathLike | None,
        meta_path: str | os.PathLike | None,
        clips: Iterable[Mapping[str, Any]],
    ) -> dict:
        """Mark the video ready with its ingest facts and replace its clips, atomically.

        Idempotent for re-runs: clips are replaced, and a gold video keeps the gold_version it
        was given the first time (max + 1 within its task). Returns the video. A video failed
        since its run began (``begin_ingest``) stays failed: IngestSuperseded.
        """
        video_id = _video_id(video_id)
        ready = m.check(
            m.VideoReady,
            embedding_model=embedding_model,
            num_clips=num_clips,
            source_fps=source_fps,
            sampled_fps=sampled_fps,
            duration_sec=duration_sec,
            embeddings_path=embeddings_path,
            raw_embeddings_path=raw_embeddings_path,
            meta_path=meta_path,
            clips=clips,
        )
        if len(ready.clips) != ready.num_clips:
            raise ValueError(f"num_clips={ready.num_clips} but {len(ready.clips)} clips given")
        values = {**ready.model_dump(exclude={"clips"}), "status": "ready", "error_message": None}
        clip_rows = [{"video_id": video_id, **c.model_dump()} for c in ready.clips]

        with self._write() as conn:
            row = conn.execute(select(t.videos).where(t.videos.c.id == video_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"video {video_id} not found")
            if row.status == "failed":
                raise _superseded(row)
            if row.role == "gold" and row.gold_version is None:
                values["gold_version"] = next_in_task(conn, t.videos.c.gold_version, LOCK_GOLD_VERSION, row.task_id)
            values["updated_at"] = utcnow()
            conn.execute(update(t.videos).where(t.videos.c.id == video_id).values(**values))
            conn.execute(delete(t.clips).where(t.clips.c.video_id == video_id))
            if clip_rows:
                conn.execute(insert(t.clips), clip_rows)
            return written(self._get_video(conn, video_id))

    def set_auto_steps(self, video_id: int, steps: list[dict]) -> dict:
        """Record a gold's automatic segmentation (its steps as the SOP's version 0)."""
        rows = [m.check(m.SopStep, **st).model_dump() for st in steps]
        return self._update_video(_video_id(video_id), {"auto_steps": rows})

    def mark_video_failed(self, video_id: int, error: Any) -> dict:
        """Mark the video failed with an error message; returns the video."""
        message = m.check_value(m.ErrorText, error) or "unknown error"
        return self._update_video(_video_id(video_id), {"status": "failed", "error_message": message})

    def fail_pending_video(self, video_id: int, error: Any) -> bool:
        """Mark the video failed only if it is still pending (a time-out never fails a video its
        ingest has just made ready); True when it did."""
        message = m.check_value(m.ErrorText, error) or "unknown error"
        query = (
            update(t.videos)
            .where(t.videos.c.id == _video_id(video_id), t.videos.c.status == "pending")
            .values(status="failed", error_message=message, updated_at=utcnow())
        )
        with self._write() as conn:
            return conn.execute(query).rowcount > 0

    def pending_ingests_before(self, cutoff: datetime) -> list[dict]:
        """Videos still pending whose ingest was handed to Dagster before ``cutoff``."""
        before = m.check_value(AwareDatetime, cutoff, "cutoff")
        query = select(t.videos).where(
            t.videos.c.status == "pending", t.videos.c.ingest_run_id.is_not(None), t.videos.c.created_at < before
        )
        with self._read() as conn:
            return [_video(r) for r in conn.execute(query.order_by(t.videos.c.id))]

    def get_video(self, video_id: int) -> dict | None:
        video_id = _video_id(video_id)
        with self._read() as conn:
            return self._get_video(conn, video_id)

    def list_videos(
        self,
        task_id: str | None = None,
        limit: int | None = 50,
        role: str | None = None,
        status: str | None = None,
    ) -> list[dict]:
        """Videos, newest first, optionally filtered; ``limit=None`` for all."""
        query = _where(select(t.videos), {"task_id": task_id, "role": role, "status": status})
        with self._read() as conn:
            return [_video(r) for r in conn.execute(limited(query.order_by(t.videos.c.id.desc()), limit))]

    def current_gold(self, task_id: str) -> dict | None:
        """The task's ready gold video with the highest gold_version, or None."""
        query = (
            _where(select(t.videos), {"task_id": task_id, "role": "gold", "status": "ready"})
            .where(t.videos.c.gold_version.is_not(None))
            .order_by(t.videos.c.gold_version.desc())
            .limit(1)
        )
        with self._read() as conn:
            return _video_or_none(conn.execute(query).first())

    def delete_video(self, video_id: int) -> dict | None:
        """Delete the video (its clips cascade); returns the deleted row (for removing its
        files), or None if there was none. Score results referring to it stay (audit)."""
        video_id = _video_id(video_id)
        with self._write() as conn:
            row = self._get_video(conn, video_id)
            if row is None:
                return None
            conn.execute(delete(t.videos).where(t.videos.c.id == video_id))
            return row

    def videos_since(self, ts: datetime, *, role: str | None = None, status: str | None = None) -> int:
        """How many videos were created at or after ``ts`` (e.g. new since the last training)."""
        since = m.check_value(AwareDatetime, ts, "ts")
        query = _where(select(func.count()).select_from(t.videos), {"role": role, "status": status})
        with self._read() as conn:
            return int(conn.execute(query.where(t.videos.c.created_at >= since)).scalar_one())

    def clips_of(self, video_id: int) -> list[dict]:
        """The video's clips ordered by clip_idx."""
        video_id = _video_id(video_id)
        return self._rows(select(t.clips).where(t.clips.c.video_id == video_id).order_by(t.clips.c.clip_idx))

    def _get_video(self, conn: Connection, video_id: int) -> dict | None:
        return _video_or_none(conn.execute(select(t.videos).where(t.videos.c.id == video_id)).first())

    def _update_video(self, video_id: int, values: dict) -> dict:
        with self._write() as conn:
            if values:
                values["updated_at"] = utcnow()
                result = conn.execute(update(t.videos).where(t.videos.c.id == video_id).values(**values))
                if result.rowcount == 0:
                    raise NotFoundError(f"video {video_id} not found")
            row = self._get_video(conn, video_id)
            if row is None:
                raise NotFoundError(f"video {video_id} not found")
            return row

"""Index versions: one row per build of a task's search index, numbered within the task."""

from __future__ import annotations

import os

from sqlalchemy import select

from sopilot_pipelines.catalog import models as m
from sopilot_pipelines.catalog import tables as t
from sopilot_pipelines.catalog.base import CatalogBase, insert_version, limited
from sopilot_pipelines.catalog.engine import LOCK_INDEX_VERSION
from sopilot_pipelines.catalog.videos import validate_task_id


class IndexVersionsMixin(CatalogBase):
    def add_index_version(
        self,
        task_id: str,
        path: str | os.PathLike,
        clips: int,
        videos: int,
        *,
        fingerprint: str | None = None,
        adapter: str | None = None,
    ) -> int:
        """Record a new index build of the task; returns its version (max + 1 within the task,
        atomic under concurrent writers). fingerprint: of the ready videos it holds; adapter:
        the training job whose adapter its vectors went through ("identity" before any)."""
        new = m.check(
            m.NewIndexVersion,
            task_id=task_id,
            path=path,
            clips_indexed=clips,
            videos=videos,
            fingerprint=fingerprint,
            adapter=adapter,
        )
        with self._write() as conn:
            return insert_version(conn, t.index_versions, LOCK_INDEX_VERSION, new.model_dump())

    def current_index_version(self, task_id: str) -> dict | None:
        """The task's newest index version row, or None."""
        rows = self.list_index_versions(task_id, limit=1)
        return rows[0] if rows else None

    def list_index_versions(self, task_id: str, limit: int | None = 50) -> list[dict]:
        """The task's index versions, newest first."""
        iv = t.index_versions
        query = select(iv).where(iv.c.task_id == validate_task_id(task_id)).order_by(iv.c.version.desc())
        return self._rows(limited(query, limit))

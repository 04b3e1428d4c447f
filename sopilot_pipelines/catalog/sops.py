"""A task's SOP, versioned: steps marked on one of its golds (versions 1, 2, ... per task; the
automatic segmentation of the current gold is version 0 and is never stored here), and the
task summaries of GET /tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, union, update

from sopilot_pipelines.catalog import models as m
from sopilot_pipelines.catalog import tables as t
from sopilot_pipelines.catalog.base import CatalogBase, NotFoundError, insert_version, plain, written
from sopilot_pipelines.catalog.engine import LOCK_SOP_VERSION
from sopilot_pipelines.catalog.videos import validate_task_id


class SopsMixin(CatalogBase):
    def add_sop(
        self,
        task_id: str,
        *,
        gold_video_id: int,
        steps: list[dict],
        source: str = "user",
        requested_by: str | None = None,
    ) -> dict:
        """Store a new version of the task's SOP (max + 1 within the task, atomic under concurrent
        writers); returns it. The steps are checked as a list by ``core.sop.parse_steps`` first."""
        new = m.check(
            m.NewSop,
            task_id=task_id,
            source=source,
            gold_video_id=gold_video_id,
            steps=steps,
            requested_by=requested_by,
        )
        with self._write() as conn:
            version = insert_version(conn, t.task_sops, LOCK_SOP_VERSION, new.model_dump())
            return written(self._sop(conn, new.task_id, version))

    def current_sop(self, task_id: str) -> dict | None:
        """The task's newest stored SOP version, or None (then version 0, automatic, applies)."""
        ts = t.task_sops
        query = select(ts).where(ts.c.task_id == validate_task_id(task_id)).order_by(ts.c.version.desc()).limit(1)
        with self._read() as conn:
            return plain(conn.execute(query).first())

    def sop_view(self, task_id: str) -> dict | None:
        """The SOP in force: the newest stored version, else version 0 (source auto, the current
        gold's automatic segmentation recorded at its ingest); None for a task with no gold."""
        sop = self.current_sop(task_id)
        if sop is not None:
            return {**sop, "per_gold": sop["per_gold"] or {}}
        gold = self.current_gold(task_id)  # type: ignore[attr-defined]  # VideosMixin, beside this in Catalog
        if gold is None:
            return None
        return {
            "task_id": task_id,
            "version": 0,
            "source": "auto",
            "gold_video_id": gold["video_id"],
            "steps": gold["auto_steps"] or [],
            "per_gold": {},
            "created_at": gold["updated_at"],
            "requested_by": None,
        }

    def get_sop(self, task_id: str, version: int) -> dict | None:
        with self._read() as conn:
            return self._sop(conn, validate_task_id(task_id), m.check_value(m.Count, version, "version"))

    def set_sop_per_gold(self, task_id: str, version: int, per_gold: dict[str, Any]) -> dict:
        """The SOP's steps carried to the task's other golds: {video_id: [[start, end], ...]}."""
        task_id, version = validate_task_id(task_id), m.check_value(m.Count, version, "version")
        value = m.check_value(
            m.PerGold, {str(k): [list(map(float, s)) for s in v] for k, v in per_gold.items()}, "per_gold"
        )
        ts = t.task_sops
        with self._write() as conn:
            where = (ts.c.task_id == task_id) & (ts.c.version == version)
            if conn.execute(update(ts).where(where).values(per_gold=value)).rowcount == 0:
                raise NotFoundError(f"task {task_id!r} has no SOP version {version}")
            return written(self._sop(conn, task_id, version))

    def golds(self, task_id: str) -> list[dict]:
        """The task's ready gold videos, oldest gold version first."""
        v = t.videos
        query = (
            select(v)
            .where(
                v.c.task_id == validate_task_id(task_id),
                v.c.role == "gold",
                v.c.status == "ready",
                v.c.gold_version.is_not(None),
            )
            .order_by(v.c.gold_version)
        )
        return [{"video_id": r.pop("id"), **r} for r in self._rows(query)]

    def latest_scores_by_trainee(self, task_id: str) -> list[dict]:
        """The task's newest completed score of each trainee video (what a re-score re-runs)."""
        s = t.score_results
        newest = (
            select(s.c.trainee_video_id, func.max(s.c.created_at).label("at"))
            .where(s.c.task_id == validate_task_id(task_id), s.c.status == "completed")
            .group_by(s.c.trainee_video_id)
            .subquery()
        )
        query = (
            select(s)
            .join(newest, (s.c.trainee_video_id == newest.c.trainee_video_id) & (s.c.created_at == newest.c.at))
            .where(s.c.task_id == task_id, s.c.status == "completed")
            .order_by(s.c.trainee_video_id)
        )
        seen, out = set(), []
        for row in self._rows(query):  # two jobs created in the same instant: keep one
            if row["trainee_video_id"] not in seen:
                seen.add(row["trainee_video_id"])
                out.append(row)
        return out

    def list_tasks(self) -> list[dict]:
        """Every task with a video or a score: its ready golds, SOP version and source, how many
        videos and scores, and when it was last scored; by task id."""
        v, s, ts = t.videos, t.score_results, t.task_sops
        ids = union(select(v.c.task_id), select(s.c.task_id)).subquery()
        with self._read() as conn:
            task_ids = sorted(r[0] for r in conn.execute(select(ids.c.task_id)))
            videos: dict[str, int] = dict(conn.execute(select(v.c.task_id, func.count()).group_by(v.c.task_id)).all())
            counts: dict[str, int] = dict(conn.execute(select(s.c.task_id, func.count()).group_by(s.c.task_id)).all())
            last = dict(
                conn.execute(
                    select(s.c.task_id, func.max(s.c.finished_at))
                    .where(s.c.status == "completed")
                    .group_by(s.c.task_id)
                ).all()
            )
            versions = dict(conn.execute(select(ts.c.task_id, func.max(ts.c.version)).group_by(ts.c.task_id)).all())
            golds: dict[str, list[int]] = {}
            for task, vid in conn.execute(
                select(v.c.task_id, v.c.id)
                .where(v.c.role == "gold", v.c.status == "ready", v.c.gold_version.is_not(None))
                .order_by(v.c.gold_version)
            ):
                golds.setdefault(task, []).append(vid)
        return [
            {
                "task_id": task,
                "gold_video_ids": golds.get(task, []),
                "sop_version": versions.get(task, 0),
                "sop_source": "user" if task in versions else "auto",
                "video_count": int(videos.get(task, 0)),
                "score_count": int(counts.get(task, 0)),
                "last_scored_at": _aware(last.get(task)),
            }
            for task in task_ids
        ]

    def _sop(self, conn, task_id: str, version: int) -> dict | None:
        ts = t.task_sops
        return plain(conn.execute(select(ts).where(ts.c.task_id == task_id, ts.c.version == version)).first())


def _aware(value):
    """An aggregate bypasses the column type (SQLite gives text back): a UTC datetime again."""
    return (
        None
        if value is None
        else t.UTCDateTime().process_result_value(
            datetime.fromisoformat(value) if isinstance(value, str) else value, None
        )
    )

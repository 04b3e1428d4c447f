"""The catalog store: domain facts about videos, clips, results and exports.

Every public method is one transaction (``engine.begin()``): it commits whole or not at all.
Methods return plain dicts (column name -> value; a video's primary key is ``video_id``) or
None when the thing asked for does not exist; writes to something missing raise
``NotFoundError``; bad input raises ``ValueError`` before anything touches the database.
Timestamps are timezone-aware UTC datetimes, in and out.

Job *status* for the API comes from Dagster's run storage; the status kept here is the
domain's own record (what the run reported), used by the audit trail and by the pipelines.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import URL, Connection, Engine

from sopilot_pipelines.catalog import tables as t
from sopilot_pipelines.catalog.engine import (
    LOCK_GOLD_VERSION,
    LOCK_INDEX_VERSION,
    advisory_xact_lock,
    create_catalog_engine,
    safe_url,
    url_from_env,
    writer,
)
from sopilot_pipelines.catalog.migrations import upgrade
from sopilot_pipelines.catalog.tables import utcnow

TASK_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
JOB_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
TERMINAL_STATUSES = ("completed", "failed", "skipped", "canceled")
MAX_ERROR_CHARS = 10_000


class NotFoundError(LookupError):
    """A write addressed a video / job that does not exist."""


# --------------------------------------------------------------------------- validation


def validate_task_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("task_id must be a non-empty string")
    if not TASK_ID_RE.fullmatch(task_id):
        raise ValueError(
            f"invalid task_id {task_id!r}: use 1-64 characters of letters, digits, '_', '-', '.'"
        )
    return task_id


def _role(role: Any) -> str:
    if role not in t.ROLES:
        raise ValueError(f"invalid role {role!r}: expected one of {', '.join(t.ROLES)}")
    return role


def _choice(name: str, value: Any, choices: tuple[str, ...], optional: bool = False):
    if value is None and optional:
        return None
    if value not in choices:
        raise ValueError(f"invalid {name} {value!r}: expected one of {', '.join(choices)}")
    return value


def _job_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not JOB_ID_RE.fullmatch(value):
        raise ValueError(
            f"invalid {name} {value!r}: use 1-64 characters of letters, digits, '_', '-', '.'"
        )
    return value


def _video_id(value: Any, name: str = "video_id") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _label(name: str, value: Any, max_len: int = t.LABEL_LEN, required: bool = False):
    """Optional short text: None or blank -> None; otherwise a stripped str within max_len."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    value = value.strip()
    if len(value) > max_len:
        raise ValueError(f"{name} is longer than {max_len} characters")
    return value


def _path(name: str, value: Any, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path, got {type(value).__name__}")
    value = os.fspath(value)
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _int(name: str, value: Any, minimum: int = 0, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _float(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    optional: bool = False,
) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def _ts(name: str, value: Any, optional: bool = False) -> datetime | None:
    if value is None and optional:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value


def _json(name: str, value: Any):
    if value is None:
        return None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None
    return value


def _error(value: Any) -> str | None:
    if value is None:
        return None
    text_ = str(value)
    return text_[:MAX_ERROR_CHARS]


def _limit(limit: Any) -> int | None:
    if limit is None:
        return None
    return _int("limit", limit, minimum=1)


def _clip_rows(video_id: int, clips_: Iterable[Mapping[str, Any]]) -> list[dict]:
    rows = []
    for i, clip in enumerate(clips_):
        if not isinstance(clip, Mapping):
            raise ValueError(f"clips[{i}] must be a mapping, got {type(clip).__name__}")
        missing = {"clip_idx", "start_sec", "end_sec"} - clip.keys()
        if missing:
            raise ValueError(f"clips[{i}] lacks {', '.join(sorted(missing))}")
        quality = clip.get("quality")
        if quality is not None and not isinstance(quality, str):
            raise ValueError(f"clips[{i}].quality must be a string or None")
        rows.append(
            {
                "video_id": video_id,
                "clip_idx": _int(f"clips[{i}].clip_idx", clip["clip_idx"], minimum=-(2**31)),
                "start_sec": _float(f"clips[{i}].start_sec", clip["start_sec"]),
                "end_sec": _float(f"clips[{i}].end_sec", clip["end_sec"]),
                "quality": quality,
            }
        )
    # Ranges (clip_idx >= 0, 0 <= start <= end) and uniqueness are the tables' constraints.
    return rows


# Columns each update_* may set, with their validators.
_SCORE_FIELDS = {
    "run_id": lambda v: _label("run_id", v, t.RUN_ID_LEN),
    "status": lambda v: _choice("status", v, t.JOB_STATUSES),
    "score": lambda v: _float("score", v, minimum=0.0, maximum=100.0, optional=True),
    "decision": lambda v: _choice("decision", v, t.DECISIONS, optional=True),
    "result_path": lambda v: _path("result_path", v),
    "report_path": lambda v: _path("report_path", v),
    "error_message": _error,
    "started_at": lambda v: _ts("started_at", v, optional=True),
    "finished_at": lambda v: _ts("finished_at", v, optional=True),
}

_TRAINING_FIELDS = {
    "run_id": lambda v: _label("run_id", v, t.RUN_ID_LEN),
    "status": lambda v: _choice("status", v, t.TRAINING_STATUSES),
    "mode": lambda v: _label("mode", v),
    "adapter_path": lambda v: _path("adapter_path", v),
    "videos_used": lambda v: _int("videos_used", v, optional=True),
    "clips_used": lambda v: _int("clips_used", v, optional=True),
    "embedding_dim": lambda v: _int("embedding_dim", v, optional=True),
    "figures": lambda v: _json("figures", v),
    "reindex": lambda v: _json("reindex", v),
    "skip_reason": lambda v: _label("skip_reason", v, max_len=MAX_ERROR_CHARS),
    "error_message": _error,
    "started_at": lambda v: _ts("started_at", v, optional=True),
    "finished_at": lambda v: _ts("finished_at", v, optional=True),
}


def _check_fields(kind: str, fields: Mapping[str, Any], allowed: Mapping[str, Any]) -> dict:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(
            f"unknown {kind} field(s): {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return {k: allowed[k](v) for k, v in fields.items()}


def _with_status_times(values: dict, row: Mapping[str, Any], now: datetime) -> dict:
    """Stamp started_at / finished_at on the first move to running / a terminal status."""
    status = values.get("status")
    if status == "running" and "started_at" not in values and row["started_at"] is None:
        values["started_at"] = now
    if status in TERMINAL_STATUSES and "finished_at" not in values and row["finished_at"] is None:
        values["finished_at"] = now
    return values


# --------------------------------------------------------------------------- rows -> dicts


def _video(row) -> dict | None:
    if row is None:
        return None
    d = dict(row._mapping)
    return {"video_id": d.pop("id"), **d}


def _plain(row) -> dict | None:
    return None if row is None else dict(row._mapping)


_VIDEO_TO_JOB_STATUS = {"pending": "queued", "ready": "completed", "failed": "failed"}


# --------------------------------------------------------------------------- the store


class Catalog:
    """The SOPilot catalog on SQLite (embedded default) or PostgreSQL (by URL).

    Construction applies migrations (idempotent, safe from several processes at once).
    """

    def __init__(self, url: str | URL, *, migrate: bool = True, echo: bool = False):
        self.engine: Engine = create_catalog_engine(url, echo=echo)
        self._writer = writer(self.engine)
        if migrate:
            upgrade(self.engine)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs) -> "Catalog":
        """SOPILOT_DATABASE_URL, else SQLite at $SOPILOT_DATA_DIR/catalog.db (default ./data),
        creating the directory."""
        return cls(url_from_env(None if environ is None else dict(environ)), **kwargs)

    # -- plumbing

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return safe_url(self.engine)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name  # "sqlite" | "postgresql"

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self):
        return self.engine.begin()

    def _write(self):
        return self._writer.begin()  # SQLite: BEGIN IMMEDIATE (writers queue, never interleave)

    def ping(self) -> bool:
        """True if the database answers (for /health)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    # -- videos

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
    ) -> int:
        """Insert a pending video; returns its integer id (increasing, never reused)."""
        now = utcnow()
        values = {
            "task_id": validate_task_id(task_id),
            "role": _role(role),
            "site_id": _label("site_id", site_id),
            "camera_id": _label("camera_id", camera_id),
            "operator_id_hash": _label("operator_id_hash", operator_id_hash),
            "original_filename": _label("original_filename", original_filename, 512),
            "raw_path": _path("raw_path", raw_path),
            "requested_by": _label("requested_by", requested_by),
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        }
        with self._write() as conn:
            result = conn.execute(insert(t.videos).values(**values))
            return int(result.inserted_primary_key[0])

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
        values = {
            "raw_path": _path("raw_path", raw_path),
            "raw_embeddings_path": _path("raw_embeddings_path", raw_embeddings_path),
            "embeddings_path": _path("embeddings_path", embeddings_path),
            "meta_path": _path("meta_path", meta_path),
            "original_filename": _label("original_filename", original_filename, 512),
        }
        return self._update_video(video_id, {k: v for k, v in values.items() if v is not None})

    def set_ingest_run(self, video_id: int, run_id: str) -> dict:
        """Record the Dagster run ingesting the video (the contract's ingest_job_id)."""
        run_id = _label("run_id", run_id, t.RUN_ID_LEN, required=True)
        return self._update_video(_video_id(video_id), {"ingest_run_id": run_id})

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
        was given the first time (max + 1 within its task). Returns the video.
        """
        video_id = _video_id(video_id)
        values = {
            "embedding_model": _label("embedding_model", embedding_model, required=True),
            "num_clips": _int("num_clips", num_clips),
            "source_fps": _float("source_fps", source_fps, positive=True),
            "sampled_fps": _float("sampled_fps", sampled_fps, positive=True),
            "duration_sec": _float("duration_sec", duration_sec, minimum=0.0),
            "embeddings_path": _path("embeddings_path", embeddings_path),
            "raw_embeddings_path": _path("raw_embeddings_path", raw_embeddings_path),
            "meta_path": _path("meta_path", meta_path),
            "status": "ready",
            "error_message": None,
        }
        if isinstance(clips, (str, bytes)) or not isinstance(clips, Iterable):
            raise ValueError("clips must be a list of mappings")
        clip_rows = _clip_rows(video_id, clips)
        if len(clip_rows) != values["num_clips"]:
            raise ValueError(f"num_clips={values['num_clips']} but {len(clip_rows)} clips given")

        with self._write() as conn:
            row = conn.execute(
                select(t.videos).where(t.videos.c.id == video_id).with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"video {video_id} not found")
            if row.role == "gold" and row.gold_version is None:
                advisory_xact_lock(conn, LOCK_GOLD_VERSION, row.task_id)
                latest = conn.execute(
                    select(func.max(t.videos.c.gold_version)).where(
                        t.videos.c.task_id == row.task_id
                    )
                ).scalar()
                values["gold_version"] = (latest or 0) + 1
            values["updated_at"] = utcnow()
            conn.execute(update(t.videos).where(t.videos.c.id == video_id).values(**values))
            conn.execute(delete(t.clips).where(t.clips.c.video_id == video_id))
            if clip_rows:
                conn.execute(insert(t.clips), clip_rows)
            return self._get_video(conn, video_id)

    def mark_video_failed(self, video_id: int, error: Any) -> dict:
        """Mark the video failed with an error message; returns the video."""
        message = _error(error) or "unknown error"
        return self._update_video(
            _video_id(video_id), {"status": "failed", "error_message": message}
        )

    def get_video(self, video_id: int) -> dict | None:
        video_id = _video_id(video_id)
        with self._read() as conn:
            return self._get_video(conn, video_id)

    def video_by_run(self, run_id: str) -> dict | None:
        """The video whose ingest run is ``run_id`` (for GET /videos/jobs/{ingest_job_id})."""
        if not isinstance(run_id, str) or not run_id:
            return None
        with self._read() as conn:
            row = conn.execute(
                select(t.videos)
                .where(t.videos.c.ingest_run_id == run_id)
                .order_by(t.videos.c.id.desc())
                .limit(1)
            ).first()
            return _video(row)

    def list_videos(
        self,
        task_id: str | None = None,
        limit: int | None = 50,
        role: str | None = None,
        status: str | None = None,
    ) -> list[dict]:
        """Videos, newest first, optionally filtered; ``limit=None`` for all."""
        query = select(t.videos).order_by(t.videos.c.id.desc())
        if task_id is not None:
            query = query.where(t.videos.c.task_id == validate_task_id(task_id))
        if role is not None:
            query = query.where(t.videos.c.role == _role(role))
        if status is not None:
            query = query.where(t.videos.c.status == _choice("status", status, t.VIDEO_STATUSES))
        limit = _limit(limit)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_video(r) for r in conn.execute(query)]

    def current_gold(self, task_id: str) -> dict | None:
        """The task's ready gold video with the highest gold_version, or None."""
        task_id = validate_task_id(task_id)
        with self._read() as conn:
            row = conn.execute(
                select(t.videos)
                .where(
                    t.videos.c.task_id == task_id,
                    t.videos.c.role == "gold",
                    t.videos.c.status == "ready",
                    t.videos.c.gold_version.is_not(None),
                )
                .order_by(t.videos.c.gold_version.desc())
                .limit(1)
            ).first()
            return _video(row)

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

    def videos_since(
        self, ts: datetime, *, role: str | None = None, status: str | None = None
    ) -> int:
        """How many videos were created at or after ``ts`` (e.g. new since the last training)."""
        query = select(func.count()).select_from(t.videos).where(
            t.videos.c.created_at >= _ts("ts", ts)
        )
        if role is not None:
            query = query.where(t.videos.c.role == _role(role))
        if status is not None:
            query = query.where(t.videos.c.status == _choice("status", status, t.VIDEO_STATUSES))
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def clips_of(self, video_id: int) -> list[dict]:
        """The video's clips ordered by clip_idx."""
        video_id = _video_id(video_id)
        with self._read() as conn:
            rows = conn.execute(
                select(t.clips).where(t.clips.c.video_id == video_id).order_by(t.clips.c.clip_idx)
            )
            return [dict(r._mapping) for r in rows]

    def task_clips(self, task_id: str) -> list[dict]:
        """Every clip of the task's ready videos, with the video's role (index/search lookups),
        ordered by (video_id, clip_idx)."""
        task_id = validate_task_id(task_id)
        query = (
            select(t.clips, t.videos.c.role)
            .join(t.videos, t.videos.c.id == t.clips.c.video_id)
            .where(t.videos.c.task_id == task_id, t.videos.c.status == "ready")
            .order_by(t.clips.c.video_id, t.clips.c.clip_idx)
        )
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def _get_video(self, conn: Connection, video_id: int) -> dict | None:
        return _video(conn.execute(select(t.videos).where(t.videos.c.id == video_id)).first())

    def _update_video(self, video_id: int, values: dict) -> dict:
        with self._write() as conn:
            if values:
                values["updated_at"] = utcnow()
                result = conn.execute(
                    update(t.videos).where(t.videos.c.id == video_id).values(**values)
                )
                if result.rowcount == 0:
                    raise NotFoundError(f"video {video_id} not found")
            row = self._get_video(conn, video_id)
            if row is None:
                raise NotFoundError(f"video {video_id} not found")
            return row

    # -- score results

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
    ) -> dict:
        """Record a score job (e.g. when it is submitted). With ``exist_ok`` an existing job is
        returned unchanged instead of raising ValueError (re-tried runs)."""
        values = {
            "job_id": _job_id("job_id", job_id),
            "task_id": validate_task_id(task_id),
            "gold_video_id": _video_id(gold_video_id, "gold_video_id"),
            "trainee_video_id": _video_id(trainee_video_id, "trainee_video_id"),
            "requested_by": _label("requested_by", requested_by),
            "run_id": _label("run_id", run_id, t.RUN_ID_LEN),
            "status": _choice("status", status, t.JOB_STATUSES),
            "created_at": _ts("created_at", created_at, optional=True) or utcnow(),
        }
        return self._record(t.score_results, values, exist_ok, "score job")

    def update_score(self, job_id: str, **fields: Any) -> dict:
        """Update a score job's fields (run_id, status, score, decision, result_path,
        report_path, error_message, started_at, finished_at); returns the job.

        Moving to ``running`` stamps started_at, to a terminal status stamps finished_at,
        unless given or already set.
        """
        job_id = _job_id("job_id", job_id)
        values = _check_fields("score", fields, _SCORE_FIELDS)
        return self._update_job(t.score_results, job_id, values, "score job")

    def get_score(self, job_id: str) -> dict | None:
        return self._get_job(t.score_results, job_id)

    def score_by_run(self, run_id: str) -> dict | None:
        return self._job_by_run(t.score_results, run_id)

    def list_scores(
        self, limit: int | None = 50, *, task_id: str | None = None, status: str | None = None
    ) -> list[dict]:
        """Score jobs, newest first."""
        query = select(t.score_results)
        if task_id is not None:
            query = query.where(t.score_results.c.task_id == validate_task_id(task_id))
        if status is not None:
            query = query.where(
                t.score_results.c.status == _choice("status", status, t.JOB_STATUSES)
            )
        return self._list_jobs(t.score_results, query, limit)

    # -- training results

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
        values = {
            "job_id": _job_id("job_id", job_id),
            "trigger": _choice("trigger", trigger, t.TRAINING_TRIGGERS),
            "requested_by": _label("requested_by", requested_by),
            "run_id": _label("run_id", run_id, t.RUN_ID_LEN),
            "status": _choice("status", status, t.TRAINING_STATUSES),
            "created_at": _ts("created_at", created_at, optional=True) or utcnow(),
        }
        return self._record(t.training_results, values, exist_ok, "training job")

    def update_training(self, job_id: str, **fields: Any) -> dict:
        """Update a training job's fields (run_id, status, mode, adapter_path, videos_used,
        clips_used, embedding_dim, figures, reindex, skip_reason, error_message, started_at,
        finished_at); returns the job. Status times are stamped as in update_score."""
        job_id = _job_id("job_id", job_id)
        values = _check_fields("training", fields, _TRAINING_FIELDS)
        return self._update_job(t.training_results, job_id, values, "training job")

    def get_training(self, job_id: str) -> dict | None:
        return self._get_job(t.training_results, job_id)

    def training_by_run(self, run_id: str) -> dict | None:
        return self._job_by_run(t.training_results, run_id)

    def list_trainings(
        self, limit: int | None = 50, *, status: str | None = None, trigger: str | None = None
    ) -> list[dict]:
        """Training jobs, newest first."""
        query = select(t.training_results)
        if status is not None:
            query = query.where(
                t.training_results.c.status == _choice("status", status, t.TRAINING_STATUSES)
            )
        if trigger is not None:
            query = query.where(
                t.training_results.c.trigger
                == _choice("trigger", trigger, t.TRAINING_TRIGGERS)
            )
        return self._list_jobs(t.training_results, query, limit)

    def latest_training(
        self, status: str | None = None, trigger: str | None = None
    ) -> dict | None:
        """The newest training job (optionally with that status / trigger), or None."""
        jobs = self.list_trainings(1, status=status, trigger=trigger)
        return jobs[0] if jobs else None

    def live_adapter(self) -> dict | None:
        """The training job whose adapter is live: the newest completed one with an adapter
        file (rejected and skipped trainings never replace it); None while identity is live."""
        query = (
            select(t.training_results)
            .where(t.training_results.c.status == "completed")
            .where(t.training_results.c.adapter_path.is_not(None))
            .order_by(t.training_results.c.finished_at.desc().nulls_last(), t.training_results.c.job_id.desc())
            .limit(1)
        )
        with self._read() as conn:
            return _plain(conn.execute(query).first())

    # -- shared job plumbing

    def _record(self, table, values: dict, exist_ok: bool, what: str) -> dict:
        key = table.c.job_id
        with self._write() as conn:
            existing = conn.execute(select(table).where(key == values["job_id"])).first()
            if existing is not None:
                if exist_ok:
                    return _plain(existing)
                raise ValueError(f"{what} {values['job_id']!r} already recorded")
            conn.execute(insert(table).values(**values))
            return _plain(conn.execute(select(table).where(key == values["job_id"])).first())

    def _update_job(self, table, job_id: str, values: dict, what: str) -> dict:
        key = table.c.job_id
        with self._write() as conn:
            row = conn.execute(select(table).where(key == job_id).with_for_update()).first()
            if row is None:
                raise NotFoundError(f"{what} {job_id!r} not found")
            values = _with_status_times(values, row._mapping, utcnow())
            if values:
                conn.execute(update(table).where(key == job_id).values(**values))
            return _plain(conn.execute(select(table).where(key == job_id)).first())

    def _get_job(self, table, job_id: str) -> dict | None:
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            return None  # cannot exist; lets the API answer 404 for any path segment
        with self._read() as conn:
            return _plain(conn.execute(select(table).where(table.c.job_id == job_id)).first())

    def _job_by_run(self, table, run_id: str) -> dict | None:
        if not isinstance(run_id, str) or not run_id:
            return None
        with self._read() as conn:
            row = conn.execute(
                select(table)
                .where(table.c.run_id == run_id)
                .order_by(table.c.created_at.desc())
                .limit(1)
            ).first()
            return _plain(row)

    def _list_jobs(self, table, query, limit) -> list[dict]:
        query = query.order_by(table.c.created_at.desc(), table.c.job_id.desc())
        limit = _limit(limit)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_plain(r) for r in conn.execute(query)]

    # -- index versions

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
        task_id = validate_task_id(task_id)
        values = {
            "task_id": task_id,
            "path": _path("path", path, required=True),
            "clips_indexed": _int("clips", clips),
            "videos": _int("videos", videos),
            "fingerprint": _label("fingerprint", fingerprint, 64),
            "adapter": _label("adapter", adapter),
        }
        with self._write() as conn:
            advisory_xact_lock(conn, LOCK_INDEX_VERSION, task_id)
            latest = conn.execute(
                select(func.max(t.index_versions.c.version)).where(
                    t.index_versions.c.task_id == task_id
                )
            ).scalar()
            version = (latest or 0) + 1
            conn.execute(
                insert(t.index_versions).values(version=version, created_at=utcnow(), **values)
            )
            return version

    def current_index_version(self, task_id: str) -> dict | None:
        """The task's newest index version row, or None."""
        rows = self.list_index_versions(task_id, limit=1)
        return rows[0] if rows else None

    def list_index_versions(self, task_id: str, limit: int | None = 50) -> list[dict]:
        """The task's index versions, newest first."""
        query = (
            select(t.index_versions)
            .where(t.index_versions.c.task_id == validate_task_id(task_id))
            .order_by(t.index_versions.c.version.desc())
        )
        limit = _limit(limit)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_plain(r) for r in conn.execute(query)]

    # -- audit exports and trail

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
        values = {
            "export_id": _job_id("export_id", export_id),
            "file_path": _path("file_path", file_path, required=True),
            "item_count": _int("item_count", item_count),
            "key_id": _label("key_id", key_id, required=True),
            "payload_sha256": _hex("payload_sha256", payload_sha256, 64, exact=True),
            "signature_hex": _hex("signature_hex", signature_hex, 256),
            "generated_at": _ts("generated_at", generated_at, optional=True) or utcnow(),
            "algorithm": _label("algorithm", algorithm, 32, required=True),
            "requested_by": _label("requested_by", requested_by),
        }
        key = t.audit_exports.c.export_id
        with self._write() as conn:
            if conn.execute(select(key).where(key == export_id)).first() is not None:
                raise ValueError(f"export {export_id!r} already recorded")
            conn.execute(insert(t.audit_exports).values(**values))
            return _plain(conn.execute(select(t.audit_exports).where(key == export_id)).first())

    def get_export(self, export_id: str) -> dict | None:
        if not isinstance(export_id, str) or not JOB_ID_RE.fullmatch(export_id):
            return None
        with self._read() as conn:
            row = conn.execute(
                select(t.audit_exports).where(t.audit_exports.c.export_id == export_id)
            ).first()
            return _plain(row)

    def list_exports(self, limit: int | None = 50) -> list[dict]:
        query = select(t.audit_exports).order_by(
            t.audit_exports.c.generated_at.desc(), t.audit_exports.c.export_id.desc()
        )
        limit = _limit(limit)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_plain(r) for r in conn.execute(query)]

    def audit_trail(self, limit: int = 100) -> list[dict]:
        """Ingest, score and training jobs, newest first, in the contract's audit-trail shape
        (job_id, job_type, requested_by, task_id, subject, status, model_name, score,
        error_message, queued_at, started_at, finished_at, created_at) plus run_id and, for
        ingest jobs, video_id.

        ``status`` is the catalog's record; the API may overlay live Dagster status by run_id.
        An ingest job's id is its Dagster run id (``video_<id>`` before a run is attached).
        """
        limit = _limit(limit) or 100
        v, s, tr = t.videos, t.score_results, t.training_results
        with self._read() as conn:
            ingests = conn.execute(
                select(v).order_by(v.c.created_at.desc(), v.c.id.desc()).limit(limit)
            ).all()
            scores = conn.execute(
                select(s).order_by(s.c.created_at.desc(), s.c.job_id.desc()).limit(limit)
            ).all()
            trainings = conn.execute(
                select(tr).order_by(tr.c.created_at.desc(), tr.c.job_id.desc()).limit(limit)
            ).all()

        items = []
        for r in ingests:
            done = r.status in ("ready", "failed")
            items.append(
                {
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
            )
        for r in scores:
            items.append(
                {
                    "job_id": r.job_id,
                    "job_type": "score",
                    "requested_by": r.requested_by,
                    "task_id": r.task_id,
                    "subject": f"{r.gold_video_id}\u2192{r.trainee_video_id}",
                    "status": r.status,
                    "model_name": None,
                    "score": r.score,
                    "error_message": r.error_message,
                    "queued_at": r.created_at,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "created_at": r.created_at,
                    "run_id": r.run_id,
                }
            )
        for r in trainings:
            items.append(
                {
                    "job_id": r.job_id,
                    "job_type": "training",
                    "requested_by": r.requested_by,
                    "task_id": None,
                    "subject": r.trigger,
                    "status": r.status,
                    "model_name": r.mode,
                    "score": None,
                    "error_message": r.error_message,
                    "queued_at": r.created_at,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "created_at": r.created_at,
                    "run_id": r.run_id,
                }
            )
        items.sort(key=lambda i: (i["created_at"], i["job_id"]), reverse=True)
        return items[:limit]


_HEX_RE = re.compile(r"[0-9a-fA-F]+")


def _hex(name: str, value: Any, max_len: int, exact: bool = False) -> str:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
        raise ValueError(f"{name} must be a hex string")
    if (exact and len(value) != max_len) or len(value) > max_len:
        raise ValueError(f"{name} must be {'exactly' if exact else 'at most'} {max_len} hex digits")
    return value.lower()


__all__ = ["Catalog", "NotFoundError", "validate_task_id"]

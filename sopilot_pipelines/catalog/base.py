"""What every part of the catalog shares: the engine, transactions, and rows as plain dicts."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Column, Select, Table, func, insert, select, text
from sqlalchemy.engine import URL, Connection, Engine

from sopilot_pipelines.catalog.engine import advisory_xact_lock, catalog_url, create_catalog_engine, safe_url, writer
from sopilot_pipelines.catalog.migrations import upgrade
from sopilot_pipelines.catalog.models import Limit, check_value
from sopilot_pipelines.catalog.tables import utcnow


class NotFoundError(LookupError):
    """A write addressed a video / job that does not exist."""


class IngestSuperseded(RuntimeError):
    """The video's ingest was failed (timed out, stopped) while this run was ingesting it: the
    run's result comes too late and is not recorded, so the video stays failed."""


def plain(row: Any) -> dict | None:
    return None if row is None else dict(row._mapping)


def written(row: dict | None) -> dict:
    """A row this transaction has just written, read back (so it is there)."""
    assert row is not None
    return row


def limited(query: Select, limit: Any) -> Select:
    """``query`` with ``limit`` rows at most (None: all); a limit below 1 is a ValueError."""
    return query if limit is None else query.limit(check_value(Limit, limit, "limit"))


def next_in_task(conn: Connection, column: Column, lock: int, task_id: str) -> int:
    """The task's next number in ``column`` (its max among the task's rows + 1, 1 for the first),
    under the advisory lock ``lock`` so that concurrent writers of the task never get the same."""
    advisory_xact_lock(conn, lock, task_id)
    latest = conn.execute(select(func.max(column)).where(column.table.c.task_id == task_id)).scalar()
    return (latest or 0) + 1


def insert_version(conn: Connection, table: Table, lock: int, values: dict[str, Any]) -> int:
    """Insert ``values`` as the next version of their task in ``table`` (see next_in_task), created
    now; returns the version."""
    version = next_in_task(conn, table.c.version, lock, values["task_id"])
    conn.execute(insert(table).values(version=version, created_at=utcnow(), **values))
    return version


class CatalogBase:
    """The engine and its transactions. Construction applies migrations (idempotent, safe from
    several processes at once)."""

    def __init__(self, url: str | URL, *, migrate: bool = True, echo: bool = False):
        self.engine: Engine = create_catalog_engine(url, echo=echo)
        self._writer = writer(self.engine)
        if migrate:
            upgrade(self.engine)

    @classmethod
    def open(cls, database_url: str = "", data_dir: str | Path = "data", **kwargs: Any) -> Self:
        """``database_url``, else SQLite at ``<data_dir>/catalog.db`` (the settings'
        SOPILOT_DATABASE_URL and SOPILOT_DATA_DIR), creating the directory."""
        return cls(catalog_url(database_url, data_dir), **kwargs)

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self) -> AbstractContextManager[Connection]:
        return self.engine.begin()

    def _write(self) -> AbstractContextManager[Connection]:
        return self._writer.begin()  # SQLite: BEGIN IMMEDIATE (writers queue, never interleave)

    def _rows(self, query: Select) -> list[dict]:
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def ping(self) -> bool:
        """True if the database answers (for /health)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

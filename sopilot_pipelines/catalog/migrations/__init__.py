"""Catalog migrations (alembic), runnable in code with no alembic.ini.

``upgrade(engine_or_url)`` is called by every process that opens the catalog (API, Dagster
daemon, run workers), possibly several at once, so it is:

- quick when nothing is to do: one read of the version table, no lock;
- serialised otherwise: PostgreSQL takes ``pg_advisory_xact_lock`` for the migrating
  transaction; SQLite takes an exclusive file lock next to the database file and runs the
  migration inside ``BEGIN IMMEDIATE``. The loser of the race re-reads the version under the
  lock and finds nothing left to do;
- atomic: the whole upgrade is one transaction (DDL is transactional on both backends).

The version table is ``catalog_alembic_version``, not alembic's default ``alembic_version``:
Dagster's own storage keeps its alembic revision in ``alembic_version``, and production may
put both in the same PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any, Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine

from sopilot_pipelines.catalog.engine import (
    LOCK_MIGRATE,
    advisory_xact_lock,
    create_catalog_engine,
    sqlite_path,
    writer,
)

VERSION_TABLE = "catalog_alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str | URL | None = None) -> Config:
    """An alembic Config built in code: script_location is this package's directory."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal '%' (URL-escaped passwords) must be doubled.
        text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return cfg


@functools.lru_cache(maxsize=1)
def head_revisions() -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def current_revisions(conn: Connection) -> tuple[str, ...]:
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return tuple(sorted(ctx.get_current_heads()))


def is_at_head(engine: Engine) -> bool:
    with engine.connect() as conn:
        return current_revisions(conn) == head_revisions()


def upgrade(engine_or_url: Engine | str | URL, revision: str = "head") -> bool:
    """Bring the catalog schema to ``revision``; True if migrations ran, False if already there.

    Safe to call from several processes at once (see the module docstring).
    """
    own = not isinstance(engine_or_url, Engine)
    engine = engine_or_url if isinstance(engine_or_url, Engine) else create_catalog_engine(engine_or_url)
    try:
        to_head = revision == "head"
        if to_head and is_at_head(engine):
            return False
        with _sqlite_file_lock(engine), writer(engine).begin() as conn:
            advisory_xact_lock(conn, LOCK_MIGRATE, "catalog")
            if to_head and current_revisions(conn) == head_revisions():
                return False  # another process migrated while we waited
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return True
    finally:
        if own:
            engine.dispose()


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Exclusive lock on ``<db>.migrate.lock`` for SQLite files; nothing elsewhere."""
    path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
    fcntl: Any
    try:
        import fcntl
    except ImportError:  # not POSIX: BEGIN IMMEDIATE alone serialises the migration
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    lock_path = path.with_name(path.name + ".migrate.lock")
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "current_revisions",
    "head_revisions",
    "is_at_head",
    "upgrade",
]

"""Engines for the catalog: URL resolution from the environment, SQLite tuning, locks.

SQLite (embedded default): WAL, foreign keys, a busy timeout, and transactions that SQLAlchemy
begins explicitly, ``BEGIN IMMEDIATE`` for writers (they queue on the busy timeout instead of
failing half way when two processes write at once) and plain ``BEGIN`` for readers (WAL lets
them run beside a writer). PostgreSQL: psycopg2, pre-ping, advisory locks where a read-then-write
must not interleave (per-task counters, migrations).
"""

from __future__ import annotations

import os
import time
import weakref
import zlib
from pathlib import Path

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

SQLITE_FILENAME = "catalog.db"
SQLITE_BUSY_TIMEOUT_S = 30.0

# Execution option marking a connection that writes (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "sopilot_catalog_write"

# pg_advisory_(xact_)lock(classid, objid) namespaces: one int4 per kind of lock.
LOCK_MIGRATE = 0x50C0_0001
LOCK_GOLD_VERSION = 0x50C0_0002
LOCK_INDEX_VERSION = 0x50C0_0003
LOCK_SOP_VERSION = 0x50C0_0004


def catalog_url(database_url: str = "", data_dir: str | Path = "data") -> str:
    """``database_url`` if set, else SQLite at ``<data_dir>/catalog.db``."""
    if database_url.strip():
        return database_url.strip()
    return f"sqlite:///{Path(data_dir).expanduser().resolve() / SQLITE_FILENAME}"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; a PostgreSQL URL without a driver gets psycopg2, the declared dependency
    (SQLAlchemy 2.1 would otherwise pick psycopg 3, which is not installed)."""
    u = make_url(url) if isinstance(url, str) else url
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg2")
    if u.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported catalog database {u.get_backend_name()!r}: use sqlite or postgresql")
    return u


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory databases."""
    db = url.database or ""
    memory = db == ":memory:" or db.startswith("file::memory:") or url.query.get("mode") == "memory"
    if not db or memory:
        return None
    return Path(db).expanduser().resolve()


def create_catalog_engine(url: str | URL, *, echo: bool = False) -> Engine:
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(u, echo=echo)
    engine = create_engine(u, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=5)
    _dispose_after_fork(engine)
    return engine


def _sqlite_engine(u: URL, *, echo: bool) -> Engine:
    path = sqlite_path(u)
    if path is None:
        # One shared connection, or every connection would see its own empty database.
        engine = create_engine(
            u,
            echo=echo,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Hand transaction control to SQLAlchemy (the "begin" hook below) instead of pysqlite's
        # implicit BEGIN before DML, which would let a read-then-write interleave.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            if path is not None:
                _set_wal(cur)
                cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    _dispose_after_fork(engine)
    return engine


def _set_wal(cur, attempts: int = 50) -> None:
    # The first switch to WAL needs an exclusive lock; several processes starting at once on a
    # fresh file can collide here before any busy handler applies, so retry briefly.
    for i in range(attempts):
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:  # sqlite3.OperationalError: database is locked
            if "locked" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.05 * (i + 1))


def writer(engine: Engine) -> Engine:
    """The same engine, marked so SQLite transactions start with BEGIN IMMEDIATE."""
    return engine.execution_options(**{WRITE_OPTION: True})


def lock_key(name: str) -> int:
    """A stable signed int4 for pg_advisory_xact_lock(classid, objid)."""
    v = zlib.crc32(name.encode("utf-8"))
    return v - (1 << 32) if v >= (1 << 31) else v


def advisory_xact_lock(conn: Connection, namespace: int, name: str = "") -> None:
    """Serialise this transaction with others holding the same (namespace, name) lock.

    PostgreSQL only; on SQLite the write transaction (BEGIN IMMEDIATE) already serialises
    every writer, so this is a no-op there.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(namespace, lock_key(name))))


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


# A forked child must not reuse the parent's pooled connections (same sockets/file handles).
_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _dispose_after_fork(engine: Engine) -> None:
    _ENGINES.add(engine)


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "advisory_xact_lock",
    "create_catalog_engine",
    "normalize_url",
    "safe_url",
    "sqlite_path",
    "catalog_url",
    "writer",
]

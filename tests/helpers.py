"""What the tests share besides fixtures (those are in conftest.py): the repository root, the
PostgreSQL test databases, and how the REST tests talk to the live stack. Test modules import it
as `tests.helpers`; no test module imports another."""

import contextlib
import os
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]  # the repository

PG_ADMIN_URL = os.environ.get("SOPILOT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def fresh_postgres_databases(prefix: str, suffixes=("",)):
    """Create uniquely named databases on the test server; yield their URLs; drop them after.

    The PostgreSQL tests fail (not skip) when the server is unreachable, unless
    SOPILOT_SKIP_POSTGRES=1 says to skip them."""
    if os.environ.get("SOPILOT_SKIP_POSTGRES") == "1":
        pytest.skip("SOPILOT_SKIP_POSTGRES=1")
    import psycopg2
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    params = dict(
        host=admin.host,
        port=admin.port or 5432,
        user=admin.username,
        password=admin.password,
        dbname=admin.database or "postgres",
        connect_timeout=5,
    )
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL not reachable at {admin.render_as_string(hide_password=True)}: {exc}"
            " (set SOPILOT_SKIP_POSTGRES=1 to skip the PostgreSQL tests)",
            pytrace=False,
        )
    conn.autocommit = True
    stem = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    names, created = [stem + s for s in suffixes], []
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
        yield [admin.set(drivername="postgresql+psycopg2", database=n) for n in names]
    finally:
        with conn.cursor() as cur:
            for name in created:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


# How the REST tests (test_api, test_sop, test_api_fuzz, test_ui) talk to conftest's live stack: the
# API, the Dagster webserver and daemon in real processes, one stack per test module.
TOKENS = {"admin": "adm-secret-1", "operator": "op-secret-2", "viewer": "view-secret-3"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(stack, role: str | None = None, **kw) -> httpx.Client:
    headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
    return httpx.Client(base_url=stack.api_url, headers=headers, timeout=60, **kw)


def wait(c: httpx.Client, url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = c.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("completed", "failed", "skipped", "rejected"):
            return body
        assert time.monotonic() < deadline, f"{url} still {body['status']}"
        time.sleep(0.5)


def upload(c: httpx.Client, path: Path, task: str, gold: bool = False, **fields) -> httpx.Response:
    with open(path, "rb") as f:
        return c.post(
            "/gold" if gold else "/videos",
            files={"file": (path.name, f, "video/mp4")},
            data={"task_id": task, **fields},
        )


TASK = "bench_assembly"

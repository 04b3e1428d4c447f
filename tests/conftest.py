import contextlib
import os
import uuid

import pytest

from sopilot_pipelines.core import synth


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    """The gold and every trainee variant, rendered once per test session (with nuisance)."""
    return synth.render_suite(tmp_path_factory.mktemp("suite"))


@pytest.fixture(scope="session")
def embedded(suite):
    """Builtin embeddings of every video in the suite, computed lazily and cached."""
    from sopilot_pipelines.core.embedders import get_embedder
    from sopilot_pipelines.core.embedding import embed_video
    from sopilot_pipelines.core.video import ClipSettings

    embedder, settings, cache = get_embedder("builtin"), ClipSettings(), {}

    def get(name):
        if name not in cache:
            cache[name] = embed_video(suite[name].path, settings, embedder)
        return cache[name]

    return get


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
    params = dict(host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
                  dbname=admin.database or "postgres", connect_timeout=5)  # fmt: skip
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable at {admin.render_as_string(hide_password=True)}: {exc}"
                    " (set SOPILOT_SKIP_POSTGRES=1 to skip the PostgreSQL tests)", pytrace=False)  # fmt: skip
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
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                            (name,))  # fmt: skip
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

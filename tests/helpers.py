"""What the tests share besides fixtures (those are in conftest.py): the repository root, the
PostgreSQL test databases, how the REST tests talk to the live stack, and the videos and
checks the tests of the browser proxy share. Test modules import it
as `tests.helpers`; no test module imports another."""

import contextlib
import os
import re
import socket
import subprocess
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


# The browser proxy's tests (test_api, test_ui): an original Chromium cannot play, and what a seek asks.


def mpeg4_avi(src: Path, dest: Path, width: int | None = None, seconds: float | None = None) -> Path:
    """The video re-encoded as MPEG-4 Part 2 in AVI, as older cameras write it: Chromium plays
    neither that codec nor that container. ``width``: scaled to it (even height, aspect kept);
    ``seconds``: only the first ones."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-an"]
    if seconds is not None:
        cmd += ["-t", str(seconds)]
    if width is not None:
        cmd += ["-vf", f"scale={width}:-2"]
    subprocess.run([*cmd, "-c:v", "mpeg4", "-q:v", "5", str(dest)], check=True)
    return dest


def container_and_video(path: Path) -> tuple[str, str, int, int]:
    """(container, video codec, width, height) as `ffmpeg -i` reads the file's header: e.g.
    ("mov,mp4,m4a,3gp,3g2,mj2", "h264", 960, 540)."""
    import imageio_ffmpeg

    err = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    container = re.search(r"^Input #0, (\S+), from", err, re.M)
    video = re.search(r"Stream #0:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)", err)
    assert container and video, err
    return container[1], video[1], int(video[2]), int(video[3])


def assert_range(c: httpx.Client, url: str, whole: bytes, media_type: str):
    """A seek's request: `bytes=0-99` answers 206 with exactly those 100 bytes and says of how many."""
    r = c.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == whole[:100], (r.status_code, r.headers)
    assert r.headers["content-range"] == f"bytes 0-99/{len(whole)}" and r.headers["content-type"] == media_type
    assert r.headers["content-length"] == "100" and r.headers["accept-ranges"] == "bytes"
    r = c.get(url, headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206 and r.content == whole[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(whole)}"
    assert c.get(url, headers={"Range": f"bytes={len(whole) - 10}-"}).content == whole[-10:]
    r = c.get(url, headers={"Range": f"bytes={len(whole)}-"})  # past the end
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(whole)}", (r.status_code, r.headers)


def long_video(dest: Path, seconds: int = 60, size: str = "640x360", crf: int = 23) -> Path:
    """A test-pattern video (25 fps, H.264) whose ingest takes long enough to be caught in flight
    (tens of seconds here), made by ffmpeg in a few seconds; a higher ``crf``, a smaller file."""
    import subprocess

    import imageio_ffmpeg

    source = f"testsrc2=duration={seconds}:size={size}:rate=25"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", source, "-c:v", "libx264"]
    subprocess.run([*cmd, "-preset", "ultrafast", "-crf", str(crf), "-pix_fmt", "yuv420p", str(dest)], check=True)
    return dest


def embedded_rows(rows, stride: float = 0.5):
    """An EmbeddedVideo of clip vectors made to order (normalised; 2 s clips every `stride` s),
    for engine tests that need no decoded video."""
    import numpy as np

    from sopilot_pipelines.core.embedding import EmbeddedVideo

    x = np.asarray(rows, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    starts = np.arange(len(x)) * stride
    return EmbeddedVideo("test:v1", x, starts, starts + 2.0, [()] * len(x), 30.0, 8.0, float(starts[-1] + 2.0))

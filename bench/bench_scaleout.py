"""Scale-out: the same ingest backlog of N videos (default 20) through the real stack (`sopilot up`'s
Stack: webserver, daemon, API) in process, then on 1 and on 2 local Celery workers
(`sopilot up --workers N`), each time on fresh PostgreSQL databases and a RabbitMQ vhost of its own.

The videos are dropped into the inbox at once; the inbox sensor registers them and requests one
run per video; the clock stops when every video is ready in the catalog. Reported: videos/min and
video-hours ingested per worker-hour (for in process, the worker is the one machine).

    .venv/bin/python bench/bench_scaleout.py [--videos 20] [--embedder builtin] [--modes in_process,1,2]

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and RabbitMQ at 127.0.0.1:5672 with
rabbitmqctl (as `.ci/run` starts them). The method and how to read the figures: bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopilot_pipelines.catalog import Catalog
from sopilot_pipelines.core import synth
from sopilot_pipelines.stack import Stack

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
TASK = "scaleout"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)


def run_mode(mode: str, sources: list[Path], embedder: str, tmp: Path) -> dict:
    workers = 0 if mode == "in_process" else int(mode)
    stem = f"bench_scaleout_{uuid.uuid4().hex[:8]}"
    dbs = [f"{stem}_dagster", f"{stem}_catalog"]
    for db in dbs:
        _psql(f'CREATE DATABASE "{db}"')
    env = {
        "SOPILOT_DAGSTER_PG_URL": f"{PG}/{dbs[0]}",
        "SOPILOT_DATABASE_URL": f"{PG}/{dbs[1]}",
        "SOPILOT_EMBEDDER": embedder,
        "SOPILOT_AUTO_SCORE": "false",
        "SOPILOT_EXECUTOR": "in_process",
    }
    if workers:
        subprocess.run(["rabbitmqctl", "add_vhost", stem], check=True, capture_output=True)
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", stem, "guest", ".*", ".*", ".*"], check=True, capture_output=True
        )
        env.update(SOPILOT_EXECUTOR="celery", SOPILOT_CELERY_BROKER=f"amqp://guest:guest@127.0.0.1:5672/{stem}")
    data = tmp / mode / "data"
    stack = Stack(data, port=_port(), dagster_port=_port(), workers=workers, env_extra=env)
    catalog = Catalog(env["SOPILOT_DATABASE_URL"])
    try:
        stack.start(timeout=240)
        inbox = data / "inbox" / TASK
        staging = tmp / mode / "staging"
        staging.mkdir(parents=True)
        for i, src in enumerate(sources):  # copied aside, then moved in: each file appears whole
            shutil.copyfile(src, staging / f"{'gold_' if i == 0 else ''}v{i:03d}{src.suffix}")
        inbox.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        for f in sorted(staging.iterdir()):
            f.rename(inbox / f.name)
        while True:
            videos = catalog.list_videos(limit=None)
            done = [v for v in videos if v["status"] in ("ready", "failed")]
            if len(videos) == len(sources) and len(done) == len(sources):
                break
            if time.monotonic() - t0 > 3600:
                raise TimeoutError(f"{mode}: {len(done)} of {len(sources)} videos done after an hour")
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        failed = [v["video_id"] for v in videos if v["status"] == "failed"]
        hours = sum(v["duration_sec"] or 0 for v in videos) / 3600
    finally:
        stack.stop()
        catalog.close()
        for db in dbs:
            _psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if workers:
            subprocess.run(["rabbitmqctl", "delete_vhost", stem], capture_output=True)
    per_worker_hour = hours / (elapsed / 3600) / max(workers, 1)
    return {
        "mode": mode,
        "videos": len(sources),
        "failed": len(failed),
        "seconds": elapsed,
        "videos_per_min": len(sources) / elapsed * 60,
        "video_hours": hours,
        "video_h_per_worker_h": per_worker_hour,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--embedder", default="builtin")
    ap.add_argument("--modes", default="in_process,1,2", help="in_process and/or worker counts, comma separated")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_scaleout_") as d:
        tmp = Path(d)
        suite = synth.render_suite(tmp / "suite", variants=("swap", "missing"))
        pool = [suite[k].path for k in ("gold", "swap", "missing")]
        sources = [pool[i % len(pool)] for i in range(args.videos)]
        results = [run_mode(m.strip(), sources, args.embedder, tmp) for m in args.modes.split(",")]
    print(
        f"\n{args.videos} videos ({results[0]['video_hours'] * 3600:.0f} s of video in all), embedder {args.embedder}"
    )
    print("| mode | seconds | videos/min | video-h per worker-h | failed |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        name = "in process" if r["mode"] == "in_process" else f"{r['mode']} worker(s)"
        print(
            f"| {name} | {r['seconds']:.1f} | {r['videos_per_min']:.2f} | {r['video_h_per_worker_h']:.2f} | {r['failed']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

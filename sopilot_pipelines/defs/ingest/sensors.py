"""Watch folder: files dropped into data/inbox/<task_id>/ are ingested exactly once each.

Role: a file under data/inbox/<task_id>/gold/ (or named gold_*) is a gold video; anything else
is a trainee video (data/inbox/<task_id>/trainee/ may be used for clarity). Hidden files and
files still growing (modified within SOPILOT_INBOX_SETTLE_SECONDS) wait for the next tick.

Exactly once: a file is registered in the catalog and moved out of the inbox before its run is
requested, and each run has the run key `inbox-<video_id>`, which Dagster never launches twice.
If a tick dies between the move and the request, the next tick finds the registered video
without a run and requests it again under the same key.
"""

import json
import os
import shutil
import time
from pathlib import Path

import dagster as dg

from ...catalog import validate_task_id
from ...core.video import VideoDecodeError, container_suffix, probe
from ...ids import TAG_REQUESTED_BY, TAG_TASK_ID, TAG_VIDEO_ID, TASKS
from ...resources import CatalogResource, StorageResource
from ...settings import settings
from ..policy import sensor
from ..search.partitions import tasks
from .jobs import ingest_job
from .partitions import VIDEOS, video_key, videos

REQUESTED_BY = "sensor:inbox"


def role_of(task_dir: Path, file: Path) -> str:
    parts = [p.lower() for p in file.relative_to(task_dir).parts[:-1]]
    if "gold" in parts or file.name.lower().startswith(("gold_", "gold-")):
        return "gold"
    return "trainee"


def _stored_suffix(f: Path) -> str:
    """The extension the file is stored under: its probed container's. A file ffmpeg cannot read
    keeps its own; its ingest then fails it with the reason."""
    try:
        return container_suffix(probe(f), f.suffix)
    except VideoDecodeError:
        return f.suffix


def _candidates(task_dir: Path) -> list[Path]:
    files = []
    for p in sorted(task_dir.rglob("*")):
        rel = p.relative_to(task_dir).parts
        if p.is_file() and not any(part.startswith(".") for part in rel) and len(rel) <= 2:
            files.append(p)
    return files


def ingest_request(video: dict, key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"inbox-{video['video_id']}",
        partition_key=key,
        tags={TAG_REQUESTED_BY: REQUESTED_BY, TAG_VIDEO_ID: str(video["video_id"]), TAG_TASK_ID: video["task_id"]},
    )


@sensor(ingest_job, "Ingests video files dropped into data/inbox/<task_id>/ (gold/ sub-folder or gold_ prefix: gold)")
def inbox_sensor(context: dg.SensorEvaluationContext, catalog: CatalogResource, storage: StorageResource):
    cat, store = catalog.catalog, storage.store
    inbox, settle = store.inbox(), settings().inbox_settle_seconds
    state = json.loads(context.cursor) if context.cursor else {"ingested": 0}
    now, requests, keys, task_keys, waiting, refused = time.time(), [], [], set(), [], []

    # recovery: registered from the inbox but never requested (a tick that died half way)
    for v in cat.list_videos(status="pending", limit=None):
        if v["requested_by"] == REQUESTED_BY and v["raw_path"] and Path(v["raw_path"]).exists():
            key = video_key(v["task_id"], v["video_id"])
            if not context.instance.has_dynamic_partition(VIDEOS, key):
                requests.append(ingest_request(v, key))
                keys.append(key)
                task_keys.add(v["task_id"])

    for task_dir in sorted(p for p in inbox.iterdir() if p.is_dir()):
        try:
            task_id = validate_task_id(task_dir.name)
        except ValueError as exc:
            refused.append(f"{task_dir.name}/: {exc}")
            continue
        for f in _candidates(task_dir):
            if now - f.stat().st_mtime < settle:
                waiting.append(str(f.relative_to(inbox)))
                continue
            role = role_of(task_dir, f)
            video_id = cat.add_video(task_id, role, original_filename=f.name[:200], requested_by=REQUESTED_BY)
            dest = store.raw_video(video_id, _stored_suffix(f))
            shutil.move(str(f), dest)
            os.utime(dest)
            video = cat.set_video_paths(video_id, raw_path=str(dest))
            key = video_key(task_id, video_id)
            requests.append(ingest_request(video, key))
            keys.append(key)
            task_keys.add(task_id)
            context.log.info(f"inbox: {f.relative_to(inbox)} -> video {video_id} ({role}, task {task_id})")

    if not requests:
        reasons = []
        if waiting:
            reasons.append(f"still being written: {', '.join(waiting[:5])}")
        if refused:
            reasons.append(f"refused: {'; '.join(refused[:5])}")
        return dg.SkipReason(" | ".join(reasons) or f"no new files in {inbox}")
    state["ingested"] = state.get("ingested", 0) + len(requests)
    new_tasks = [t for t in sorted(task_keys) if not context.instance.has_dynamic_partition(TASKS, t)]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[videos.build_add_request(keys)]
        + ([tasks.build_add_request(new_tasks)] if new_tasks else []),
        cursor=json.dumps(state),
    )

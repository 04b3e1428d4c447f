"""One dynamic partition per video. Keys read `<task_id>:<video_id>` so a data engineer can find
a task's videos in the UI's partition picker; the integer id is what the catalog and API use."""

import dagster as dg

from ...ids import VIDEOS, video_key  # noqa: F401  (re-exported for the defs)

videos = dg.DynamicPartitionsDefinition(name=VIDEOS)


def video_id_of(key: str) -> int:
    try:
        return int(key.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"not a video partition key: {key!r} (expected '<task_id>:<video_id>')") from None

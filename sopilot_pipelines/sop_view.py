"""The SOP in force for a task, as the API and the `task_sop` asset show it (no Dagster imports).

Version 0 (nothing stored yet) lists the current gold's automatic segmentation, recorded at its
ingest. A gold ingested before that was recorded has none: its steps are computed here from its
stored embeddings (the same automatic segmentation scoring uses) and recorded, once."""

from __future__ import annotations

from .settings import settings


def sop_in_force(cat, store, task_id: str) -> dict | None:
    """``cat.sop_view(task_id)``, with version 0's steps computed when the gold has none recorded."""
    sop = cat.sop_view(task_id)
    if sop is None or sop["version"] or sop["steps"]:
        return sop
    steps = stored_auto_steps(store, sop["gold_video_id"])
    if steps:
        cat.set_auto_steps(sop["gold_video_id"], steps)
    return {**sop, "steps": steps}


def stored_auto_steps(store, video_id: int) -> list[dict]:
    """A ready video's automatic steps from its stored (adapted) embeddings; [] without them."""
    from .core.embedding import EmbeddedVideo
    from .core.scoring import auto_steps

    paths = store.embeddings(video_id)
    if not (paths["adapted"].exists() and paths["meta"].exists()):
        return []
    ev = EmbeddedVideo.load(paths["adapted"], paths["meta"])
    return [st.as_dict() for st in auto_steps(ev, settings().scoring.config())]

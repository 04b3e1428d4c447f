"""The task's SOP in the pipelines: the `task_sop` asset (one materialization per SOP version),
the steps a score uses on its gold, the boundaries carried to the task's other golds, and each
step's duration envelope (golds and trainees scored pass)."""

import json
from pathlib import Path

import dagster as dg

from ...resources import CatalogResource, StorageResource
from ...workers import where
from ..search.partitions import tasks

TASK_SOP = dg.AssetKey("task_sop")
# which task's SOP a score used is a catalog fact (a score job's key names no task), hence every
# task partition, as with the videos (see search/assets.py ALL_VIDEOS)
ALL_TASK_SOPS = dg.AssetDep(TASK_SOP, partition_mapping=dg.AllPartitionMapping())


def steps_on_gold(cat, store, sop: dict, gold_id: int, gold_ev=None):
    """The SOP's steps on gold ``gold_id``: as marked, or carried there by alignment."""
    from ...adapters import load_for_scoring
    from ...core.sop import StepSpec, steps_from_rows, transfer_steps

    marked = steps_from_rows(sop["steps"])
    if gold_id == sop["gold_video_id"]:
        return marked
    spans = (sop.get("per_gold") or {}).get(str(gold_id))
    if spans and len(spans) == len(marked):
        return [StepSpec(st.name, float(a), float(b), st.optional, st.group) for st, (a, b) in zip(marked, spans)]
    _, src = load_for_scoring(cat, store, sop["gold_video_id"])
    dst = gold_ev if gold_ev is not None else load_for_scoring(cat, store, gold_id)[1]
    return transfer_steps(marked, src, dst)


def refresh_per_gold(cat, store, task_id: str) -> dict | None:
    """Carry the task's current (stored) SOP to each of its other ready golds; returns the SOP."""
    sop = cat.current_sop(task_id)
    if sop is None:
        return None
    per_gold = {}
    for gold in cat.golds(task_id):
        if gold["video_id"] != sop["gold_video_id"]:
            steps = steps_on_gold(cat, store, {**sop, "per_gold": {}}, gold["video_id"])
            per_gold[str(gold["video_id"])] = [[st.start_sec, st.end_sec] for st in steps]
    return cat.set_sop_per_gold(task_id, sop["version"], per_gold)


def envelopes(cat, task_id: str, sop_version: int, gold_id: int, steps) -> dict:
    """Per step name, how long it takes: every gold (a stored SOP's steps, as marked and as
    carried to the other golds; version 0: the scored gold's own) and every trainee scored pass
    with this SOP version (version 0: against this gold)."""
    from ...core.sop import Envelope

    names = [st.name for st in steps]
    golds: dict[str, list[float]] = {n: [] for n in names}
    sop = cat.get_sop(task_id, sop_version) if sop_version else None
    if sop is not None:
        for st in sop["steps"]:
            if st["name"] in golds:
                golds[st["name"]].append(st["end_sec"] - st["start_sec"])
        for spans in (sop.get("per_gold") or {}).values():
            for st, (a, b) in zip(sop["steps"], spans):
                if st["name"] in golds:
                    golds[st["name"]].append(b - a)
    else:
        for st in steps:
            golds[st.name].append(st.end_sec - st.start_sec)
    trainees: dict[str, list[float]] = {n: [] for n in names}
    for job in cat.list_scores(None, task_id=task_id, status="completed"):
        if job["decision"] != "pass" or job["sop_version"] != sop_version or not job["result_path"]:
            continue
        if not sop_version and job["gold_video_id"] != gold_id:
            continue
        path = Path(job["result_path"])
        if not path.exists():
            continue
        for st in json.loads(path.read_text()).get("trainee_steps", []):
            if st["name"] in trainees and st["start_sec"] is not None:
                trainees[st["name"]].append(st["end_sec"] - st["start_sec"])
    return {n: Envelope.of(golds[n], trainees[n]) for n in names}


@dg.asset(
    partitions_def=tasks,
    group_name="scoring",
    kinds={"json"},
    description="The task's SOP: named steps marked on a gold (one materialization per version), carried to its other golds",
)
def task_sop(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    cat, store, task_id = catalog.catalog, storage.store, context.partition_key
    if cat.current_sop(task_id) is not None:
        refresh_per_gold(cat, store, task_id)
    metadata, version = _sop_record(cat, store, task_id)
    return dg.MaterializeResult(metadata={**metadata, **where()}, data_version=dg.DataVersion(version))


def task_sop_materialization(context, cat, store, task_id: str) -> dg.AssetMaterialization:
    """The task's SOP in force as a `task_sop` materialization logged by another run (a gold's
    ingest: steps given at upload, boundaries carried to a new gold), as a sop_job run records it."""
    from ..ingest.assets import _DATA_VERSION_TAG, _USER_PROVIDED_TAG

    if not context.instance.has_dynamic_partition(tasks.name, task_id):
        context.instance.add_dynamic_partitions(tasks.name, [task_id])
    metadata, version = _sop_record(cat, store, task_id)
    return dg.AssetMaterialization(
        asset_key=TASK_SOP,
        partition=task_id,
        metadata={**metadata, **where()},
        tags={_DATA_VERSION_TAG: version, _USER_PROVIDED_TAG: "true"},
    )


def _sop_record(cat, store, task_id: str) -> tuple[dict, str]:
    """The metadata and data version of a `task_sop` materialization: the SOP in force."""
    from ...core.sop import step_title
    from ...sop_view import sop_in_force

    sop = sop_in_force(cat, store, task_id)
    if sop is None:
        raise dg.Failure(f"task {task_id} has no gold video", allow_retries=False)
    steps = [{"index": k, **st} for k, st in enumerate(sop["steps"])]
    metadata = {
        "version": sop["version"],
        "source": sop["source"],
        "gold_video_id": sop["gold_video_id"],
        "steps": dg.MetadataValue.json(steps),
        "step_names": ", ".join(step_title(k, st["name"]) for k, st in enumerate(sop["steps"])),
        "per_gold": dg.MetadataValue.json(sop["per_gold"]),
        "updated_by": sop["requested_by"] or "-",
    }
    return metadata, f"v{sop['version']}@{sop['gold_video_id']}"


def gold_ready(cat, store, video: dict, ev) -> dict:
    """A gold finished ingesting (``ev``: its clips through the live adapter): record its
    automatic segmentation (version 0 of the SOP), make the steps given at its upload the task's
    SOP, and carry the SOP to this gold. Returns what happened, for the materialization."""
    from ...core.scoring import auto_steps
    from ...core.sop import StepsError, parse_steps
    from ...settings import settings

    cat.set_auto_steps(video["video_id"], [st.as_dict() for st in auto_steps(ev, settings().scoring.config())])
    out = {}
    if video.get("upload_steps"):
        try:
            steps = parse_steps(video["upload_steps"], ev.duration_sec, source="steps given at upload")
        except StepsError as exc:  # checked at upload, except against the duration known only now
            out["sop_error"] = str(exc)
        else:
            sop = cat.add_sop(
                video["task_id"],
                gold_video_id=video["video_id"],
                steps=[st.as_dict() for st in steps],
                requested_by=video.get("requested_by"),
            )
            out["sop_version"] = sop["version"]
    refreshed = refresh_per_gold(cat, store, video["task_id"])  # None: the task has no SOP stored yet
    if refreshed is not None:
        out["sop_version"] = refreshed["version"]
    return out

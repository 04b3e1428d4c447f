"""Per score job: the score result (scores/<job>.json) and its PDF report (reports/<job>.pdf)."""

import json
import time

import dagster as dg

from ... import telemetry
from ...adapters import live_adapter, live_adapter_name, load_for_scoring
from ...logs import job_transition
from ...resources import CatalogResource, StorageResource
from ...settings import settings
from ...workers import where
from ..policy import RETRY
from ..search.assets import ALL_VIDEOS
from .partitions import score_jobs
from .sop import ALL_TASK_SOPS

SCORE_RESULT, SCORE_REPORT = dg.AssetKey("score_result"), dg.AssetKey("score_report")


class ScoreFailed(Exception):
    """A score job that cannot complete for a reason a retry will not change."""


# One op for the result and its report, like ingest_video: a run over several score jobs (a
# re-score after an SOP change) scores each on its own, logs each job's own materializations, and
# fails only the jobs that fail. The result reads both videos' embeddings through the live
# adapter (which two videos is a catalog fact no built-in partition mapping can express, hence
# every video partition, see ALL_VIDEOS) and the task's SOP (ALL_TASK_SOPS).
@dg.multi_asset(
    name="score_result",
    partitions_def=score_jobs,
    group_name="scoring",
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.single_run(),
    retry_policy=RETRY,
    specs=[
        dg.AssetSpec(
            SCORE_RESULT,
            kinds={"numpy"},
            skippable=True,
            deps=[ALL_VIDEOS, dg.AssetKey("feature_adapter"), ALL_TASK_SOPS],
            description="Align the trainee with the gold: score, decision, steps and deviations",
        ),
        dg.AssetSpec(
            SCORE_REPORT,
            kinds={"pdf"},
            skippable=True,
            deps=[SCORE_RESULT],
            description="The supervisor's PDF report of a score job",
        ),
    ],
)
def score_assets(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    cat, store, selected = catalog.catalog, storage.store, context.selected_asset_keys
    keys = context.partition_keys
    failed: dict[str, str] = {}
    loaded: dict = {}  # the run's golds and live adapter, loaded once however many of its jobs use them
    for job_id in keys:  # a re-score's range holds only its own jobs (one run per adjacent block)
        job = cat.get_score(job_id)
        if job is None:
            failed[job_id] = f"score job {job_id} is not in the catalog"
            continue
        if job["status"] == "failed":  # e.g. timed out while queued: its status only moves forward
            context.log.warning(f"score job {job_id} is failed already ({job['error_message']}); not scored")
            continue
        try:
            t0 = time.perf_counter()
            if SCORE_RESULT in selected:
                context.log_event(_score(context, cat, store, job, loaded))
            if SCORE_REPORT in selected:
                context.log_event(_report(cat, store, job_id))
            if SCORE_RESULT in selected:  # completed once what a client fetches next (the PDF too) exists
                done = cat.update_score(job_id, status="completed")
                telemetry.observe_job("score", time.perf_counter() - t0)
                job_transition("score", job_id, "completed", score=done["score"], decision=done["decision"])
        except ScoreFailed as exc:
            failed[job_id] = str(exc)
            context.log.error(str(exc))
            if (cat.get_score(job_id) or {}).get("status") != "failed":  # the report's failure
                cat.update_score(job_id, status="failed", error_message=str(exc))
                job_transition("score", job_id, "failed", error=str(exc))
    if failed:
        summary = (
            next(iter(failed.values()))
            if len(keys) == 1
            else f"{len(failed)} of {len(keys)} score jobs failed: " + "; ".join(failed.values())
        )
        raise dg.Failure(summary, allow_retries=False, metadata={"failed_keys": ", ".join(failed)})
    yield from ()  # no outputs: every job's materializations are logged by themselves above


def _score(context, cat, store, job: dict, loaded: dict) -> dg.AssetMaterialization:
    import numpy as np

    from ...core.embedders import EmbedderError
    from ...core.scoring import auto_steps, score
    from ...core.sop import steps_from_rows
    from ...storage import atomic_write_json, atomic_write_npz
    from ..ingest.assets import versioned_materialization
    from .sop import envelopes, steps_on_gold

    job_id = job["job_id"]
    if job["status"] != "completed":  # a re-materialization of a scored job does not move it back
        cat.update_score(job_id, status="running", run_id=context.run.run_id)
        job_transition("score", job_id, "running", run_id=context.run.run_id)
    try:
        name = live_adapter_name(cat)  # a catalog read; the adapter's file is read when it changes
        live = loaded.get(("adapter", name)) or loaded.setdefault(("adapter", name), live_adapter(cat))
        gold_row, gold = load_for_scoring(cat, store, job["gold_video_id"], live, loaded)
        trainee_row, trainee = load_for_scoring(cat, store, job["trainee_video_id"], live)
        sop = cat.current_sop(job["task_id"])
        version = sop["version"] if sop else 0
        steps = steps_on_gold(cat, store, sop, gold_row["video_id"], gold) if sop else None
        cfg = settings().scoring.config()
        # version 0: the gold's automatic steps (computed here for a gold ingested before they were recorded)
        named = steps or (
            steps_from_rows(gold_row["auto_steps"]) if gold_row.get("auto_steps") else auto_steps(gold, cfg)
        )
        envelope = envelopes(cat, job["task_id"], version, gold_row["video_id"], named)
        outcome = score(gold, trainee, cfg, steps=steps, envelope=envelope)
    except (EmbedderError, ValueError, dg.Failure) as exc:
        message = exc.description if isinstance(exc, dg.Failure) else str(exc)
        cat.update_score(job_id, status="failed", error_message=message)
        job_transition("score", job_id, "failed", error=message)
        raise ScoreFailed(f"score job {job_id}: {message}") from exc
    result = outcome.result
    result["provenance"] = {
        "gold_video_id": gold_row["video_id"],
        "sop_version": version,
        "embedding_model": gold.model,
        "adapter_version": live.name,
    }
    previous = cat.get_score(job["previous_job_id"]) if job.get("previous_job_id") else None
    if previous is not None:
        result["previous"] = {
            "score_job_id": previous["job_id"],
            "score": previous["score"],
            "decision": previous["decision"],
        }
    telemetry.observe_dtw(False, outcome.extras["dtw_sec"])  # the numba kernel; the torch path is for CUDA
    path = atomic_write_json(store.score(job_id), result)
    # the per-clip step labels of both videos, beside the result: adapter training learns from them
    atomic_write_npz(
        store.score_steps(job_id),
        gold_labels=outcome.gold_labels.astype(np.int64),
        trainee_labels=outcome.trainee_labels.astype(np.int64),
        alignment_path=np.asarray(outcome.path, dtype=np.int64),
    )  # the review page's sync
    cat.update_score(
        job_id,
        score=result["score"],
        decision=result["decision"],
        result_path=str(path),
        sop_version=version,
    )
    metadata = {
        "score": result["score"],
        "decision": result["decision"],
        "deviations": len(result["deviations"]),
        "deviation_types": ", ".join(sorted({d["type"] for d in result["deviations"]})) or "none",
        "gold_video_id": gold_row["video_id"],
        "trainee_video_id": trainee_row["video_id"],
        "task_id": gold_row["task_id"],
        "embedder": gold.model,
        "gold_steps": len(result["gold_steps"]),
        "sop_version": version,
        "adapter_version": live.name,
        "trigger": job["trigger"],
        "path": dg.MetadataValue.path(str(path)),
        **where(),  # the worker, host and pid that scored it
    }
    return versioned_materialization(SCORE_RESULT, job_id, metadata, path.read_bytes())


def _report(cat, store, job_id: str) -> dg.AssetMaterialization:
    from ...core.report import render_report

    job = cat.get_score(job_id)
    if job is None or not job.get("result_path"):
        raise ScoreFailed(f"score job {job_id} has no result yet")
    result = json.loads(open(job["result_path"]).read())
    gold, trainee = cat.get_video(job["gold_video_id"]) or {}, cat.get_video(job["trainee_video_id"]) or {}
    path = render_report(store.report(job_id), job_id, result, gold, trainee, requested_by=job["requested_by"])
    cat.update_score(job_id, report_path=str(path))
    return dg.AssetMaterialization(
        asset_key=SCORE_REPORT,
        partition=job_id,
        metadata={"path": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size, **where()},
    )

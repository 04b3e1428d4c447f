"""Per score job: the score result (scores/<job>.json) and its PDF report (reports/<job>.pdf)."""


import time

import dagster as dg

from ... import telemetry
from ...logs import job_transition
from ...resources import CatalogResource, StorageResource
from ...settings import settings
from ..policy import RETRY
from ..search.assets import ALL_VIDEOS
from .partitions import score_jobs


def load_for_scoring(cat, store, video_id: int):
    """A video's clips and embeddings through the *current* adapter, so both sides of a score
    always share one embedding space even while a reindex is under way."""
    from ...core.embedding import EmbeddedVideo
    from ..training.live import live_adapter

    row = cat.get_video(video_id)
    if row is None:
        raise dg.Failure(f"video {video_id} does not exist (deleted?)", allow_retries=False)
    if row["status"] != "ready":
        raise dg.Failure(f"video {video_id} is not ingested yet (status {row['status']})", allow_retries=False)
    paths = store.embeddings(video_id)
    ev = EmbeddedVideo.load(paths["raw"], paths["meta"])
    ev.embeddings = live_adapter(cat).adapter.apply(ev.embeddings)
    return row, ev


# reads both videos' embeddings through the live adapter; which two videos is a catalog fact no
# built-in partition mapping can express, hence every video partition (see ALL_VIDEOS)
@dg.asset(partitions_def=score_jobs, group_name="scoring", kinds={"numpy"}, retry_policy=RETRY,
          deps=[ALL_VIDEOS, dg.AssetKey("feature_adapter")],
          description="Align the trainee with the gold: score, decision, steps and deviations")  # fmt: skip
def score_result(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    from ...core.embedders import EmbedderError
    from ...core.scoring import score
    import numpy as np

    from ...storage import atomic_write_json, atomic_write_npz

    cat, store, job_id = catalog.catalog, storage.store, context.partition_key
    job = cat.get_score(job_id)
    if job is None:
        raise dg.Failure(f"score job {job_id} is not in the catalog", allow_retries=False)
    cat.update_score(job_id, status="running", run_id=context.run.run_id)
    job_transition("score", job_id, "running", run_id=context.run.run_id)
    t0 = time.perf_counter()
    try:
        gold_row, gold = load_for_scoring(cat, store, job["gold_video_id"])
        trainee_row, trainee = load_for_scoring(cat, store, job["trainee_video_id"])
        outcome = score(gold, trainee, settings().scoring.config())
    except (EmbedderError, ValueError) as exc:
        cat.update_score(job_id, status="failed", error_message=str(exc))
        job_transition("score", job_id, "failed", error=str(exc))
        raise dg.Failure(f"score job {job_id}: {exc}", allow_retries=False) from exc
    except dg.Failure as exc:
        cat.update_score(job_id, status="failed", error_message=exc.description)
        job_transition("score", job_id, "failed", error=exc.description)
        raise
    result = outcome.result
    telemetry.observe_dtw(False, outcome.extras["dtw_sec"])  # the numba kernel; the torch path is for CUDA
    path = atomic_write_json(store.score(job_id), result)
    # the per-clip step labels of both videos, beside the result: adapter training learns from them
    atomic_write_npz(store.score_steps(job_id), gold_labels=outcome.gold_labels.astype(np.int64),
                     trainee_labels=outcome.trainee_labels.astype(np.int64))  # fmt: skip
    telemetry.observe_job("score", time.perf_counter() - t0)
    job_transition("score", job_id, "completed", score=result["score"], decision=result["decision"])
    cat.update_score(job_id, status="completed", score=result["score"], decision=result["decision"], result_path=str(path))
    return dg.MaterializeResult(
        metadata={
            "score": result["score"],
            "decision": result["decision"],
            "deviations": len(result["deviations"]),
            "deviation_types": ", ".join(sorted({d["type"] for d in result["deviations"]})) or "none",
            "gold_video_id": gold_row["video_id"],
            "trainee_video_id": trainee_row["video_id"],
            "task_id": gold_row["task_id"],
            "embedder": gold.model,
            "gold_steps": len(result["step_boundaries"]["gold"]) - 1,
            "path": dg.MetadataValue.path(str(path)),
        }
    )


@dg.asset(partitions_def=score_jobs, group_name="scoring", deps=[score_result], kinds={"pdf"}, retry_policy=RETRY,
          description="The supervisor's PDF report of a score job")  # fmt: skip
def score_report(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    import json

    from ...core.report import render_report

    cat, store, job_id = catalog.catalog, storage.store, context.partition_key
    job = cat.get_score(job_id)
    if job is None or not job.get("result_path"):
        raise dg.Failure(f"score job {job_id} has no result yet", allow_retries=False)
    result = json.loads(open(job["result_path"]).read())
    gold, trainee = cat.get_video(job["gold_video_id"]) or {}, cat.get_video(job["trainee_video_id"]) or {}
    path = render_report(store.report(job_id), job_id, result, gold, trainee)
    cat.update_score(job_id, report_path=str(path))
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size})

"""The feature adapter (unpartitioned), fitted on the clips collected so far.

Each run is a training job (catalog row `train_<...>`, id from the run's job-id tag). Too few
clips ends the job `skipped` with the reason; the previous adapter stays live.
"""


import time

import dagster as dg
import numpy as np

from ... import telemetry
from ...logs import job_transition
from ...ids import TAG_JOB_ID, TAG_REQUESTED_BY, TAG_TRIGGER, new_job_id
from ...resources import CatalogResource, StorageResource

MIN_CLIPS = 20  # fewer clips than this say nothing useful about the embedding distribution


@dg.asset(group_name="training", kinds={"numpy"},
          description="Feature adapter fitted on every ready video's clips (models/feature_adapter_<job>.npz)")  # fmt: skip
def feature_adapter(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    from ...core.adapter import fit_centering

    cat, store = catalog.catalog, storage.store
    tags = context.run.tags
    job_id = tags.get(TAG_JOB_ID) or new_job_id("train")
    cat.record_training(job_id, trigger=tags.get(TAG_TRIGGER, "manual"), requested_by=tags.get(TAG_REQUESTED_BY),
                        run_id=context.run.run_id, exist_ok=True)  # fmt: skip
    cat.update_training(job_id, status="running", run_id=context.run.run_id)
    job_transition("training", job_id, "running", run_id=context.run.run_id)
    ready = cat.list_videos(status="ready", limit=None)
    raws = [np.load(store.embeddings(v["video_id"])["raw"]) for v in ready]
    dims = {r.shape[1] for r in raws}
    clips = sum(len(r) for r in raws)
    if clips < MIN_CLIPS or len(dims) != 1:
        reason = (f"only {clips} clips from {len(ready)} ready videos; at least {MIN_CLIPS} are needed"
                  if len(dims) <= 1 else f"videos have different embedding sizes {sorted(dims)}")  # fmt: skip
        cat.update_training(job_id, status="skipped", skip_reason=reason, videos_used=len(ready), clips_used=clips)
        context.log.info(f"training {job_id} skipped: {reason}")
        job_transition("training", job_id, "skipped", reason=reason)
        return dg.MaterializeResult(metadata={"job_id": job_id, "status": "skipped", "reason": reason})
    t0 = time.perf_counter()
    adapter = fit_centering(raws)
    path = adapter.save(store.adapter(f"feature_adapter_{job_id}"))
    dim = int(next(iter(dims)))
    telemetry.observe_job("training", time.perf_counter() - t0)
    job_transition("training", job_id, "completed", videos_used=len(ready), clips_used=clips)
    cat.update_training(job_id, status="completed", mode="centering_adapter", adapter_path=str(path),
                        videos_used=len(ready), clips_used=clips, embedding_dim=dim)  # fmt: skip
    return dg.MaterializeResult(
        metadata={"job_id": job_id, "status": "completed", "videos_used": len(ready), "clips_used": clips,
                  "embedding_dim": dim, "path": dg.MetadataValue.path(str(path))}  # fmt: skip
    )

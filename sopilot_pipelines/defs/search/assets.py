"""Per task: the clip index (FAISS) over the adapted embeddings of its ready videos, versioned."""


import hashlib

import dagster as dg
import numpy as np

from ...resources import CatalogResource, StorageResource
from .partitions import tasks


def task_fingerprint(videos: list[dict]) -> str:
    """Changes whenever a task's set of ready videos or any of their embeddings changes."""
    parts = sorted(f"{v['video_id']}@{v['updated_at'].isoformat()}" for v in videos)
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dg.asset(partitions_def=tasks, group_name="search", kinds={"faiss"},
          description="FAISS clip index of a task; a new version per build, switched atomically")  # fmt: skip
def task_index(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    from ...core.index import write_version

    cat, store, task_id = catalog.catalog, storage.store, context.partition_key
    ready = cat.list_videos(task_id=task_id, status="ready", limit=None)
    vectors, ids = [], []
    for v in sorted(ready, key=lambda v: v["video_id"]):
        emb = np.load(store.embeddings(v["video_id"])["adapted"])
        vectors.append(emb)
        ids.append(np.stack([np.full(len(emb), v["video_id"]), np.arange(len(emb))], axis=1))
    dims = {e.shape[1] for e in vectors}
    if len(dims) > 1:
        raise dg.Failure(f"task {task_id}: videos have different embedding sizes {sorted(dims)}; re-embed them", allow_retries=False)
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)
    id_rows = np.concatenate(ids) if ids else np.zeros((0, 2), np.int64)
    previous = cat.current_index_version(task_id)
    fingerprint = task_fingerprint(ready)
    # each build gets its own directory, complete before the catalog makes it current
    final = write_version(store.index_build_dir(task_id, context.run.run_id), matrix, id_rows,
                          {"task_id": task_id, "fingerprint": fingerprint, "videos": len(ready)})  # fmt: skip
    version = cat.add_index_version(task_id, str(final), clips=len(id_rows), videos=len(ready))
    return dg.MaterializeResult(
        metadata={
            "index_version": f"v{version}",
            "previous_version": f"v{previous['version']}" if previous else "none",
            "videos": len(ready),
            "clips": int(len(id_rows)),
            "dim": int(matrix.shape[1]) if len(id_rows) else 0,
            "fingerprint": fingerprint,
            "path": dg.MetadataValue.path(str(final)),
        }
    )

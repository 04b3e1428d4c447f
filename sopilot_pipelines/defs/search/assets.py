"""Per task: the clip index (FAISS) over its ready videos' clips, through one adapter, versioned."""

import dagster as dg

from ... import indexes
from ...adapters import live_adapter
from ...resources import CatalogResource, StorageResource
from ...workers import where
from ..policy import RETRY
from .partitions import tasks

# Lineage from the videos. Dagster's remote asset graph (the UI, the daemon's backfills) keeps only
# its built-in partition mappings, and none maps a video key `<task>:<id>` to its task; a
# tasks x videos multi-partition would change the keys the API and the inbox use. So every video
# partition counts as an input of every task's index: after a video changes, Dagster shows every
# task's index stale, not only that task's (and it stops computing partition staleness past 100
# videos). The index sensor, which compares the catalog's per-task fingerprint, stays the exact
# trigger; this edge is what lets the UI show and "Materialize stale" the indexes.
TASK_INDEX = dg.AssetKey("task_index")
ALL_VIDEOS = dg.AssetDep("video_embeddings", partition_mapping=dg.AllPartitionMapping())


def index_metadata(built: dict) -> dict:
    md = {k: v for k, v in built.items() if v is not None and k != "path"}
    md["previous_version"] = built["previous_version"] or "none"
    md["path"] = dg.MetadataValue.path(built["path"])
    md.update(where())  # the worker, host and pid that built it
    return md


@dg.asset(
    partitions_def=tasks,
    group_name="search",
    kinds={"faiss"},
    retry_policy=RETRY,
    deps=[ALL_VIDEOS, dg.AssetKey("feature_adapter")],  # vectors: raw embeddings through the live adapter
    description="FAISS clip index of a task (exact, or IVF when large); a new version per build, switched atomically",
)
def task_index(context: dg.AssetExecutionContext, catalog: CatalogResource, storage: StorageResource):
    cat = catalog.catalog
    try:
        built = indexes.build_task_index(cat, storage.store, context.partition_key, live_adapter(cat))
    except indexes.IndexBuildError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    context.log.info(f"{built['task_id']}: {built['index_version']} ({built['kind']}, {built['clips']} clips)")
    return dg.MaterializeResult(metadata=index_metadata(built))

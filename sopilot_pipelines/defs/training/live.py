"""Which feature adapter is live: the newest training that completed with an adapter file.

Rejected and skipped trainings never change it; identity is live before the first."""

from dataclasses import dataclass

from ...core.adapter import FeatureAdapter


@dataclass(frozen=True)
class LiveAdapter:
    adapter: FeatureAdapter
    name: str  # the training job id, or "identity"
    path: str | None


IDENTITY = "identity"


def live_adapter_name(catalog) -> str:
    """The live adapter's name without loading its file (sensors ask every few seconds)."""
    job = catalog.live_adapter()
    return job["job_id"] if job else IDENTITY


def live_adapter(catalog) -> LiveAdapter:
    job = catalog.live_adapter()
    if job is None:
        return LiveAdapter(FeatureAdapter(), IDENTITY, None)
    return LiveAdapter(FeatureAdapter.load(job["adapter_path"]), job["job_id"], job["adapter_path"])

"""The catalog: domain facts about videos, clips, results and exports (the files themselves
are the data store's, ``sopilot_pipelines.storage.DataStore``).

Every public method is one transaction (``engine.begin()``): it commits whole or not at all.
Methods return plain dicts (column name -> value; a video's primary key is ``video_id``) or
None when the thing asked for does not exist; writes to something missing raise
``NotFoundError``; bad input raises ``ValueError`` (from the pydantic models in models.py)
before anything touches the database. Timestamps are timezone-aware UTC datetimes, in and out.

Job *status* for the API comes from Dagster's run storage; the status kept here is the
domain's own record (what the run reported), used by the audit trail and by the pipelines.

One module per concept; ``Catalog`` puts them together:
videos.py (videos, clips, gold versions), jobs.py (score and training jobs, one table helper),
sops.py (a task's versioned SOP, task summaries), index_versions.py, adapters.py (the live adapter), audit.py (trail and signed exports).
"""

from __future__ import annotations

from sopilot_pipelines.catalog.adapters import AdaptersMixin
from sopilot_pipelines.catalog.audit import AuditMixin
from sopilot_pipelines.catalog.base import IngestSuperseded, NotFoundError
from sopilot_pipelines.catalog.index_versions import IndexVersionsMixin
from sopilot_pipelines.catalog.jobs import JobsMixin
from sopilot_pipelines.catalog.sops import SopsMixin
from sopilot_pipelines.catalog.videos import VideosMixin, validate_task_id


class Catalog(VideosMixin, JobsMixin, SopsMixin, IndexVersionsMixin, AdaptersMixin, AuditMixin):
    """The SOPilot catalog on SQLite (embedded default) or PostgreSQL (by URL).

    Construction applies migrations (idempotent, safe from several processes at once).
    """


__all__ = ["Catalog", "IngestSuperseded", "NotFoundError", "validate_task_id"]

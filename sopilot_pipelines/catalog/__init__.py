"""SOPilot catalog: domain facts (videos, clips, score and training results, index versions,
audit exports) in SQLAlchemy Core tables, migrated by alembic on start.

Embedded default: SQLite at ``<data dir>/catalog.db``. Production: PostgreSQL
(``SOPILOT_DATABASE_URL``). No Dagster imports here: the catalog is
shared by the Dagster code location and the FastAPI facade.

    from sopilot_pipelines.catalog import Catalog
    catalog = Catalog.open(settings().database_url, settings().data_dir)
"""

from sopilot_pipelines.catalog.catalog import Catalog, IngestSuperseded, NotFoundError, validate_task_id
from sopilot_pipelines.catalog.engine import catalog_url, create_catalog_engine
from sopilot_pipelines.catalog.migrations import VERSION_TABLE, head_revisions, upgrade
from sopilot_pipelines.catalog.tables import (
    DECISIONS,
    JOB_STATUSES,
    ROLES,
    TRAINING_TRIGGERS,
    VIDEO_STATUSES,
    metadata,
)

__all__ = [
    "Catalog",
    "DECISIONS",
    "IngestSuperseded",
    "JOB_STATUSES",
    "NotFoundError",
    "ROLES",
    "TRAINING_TRIGGERS",
    "VERSION_TABLE",
    "VIDEO_STATUSES",
    "create_catalog_engine",
    "head_revisions",
    "metadata",
    "upgrade",
    "catalog_url",
    "validate_task_id",
]

"""Dagster resources: the data store and the catalog, configured from SOPILOT_ settings."""

from __future__ import annotations

import dagster as dg

from .catalog import Catalog
from .settings import settings
from .storage import DataStore


class StorageResource(dg.ConfigurableResource):
    """Artifact paths under the data dir (raw videos, embeddings, indexes, scores, reports)."""

    data_dir: str

    @property
    def store(self) -> DataStore:
        return DataStore(self.data_dir)


_catalogs: dict[str, Catalog] = {}


class CatalogResource(dg.ConfigurableResource):
    """Domain facts (videos, clips, results). Empty url: SQLite under the data dir."""

    database_url: str = ""
    data_dir: str = "data"

    @property
    def catalog(self) -> Catalog:
        # one engine per process and url: runs, sensors and schedules share it
        key = self.database_url or str(DataStore(self.data_dir).root)
        if key not in _catalogs:
            _catalogs[key] = Catalog.open(self.database_url, self.data_dir)
        return _catalogs[key]


def default_resources() -> dict:
    s = settings()
    data_dir = str(s.data_path)
    return {
        "storage": StorageResource(data_dir=data_dir),
        "catalog": CatalogResource(database_url=s.database_url, data_dir=data_dir),
    }

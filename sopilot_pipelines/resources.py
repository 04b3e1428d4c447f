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
        url = self.database_url or f"sqlite:///{DataStore(self.data_dir).root / 'catalog.db'}"
        if url not in _catalogs:
            DataStore(self.data_dir).root.mkdir(parents=True, exist_ok=True)
            _catalogs[url] = Catalog(url)
        return _catalogs[url]


def default_resources() -> dict:
    s = settings()
    data_dir = str(s.data_path)
    return {
        "storage": StorageResource(data_dir=data_dir),
        "catalog": CatalogResource(database_url=s.database_url, data_dir=data_dir),
    }

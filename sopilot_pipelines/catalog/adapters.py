"""Adapters: which training's feature adapter is live."""

from __future__ import annotations

from sqlalchemy import select

from sopilot_pipelines.catalog import tables as t
from sopilot_pipelines.catalog.base import CatalogBase


class AdaptersMixin(CatalogBase):
    def live_adapter(self) -> dict | None:
        """The training job whose adapter is live: the newest completed one with an adapter
        file (rejected and skipped trainings never replace it); None while identity is live."""
        tr = t.training_results
        query = (
            select(tr)
            .where(tr.c.status == "completed", tr.c.adapter_path.is_not(None))
            # NULLS LAST on both backends: a training without a finish time never wins
            .order_by(tr.c.finished_at.desc().nulls_last(), tr.c.job_id.desc())
            .limit(1)
        )
        rows = self._rows(query)
        return rows[0] if rows else None

"""Audit trail and signed exports."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from sopilot_pipelines.catalog import Catalog
from sopilot_pipelines.core.audit import sign
from sopilot_pipelines.storage import atomic_write_json

from ..auth import Admin, Viewer
from ..deps import CatalogDep, SettingsDep, StoreDep
from ..schemas import AuditExport, AuditItem, AuditTrail

router = APIRouter(tags=["audit"])
FIELDS = tuple(AuditItem.model_fields)


def _items(cat: Catalog, limit: int) -> list[dict]:
    return [{k: row.get(k) for k in FIELDS} for row in cat.audit_trail(limit)]


@router.get("/audit/trail", response_model=AuditTrail)
def audit_trail(cat: CatalogDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Every ingest, score and training job, newest first."""
    return AuditTrail(items=[AuditItem(**i) for i in _items(cat, limit)])


@router.post("/audit/export", response_model=AuditExport, responses={503: {"description": "No signing key configured"}})
def audit_export(
    cat: CatalogDep,
    store: StoreDep,
    principal: Admin,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
):
    key = settings.audit_signing_key
    if not key:
        raise HTTPException(
            503, "audit export needs a signing key: set SOPILOT_AUDIT_SIGNING_KEY (and SOPILOT_AUDIT_SIGNING_KEY_ID)"
        )
    key_id = settings.audit_signing_key_id
    now = datetime.now(timezone.utc)
    base = now.strftime("%Y%m%d_%H%M%S")
    export_id, n = base, 1
    while cat.get_export(export_id) is not None:  # two exports in one second never overwrite each other
        n += 1
        export_id = f"{base}_{n}"
    items = _items(cat, limit)
    doc = sign(
        {
            "export_id": export_id,
            "generated_at": now.isoformat(),
            "generated_by": principal.requested_by,
            "item_count": len(items),
            "items": json.loads(json.dumps(items, default=str)),
        },
        key,
        key_id,
    )
    path = store.dir("reports") / f"audit_export_{export_id}.json"
    if path.exists():
        raise HTTPException(409, f"export {export_id} already exists")
    atomic_write_json(path, doc)
    sig = doc["signature"]
    cat.record_export(
        export_id,
        file_path=str(path),
        item_count=len(items),
        key_id=key_id,
        payload_sha256=sig["payload_sha256"],
        signature_hex=sig["signature_hex"],
        generated_at=now,
        requested_by=principal.requested_by,
    )
    return AuditExport(export_id=export_id, generated_at=now, item_count=len(items), file_path=str(path), signature=sig)


@router.get(
    "/audit/export/{export_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"application/json": {}}}, 404: {"description": "Unknown export"}},
)
def audit_export_file(export_id: str, cat: CatalogDep, _: Admin):
    row = cat.get_export(export_id)
    if row is None or not Path(row["file_path"]).exists():
        raise HTTPException(404, f"no audit export {export_id!r}")
    return FileResponse(row["file_path"], media_type="application/json", filename=Path(row["file_path"]).name)

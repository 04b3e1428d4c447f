"""Streaming multipart upload: the file goes to disk as it arrives and the request stops at
SOPILOT_UPLOAD_MAX_MB without reading the rest (a declared Content-Length over the limit is
refused before any of the body is read)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from sopilot_pipelines.catalog.models import ID_PATTERN
from sopilot_pipelines.catalog.tables import LABEL_LEN, ROLES

FIELD_LIMIT = 4096  # bytes for a plain form field
FIELD_LIMITS = {"steps": 1024 * 1024}  # a gold's steps (JSON) may be long


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    file_path: Path | None = None
    filename: str | None = None
    size: int = 0


UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "task_id"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the video file"},
                        "task_id": {"type": "string", "pattern": ID_PATTERN},
                        "role": {"type": "string", "enum": list(ROLES), "default": "trainee"},
                        # the catalog's limits (UploadForm checks them; past them a 400)
                        "site_id": {"type": "string", "maxLength": LABEL_LEN},
                        "camera_id": {"type": "string", "maxLength": LABEL_LEN},
                        "operator_id_hash": {"type": "string", "maxLength": LABEL_LEN},
                        "steps": {
                            "type": "string",
                            "description": 'a gold\'s steps, JSON: [{"name", "start_sec", '
                            '"end_sec", "optional", "group"}, ...]; the task\'s SOP once the gold is ingested',
                        },
                    },
                }
            }
        },
    }
}


async def receive_upload(request: Request, spool_dir: Path, max_bytes: int) -> Upload:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise HTTPException(400, "send the video as multipart/form-data with a 'file' field")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise HTTPException(413, f"upload exceeds SOPILOT_UPLOAD_MAX_MB ({max_bytes // (1024 * 1024)} MB)")

    spool_dir.mkdir(parents=True, exist_ok=True)
    up = Upload()
    state: dict[str, Any] = {
        "name": None,
        "filename": None,
        "buf": bytearray(),
        "fh": None,
        "header_field": b"",
        "headers": {},
    }

    def on_header_field(data, start, end):
        state["header_field"] += data[start:end]

    def on_header_value(data, start, end):
        key = state["header_field"].lower()
        state["headers"][key] = state["headers"].get(key, b"") + data[start:end]

    def on_header_end():
        state["header_field"] = b""

    def on_headers_finished():
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        state["name"] = disp.get(b"name", b"").decode(errors="replace")
        filename = disp.get(b"filename")
        if filename is not None and state["name"] == "file":
            state["filename"] = filename.decode(errors="replace")
            fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=spool_dir)
            state["fh"] = os.fdopen(fd, "wb")
            up.file_path = Path(tmp)
            up.filename = state["filename"]

    def on_part_data(data, start, end):
        chunk = data[start:end]
        if state["fh"] is not None:
            up.size += len(chunk)
            if up.size > max_bytes:
                raise _TooLarge()
            state["fh"].write(chunk)
        else:
            state["buf"] += chunk
            if len(state["buf"]) > FIELD_LIMITS.get(state["name"], FIELD_LIMIT):
                raise HTTPException(400, f"form field {state['name']!r} is too long")

    def on_part_end():
        if state["fh"] is not None:
            state["fh"].close()
            state["fh"] = None
        elif state["name"]:
            up.fields[state["name"]] = state["buf"].decode(errors="replace").strip()
        state.update(name=None, buf=bytearray(), headers={})

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except _TooLarge:
        _discard(up, state)
        raise HTTPException(413, f"upload exceeds SOPILOT_UPLOAD_MAX_MB ({max_bytes // (1024 * 1024)} MB)") from None
    except HTTPException:
        _discard(up, state)
        raise
    except Exception as exc:  # a malformed body
        _discard(up, state)
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    if up.file_path is None:
        raise HTTPException(400, "no 'file' field in the upload")
    if up.size == 0:
        _discard(up, state)
        raise HTTPException(400, "the uploaded file is empty")
    return up


class _TooLarge(Exception):
    pass


def _discard(up: Upload, state: dict) -> None:
    if state.get("fh") is not None:
        state["fh"].close()
    if up.file_path is not None:
        up.file_path.unlink(missing_ok=True)

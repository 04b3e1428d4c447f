"""Structured logs: with SOPILOT_LOG_FORMAT=json, one JSON line per API request and per job
transition (queued/running/completed/failed/skipped) on stderr; plain text lines otherwise."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

_logger = logging.getLogger("sopilot")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.now(timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        return json.dumps(line, default=str, sort_keys=True)


class TextFormatter(logging.Formatter):
    """One plain line: time, level, message, then the event's fields when it has any (a record
    logged without ``extra={"fields": ...}`` must format too, or logging raises in its caller)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        return f"{line} {fields}" if fields else line


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (servers and test runners swap it)."""

    _sopilot = True

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(fmt: str | None = None) -> logging.Logger:
    if fmt is None:
        from .settings import settings

        fmt = settings().log_format
    if not any(getattr(h, "_sopilot", False) for h in _logger.handlers):
        _logger.addHandler(_StderrHandler())
        _logger.setLevel(logging.INFO)
        _logger.propagate = False
    for h in _logger.handlers:
        if getattr(h, "_sopilot", False):  # only ours: a handler someone else added keeps its format
            h.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return _logger


def event(name: str, **fields) -> None:
    if not _logger.handlers:  # first use in this process: format from SOPILOT_LOG_FORMAT
        configure()
    _logger.info(name, extra={"fields": fields})


def job_transition(job_type: str, job_id: str, status: str, **fields) -> None:
    event("job_transition", job_type=job_type, job_id=job_id, status=status, **fields)

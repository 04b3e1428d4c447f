"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temp file name beside ``path`` for a writer that wants a name (ffmpeg); when the block
    ends without an exception it is fsynced and renamed over ``path``, otherwise removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temp file beside the target, fsync, then rename over it."""
    with atomic_target(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def atomic_write_npy(path: str | Path, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, array)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_npz(path: str | Path, **arrays: Any) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())

"""Per-task clip index (FAISS, inner product on L2-normalised vectors) and its files.

A version is written to a temporary directory and renamed into place whole; which version is
current is recorded in the catalog only after the rename, so a reader never sees a half-built
index and the previous version stays readable until the switch.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np


def build_flat(vectors: np.ndarray):
    import faiss

    faiss.cvar.distance_compute_blas_threshold = 20  # the wheel's default skips BLAS for batches
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def write_version(final_dir: Path, vectors: np.ndarray, ids: np.ndarray, meta: dict) -> Path:
    """Write index.faiss + ids.npy (video_id, clip_idx) + meta.json into final_dir atomically."""
    import faiss

    final_dir = Path(final_dir)
    tmp = final_dir.with_name(f".{final_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    faiss.write_index(build_flat(vectors), str(tmp / "index.faiss"))
    np.save(tmp / "ids.npy", ids.astype(np.int64))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    shutil.rmtree(final_dir, ignore_errors=True)  # a leftover of a crashed earlier attempt
    os.replace(tmp, final_dir)
    return final_dir

"""Feature adapter: maps raw clip embeddings to the space that scoring and search use.

`identity` until the first training. `centering` (the plain adapter the pipeline fits) removes
the mean embedding of all clips collected so far, so similarities reflect what differs between
clips rather than what every clip of every video shares.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import atomic_write_bytes

KINDS = ("identity", "centering")


@dataclass
class FeatureAdapter:
    kind: str = "identity"
    mean: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        x = np.asarray(raw, dtype=np.float32)
        if self.kind == "centering":
            if self.mean is None or self.mean.shape[0] != x.shape[1]:
                raise ValueError(
                    f"adapter expects {0 if self.mean is None else self.mean.shape[0]}-d embeddings, got {x.shape[1]}-d"
                )
            x = x - self.mean[None, :]
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return (x / np.maximum(norms, 1e-12)).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        buf = io.BytesIO()
        arrays = {"kind": np.array(self.kind)}
        if self.mean is not None:
            arrays["mean"] = self.mean.astype(np.float32)
        np.savez(buf, **arrays)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path | None) -> "FeatureAdapter":
        if not path:
            return cls()
        with np.load(path) as z:
            kind = str(z["kind"])
            if kind not in KINDS:
                raise ValueError(f"{path}: unknown adapter kind {kind!r}")
            return cls(kind, z["mean"] if "mean" in z.files else None)


def fit_centering(embeddings: list[np.ndarray]) -> FeatureAdapter:
    """The mean over every clip of every video (each video weighted by its clips)."""
    if not embeddings:
        raise ValueError("no embeddings to fit an adapter on")
    stacked = np.concatenate([np.asarray(e, dtype=np.float64) for e in embeddings], axis=0)
    return FeatureAdapter("centering", stacked.mean(axis=0).astype(np.float32), {"clips": len(stacked)})

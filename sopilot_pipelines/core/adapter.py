"""Feature adapter: maps raw clip embeddings to the space that scoring and search use.

Kinds:
* `identity` -- rows L2-normalised, nothing else; live until a trained adapter proves better.
* `projection` -- y = normalise((x - mean) @ A + b), with A and b from a small torch model
  trained by `adapter_training` and accepted only when it measurably improves step retrieval.

Applying an adapter is plain numpy: the API and the pipelines never import torch for it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import atomic_write_npz

KINDS = ("identity", "projection")


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class FeatureAdapter:
    kind: str = "identity"
    mean: np.ndarray | None = None  # (d,) projection: the mean subtracted first
    weight: np.ndarray | None = None  # (d, d_out) projection: A
    bias: np.ndarray | None = None  # (d_out,) projection: b
    info: dict = field(default_factory=dict)  # training figures (JSON-serialisable)

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        """Kind and shapes are consistent and finite, else ValueError."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown adapter kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        need = {"identity": (), "projection": ("mean", "weight", "bias")}[self.kind]
        for name in ("mean", "weight", "bias"):
            value = getattr(self, name)
            if name not in need:
                if value is not None:
                    raise ValueError(f"a {self.kind} adapter has no {name}")
                continue
            if value is None:
                raise ValueError(f"a {self.kind} adapter needs {name}")
            value = np.asarray(value, dtype=np.float32)
            if value.ndim != (2 if name == "weight" else 1) or value.size == 0:
                raise ValueError(f"{name} has shape {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{name} has non-finite values")
            setattr(self, name, value)
        if self.kind == "projection":
            assert self.mean is not None and self.weight is not None and self.bias is not None  # checked above
            d, d_out = self.weight.shape
            if self.mean.shape != (d,) or self.bias.shape != (d_out,):
                raise ValueError(
                    f"projection shapes disagree: mean {self.mean.shape}, "
                    f"weight {self.weight.shape}, bias {self.bias.shape}"
                )
        if not isinstance(self.info, dict):
            raise ValueError("info must be a dict")

    @property
    def dim_in(self) -> int | None:
        """The raw embedding size this adapter takes; None when it takes any (identity)."""
        return None if self.mean is None else int(self.mean.shape[0])

    def embedding_dim(self, raw_dim: int) -> int:
        """Size of the adapted embeddings for raw embeddings of size raw_dim."""
        self._check_dim(raw_dim)
        return int(self.weight.shape[1]) if self.weight is not None else int(raw_dim)

    def _check_dim(self, raw_dim: int) -> None:
        if self.dim_in is not None and raw_dim != self.dim_in:
            raise ValueError(f"{self.kind} adapter expects {self.dim_in}-d embeddings, got {raw_dim}-d")

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """(C, d) raw embeddings -> (C, d_out) float32, rows L2-normalised."""
        x = np.asarray(raw, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"adapter input must be (clips, dim), got shape {x.shape}")
        self._check_dim(x.shape[1])
        if self.mean is not None and self.weight is not None and self.bias is not None:  # projection
            x = (x - self.mean[None, :]) @ self.weight + self.bias[None, :]
        return _normalise(x)

    def save(self, path: str | Path) -> Path:
        """One .npz, written atomically (readers never see half an adapter)."""
        arrays = {"kind": np.array(self.kind), "info": np.array(json.dumps(self.info, sort_keys=True))}
        for name in ("mean", "weight", "bias"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name).astype(np.float32)
        return atomic_write_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path | None) -> "FeatureAdapter":
        """The adapter saved at path; identity when path is None or empty."""
        if not path:
            return cls()
        try:
            loaded = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not an adapter file ({exc})") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError(f"{path}: not an adapter file (not an .npz archive)")
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
        if "kind" not in arrays:
            raise ValueError(f"{path}: not an adapter file (no kind)")
        try:
            info = json.loads(str(arrays["info"])) if "info" in arrays else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: adapter info is not JSON ({exc})") from None
        unknown = set(arrays) - {"kind", "info", "mean", "weight", "bias"}
        if unknown:
            raise ValueError(f"{path}: unexpected arrays {sorted(unknown)}")
        try:
            return cls(str(arrays["kind"]), arrays.get("mean"), arrays.get("weight"), arrays.get("bias"), info)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


__all__ = ["FeatureAdapter", "KINDS"]

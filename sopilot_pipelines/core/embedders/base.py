"""The embedder interface shared by every clip embedder.

An embedder turns clips of a video into vectors. The decoder samples a video at a fixed fps and
scales every frame to ``Embedder.frame_size``; the clip cutter gives ``[start, end)`` frame ranges;
``Embedder.embed`` returns one L2-normalised float32 row per clip. Vectors from different
embedders (different ``name``) are not comparable: ``check_compatible`` guards every comparison.

This module must stay free of torch (and of anything heavy): the builtin embedder and the
registry import it in processes that never load a neural network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

__all__ = ["Embedder", "EmbedderError", "check_compatible", "l2_normalize_rows", "validate_inputs"]


class EmbedderError(ValueError):
    """An embedder cannot be built or used: unknown name, missing optional package, bad checkpoint,
    or two videos embedded by different models."""


class Embedder(ABC):
    """Maps clips (frame ranges of a decoded video) to L2-normalised vectors.

    Attributes:
        name: the model name recorded with every embedded video, e.g. ``"builtin:v1"``. Two
            videos can be compared only when their names are equal.
        dim: length of each embedding row.
        frame_size: ``(width, height)`` the decoder should scale frames to for this embedder.
    """

    name: str
    dim: int
    frame_size: tuple[int, int]

    @abstractmethod
    def embed(self, frames: np.ndarray, spans: np.ndarray) -> np.ndarray:
        """Embed clips of one video.

        Args:
            frames: ``(N, H, W, 3)`` uint8 RGB frames sampled at a fixed fps (the whole video:
                some embedders use video-level statistics).
            spans: ``(C, 2)`` integer ``[start, end)`` frame ranges of the clips.

        Returns:
            ``(C, dim)`` float32, each row L2-normalised.
        """

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, frame_size={self.frame_size})"


def validate_inputs(frames: np.ndarray, spans: np.ndarray, *, min_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Check ``frames`` and ``spans`` once at the embedder boundary.

    Returns ``frames`` (unchanged, made C-contiguous) and ``spans`` as an ``(C, 2)`` int64 array.
    Raises ValueError with a message that says what is wrong.
    """
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (N, H, W, 3), got {frames.shape}")
    n, h, w = frames.shape[:3]
    if n == 0:
        raise ValueError("frames is empty: a video needs at least one frame to embed")
    if h < min_size or w < min_size:
        raise ValueError(f"frames are too small to embed: {w}x{h} (need at least {min_size}x{min_size})")
    spans_arr = np.asarray(spans)
    if spans_arr.ndim != 2 or spans_arr.shape[1] != 2:
        raise ValueError(f"spans must have shape (C, 2), got {spans_arr.shape}")
    if spans_arr.shape[0] == 0:
        raise ValueError("spans is empty: no clips to embed")
    if not np.issubdtype(spans_arr.dtype, np.integer):
        raise ValueError(f"spans must be integer frame indices, got dtype {spans_arr.dtype}")
    spans_arr = spans_arr.astype(np.int64, copy=False)
    starts, ends = spans_arr[:, 0], spans_arr[:, 1]
    bad = (starts < 0) | (ends > n) | (ends <= starts)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"span {i} = [{int(starts[i])}, {int(ends[i])}) is empty or outside the {n} frames "
            f"(need 0 <= start < end <= {n}); {int(bad.sum())} bad span(s) in all"
        )
    return np.ascontiguousarray(frames), spans_arr


def l2_normalize_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32. A zero row stays zero (never NaN)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    return (x / np.maximum(norms, eps)[:, None]).astype(np.float32)


def check_compatible(model_a: str, model_b: str) -> None:
    """Refuse to compare embeddings made by different models.

    Raises EmbedderError when ``model_a != model_b``.
    """
    if model_a != model_b:
        raise EmbedderError(
            f"videos were embedded by different models: {model_a!r} vs {model_b!r}; their vectors "
            f"are not comparable. re-embed one of them with the other's embedder "
            f"(set SOPILOT_EMBEDDER accordingly) before comparing"
        )

"""The embedder interface shared by every clip embedder.

An embedder turns clips of a video into vectors. The decoder samples a video at a fixed fps and
scales every frame to ``Embedder.frame_size``; the clip cutter gives ``[start, end)`` frame ranges;
``Embedder.embed`` returns one L2-normalised float32 row per clip. Vectors from different
embedders (different ``name``) are not comparable: ``check_compatible`` guards every comparison.

Long videos are embedded as they stream from the decoder: ``Embedder.begin(source)`` returns a
:class:`VideoAccumulator` that takes consecutive chunks of frames (``add``) and, once the clips
are known, gives their vectors (``finish``). A streaming embedder keeps per-frame features
between chunks, never the frames; ``source.frames_at`` lends it frames it must see before the
stream reaches them. ``embed(frames, spans)`` is the same thing over frames already in memory.

This module must stay free of torch (and of anything heavy): the builtin embedder and the
registry import it in processes that never load a neural network.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np

__all__ = [
    "ArraySource",
    "Embedder",
    "EmbedderError",
    "FrameSource",
    "StreamingEmbedder",
    "VideoAccumulator",
    "check_compatible",
    "l2_normalize_rows",
    "validate_inputs",
    "validate_spans",
]

#: Frames per chunk when an in-memory video is fed to a streaming embedder.
CHUNK_FRAMES = 256


class EmbedderError(ValueError):
    """An embedder cannot be built or used: unknown name, missing optional package, bad checkpoint,
    or two videos embedded by different models."""


class FrameSource(Protocol):
    """Where the frames of the video being embedded come from.

    ``n_hint``: the expected number of frames (exact for a video in memory; from the
    container's duration for a stream, 0 if unknown). ``frames_at(indices)``: those frames,
    ``(k, H, W, 3)`` uint8 (an index past the end gives the last frame there is)."""

    n_hint: int

    def frames_at(self, indices: np.ndarray) -> np.ndarray: ...


class ArraySource:
    """A :class:`FrameSource` over frames already in memory."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames
        self.n_hint = len(frames)

    def frames_at(self, indices: np.ndarray) -> np.ndarray:
        return self.frames[np.minimum(np.asarray(indices, dtype=np.int64), len(self.frames) - 1)]


class VideoAccumulator(ABC):
    """One video being embedded: chunks of consecutive frames in, clip vectors out."""

    @abstractmethod
    def add(self, frames: np.ndarray) -> None:
        """The next ``(m, H, W, 3)`` uint8 frames of the video (the accumulator may keep them)."""

    @abstractmethod
    def finish(self, spans: np.ndarray) -> np.ndarray:
        """``(C, dim)`` float32 L2-normalised vectors of the clips ``spans`` (``[start, end)``
        indices into all the frames added)."""


class _WholeVideo(VideoAccumulator):
    """For an embedder that needs all frames at once: memory grows with the video."""

    def __init__(self, embedder: "Embedder") -> None:
        self.embedder = embedder
        self.chunks: list[np.ndarray] = []

    def add(self, frames: np.ndarray) -> None:
        self.chunks.append(frames)

    def finish(self, spans: np.ndarray) -> np.ndarray:
        frames = np.concatenate(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks = []
        return self.embedder.embed(frames, spans)


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
    streams: bool = False  # True: begin() keeps per-frame features, not frames

    def begin(self, source: FrameSource) -> VideoAccumulator:
        """Start embedding one video whose frames come from ``source`` (see the module doc)."""
        return _WholeVideo(self)

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


class StreamingEmbedder(Embedder):
    """An embedder that works through a video chunk by chunk (``begin``); ``embed`` on frames in
    memory goes the same way, so both give the same vectors."""

    streams = True

    @abstractmethod
    def begin(self, source: FrameSource) -> VideoAccumulator: ...

    def embed(self, frames: np.ndarray, spans: np.ndarray) -> np.ndarray:
        frames, spans = validate_inputs(frames, spans)
        acc = self.begin(ArraySource(frames))
        for s in range(0, len(frames), CHUNK_FRAMES):
            acc.add(frames[s : s + CHUNK_FRAMES])
        return acc.finish(spans)


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
    return np.ascontiguousarray(frames), validate_spans(spans, n)


def validate_spans(spans: np.ndarray, n: int) -> np.ndarray:
    """``spans`` as a ``(C, 2)`` int64 array of ``[start, end)`` ranges inside ``n`` frames;
    ValueError saying what is wrong otherwise."""
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
    return spans_arr


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

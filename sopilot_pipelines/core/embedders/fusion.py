"""Fusion of embedders ("deep+builtin"): appearance (deep: what is in the frame) and motion
(builtin: where and how things move) fail on different footage; together they hold on more of it.

Each part's clip vectors are centred on the video's own mean and L2-normalised on their own
before the blocks are joined (equal weights) and the whole is normalised again. Without that,
the block whose vectors vary more within a video would decide every similarity; with it, a
cosine of the fused vectors is the mean of the parts' cosines. Like builtin, a vector therefore
depends on the whole video it came from. It streams when every part does.

Frames are decoded once, at the first part's frame size; the other parts take them as they come
(each resizes to its own working resolution).
"""

from __future__ import annotations

import numpy as np

from .base import Embedder, FrameSource, StreamingEmbedder, VideoAccumulator, l2_normalize_rows


class FusionEmbedder(StreamingEmbedder):
    def __init__(self, parts: list[Embedder]):
        if len(parts) < 2:
            raise ValueError("a fusion needs at least two embedders")
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.dim = sum(p.dim for p in parts)
        self.frame_size = parts[0].frame_size
        self.streams = all(p.streams for p in parts)

    def begin(self, source: FrameSource) -> "_FusedVideo":
        return _FusedVideo([p.begin(source) for p in self.parts])


class _FusedVideo(VideoAccumulator):
    def __init__(self, parts: list[VideoAccumulator]) -> None:
        self.parts = parts

    def add(self, frames: np.ndarray) -> None:
        for p in self.parts:
            p.add(frames)

    def finish(self, spans: np.ndarray) -> np.ndarray:
        blocks = []
        for p in self.parts:
            raw = p.finish(spans).astype(np.float64)
            x = raw - raw.mean(axis=0)
            flat = np.linalg.norm(x, axis=1) < 1e-6  # a clip that is the video's mean (a static video)
            x[flat] = raw[flat]
            blocks.append(l2_normalize_rows(x))
        return l2_normalize_rows(np.hstack(blocks))

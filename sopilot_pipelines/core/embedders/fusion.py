"""Fusion of embedders ("deep+builtin"): each part's clip vectors as one block, blocks weighted
equally, the whole L2-normalised. Appearance (deep: what is in the frame) and motion (builtin:
where and how things move) fail on different footage; together they hold on more of it.

Frames are decoded once, at the first part's frame size; the other parts take them as they come
(each resizes to its own working resolution).
"""

from __future__ import annotations

import numpy as np

from .base import Embedder, l2_normalize_rows, validate_inputs


class FusionEmbedder(Embedder):
    def __init__(self, parts: list[Embedder]):
        if len(parts) < 2:
            raise ValueError("a fusion needs at least two embedders")
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.dim = sum(p.dim for p in parts)
        self.frame_size = parts[0].frame_size

    def embed(self, frames: np.ndarray, spans: np.ndarray) -> np.ndarray:
        frames, spans = validate_inputs(frames, spans)
        w = np.float32(1.0 / np.sqrt(len(self.parts)))
        blocks = [p.embed(frames, spans) * w for p in self.parts]
        return l2_normalize_rows(np.hstack(blocks))

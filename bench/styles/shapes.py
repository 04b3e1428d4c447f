"""Benchmark style "shapes": coloured shapes moving over a fixed, procedurally textured background.

Each gold step is ONE antialiased shape (circle, square, triangle, star, cross, ring, hexagon,
crescent) of one colour that fades/grows in, follows a step-specific trajectory (loop, zig-zag,
spiral, bounce, figure-eight, slow drift with rotation, pendulum swing, rectangle tour) and fades
out at the end of the step. Between steps only the background is seen. The background (fractal
noise mixed with tiles / stripes / blobs / marble / dots, different per task) never moves, except
in "correct_nuisance", where the camera pans and zooms a few percent.

    wrong_execution  the middle step: same shape, colour and size, a trajectory of another family
    extra_step       a shape that no gold step uses, in some colour, on some trajectory
    pause            nothing but the background

Formats (all H.264 .mp4): gold 480x360 @ 25 fps; trainees 426x240 @ 30 fps (16:9, sees a little
more background at the sides); correct_nuisance 270x480 @ 15 fps (9:16 phone portrait, sees more
background above and below), with pan/zoom and a colour-temperature change. Every video has a
gentle global brightness flicker and sensor noise.

The scene lives in world units: the gold camera sees x in [-2/3, 2/3], y in [-1/2, 1/2] (y down);
every trajectory stays inside that window, so every camera sees every shape whole.

    python -m bench.styles.shapes OUT_DIR [TASK_SEED]   # renders one task + OUT_DIR/contact.png
"""

from __future__ import annotations

import math
import sys
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

try:  # run as part of the package (bench.styles.shapes) or as a script
    from . import plans
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import plans  # type: ignore[no-redef]

NAME = "shapes"

# ---------------------------------------------------------------- world & cameras
PPU_M = 360.0  # master background pixels per world unit (= gold camera's)
X0, X1 = -1.0, 1.0  # master background extent (world units)
Y0, Y1 = -1.38, 1.38
VIEW_X, VIEW_Y = 2.0 / 3.0, 0.5  # half extents every trajectory stays within (gold view)


@dataclass(frozen=True)
class Camera:
    w: int
    h: int
    fps: float
    ppu: float  # output pixels per world unit at zoom 1
    moving: bool = False  # slow pan/zoom (correct_nuisance)
    noise: float = 2.5  # sensor noise sigma, in 8-bit levels


GOLD_CAM = Camera(480, 360, 25.0, 360.0, noise=2.0)
TRAINEE_CAM = Camera(426, 240, 30.0, 240.0, noise=3.0)
NUISANCE_CAM = Camera(270, 480, 15.0, 270.0 / 1.42, moving=True, noise=4.0)


def _camera(variant: str) -> Camera:
    if variant == "gold":
        return GOLD_CAM
    if variant == "correct_nuisance":
        return NUISANCE_CAM
    return TRAINEE_CAM


# ---------------------------------------------------------------- procedure
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent")
COLOURS = {  # vivid, well separated hues
    "red": (226, 46, 40),
    "orange": (250, 140, 20),
    "yellow": (250, 222, 40),
    "green": (40, 190, 70),
    "cyan": (30, 200, 220),
    "blue": (40, 80, 230),
    "purple": (140, 60, 210),
    "magenta": (235, 50, 190),
    "white": (245, 245, 245),
}
MOTIONS = ("loop", "zigzag", "spiral", "bounce", "figure8", "drift", "pendulum", "rectangle")
# motions that look alike; a wrong execution never swaps one for its look-alike
_ALIKE = {
    "loop": {"spiral", "figure8"},
    "spiral": {"loop"},
    "figure8": {"loop"},
    "zigzag": {"bounce"},
    "bounce": {"zigzag"},
    "drift": set(),
    "pendulum": {"bounce"},
    "rectangle": {"loop"},
}


@dataclass(frozen=True)
class StepSpec:
    shape: str
    colour: str
    size: float  # shape radius, world units
    motion: str
    path: np.ndarray  # (K, 2) world positions sampled uniformly over the step, u in [0, 1]
    turns: float  # rotation over the step, in turns
    angle0: float  # radians

    def at(self, u: float) -> tuple[float, float, float]:
        """(x, y, angle) at step progress u in [0, 1]."""
        k = len(self.path) - 1
        f = min(max(u, 0.0), 1.0) * k
        i = min(int(f), k - 1)
        a = f - i
        x, y = self.path[i] * (1 - a) + self.path[i + 1] * a
        return float(x), float(y), self.angle0 + 2 * math.pi * self.turns * u


@dataclass(frozen=True)
class Procedure:
    steps: list[StepSpec]
    wrong: dict[int, StepSpec]  # step index -> its wrong execution
    extra: StepSpec
    durations: list[float]
    transition: float
    lead_in: float
    tail: float
    bg: np.ndarray  # master background, float32 (H, W, 3), 0..255


def _raw_path(kind: str, rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
    """A trajectory of one family, in arbitrary position/scale (fitted into the view later)."""
    d = rng.choice([-1.0, 1.0])
    ph = rng.uniform(0, 2 * math.pi)
    if kind == "loop":  # circle(s) around a centre
        k = rng.uniform(1.0, 1.6)
        r = rng.uniform(0.17, 0.26)
        a = ph + d * 2 * math.pi * k * u
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if kind == "spiral":  # inward or outward spiral, ~2.5 turns
        a = ph + d * 2 * math.pi * rng.uniform(2.2, 2.8) * u
        r = 0.03 + 0.27 * (1 - u if rng.random() < 0.5 else u)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if kind == "zigzag":  # straight legs with sharp corners along a slanted line
        n = rng.integers(3, 6)
        tri = 2 * np.abs((u * n + 0.25) % 1.0 - 0.5) * 2 - 1  # triangle wave -1..1
        ang = rng.uniform(-0.45, 0.45)
        along = d * (u - 0.5) * rng.uniform(0.8, 1.0)
        across = tri * rng.uniform(0.12, 0.17)
        return np.stack(
            [along * math.cos(ang) - across * math.sin(ang), along * math.sin(ang) + across * math.cos(ang)], 1
        )
    if kind == "bounce":  # ball bouncing along a floor, decaying hops
        n = int(rng.integers(3, 5))
        s = (u * n) % 1.0
        hop = np.minimum(np.floor(u * n), n - 1)
        h = rng.uniform(0.3, 0.4) * (0.78**hop)
        y = -h * 4 * s * (1 - s)
        x = d * (u - 0.5) * rng.uniform(0.8, 1.0)
        return np.stack([x, y], 1)
    if kind == "figure8":  # lemniscate, horizontal or vertical
        a = ph + d * 2 * math.pi * u * rng.choice([1.0, 1.5])
        p = np.stack([0.32 * np.sin(a), 0.2 * np.sin(a) * np.cos(a) * 2], 1)
        return p[:, ::-1] if rng.random() < 0.35 else p
    if kind == "drift":  # slow straight drift (the shape rotates a lot, see _spec)
        ang = rng.uniform(0, 2 * math.pi)
        L = rng.uniform(0.22, 0.32)
        e = u * u * (3 - 2 * u)
        return np.stack([L * (e - 0.5) * math.cos(ang), L * (e - 0.5) * math.sin(ang)], 1)
    if kind == "pendulum":  # hanging swing from a pivot above, 2-3 swings
        L = rng.uniform(0.35, 0.5)
        th = rng.uniform(0.7, 0.95) * np.sin(ph + 2 * math.pi * rng.uniform(1.8, 2.6) * u)
        return np.stack([L * np.sin(th), L * np.cos(th)], 1)
    if kind == "rectangle":  # tour of a rectangle's corners, easing into each corner
        wv, hv = rng.uniform(0.3, 0.5), rng.uniform(0.22, 0.34)
        c = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * [wv / 2, hv / 2]
        if d < 0:
            c = c[::-1]
        c = np.roll(c, int(rng.integers(4)), 0)
        f = u * rng.choice([4.0, 5.0])
        i = np.floor(f).astype(int)
        s = f - i
        s = s * s * (3 - 2 * s)
        a, b = c[i % 4], c[(i + 1) % 4]
        return a * (1 - s[:, None]) + b * s[:, None]
    raise ValueError(kind)


def _fit(path: np.ndarray, size: float, centre: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Scale the path down if it overflows the view, then place it (at `centre` if given,
    else somewhere random) fully inside the view, shape included."""
    lim = np.array([VIEW_X, VIEW_Y]) - size * 1.35 - 0.02
    lo, hi = path.min(0), path.max(0)
    span = np.maximum(hi - lo, 1e-6)
    s = min(1.0, float(np.min(2 * lim / span)))
    path = (path - (lo + hi) / 2) * s
    half = span * s / 2
    room = np.maximum(lim - half, 0)
    if centre is None:
        centre = rng.uniform(-room, room)
    centre = np.clip(centre, -room, room)
    return path + centre


def _spec(
    shape: str,
    colour: str,
    motion: str,
    rng: np.random.Generator,
    size: float | None = None,
    centre: np.ndarray | None = None,
) -> StepSpec:
    u = np.linspace(0, 1, 241)
    size = size if size is not None else float(rng.uniform(0.075, 0.1))
    path = _fit(_raw_path(motion, rng, u), size, centre, rng)
    turns = rng.choice([-1, 1]) * (rng.uniform(0.6, 1.2) if motion == "drift" else rng.uniform(0.0, 0.35))
    return StepSpec(shape, colour, size, motion, path, float(turns), float(rng.uniform(0, 2 * math.pi)))


def _durations_fit(
    durations: list[float], transition: float, lead: float, tail: float, cap: float = 44.5
) -> list[float]:
    """Shrink step durations (towards 3 s) until every variant's video lasts <= cap seconds."""
    d = list(durations)
    for _ in range(40):
        worst = max(
            plans.lay_out(plans.plan_variant(d, v)[0], transition, lead, tail).duration_sec for v in plans.VARIANTS
        )
        if worst <= cap:
            return d
        d = [3.0 + (x - 3.0) * 0.93 for x in d]
    return [3.0] * len(d)


def _procedure(task_seed: int) -> Procedure:
    rng = np.random.default_rng(task_seed)
    n = int(rng.choice([4, 5, 5, 5, 6]))
    shapes = list(rng.choice(SHAPES, n, replace=False))
    colours = list(rng.choice(list(COLOURS), n, replace=False))
    # at least two steps share a colour or a shape (sometimes both kinds of sharing, other pairs)
    i, j = rng.choice(n, 2, replace=False)
    if rng.random() < 0.5:
        shapes[j] = shapes[i]
    else:
        colours[j] = colours[i]
    if rng.random() < 0.4:
        k, m = rng.choice([x for x in range(n) if x not in (i, j)], 2, replace=False)
        colours[m] = colours[k] if shapes[m] != shapes[k] else colours[m]
    motions = list(rng.choice(MOTIONS, n, replace=False))
    steps = [_spec(str(s), str(c), str(m), rng) for s, c, m in zip(shapes, colours, motions)]

    mid = n // 2  # plans.plan_variant's wrong_execution step
    o = steps[mid]
    pool = [m for m in MOTIONS if m not in motions and m not in _ALIKE[o.motion]] or [
        m for m in MOTIONS if m != o.motion
    ]
    wm = str(rng.choice(pool))
    centre = (o.path.min(0) + o.path.max(0)) / 2
    w = _spec(o.shape, o.colour, wm, rng, size=o.size, centre=centre)
    wrong = {mid: replace(w, turns=o.turns, angle0=o.angle0)}

    unused = [s for s in SHAPES if s not in shapes]
    extra = _spec(str(rng.choice(unused)), str(rng.choice(list(COLOURS))), str(rng.choice(MOTIONS)), rng)

    transition = float(rng.uniform(0.6, 0.9))
    lead, tail = float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.8, 1.2))
    durations = [float(x) for x in np.round(rng.uniform(3.0, 7.0, n), 2)]
    durations = [round(x, 2) for x in _durations_fit(durations, transition, lead, tail)]
    bg = _background(np.random.default_rng([task_seed, 7]))
    return Procedure(steps, wrong, extra, durations, transition, lead, tail, bg)


# ---------------------------------------------------------------- background texture
def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32) * 255


def _value_noise(rng, wx, wy, freq):
    """Smooth value noise in [0, 1] at world coords (wx: (W,), wy: (H,)), `freq` cells per unit."""
    gx = (wx - X0) * freq + rng.uniform(0, 1)
    gy = (wy - Y0) * freq + rng.uniform(0, 1)
    g = rng.random((int(gy.max()) + 3, int(gx.max()) + 3)).astype(np.float32)
    ix, iy = gx.astype(int), gy.astype(int)
    fx, fy = gx - ix, gy - iy
    fx = (fx * fx * (3 - 2 * fx)).astype(np.float32)
    fy = (fy * fy * (3 - 2 * fy)).astype(np.float32)[:, None]
    r0 = g[iy][:, ix] * (1 - fx) + g[iy][:, ix + 1] * fx
    r1 = g[iy + 1][:, ix] * (1 - fx) + g[iy + 1][:, ix + 1] * fx
    return r0 * (1 - fy) + r1 * fy


def _fbm(rng, wx, wy, base, octaves=5, gain=0.5):
    out, amp, tot = 0.0, 1.0, 0.0
    for o in range(octaves):
        out = out + amp * _value_noise(rng, wx, wy, base * 2**o)
        tot += amp
        amp *= gain
    return out / tot


def _background(rng: np.random.Generator) -> np.ndarray:
    W, H = int(round((X1 - X0) * PPU_M)), int(round((Y1 - Y0) * PPU_M))
    wx = (X0 + (np.arange(W) + 0.5) / PPU_M).astype(np.float32)
    wy = (Y0 + (np.arange(H) + 0.5) / PPU_M).astype(np.float32)
    X, Y = np.meshgrid(wx, wy)
    px = 1.0 / PPU_M
    hue = rng.uniform()
    ca = _hsv(hue, rng.uniform(0.15, 0.4), rng.uniform(0.3, 0.45))
    cb = _hsv((hue + rng.uniform(-0.12, 0.12)) % 1, rng.uniform(0.1, 0.35), rng.uniform(0.6, 0.78))
    cc = _hsv((hue + rng.uniform(0.3, 0.7)) % 1, rng.uniform(0.15, 0.35), rng.uniform(0.45, 0.7))
    n = _fbm(rng, wx, wy, rng.uniform(2.0, 4.0))
    n = (n - n.mean()) / (n.std() + 1e-6)
    t = np.clip(0.5 + 0.22 * n, 0, 1)[..., None]
    img = ca * (1 - t) + cb * t
    layers = rng.choice(["tiles", "stripes", "blobs", "marble", "dots", "checker"], 2, replace=False)
    for layer in layers:
        a = rng.uniform(0.35, 0.7)
        if layer == "tiles":  # brick/tile grid, grout lines, per-tile shade
            s = rng.uniform(0.09, 0.2)
            tx = X / s + (np.floor(Y / s) % 2) * 0.5 * (rng.random() < 0.6)
            ty = Y / (s * rng.uniform(0.5, 1.0))
            cell = (np.floor(tx).astype(np.int64) * 73856093) ^ (np.floor(ty).astype(np.int64) * 19349663)
            shade = (np.abs(cell) % 1000 / 1000.0).astype(np.float32)
            edge = np.minimum(np.minimum(tx % 1, 1 - tx % 1) * s, np.minimum(ty % 1, 1 - ty % 1) * s * 0.75)
            grout = np.clip((rng.uniform(0.004, 0.009) - edge) / px + 0.5, 0, 1).astype(np.float32)
            tile = img * (0.8 + 0.4 * shade[..., None])
            img = img * (1 - a) + tile * a
            img = img * (1 - grout[..., None] * 0.7) + (ca * 0.5) * grout[..., None] * 0.7
        elif layer == "stripes":
            th = rng.uniform(0, math.pi)
            per = rng.uniform(0.05, 0.14)
            v = 0.5 + 0.5 * np.sin(2 * math.pi * (X * math.cos(th) + Y * math.sin(th)) / per)
            v = np.clip((v - 0.5) * 3 + 0.5, 0, 1).astype(np.float32)[..., None]
            img = img * (1 - a * 0.6 * v) + cc * (a * 0.6 * v)
        elif layer == "blobs":
            for _ in range(int(rng.integers(15, 35))):
                cx, cy, r = rng.uniform(X0, X1), rng.uniform(Y0, Y1), rng.uniform(0.03, 0.2)
                col = _hsv(rng.uniform(), rng.uniform(0.1, 0.4), rng.uniform(0.35, 0.8))
                y0, y1 = max(0, int((cy - r - Y0) * PPU_M) - 2), min(H, int((cy + r - Y0) * PPU_M) + 3)
                x0, x1 = max(0, int((cx - r - X0) * PPU_M) - 2), min(W, int((cx + r - X0) * PPU_M) + 3)
                if y1 <= y0 or x1 <= x0:
                    continue
                d = np.hypot(X[y0:y1, x0:x1] - cx, Y[y0:y1, x0:x1] - cy)
                soft = rng.uniform(0.1, 0.6)
                m = np.clip((r - d) / (r * soft + px), 0, 1)[..., None] * rng.uniform(0.3, 0.6)
                img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - m) + col * m
        elif layer == "marble":
            th = rng.uniform(0, math.pi)
            v = np.sin((X * math.cos(th) + Y * math.sin(th)) * rng.uniform(8, 16) + 7 * _fbm(rng, wx, wy, 3.0, 4))
            v = (np.abs(v) ** 0.35).astype(np.float32)[..., None]
            img = img * (1 - a * (1 - v)) + (ca * 0.6) * (a * (1 - v))
        elif layer == "dots":
            s = rng.uniform(0.06, 0.12)
            d = np.hypot((X / s) % 1 - 0.5, (Y / s) % 1 - 0.5) * s
            m = np.clip((s * rng.uniform(0.15, 0.3) - d) / px + 0.5, 0, 1).astype(np.float32)[..., None] * a
            img = img * (1 - m) + cc * m
        elif layer == "checker":
            s = rng.uniform(0.1, 0.25)
            th = rng.uniform(0, math.pi / 2)
            xr, yr = X * math.cos(th) + Y * math.sin(th), -X * math.sin(th) + Y * math.cos(th)
            c = ((np.floor(xr / s) + np.floor(yr / s)) % 2).astype(np.float32)[..., None]
            img = img * (1 - 0.25 * a * c) + cc * (0.25 * a * c)
    # fine grain so the texture is textured at every scale
    img = img * (0.92 + 0.16 * _value_noise(rng, wx, wy, 90.0)[..., None])
    return np.clip(img, 0, 255).astype(np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(2.5 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    for ax in (0, 1):
        pad = [(0, 0)] * 3
        pad[ax] = (r, r)
        p = np.pad(img, pad, mode="edge")
        n = img.shape[ax]
        out = np.zeros_like(img)
        for i, w in enumerate(k):
            out += w * (p[i : i + n] if ax == 0 else p[:, i : i + n])
        img = out
    return img


def _sample(src: np.ndarray, cam: Camera, cx: float, cy: float, zoom: float) -> np.ndarray:
    """The camera's view of the master background (bilinear, separable: axis-aligned)."""
    s = cam.ppu * zoom
    mx = ((np.arange(cam.w) + 0.5 - cam.w / 2) / s + cx - X0) * PPU_M - 0.5
    my = ((np.arange(cam.h) + 0.5 - cam.h / 2) / s + cy - Y0) * PPU_M - 0.5
    mx = np.clip(mx, 0, src.shape[1] - 1.001)
    my = np.clip(my, 0, src.shape[0] - 1.001)
    ix, iy = mx.astype(int), my.astype(int)
    fx = (mx - ix).astype(np.float32)[None, :, None]
    fy = (my - iy).astype(np.float32)[:, None, None]
    rows = src[iy] * (1 - fy) + src[iy + 1] * fy
    return rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx


# ---------------------------------------------------------------- shapes (signed distances)
def _regular(n: int, r: float, rot: float = -math.pi / 2) -> np.ndarray:
    a = rot + 2 * math.pi * np.arange(n) / n
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _star(n: int, r0: float, r1: float) -> np.ndarray:
    a = -math.pi / 2 + math.pi * np.arange(2 * n) / n
    r = np.where(np.arange(2 * n) % 2 == 0, r0, r1)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


_POLYS = {"triangle": _regular(3, 1.18, -math.pi / 2), "hexagon": _regular(6, 1.0, 0.0), "star": _star(5, 1.2, 0.5)}


def _sd_poly(x, y, v):
    d = (x - v[0, 0]) ** 2 + (y - v[0, 1]) ** 2
    s = np.ones_like(x)
    n = len(v)
    for i in range(n):
        (ax, ay), (bx, by) = v[i], v[i - 1]
        ex, ey = bx - ax, by - ay
        wx, wy = x - ax, y - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        qx, qy = wx - ex * t, wy - ey * t
        d = np.minimum(d, qx * qx + qy * qy)
        c1, c2, c3 = y >= ay, y < by, ex * wy > ey * wx
        s = np.where((c1 & c2 & c3) | (~c1 & ~c2 & ~c3), -s, s)
    return s * np.sqrt(d)


def _sd_box(x, y, bx, by, r=0.0):
    qx, qy = np.abs(x) - bx + r, np.abs(y) - by + r
    return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - r


def _sd(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (unit radius shapes, negative inside) at local coords."""
    if shape == "circle":
        return np.hypot(x, y) - 1.0
    if shape == "ring":
        return np.abs(np.hypot(x, y) - 0.74) - 0.28
    if shape == "square":
        return _sd_box(x, y, 0.84, 0.84, 0.1)
    if shape == "cross":
        return np.minimum(_sd_box(x, y, 1.0, 0.33, 0.05), _sd_box(x, y, 0.33, 1.0, 0.05))
    if shape == "crescent":
        return np.maximum(np.hypot(x, y) - 1.0, -(np.hypot(x - 0.5, y + 0.25) - 0.82))
    if shape == "triangle":
        return _sd_poly(x, y + 0.2, _POLYS["triangle"])
    return _sd_poly(x, y, _POLYS[shape])


def _draw(frame: np.ndarray, spec: StepSpec, sx: float, sy: float, rad: float, angle: float, alpha: float) -> None:
    """Composite one shape (with outline, shading and a soft shadow) into frame, in place."""
    if alpha <= 0.003 or rad < 0.5:
        return
    H, W = frame.shape[:2]
    off = 0.16 * rad
    ext = rad * 1.35 + off + 3
    x0, x1 = max(0, int(sx - ext)), min(W, int(sx + ext) + 2)
    y0, y1 = max(0, int(sy - ext)), min(H, int(sy + ext) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    gx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - sx)[None, :]
    gy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - sy)[:, None]
    c, s = math.cos(angle), math.sin(angle)

    def sd_px(dx, dy):
        lx = (c * (gx - dx) + s * (gy - dy)) / rad
        ly = (-s * (gx - dx) + c * (gy - dy)) / rad
        return _sd(spec.shape, lx, ly) * rad, lx, ly

    d, lx, ly = sd_px(0.0, 0.0)
    ds, _, _ = sd_px(off, off * 1.2)
    patch = frame[y0:y1, x0:x1]
    blur = max(1.5, 0.18 * rad)
    sh = (np.clip(0.5 - ds / blur, 0, 1) * (0.38 * alpha))[..., None]
    patch *= 1 - sh
    cov = np.clip(0.5 - d, 0, 1)[..., None] * alpha
    col = np.array(COLOURS[spec.colour], np.float32)
    line = max(1.0, 0.07 * rad)
    edge = np.clip(0.5 + (d + line), 0, 1)[..., None]  # 1 on the outline band
    # light from the top-left in screen space (shading independent of rotation)
    shade = 1.07 - 0.14 * np.clip((gx + gy) / (rad * 1.6), -1, 1)[..., None]
    fill = np.clip(col * shade, 0, 255) * (1 - edge) + (col * 0.45) * edge
    patch *= 1 - cov
    patch += fill * cov


# ---------------------------------------------------------------- rendering
def _render(proc: Procedure, acts: list[plans.Activity], path: Path, variant: str, seed: int) -> plans.Timeline:
    cam = _camera(variant)
    rng = np.random.default_rng([seed, 99])
    tl = plans.lay_out(acts, proc.transition, proc.lead_in, proc.tail)
    nfr = int(round(tl.duration_sec * cam.fps))
    src = proc.bg
    ratio = PPU_M / cam.ppu
    if ratio > 1.15:
        src = _blur(src, 0.45 * ratio)
    # nuisances: flicker (all), sensor noise (all), pan/zoom + colour temperature (moving camera)
    f1, f2 = rng.uniform(0.3, 0.8), rng.uniform(1.5, 3.0)
    p1, p2 = rng.uniform(0, 2 * math.pi, 2)
    a1, a2 = rng.uniform(0.015, 0.03), rng.uniform(0.006, 0.012)
    tint = np.ones(3, np.float32)
    if cam.moving:
        warm = rng.random() < 0.5
        tint = np.array([1.08, 1.0, 0.86] if warm else [0.88, 0.98, 1.1], np.float32) * rng.uniform(0.94, 1.04)
        pan_a = rng.uniform(0.02, 0.035, 2) * rng.choice([-1, 1], 2)
        pan_f = rng.uniform(0.03, 0.07, 2)
        zoom_a, zoom_f = rng.uniform(0.03, 0.05), rng.uniform(0.02, 0.05)
        zp = rng.uniform(0, 2 * math.pi, 3)
    static = None if cam.moving else _sample(src, cam, 0.0, 0.0, 1.0)
    noise = [rng.normal(0, cam.noise, (cam.h, cam.w, 3)).astype(np.float32) for _ in range(7)]
    with plans.VideoWriter(path, (cam.w, cam.h), cam.fps, codec="h264") as vw:
        for i in range(nfr):
            t = i / cam.fps
            if cam.moving:
                cx = pan_a[0] * math.sin(2 * math.pi * pan_f[0] * t + zp[0])
                cy = pan_a[1] * math.sin(2 * math.pi * pan_f[1] * t + zp[1])
                zoom = 1.0 + zoom_a * math.sin(2 * math.pi * zoom_f * t + zp[2])
                frame = _sample(src, cam, cx, cy, zoom)
            else:
                cx = cy = 0.0
                zoom = 1.0
                frame = static.copy()
            seg, lt = plans.activity_at(tl, t)
            if seg is not None and seg.activity.kind != "pause":
                a = seg.activity
                spec = proc.extra if a.kind == "extra" else (proc.wrong[a.step] if a.wrong else proc.steps[a.step])
                dur = seg.end_sec - seg.start_sec
                x, y, ang = spec.at(lt / dur)
                fi = min(0.4, 0.15 * dur)
                e = min(1.0, lt / fi, (dur - lt) / fi)
                e = max(0.0, e) ** 2 * (3 - 2 * max(0.0, e))
                s = cam.ppu * zoom
                _draw(
                    frame,
                    spec,
                    (x - cx) * s + cam.w / 2,
                    (y - cy) * s + cam.h / 2,
                    spec.size * s * (0.55 + 0.45 * e),
                    ang,
                    e,
                )
            g = (1.0 + a1 * math.sin(2 * math.pi * f1 * t + p1) + a2 * math.sin(2 * math.pi * f2 * t + p2)) * tint
            frame *= g
            frame += noise[(i * 3 + (i // 7)) % len(noise)]
            np.clip(frame, 0, 255, out=frame)
            vw.write(frame.astype(np.uint8))
    return tl


def render_task(out_dir: Path, task_seed: int, variants: Sequence[str] = plans.VARIANTS) -> plans.Task:
    proc = _procedure(task_seed)

    def render(acts, path, variant, seed):
        return _render(proc, acts, path, variant, seed)

    render.suffix = ".mp4"
    return plans.build_task(NAME, f"{NAME}-{task_seed:04d}", Path(out_dir), proc.durations, variants, render, task_seed)


# ---------------------------------------------------------------- contact sheet (for looking)
def _decode(path: Path, times: Sequence[float]) -> list[np.ndarray]:
    import re
    import subprocess

    from imageio_ffmpeg import get_ffmpeg_exe

    ff = get_ffmpeg_exe()
    probe = subprocess.run([ff, "-i", str(path)], capture_output=True).stderr.decode()
    w, h = map(int, re.search(r", (\d{2,5})x(\d{2,5})", probe).groups())
    out = []
    for t in times:
        out.append(plans.read_frame(path, t, (w, h)))
    return out


def _write_png(path: Path, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return len(data).to_bytes(4, "big") + tag + data + zlib.crc32(tag + data).to_bytes(4, "big")

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", w.to_bytes(4, "big") + h.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00")
    Path(path).write_bytes(png + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _contact(task: plans.Task, path: Path) -> None:
    tiles = _decode(task.gold.path, [(a + b) / 2 for a, b in task.gold_steps()])
    for v in ("correct_nuisance", "wrong_execution", "extra_step"):
        if v in task.trainees:
            vid = task.trainees[v]
            segs = vid.timeline.segments
            if v == "correct_nuisance":
                s = segs[len(segs) // 2]
            else:
                s = next(x for x in segs if x.activity.wrong or x.activity.kind == "extra")
            tiles += _decode(vid.path, [(s.start_sec + s.end_sec) / 2])
    H = max(t.shape[0] for t in tiles)
    cols = 4
    rows = [tiles[i : i + cols] for i in range(0, len(tiles), cols)]
    W = max(sum(t.shape[1] + 6 for t in r) for r in rows)
    sheet = np.full(((H + 6) * len(rows), W, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        x = 0
        for t in row:
            sheet[r * (H + 6) : r * (H + 6) + t.shape[0], x : x + t.shape[1]] = t
            x += t.shape[1] + 6
    _write_png(path, sheet)


if __name__ == "__main__":
    out, seed, task = plans.render_from_argv(render_task, "/tmp/shapes_task")
    proc = _procedure(seed)
    for k, s in enumerate(proc.steps):
        print(f"step {k}: {s.shape:9s} {s.colour:8s} {s.motion:10s} {proc.durations[k]:.2f} s")
    for k, s in proc.wrong.items():
        print(f"wrong {k}: {s.shape:9s} {s.colour:8s} {s.motion}")
    print(f"extra  : {proc.extra.shape:9s} {proc.extra.colour:8s} {proc.extra.motion}")
    for v, vid in task.trainees.items():
        print(f"{v:17s} {vid.timeline.duration_sec:6.2f} s  {vid.path.name}")
    _contact(task, out / "contact.png")
    print("contact sheet:", out / "contact.png")

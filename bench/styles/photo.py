"""Benchmark style "photo": photographic scenes.

A task picks one real photograph that ships inside the scikit-image wheel as its scene. Each
step is an object cut out of ANOTHER shipped photograph (a cup from `coffee`, the cat's face
from `chelsea`, a coin from `coins`, ...), with a soft alpha mask and a soft drop shadow, that
comes into the frame from an edge, moves over a step-specific part of the scene along a
step-specific path (slide, arc, circle, figure eight, shake, spin, approach) and leaves the
frame again. A virtual camera zooms and pans slowly over the scene (Ken Burns); its path is a
function of the step and of the phase inside the step, so gold and trainee see the same framing
for the same step (a trainee's base framing may differ slightly, correct_nuisance's clearly).

Between activities nothing moves but the camera, which glides from one step's framing to the
next. Trainees add sensor noise, JPEG compression and a slow exposure drift; correct_nuisance
also has a tighter base zoom, a pan offset, a warmer white balance and another size and rate.

    python -m bench.styles.photo OUT_DIR [--seed N] [--variants gold,correct_nuisance,...]

renders one task into OUT_DIR and writes OUT_DIR/<task_id>_contact.png.
"""

from __future__ import annotations

import bisect
import io
import math
import sys
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

try:  # package import (bench.styles.photo) or a plain script next to plans.py
    from . import plans
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import plans  # type: ignore[no-redef]

NAME = "photo"

# ----------------------------------------------------------------------------- photographs

# Scene photographs (skimage.data names). Only those that load offline are used.
SCENES = ("coffee", "rocket", "stereo_motorcycle", "astronaut", "chelsea", "camera", "hubble_deep_field", "moon")

# Objects: source photograph, ellipse centre (row, col) and radii (ry, rx) in its pixels,
# nominal size on screen (largest dimension, in units of the base view's height), tint.
OBJECTS: dict[str, tuple[str, int, int, int, int, float, tuple[float, float, float]]] = {
    "cup": ("coffee", 163, 290, 152, 138, 0.36, (1, 1, 1)),
    "catface": ("chelsea", 165, 225, 140, 170, 0.34, (1, 1, 1)),
    "coin": ("coins", 187, 347, 34, 34, 0.22, (1.12, 1.0, 0.78)),
    "coin2": ("coins", 50, 345, 32, 32, 0.22, (1.0, 1.0, 1.04)),
    "face": ("astronaut", 100, 225, 92, 75, 0.34, (1, 1, 1)),
    "badge": ("astronaut", 385, 170, 40, 40, 0.24, (1, 1, 1)),
    "shuttle": ("astronaut", 165, 410, 115, 60, 0.40, (1, 1, 1)),
    "rocket": ("rocket", 265, 322, 145, 35, 0.44, (1, 1, 1)),
    "headlight": ("stereo_motorcycle", 152, 535, 38, 38, 0.24, (1, 1, 1)),
    "camcorder": ("camera", 165, 290, 36, 52, 0.30, (1, 1, 1)),
    "crater": ("moon", 88, 120, 30, 30, 0.22, (1.0, 0.97, 0.9)),
    "galaxy": ("hubble_deep_field", 475, 728, 30, 30, 0.24, (1, 1, 1)),
    "spiral": ("hubble_deep_field", 400, 123, 24, 24, 0.22, (1, 1, 1)),
    "disc": ("retina", 646, 226, 100, 100, 0.28, (1, 1, 1)),
}


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray | None:
    """A shipped photograph as RGB uint8, or None where it is not available offline."""
    import skimage.data as data

    fn = getattr(data, name, None)
    if fn is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = fn()
    except Exception:  # needs pooch / a download: skip it
        return None
    if isinstance(a, tuple):  # stereo_motorcycle: (left, right, disparity)
        a = a[0]
    a = np.asarray(a)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        return None
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def available_scenes() -> list[str]:
    return [s for s in SCENES if _photo(s) is not None]


def available_objects() -> list[str]:
    return [o for o, v in OBJECTS.items() if _photo(v[0]) is not None]


@lru_cache(maxsize=None)
def _cutout(obj: str) -> np.ndarray:
    """Object patch (h, w, 5) float32: RGB 0..255, soft alpha 0..1, blurred alpha (shadow)."""
    from scipy.ndimage import gaussian_filter

    src, cy, cx, ry, rx, _, tint = OBJECTS[obj]
    a = _photo(src)
    pad = int(0.25 * max(ry, rx)) + 4
    h, w = 2 * (ry + pad) + 1, 2 * (rx + pad) + 1
    out = np.zeros((h, w, 5), np.float32)
    y0, x0 = cy - ry - pad, cx - rx - pad
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + h, a.shape[0]), min(x0 + w, a.shape[1])
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0, :3] = a[sy0:sy1, sx0:sx1]
    out[..., :3] *= np.asarray(tint, np.float32)
    np.clip(out[..., :3], 0, 255, out=out[..., :3])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((yy - (ry + pad)) / ry) ** 2 + ((xx - (rx + pad)) / rx) ** 2)
    feather = 0.16
    s = np.clip((1.0 - r) / feather, 0.0, 1.0)
    alpha = s * s * (3 - 2 * s)
    inside = np.zeros_like(alpha)
    inside[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = 1.0  # nothing beyond the photo's edge
    alpha *= gaussian_filter(inside, 2.0)
    out[..., 3] = alpha
    out[..., 4] = gaussian_filter(alpha, 0.08 * max(ry, rx))
    return out


def _scaled_cutout(obj: str, height_px: float) -> tuple[np.ndarray, float]:
    """The cut-out resampled (anti-aliased) so that its ellipse's largest side is ~height_px,
    and that side's length in the returned patch's pixels."""
    p = _cutout(obj)
    _, _, _, ry, rx, _, _ = OBJECTS[obj]
    side = 2.0 * max(ry, rx)
    f = height_px / side
    if f > 0.97:
        return p, side
    h, w = max(4, round(p.shape[0] * f)), max(4, round(p.shape[1] * f))
    chans = [np.asarray(Image.fromarray(p[..., c]).resize((w, h), Image.BILINEAR, reducing_gap=None)) for c in range(5)]
    return np.stack(chans, axis=-1).astype(np.float32), side * h / p.shape[0]


# ----------------------------------------------------------------------------- the procedure

# Positions are in units of the base view's height; the base view spans u in [0, ASPECT],
# v in [0, 1].
ASPECT = 1.5
PLACES = ((0.5, 0.38), (1.0, 0.38), (0.5, 0.62), (1.0, 0.62), (0.75, 0.50))
MOTIONS = ("slide", "arc", "circle", "figure8", "shake", "spin", "approach")
FAMILY = {"slide": 0, "arc": 0, "circle": 1, "figure8": 1, "shake": 2, "spin": 3, "approach": 4}
EDGES = ("left", "right", "top", "bottom")
ENTER, EXIT = 0.13, 0.13  # fractions of a step spent bringing the object in / taking it out
SIZE = 1.15  # all objects a little larger than their nominal size


@dataclass(frozen=True)
class Motion:
    kind: str
    angle: float  # direction / orientation of the path, radians
    size: float  # length, radius or amplitude (base-view heights)
    sign: float  # +1 / -1: direction of turning
    cycles: float  # shakes / turns


@dataclass(frozen=True)
class Cam:
    z0: float
    z1: float
    c0: tuple[float, float]
    c1: tuple[float, float]


@dataclass(frozen=True)
class Spec:
    obj: str
    place: tuple[float, float]
    motion: Motion
    enter: str
    exit: str
    angle0: float  # object rotation, degrees
    scale0: float
    cam: Cam


@dataclass(frozen=True)
class TaskSpec:
    scene: str
    scene_cy: float  # vertical centre of the base view, as a fraction of the free range
    durations: tuple[float, ...]
    steps: tuple[Spec, ...]
    wrong: tuple[Spec, ...]  # each step done differently (same object, place, edges)
    extra: Spec


def _motion(rng: np.random.Generator, kind: str) -> Motion:
    size = {
        "slide": (0.22, 0.32),
        "arc": (0.12, 0.16),
        "circle": (0.09, 0.13),
        "figure8": (0.12, 0.16),
        "shake": (0.045, 0.07),
        "spin": (0.0, 0.02),
        "approach": (0.35, 0.5),
    }[kind]
    cycles = {"shake": rng.uniform(3.5, 5.5), "spin": rng.choice([1.0, 1.5]), "circle": 1.0}.get(kind, 1.0)
    return Motion(
        kind, float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(*size)), float(rng.choice([-1, 1])), float(cycles)
    )


def _cam(rng: np.random.Generator, place: tuple[float, float]) -> Cam:
    z0 = rng.uniform(1.0, 1.1)
    z1 = z0 + rng.uniform(0.04, 0.07) * (1 if rng.random() < 0.5 or z0 < 1.05 else -1)  # mostly in
    lean = 0.12  # the camera leans a little towards where the step happens
    cx, cy = (place[0] - ASPECT / 2) * lean, (place[1] - 0.5) * lean
    c0 = (cx + rng.uniform(-0.02, 0.02), cy + rng.uniform(-0.015, 0.015))
    c1 = (c0[0] + rng.uniform(-0.03, 0.03), c0[1] + rng.uniform(-0.02, 0.02))
    return Cam(float(z0), float(z1), (float(c0[0]), float(c0[1])), (float(c1[0]), float(c1[1])))


def _sequence(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """n items over k symbols, each used, no symbol twice in a row."""
    while True:
        counts = np.ones(k, int)
        for _ in range(n - k):
            counts[rng.integers(k)] += 1
        seq = list(rng.permutation(np.repeat(np.arange(k), counts)))
        if all(a != b for a, b in zip(seq, seq[1:])):
            return [int(s) for s in seq]


def make_spec(task_seed: int) -> TaskSpec:
    rng = np.random.default_rng(task_seed)
    scenes = available_scenes()
    scene = scenes[task_seed % len(scenes)]  # consecutive seeds go through every scene
    n = 5
    durations = rng.uniform(3.0, 7.0, n)
    if durations.sum() > 27.0:  # keeps correct_slower and over_time under 45 s
        durations = 3.0 + (durations - 3.0) * (27.0 - 3.0 * n) / (durations.sum() - 3.0 * n)
    # objects: from photographs other than the scene, one per source photograph
    pool = [o for o in available_objects() if OBJECTS[o][0] != scene]
    rng.shuffle(pool)
    objs, used_src = [], set()
    for o in pool:
        if OBJECTS[o][0] not in used_src:
            objs.append(o)
            used_src.add(OBJECTS[o][0])
    n_obj = 3 if n <= 5 else 4
    gold_objs, extra_obj = objs[:n_obj], objs[n_obj]
    n_place = n - 1
    place_ids = list(rng.permutation(len(PLACES)))
    gold_place_ids, extra_place = place_ids[:n_place], place_ids[n_place]
    while True:  # some steps share the object, some the place; no (object, place) twice
        o_seq, p_seq = _sequence(rng, n, n_obj), _sequence(rng, n, n_place)
        if len(set(zip(o_seq, p_seq))) == n:
            break
    while True:  # all motions differ; neighbours and steps with the same object: other families
        kinds = [MOTIONS[int(i)] for i in rng.permutation(len(MOTIONS))[:n]]
        fam = [FAMILY[k] for k in kinds]
        if all(fam[i] != fam[i + 1] for i in range(n - 1)) and all(
            fam[i] != fam[j] for i in range(n) for j in range(i + 1, n) if o_seq[i] == o_seq[j]
        ):
            break
    jit = rng.uniform(-0.035, 0.035, (len(PLACES), 2))
    places = [(PLACES[i][0] + jit[i, 0], PLACES[i][1] + jit[i, 1]) for i in range(len(PLACES))]

    def spec(obj: str, place: tuple[float, float], kind: str) -> Spec:
        horiz = "left" if place[0] < ASPECT / 2 else "right"
        vert = "top" if place[1] < 0.5 else "bottom"
        enter = horiz if rng.random() < 0.6 else vert
        exit_ = EDGES[int(rng.integers(4))]
        return Spec(
            obj,
            (float(place[0]), float(place[1])),
            _motion(rng, kind),
            enter,
            exit_,
            float(rng.uniform(-25, 25)),
            float(rng.uniform(0.9, 1.1)),
            _cam(rng, place),
        )

    steps = [spec(gold_objs[o_seq[i]], places[gold_place_ids[p_seq[i]]], kinds[i]) for i in range(n)]
    wrong = []
    for s in steps:
        others = [m for m in MOTIONS if FAMILY[m] != FAMILY[s.motion.kind]]
        wrong.append(replace(s, motion=_motion(rng, others[int(rng.integers(len(others)))])))
    extra_kind = MOTIONS[int(rng.integers(len(MOTIONS)))]
    extra = spec(extra_obj, places[extra_place], extra_kind)
    return TaskSpec(
        scene, float(rng.uniform(0.2, 0.8)), tuple(float(d) for d in durations), tuple(steps), tuple(wrong), extra
    )


# ----------------------------------------------------------------------------- motion


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _path(m: Motion, s: float) -> tuple[float, float, float, float]:
    """Offset (du, dv) from the place, extra rotation (deg) and scale at motion phase s."""
    ca, sa = math.cos(m.angle), math.sin(m.angle)
    e = _smooth(s)
    du = dv = rot = 0.0
    sc = 1.0
    if m.kind == "slide":
        d = (e - 0.5) * m.size
        du, dv = d * ca, d * sa
        rot = 6.0 * math.sin(math.pi * s) * m.sign
    elif m.kind == "arc":  # half a circle around the place, from one side to the other
        a = math.pi * e * m.sign
        x, y = -math.cos(a) * m.size, -abs(math.sin(a)) * m.size * 0.9
        du, dv = x * ca - y * sa, x * sa + y * ca
        rot = 25.0 * (e - 0.5) * m.sign * 2
    elif m.kind == "circle":
        a = m.angle + 2 * math.pi * m.cycles * e * m.sign
        du, dv = m.size * math.cos(a), m.size * math.sin(a)  # a loop around the place
    elif m.kind == "figure8":
        x, y = m.size * math.sin(2 * math.pi * e), 0.5 * m.size * math.sin(4 * math.pi * e) * m.sign
        du, dv = x * ca - y * sa, x * sa + y * ca
    elif m.kind == "shake":
        env = math.sin(math.pi * s) ** 0.5
        w = math.sin(2 * math.pi * m.cycles * s) * env
        du, dv = m.size * w * ca, m.size * w * sa
        rot = 10.0 * w
    elif m.kind == "spin":
        rot = 360.0 * m.cycles * e * m.sign
        du, dv = m.size * math.sin(2 * math.pi * s), 0.0
    elif m.kind == "approach":  # lifted towards the camera and put back
        sc = 1.0 + m.size * math.sin(math.pi * e) ** 1.5
        dv = -0.06 * math.sin(math.pi * e)
        rot = 12.0 * math.sin(math.pi * e) * m.sign
    return du, dv, rot, sc


def _offscreen(edge: str, p: tuple[float, float], size: float) -> tuple[float, float]:
    m = 0.14 + 0.6 * size
    return {"left": (-m, p[1]), "right": (ASPECT + m, p[1]), "top": (p[0], -m), "bottom": (p[0], 1 + m)}[edge]


def _object_state(sp: Spec, phase: float) -> tuple[float, float, float, float, float]:
    """(u, v, rotation deg, scale, opacity) of a step's object at phase 0..1 of the step."""
    size = OBJECTS[sp.obj][5] * SIZE * sp.scale0
    m0 = _path(sp.motion, 0.0)
    m1 = _path(sp.motion, 1.0)
    p0 = (sp.place[0] + m0[0], sp.place[1] + m0[1])
    p1 = (sp.place[0] + m1[0], sp.place[1] + m1[1])
    if phase < ENTER:
        a = _smooth(phase / ENTER) ** 0.7
        e = _offscreen(sp.enter, p0, size)
        return (
            e[0] + (p0[0] - e[0]) * a,
            e[1] + (p0[1] - e[1]) * a,
            sp.angle0 + m0[2] - 20 * (1 - a),
            m0[3] * sp.scale0,
            1.0,
        )
    if phase > 1 - EXIT:
        a = _smooth((phase - (1 - EXIT)) / EXIT) ** 1.4
        x = _offscreen(sp.exit, p1, size)
        return (
            p1[0] + (x[0] - p1[0]) * a,
            p1[1] + (x[1] - p1[1]) * a,
            sp.angle0 + m1[2] + 20 * a,
            m1[3] * sp.scale0,
            1.0,
        )
    s = (phase - ENTER) / (1 - ENTER - EXIT)
    du, dv, rot, sc = _path(sp.motion, s)
    return sp.place[0] + du, sp.place[1] + dv, sp.angle0 + rot, sc * sp.scale0, 1.0


def _cam_at(c: Cam, phase: float) -> tuple[float, float, float]:
    e = _smooth(phase) * 0.7 + 0.3 * phase
    return c.z0 + (c.z1 - c.z0) * e, c.c0[0] + (c.c1[0] - c.c0[0]) * e, c.c0[1] + (c.c1[1] - c.c0[1]) * e


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Look:
    size: tuple[int, int]
    fps: float
    zoom: float = 1.0  # base zoom
    pan: tuple[float, float] = (0.0, 0.0)  # base pan (base-view heights)
    wb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 1.2  # sensor noise sigma (grey levels)
    jpeg: int = 0  # JPEG quality of a round trip per frame; 0: none
    drift: float = 0.0  # exposure drift amplitude
    drift_period: float = 10.0
    drift_phase: float = 0.0
    exposure: float = 1.0
    transition: float = 0.7


def _look(variant: str, seed: int) -> Look:
    if variant == "gold":
        return Look((640, 426), 30.0)
    rng = np.random.default_rng(seed)
    common = dict(
        noise=float(rng.uniform(2.0, 3.5)),
        jpeg=int(rng.integers(38, 66)),
        drift=float(rng.uniform(0.04, 0.08)),
        drift_period=float(rng.uniform(7, 14)),
        drift_phase=float(rng.uniform(0, 2 * np.pi)),
        exposure=float(rng.uniform(0.95, 1.05)),
        transition=float(rng.uniform(0.55, 0.95)),
    )
    if variant == "correct_nuisance":
        pan = (
            float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.05)),
            float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.035)),
        )
        return Look((400, 266), 15.0, zoom=1.15, pan=pan, wb=(1.1, 1.0, 0.84), **common)
    zoom = float(rng.uniform(0.98, 1.03))
    pan = (float(rng.uniform(-0.012, 0.012)), float(rng.uniform(-0.01, 0.01)))
    return Look((512, 340), 24.0, zoom=zoom, pan=pan, **common)


class _Scene:
    """The scene, its base view and the drawing of one frame."""

    def __init__(self, spec: TaskSpec, look: Look):
        self.spec, self.look = spec, look
        img = _photo(spec.scene)
        self.img = Image.fromarray(img)
        H, W = img.shape[:2]
        self.W, self.H = look.size
        aspect = self.W / self.H
        hb = min(H, W / ASPECT) * 0.94
        self.hb = hb
        cx = W / 2.0
        cy = hb / 2 + (H - hb) * spec.scene_cy
        self.origin = (cx - ASPECT * hb / 2, cy - hb / 2)  # scene px of the base view's (0, 0)
        self.scene_wh = (W, H)
        self.aspect = aspect
        # object patches at roughly the pixel size they will have on screen (anti-aliased)
        self.patches: dict[str, _Patch] = {}
        for sp in (*spec.steps, spec.extra):
            if sp.obj not in self.patches:
                px = OBJECTS[sp.obj][5] * sp.scale0 * self.H * look.zoom * 1.15 * SIZE
                self.patches[sp.obj] = _Patch(*_scaled_cutout(sp.obj, px))

    def _crop(self, cam: tuple[float, float, float]) -> tuple[float, float, float]:
        """Crop (x0, y0, h) in scene px for camera (zoom, pan u, pan v)."""
        z, pu, pv = cam
        h = self.hb / (z * self.look.zoom)
        w = h * self.aspect
        cu = ASPECT / 2 + pu + self.look.pan[0]
        cv = 0.5 + pv + self.look.pan[1]
        x = self.origin[0] + cu * self.hb
        y = self.origin[1] + cv * self.hb
        W, H = self.scene_wh
        if w > W:
            w, h = W, W / self.aspect
        if h > H:
            h, w = H, H * self.aspect
        x0 = min(max(x - w / 2, 0.0), W - w)
        y0 = min(max(y - h / 2, 0.0), H - h)
        return x0, y0, h

    def frame(
        self, cam: tuple[float, float, float], obj: tuple[str, tuple] | None, t: float, rng: np.random.Generator | None
    ) -> np.ndarray:
        x0, y0, h = self._crop(cam)
        k = self.H / h  # screen px per scene px
        bg = self.img.resize(
            (self.W, self.H), Image.BILINEAR, box=(x0, y0, x0 + h * self.aspect, y0 + h), reducing_gap=None
        )
        out = np.array(bg)
        if obj is not None:
            name, (u, v, rot, sc, _) = obj
            sx = (self.origin[0] + u * self.hb - x0) * k
            sy = (self.origin[1] + v * self.hb - y0) * k
            patch = self.patches[name]
            want = OBJECTS[name][5] * SIZE * self.hb * k * sc  # object's largest side, screen px
            _composite(out, patch, sx, sy, want / patch.side, math.radians(rot), shadow=(0.035 * want, 0.05 * want))
        lk = self.look
        gain = lk.exposure * (1.0 + lk.drift * math.sin(2 * math.pi * t / lk.drift_period + lk.drift_phase))
        if gain != 1.0 or lk.wb != (1.0, 1.0, 1.0):
            g = gain * np.asarray(lk.wb)[:, None]
            lut = np.clip(np.arange(256)[None, :] * g + 0.5, 0, 255).astype(np.uint8).ravel().tolist()
            out = np.asarray(Image.fromarray(out).point(lut))
        if rng is not None and lk.noise > 0:
            n = rng.normal(0.0, lk.noise, (self.H // 2, self.W // 2, 1)).astype(np.float32)
            n = np.repeat(np.repeat(n, 2, 0), 2, 1)  # grain a little coarser than a pixel
            out = np.clip(out.astype(np.float32) + n, 0, 255).astype(np.uint8)
        if lk.jpeg:
            buf = io.BytesIO()
            Image.fromarray(out).save(buf, format="JPEG", quality=lk.jpeg)
            out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        return out


class _Patch:
    """An object cut-out ready to draw: RGBA and its blurred alpha (the shadow) as PIL images."""

    def __init__(self, arr: np.ndarray, side: float):
        self.rgba = Image.fromarray(np.clip(arr[..., :4] * (1, 1, 1, 255) + 0.5, 0, 255).astype(np.uint8), "RGBA")
        self.shadow = Image.fromarray(np.clip(arr[..., 4] * 255 + 0.5, 0, 255).astype(np.uint8), "L")
        self.h, self.w = arr.shape[:2]
        self.side = side  # the ellipse's largest side, patch px


def _composite(
    out: np.ndarray, patch: _Patch, cx: float, cy: float, scale: float, theta: float, shadow: tuple[float, float]
) -> None:
    """Draws `patch` centred at (cx, cy), scaled and rotated, with its shadow, into out."""
    ph, pw = patch.h, patch.w
    H, W = out.shape[:2]
    half = 0.5 * math.hypot(ph, pw) * scale + 2
    sdx, sdy = shadow
    x0, x1 = int(max(0, math.floor(cx - half))), int(min(W, math.ceil(cx + half + sdx)))
    y0, y1 = int(max(0, math.floor(cy - half))), int(min(H, math.ceil(cy + half + sdy)))
    if x1 <= x0 or y1 <= y0:
        return
    c, s = math.cos(theta) / scale, math.sin(theta) / scale

    def affine(ox: float, oy: float) -> tuple[float, ...]:  # region px -> patch px
        dx, dy = x0 - cx - ox, y0 - cy - oy
        return (c, s, c * dx + s * dy + pw / 2, -s, c, -s * dx + c * dy + ph / 2)

    size = (x1 - x0, y1 - y0)
    rgba = np.asarray(patch.rgba.transform(size, Image.AFFINE, affine(0.0, 0.0), Image.BILINEAR), np.float32)
    sh = np.asarray(patch.shadow.transform(size, Image.AFFINE, affine(sdx, sdy), Image.BILINEAR), np.float32)
    a = rgba[..., 3:4] * (1.0 / 255.0)
    region = out[y0:y1, x0:x1].astype(np.float32)
    region *= (1.0 - (0.45 / 255.0) * sh)[..., None]
    region += (rgba[..., :3] - region) * a
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


class _Clip:
    """One video: a timeline of activities drawn over the scene."""

    def __init__(self, spec: TaskSpec, activities: Sequence[plans.Activity], look: Look):
        self.spec, self.look = spec, look
        self.timeline = plans.lay_out(activities, look.transition, lead_in=0.6, tail=0.6)
        self.scene = _Scene(spec, look)
        self.segs = self.timeline.segments
        self.specs: list[Spec | None] = []
        for sg in self.segs:
            a = sg.activity
            if a.kind == "step":
                self.specs.append(spec.wrong[a.step] if a.wrong else spec.steps[a.step])
            elif a.kind == "extra":
                self.specs.append(spec.extra)
            else:
                self.specs.append(None)  # pause: nothing moves
        self.starts = [s.start_sec for s in self.segs]

    def state(self, t: float):
        """(camera, object or None) at time t."""
        i = bisect.bisect_right(self.starts, t) - 1
        if 0 <= i and t < self.segs[i].end_sec and self.specs[i] is not None:
            sg, sp = self.segs[i], self.specs[i]
            ph = (t - sg.start_sec) / max(sg.end_sec - sg.start_sec, 1e-6)
            return _cam_at(sp.cam, ph), (sp.obj, _object_state(sp, ph))
        # between activities (or a pause): the camera glides from the last framing to the next
        prev = next(
            (
                (k, self.segs[k].end_sec)
                for k in range(min(i, len(self.segs) - 1), -1, -1)
                if self.specs[k] is not None and self.segs[k].end_sec <= t + 1e-9
            ),
            None,
        )
        nxt = next(
            ((k, self.segs[k].start_sec) for k in range(max(i + 1, 0), len(self.segs)) if self.specs[k] is not None),
            None,
        )
        if prev is None and nxt is None:
            return (1.0, 0.0, 0.0), None
        if prev is None:
            return _cam_at(self.specs[nxt[0]].cam, 0.0), None
        if nxt is None:
            return _cam_at(self.specs[prev[0]].cam, 1.0), None
        a = _cam_at(self.specs[prev[0]].cam, 1.0)
        b = _cam_at(self.specs[nxt[0]].cam, 0.0)
        e = _smooth((t - prev[1]) / max(nxt[1] - prev[1], 1e-6))
        return tuple(x + (y - x) * e for x, y in zip(a, b)), None

    def frame(self, t: float, rng: np.random.Generator | None) -> np.ndarray:
        cam, obj = self.state(t)
        return self.scene.frame(cam, obj, t, rng)


def _render(spec: TaskSpec, activities: list[plans.Activity], path: Path, variant: str, seed: int) -> plans.Timeline:
    look = _look(variant, seed)
    clip = _Clip(spec, activities, look)
    rng = np.random.default_rng([seed, 7])
    n = int(round(clip.timeline.duration_sec * look.fps))
    with plans.VideoWriter(path, look.size, look.fps, codec="h264") as vw:
        for i in range(n):
            vw.write(clip.frame(i / look.fps, rng))
    return clip.timeline


def render_task(out_dir: Path, task_seed: int, variants: Sequence[str] = plans.VARIANTS) -> plans.Task:
    spec = make_spec(task_seed)

    def render(acts, path, variant, seed):
        return _render(spec, acts, Path(path), variant, seed)

    render.suffix = ".mp4"
    return plans.build_task(NAME, f"{NAME}-{task_seed}", Path(out_dir), spec.durations, variants, render, task_seed)


# ----------------------------------------------------------------------------- contact sheet


def contact_sheet(task_seed: int, path: Path) -> None:
    """Gold steps at 30/50/70% (one row each), then correct_nuisance, wrong_execution, extra and
    pause frames, without encoding anything."""
    from PIL import ImageDraw

    spec = make_spec(task_seed)
    rows: list[tuple[str, list[np.ndarray]]] = []
    acts, _ = plans.plan_variant(spec.durations, "gold")
    gold = _Clip(spec, acts, _look("gold", task_seed))
    for k, sg in enumerate(gold.segs):
        sp = gold.specs[k]
        ims = [gold.frame(sg.start_sec + f * (sg.end_sec - sg.start_sec), None) for f in (0.3, 0.5, 0.7)]
        rows.append((f"step {sg.activity.step}: {sp.obj} @({sp.place[0]:.2f},{sp.place[1]:.2f}) {sp.motion.kind}", ims))
    for v, kind in (
        ("correct_nuisance", "step"),
        ("wrong_execution", "step"),
        ("extra_step", "extra"),
        ("repeated", "pause"),
    ):
        acts, _ = plans.plan_variant(spec.durations, v)
        clip = _Clip(spec, acts, _look(v, task_seed * 1000 + 17))
        rng = np.random.default_rng(1)
        if v == "wrong_execution":
            k = next(i for i, s in enumerate(clip.segs) if s.activity.wrong)
        elif v == "correct_nuisance":
            k = 2
        else:
            k = next(i for i, s in enumerate(clip.segs) if s.activity.kind == kind)
        sg, sp = clip.segs[k], clip.specs[k]
        ims = [clip.frame(sg.start_sec + f * (sg.end_sec - sg.start_sec), rng) for f in (0.3, 0.5, 0.7)]
        label = f"{v}: " + (f"{sp.obj} {sp.motion.kind}" if sp else "pause")
        rows.append((label, ims))
    tw, th = 320, 213
    sheet = Image.new("RGB", (3 * tw + 4 * 4, len(rows) * (th + 18) + 4), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for r, (label, ims) in enumerate(rows):
        y = 4 + r * (th + 18)
        d.text((4, y), label, fill=(0, 0, 0))
        for c, im in enumerate(ims):
            sheet.paste(Image.fromarray(im).resize((tw, th), Image.BILINEAR), (4 + c * (tw + 4), y + 14))
    sheet.save(path)


if __name__ == "__main__":
    import time

    ap = plans.arg_parser(__doc__.splitlines()[0])
    ap.add_argument("--sheet-only", action="store_true")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sp = make_spec(args.seed)
    print(f"scene {sp.scene}; durations {[round(d, 2) for d in sp.durations]}")
    for i, s in enumerate(sp.steps):
        print(
            f"  step {i}: {s.obj:10s} place ({s.place[0]:.2f},{s.place[1]:.2f}) {s.motion.kind:9s} "
            f"in {s.enter:6s} out {s.exit:6s}; wrong: {sp.wrong[i].motion.kind}"
        )
    print(
        f"  extra : {sp.extra.obj:10s} place ({sp.extra.place[0]:.2f},{sp.extra.place[1]:.2f}) {sp.extra.motion.kind}"
    )
    sheet = args.out_dir / f"{NAME}-{args.seed}_contact.png"
    contact_sheet(args.seed, sheet)
    print("contact sheet", sheet)
    if not args.sheet_only:
        t0 = time.perf_counter()
        task = render_task(args.out_dir, args.seed, [v for v in args.variants.split(",") if v])
        dt = time.perf_counter() - t0
        for v, vid in task.trainees.items():
            print(f"  {v:18s} {vid.timeline.duration_sec:6.2f} s  {vid.path.name}")
        print(f"rendered {len(task.trainees)} videos in {dt:.1f} s")

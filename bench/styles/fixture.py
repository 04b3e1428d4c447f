"""Benchmark style "fixture": one hand on a wooden bench works parts at ONE central fixture.

A top-down (slightly oblique) camera looks at a workbench: wood-grain planks, a vice in the middle
clamping an aluminium workpiece, and a parts tray at one side whose compartments hold bolts,
brackets, rails, pins, knobs, cables, levers and clips. A hand with a palm, a thumb and four
articulated fingers (sphere-swept capsules, z-buffered and shaded, nails on the fingertips, a
forearm in a sleeve) enters from an edge of the bench. Every step is done at the same fixture: the
steps differ by part and by motion, not by place (screw a red bolt in with a circling pinch, press
a grey bracket down, slide a blue rail sideways, tap a brass pin with the fingertip, turn a green
knob with a wrist rotation, wiggle a cable plug in, flip a yellow lever over, squeeze an orange
clip). Between activities the hand travels fixture -> tray (picks the next part) -> fixture; a
finished part stays on the workpiece, so the fixture's look accumulates over the procedure.

Deviations: wrong_execution works the same part at the same place with another motion (the bolt
is pressed instead of screwed, ...); the extra activity picks a part the procedure never uses and
turns it over in the lifted hand beside the fixture, then puts it back; a pause withdraws the hand
to the bench edge where it rests.

Every video has camera shake (translation and 0.5 deg rotation), a brightness drift, vignetting
and sensor noise. Formats: gold 640x360 at 30 fps, trainees 480x270 at 24 fps, correct_nuisance
512x288 at 25 fps through another camera (zoomed 10 %, shifted, rotated 2 deg, darker and warmer
light, more noise); all H.264 .mp4.

    python bench/styles/fixture.py OUT_DIR [SEED] [VARIANTS]

renders one task into OUT_DIR and writes OUT_DIR/<task_id>_contact.png (the middle of every gold
step and one correct_nuisance frame).
"""

from __future__ import annotations

import bisect
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

try:  # run as part of the package (bench.styles.fixture) or as a script
    from . import plans
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import plans  # type: ignore[no-redef]

NAME = "fixture"

# ---------------------------------------------------------------- world
# World units: the gold view is 1.0 wide and WORLD_H high (image coordinates, y down); z is the
# height above the bench. The camera is slightly oblique: a point at height z is seen KAPPA*z
# higher in the image. Light comes from the top left; shadows fall to the bottom right.
WORLD_H = 0.5625
MARGIN = 0.04  # rendered around the view, for shake and other cameras
KAPPA = 0.3
SHADOW = (0.42, 0.55)  # bench offset of a point's shadow per unit of its height
_L3 = np.array([-0.42, -0.52, 0.74], np.float32)
LIGHT3 = _L3 / np.linalg.norm(_L3)
_H3 = LIGHT3 + np.array([0.0, 0.0, 1.0], np.float32)
HALF3 = _H3 / np.linalg.norm(_H3)  # half vector between the light and the camera
LIGHT2 = (-0.6, -0.8)  # in-plane direction towards the light, for bevels
F32 = np.float32
try:  # the ufunc itself: np.clip's Python wrappers cost ~5 us a call, and it is called a lot
    _clip = np._core.umath.clip
except AttributeError:  # pragma: no cover
    _clip = np.clip


def _sstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _mjerk(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


# ---------------------------------------------------------------- canvas and signed distances
class Canvas:
    """A float32 RGB image of the world (view plus margin) at `s` pixels per world unit."""

    def __init__(self, s: float, img: np.ndarray | None = None):
        self.s = float(s)
        self.W = int(math.ceil((1.0 + 2 * MARGIN) * s))
        self.H = int(math.ceil((WORLD_H + 2 * MARGIN) * s))
        self.img = np.zeros((self.H, self.W, 3), F32) if img is None else img
        self.dirty: list[tuple[slice, slice]] | None = None
        self.xs = np.arange(self.W, dtype=F32) + F32(0.5)  # pixel centres
        self.ys = np.arange(self.H, dtype=F32) + F32(0.5)

    def px(self, x: float, y: float) -> tuple[float, float]:
        return (x + MARGIN) * self.s, (y + MARGIN) * self.s

    def region(self, x0: float, y0: float, x1: float, y1: float):
        s = self.s
        j0, j1 = max(int((x0 + MARGIN) * s), 0), min(int((x1 + MARGIN) * s) + 2, self.W)
        i0, i1 = max(int((y0 + MARGIN) * s), 0), min(int((y1 + MARGIN) * s) + 2, self.H)
        if j1 - j0 < 2 or i1 - i0 < 2:
            return None
        X = ((np.arange(j0, j1, dtype=F32) + 0.5) / s - MARGIN)[None, :]
        Y = ((np.arange(i0, i1, dtype=F32) + 0.5) / s - MARGIN)[:, None]
        sl = (slice(i0, i1), slice(j0, j1))
        if self.dirty is not None:
            self.dirty.append(sl)
        return sl, X, Y


def _rot(X, Y, cx, cy, ang):
    c, s = math.cos(ang), math.sin(ang)
    dx, dy = X - cx, Y - cy
    return c * dx + s * dy, -s * dx + c * dy


def sd_circle(cx, cy, r):
    return lambda X, Y: np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) - r


def sd_box(cx, cy, hw, hh, ang=0.0, r=0.0):
    def f(X, Y):
        u, v = _rot(X, Y, cx, cy, ang)
        qx, qy = np.abs(u) - (hw - r), np.abs(v) - (hh - r)
        return np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0) - r

    return f


def sd_seg(ax, ay, bx, by, r):
    bax, bay = bx - ax, by - ay
    l2 = bax * bax + bay * bay + 1e-12

    def f(X, Y):
        pax, pay = X - ax, Y - ay
        t = np.clip((pax * bax + pay * bay) / l2, 0.0, 1.0)
        return np.sqrt((pax - t * bax) ** 2 + (pay - t * bay) ** 2) - r

    return f


def sd_poly(cx, cy, R, n, ang=0.0):
    """Regular n-gon with circumradius R."""
    a = R * math.cos(math.pi / n)

    def f(X, Y):
        u, v = _rot(X, Y, cx, cy, ang)
        d = None
        for k in range(n):
            t = 2 * math.pi * k / n
            e = u * math.cos(t) + v * math.sin(t) - a
            d = e if d is None else np.maximum(d, e)
        return d

    return f


def sd_union(*fs):
    def f(X, Y):
        d = fs[0](X, Y)
        for g in fs[1:]:
            d = np.minimum(d, g(X, Y))
        return d

    return f


def sd_cut(f, g):
    return lambda X, Y: np.maximum(f(X, Y), -g(X, Y))


def draw(
    cv: Canvas,
    bbox,
    sdf,
    color,
    *,
    bevel=0.004,
    relief=0.5,
    shadow=0.45,
    sh_off=(0.0022, 0.003),
    sh_soft=0.003,
    outline=0.25,
    inner=False,
    gloss=0.0,
    tex=None,
):
    """Fill the shape sdf < 0 (world units) with a bevelled, lit colour and a soft drop shadow."""
    x0, y0, x1, y1 = bbox
    pad = max(abs(sh_off[0]), abs(sh_off[1])) + 2 * sh_soft + 2.0 / cv.s
    reg = cv.region(x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    if reg is None:
        return
    sl, X, Y = reg
    tgt = cv.img[sl]
    if shadow:
        ds = sdf(X - sh_off[0], Y - sh_off[1])
        a = np.clip(0.5 - ds / sh_soft, 0.0, 1.0) * shadow
        tgt *= (1.0 - a)[..., None]
    d = sdf(X, Y)
    a = np.clip(0.5 - d * cv.s, 0.0, 1.0)
    if not a.any():
        return
    gy, gx = np.gradient(d)
    gn = np.sqrt(gx * gx + gy * gy) + 1e-12
    ndl = (gx * LIGHT2[0] + gy * LIGHT2[1]) / gn
    e = np.clip(1.0 + d / bevel, 0.0, 1.0)
    shade = 1.0 + (-relief if inner else relief) * e * ndl
    if outline:
        shade *= 1.0 - outline * np.clip(1.0 + d * cv.s / 1.3, 0.0, 1.0)
    if tex is not None:
        shade = shade * tex(X, Y)
    col = np.asarray(color, F32)[None, None, :] * shade[..., None]
    if gloss:
        col = col + (gloss * np.clip(ndl, 0, 1) * e)[..., None]
    tgt += (col - tgt) * a[..., None]


# ---------------------------------------------------------------- parts
# kind, motion, colour
KINDS = (
    ("bolt", "screw", (0.80, 0.13, 0.10)),
    ("bracket", "press", (0.50, 0.52, 0.55)),
    ("rail", "slide", (0.15, 0.33, 0.78)),
    ("pin", "tap", (0.86, 0.68, 0.26)),
    ("knob", "turn", (0.14, 0.60, 0.30)),
    ("cable", "wiggle", (0.07, 0.07, 0.08)),
    ("lever", "flip", (0.96, 0.78, 0.10)),
    ("clip", "pinch", (0.97, 0.46, 0.08)),
)
KIND_INDEX = {k[0]: i for i, k in enumerate(KINDS)}
# wrong_execution: the same part, another motion (clearly different)
WRONG_MOTION = {
    "screw": "press",
    "press": "slide",
    "slide": "tap",
    "tap": "screw",
    "turn": "press",
    "wiggle": "turn",
    "flip": "tap",
    "pinch": "slide",
}
# where each part sits on the workpiece (relative to the block centre) and its finished state
Z = 1.35  # part size factor (world units below are for Z = 1)
SLOTS = {
    "bolt": (-0.105, -0.045),
    "bracket": (-0.008, 0.022),
    "rail": (0.082, 0.064),
    "pin": (0.045, -0.05),
    "knob": (0.108, -0.032),
    "cable": (-0.04, -0.052),
    "lever": (-0.118, 0.038),
    "clip": (0.058, 0.004),
}
LEVER_LEN = 0.05 * Z
LEVER_A0 = 0.0  # lever rest angle (image coordinates): pointing right, it flips over the top to the left
BOLT_TURNS = 6  # sixths of a turn per gold second
CARRY_ROT = 0.6  # a part held in the fingers sits a little turned
FINAL = {  # rot, dx, dy, press, squeeze of a finished part
    "bolt": (0.0, 0.0, 0.0, 0.7, 0.0),
    "knob": (math.pi / 2, 0.0, 0.0, 0.0, 0.0),
    "clip": (0.0, 0.0, 0.0, 0.0, 0.35),
}
START = {"cable": (0.0, 0.0, -0.026, 0.0, 0.0)}  # the plug starts out of its socket


def _final(kind):
    return FINAL.get(kind, (0.0, 0.0, 0.0, 0.0, 0.0))


def _bez(p0, c0, c1, p1, n):
    out = []
    for t in np.linspace(0.0, 1.0, n):
        u = 1.0 - t
        out.append(tuple(u**3 * p0[i] + 3 * u * u * t * c0[i] + 3 * u * t * t * c1[i] + t**3 * p1[i] for i in range(2)))
    return out


def draw_part(
    cv: Canvas, kind: str, x: float, y: float, prm=(0.0, 0.0, 0.0, 0.0, 0.0), ang=0.0, tray=False, lift=0.0, anchor=None
):
    """One part at (x, y) (world). prm = (rot, dx, dy, press, squeeze); ang: extra rotation;
    tray: the part lies on its side in the tray; lift: height (held), pushes its shadow out;
    anchor: where a cable's far end lies."""
    rot, dx, dy, press, squeeze = prm
    x, y = x + dx, y + dy
    a = ang + rot
    ca, sa = math.cos(a), math.sin(a)
    col = np.array(KINDS[KIND_INDEX[kind]][2], F32)
    so = (0.0022 + lift * SHADOW[0], 0.003 + lift * SHADOW[1])
    ss = 0.003 + lift * 0.25
    sh = 0.45 if lift < 0.01 else 0.35

    def box(r):  # a square bounding box of half size r around the part
        return (x - r, y - r, x + r, y + r)

    def P(u, v, k=1.0):  # part coordinates (rotated with the part) -> world
        return x + k * Z * (ca * u - sa * v), y + k * Z * (sa * u + ca * v)

    if kind == "bolt":
        if tray:
            draw(
                cv,
                box(0.04 * Z),
                sd_seg(x, y, *P(0.034, 0.0), 0.0048 * Z),
                (0.66, 0.67, 0.7),
                sh_off=so,
                sh_soft=ss,
                bevel=0.004,
                gloss=0.08,
            )
            draw(
                cv,
                box(0.016 * Z),
                sd_box(x, y, 0.0065 * Z, 0.0115 * Z, a, 0.0015),
                col,
                sh_off=so,
                sh_soft=ss,
                bevel=0.003,
            )
            return
        k = Z * (1.0 - 0.08 * press)
        draw(
            cv,
            box(0.02 * k),
            sd_circle(x, y, 0.0175 * k),
            (0.72, 0.73, 0.75),
            sh_off=so,
            sh_soft=ss,
            bevel=0.003,
            relief=0.35,
            shadow=sh,
        )
        draw(
            cv,
            box(0.016 * k),
            sd_poly(x, y, 0.0142 * k, 6, a),
            col * (1 - 0.15 * press),
            shadow=0.3 * (1 - press),
            sh_off=(0.0015, 0.002),
            bevel=0.004,
            relief=0.6,
        )
        draw(
            cv,
            box(0.007 * k),
            sd_poly(x, y, 0.0055 * k, 6, a),
            (0.18, 0.05, 0.05),
            shadow=0,
            inner=True,
            bevel=0.002,
            outline=0,
        )
    elif kind == "bracket":
        k = 1.0 - 0.03 * press
        plate = sd_union(
            sd_box(*P(0.0, 0.012, k), 0.027 * Z * k, 0.008 * Z * k, a, 0.002),
            sd_box(*P(-0.012, -0.004, k), 0.009 * Z * k, 0.022 * Z * k, a, 0.002),
        )
        holes = sd_union(sd_circle(*P(0.014, 0.012, k), 0.0035 * Z), sd_circle(*P(-0.012, -0.015, k), 0.0035 * Z))
        draw(
            cv,
            box(0.042 * Z),
            sd_cut(plate, holes),
            col * (1.0 - 0.18 * press),
            sh_off=so,
            sh_soft=ss,
            shadow=sh * (1 - 0.5 * press),
            bevel=0.003,
            relief=0.55,
            gloss=0.06,
        )
    elif kind == "rail":
        L = (0.036 if tray else 0.046) * Z
        draw(
            cv,
            box(L + 0.02),
            sd_box(x, y, L, 0.0095 * Z, a, 0.003),
            col,
            sh_off=so,
            sh_soft=ss,
            bevel=0.004,
            relief=0.5,
            gloss=0.05,
        )
        draw(
            cv,
            box(L),
            sd_box(x, y, L - 0.006, 0.0022 * Z, a, 0.0015),
            col * 0.55,
            shadow=0,
            inner=True,
            bevel=0.002,
            outline=0.1,
        )
        for e in (-1, 1):
            draw(
                cv,
                box(L + 0.01),
                sd_circle(*P(e * (L / Z - 0.007), 0.0), 0.0022 * Z),
                (0.75, 0.77, 0.8),
                shadow=0,
                bevel=0.0015,
                outline=0.15,
            )
    elif kind == "pin":
        if tray:
            draw(
                cv,
                box(0.022 * Z),
                sd_seg(*P(-0.013, 0.0), *P(0.013, 0.0), 0.0042 * Z),
                col,
                sh_off=so,
                sh_soft=ss,
                bevel=0.004,
                gloss=0.12,
            )
            return
        draw(cv, box(0.012 * Z), sd_circle(x, y, 0.0085 * Z), (0.25, 0.25, 0.27), shadow=0, inner=True, bevel=0.003)
        draw(
            cv,
            box(0.01 * Z),
            sd_circle(x, y, 0.0062 * Z * (1 - 0.12 * press)),
            col * (1 - 0.2 * press),
            sh_off=(0.0015 * (1 - press), 0.002 * (1 - press)),
            sh_soft=0.002,
            bevel=0.004,
            relief=0.7,
            gloss=0.15,
        )
    elif kind == "knob":
        R = 0.0195 * Z * (1.0 - 0.05 * press)

        def ridges(X, Y):
            u, v = _rot(X, Y, x, y, a)
            return np.sqrt(u * u + v * v) - (R + 0.0016 * Z * np.cos(10 * np.arctan2(v, u)))

        draw(cv, box(R + 0.008), ridges, col, sh_off=so, sh_soft=ss, bevel=0.004, relief=0.55)
        draw(
            cv,
            box(R),
            sd_circle(x, y, 0.6 * R),
            col * 1.15,
            shadow=0,
            bevel=0.004,
            relief=0.4,
            outline=0.15,
            gloss=0.08,
        )
        draw(
            cv,
            box(R),
            sd_seg(*P(0.003, 0.0), *P(0.0105, 0.0), 0.0018 * Z),
            (0.95, 0.95, 0.92),
            shadow=0,
            bevel=0.001,
            outline=0.1,
        )
    elif kind == "cable":
        bx, by = P(0.0, -0.013)  # the cable leaves the plug at -v; the contacts (+v) go into the socket
        if tray:
            pts = [(bx, by)] + [
                P(0.013 + 0.015 * math.sin(t), -0.013 - 0.015 * math.cos(t) + 0.012) for t in np.linspace(0.3, 5.6, 9)
            ]
        else:
            ex, ey = anchor if anchor is not None else P(-0.02, -0.06)
            pts = _bez((bx, by), P(0.0, -0.035), (ex + 0.03, ey + 0.03), (ex, ey), 8)
        segs = [sd_seg(p[0], p[1], q[0], q[1], 0.0045 * Z) for p, q in zip(pts[:-1], pts[1:])]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        draw(
            cv,
            (min(xs) - 0.01, min(ys) - 0.01, max(xs) + 0.01, max(ys) + 0.01),
            sd_union(*segs),
            (0.09, 0.09, 0.1),
            sh_off=so,
            sh_soft=ss,
            bevel=0.0045 * Z,
            relief=0.9,
            gloss=0.1,
        )
        draw(
            cv,
            box(0.022 * Z),
            sd_box(x, y, 0.0085 * Z, 0.013 * Z, a, 0.002),
            (0.9, 0.9, 0.86),
            sh_off=so,
            sh_soft=ss,
            bevel=0.003,
            relief=0.45,
        )
        draw(
            cv,
            box(0.014 * Z),
            sd_box(*P(0.0, 0.008), 0.0055 * Z, 0.003 * Z, a, 0.001),
            (0.75, 0.6, 0.2),
            shadow=0,
            bevel=0.001,
            outline=0.1,
        )
    elif kind == "lever":
        la = LEVER_A0 + a
        tx, ty = x + LEVER_LEN * math.cos(la), y + LEVER_LEN * math.sin(la)
        bb = (min(x, tx) - 0.02, min(y, ty) - 0.02, max(x, tx) + 0.02, max(y, ty) + 0.02)
        draw(cv, bb, sd_seg(x, y, tx, ty, 0.0062 * Z), col, sh_off=so, sh_soft=ss, bevel=0.005, relief=0.6, gloss=0.08)
        draw(
            cv,
            (tx - 0.016, ty - 0.016, tx + 0.016, ty + 0.016),
            sd_circle(tx, ty, 0.0085 * Z),
            (0.12, 0.12, 0.13),
            sh_off=so,
            sh_soft=ss,
            bevel=0.004,
            relief=0.7,
            gloss=0.1,
        )
        draw(cv, box(0.016), sd_circle(x, y, 0.0085 * Z), (0.55, 0.56, 0.6), shadow=0.2, bevel=0.003, relief=0.6)
        draw(cv, box(0.008), sd_circle(x, y, 0.003 * Z), (0.2, 0.2, 0.22), shadow=0, inner=True, bevel=0.002, outline=0)
    elif kind == "clip":
        R = 0.0125 * Z * (1 - 0.18 * squeeze)
        gap = (0.0075 * (1 - squeeze) + 0.0012) * Z
        th = 0.0036 * Z

        def cshape(X, Y):
            u, v = _rot(X, Y, x, y, a)
            ring = np.abs(np.sqrt(u * u + v * v) - R) - th
            cut = np.maximum(-u, np.abs(v) - gap)
            return np.maximum(ring, -cut)

        draw(cv, box(R + 0.01), cshape, col, sh_off=so, sh_soft=ss, bevel=0.0035, relief=0.6, gloss=0.08)


# ---------------------------------------------------------------- the hand
# Pose vector: flex[4 fingers x (MCP, PIP, DIP)], spread[4], thumb (yaw, pitch, bend1, bend2),
# wrist pitch, lift (palm height above the bench, in palm widths), roll (about the forearm, thumb
# side up for roll > 0).
def _pose(flex, spread, thumb, pitch, lift, roll=0.0):
    f = np.array(flex, F32).reshape(-1)
    if f.size == 3:
        f = np.tile(f, 4)
    return np.concatenate([f, np.array(spread, F32), np.array(thumb, F32), np.array([pitch, lift, roll], F32)])


POSES = {
    "relax": _pose(
        [[0.35, 0.5, 0.3], [0.4, 0.55, 0.3], [0.45, 0.6, 0.3], [0.5, 0.6, 0.3]],
        [-0.1, -0.03, 0.04, 0.12],
        [0.75, 0.35, 0.25, 0.2],
        0.1,
        0.35,
    ),
    "open": _pose(
        [[0.1, 0.14, 0.08], [0.12, 0.15, 0.08], [0.14, 0.16, 0.08], [0.16, 0.18, 0.1]],
        [-0.16, -0.05, 0.06, 0.18],
        [0.95, 0.25, 0.05, 0.05],
        0.05,
        0.5,
    ),
    "pinch": _pose(
        [[0.75, 1.0, 0.35], [0.9, 1.1, 0.5], [1.0, 1.2, 0.6], [1.1, 1.3, 0.6]],
        [-0.02, 0.0, 0.05, 0.1],
        [0.381, 0.259, 0.584, 0.37],
        0.3,
        0.25,
        0.6,
    ),
    "pinch_open": _pose(
        [[0.55, 0.75, 0.3], [0.8, 1.0, 0.5], [0.95, 1.15, 0.6], [1.0, 1.25, 0.6]],
        [-0.05, 0.0, 0.05, 0.1],
        [0.472, 0.418, 0.189, 0.106],
        0.3,
        0.3,
        0.6,
    ),
    "flat": _pose(
        [[0.06, 0.08, 0.04], [0.06, 0.08, 0.04], [0.07, 0.08, 0.04], [0.08, 0.1, 0.05]],
        [-0.06, -0.01, 0.03, 0.08],
        [0.6, 0.2, 0.1, 0.1],
        -0.02,
        0.08,
    ),
    "point": _pose(
        [[0.15, 0.2, 0.1], [1.2, 1.5, 0.8], [1.25, 1.5, 0.8], [1.25, 1.45, 0.8]],
        [-0.03, 0.0, 0.04, 0.08],
        [0.35, 0.55, 0.65, 0.5],
        0.3,
        0.25,
    ),
    "press": _pose(
        [[0.25, 0.2, 0.1], [0.25, 0.2, 0.1], [1.25, 1.5, 0.8], [1.25, 1.45, 0.8]],
        [-0.05, 0.02, 0.04, 0.08],
        [0.35, 0.55, 0.65, 0.5],
        0.15,
        0.25,
    ),
    "point2": _pose(
        [[0.15, 0.2, 0.1], [0.2, 0.25, 0.1], [1.25, 1.5, 0.8], [1.25, 1.45, 0.8]],
        [-0.05, 0.02, 0.04, 0.08],
        [0.35, 0.55, 0.65, 0.5],
        0.25,
        0.25,
    ),
}
I_SPREAD, I_THUMB, I_PITCH, I_LIFT, I_ROLL = 12, 16, 20, 21, 22

KNUCKLE = ((-0.355, 1.03, 0.02), (-0.118, 1.08, 0.04), (0.118, 1.03, 0.02), (0.335, 0.92, -0.01))
META_BASE = ((-0.2, 0.12, 0.0), (-0.07, 0.1, 0.01), (0.06, 0.1, 0.01), (0.18, 0.12, 0.0))
META_R = (0.17, 0.165, 0.16, 0.15)
FLEN = ((0.40, 0.245, 0.19), (0.44, 0.28, 0.21), (0.41, 0.26, 0.2), (0.32, 0.2, 0.17))
FRAD = ((0.112, 0.103, 0.094), (0.116, 0.106, 0.096), (0.11, 0.1, 0.091), (0.096, 0.088, 0.08))
THUMB_CMC = (-0.3, 0.24, -0.1)
TLEN = (0.46, 0.36, 0.29)
TRAD = (0.145, 0.125, 0.108)
SKIN, NAIL, SLEEVE = 0, 1, 2
PALM_THICK = 0.2  # palm centre line above its underside, palm widths


def hand_fk(p: np.ndarray):
    """Capsules ((x,y,z), (x,y,z), r, material) in hand coordinates (palm widths; x across with
    the thumb at -x, y towards the fingers, z up), the wrist at the origin, and named points."""
    pitch, roll = float(p[I_PITCH]), float(p[I_ROLL])
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)

    def P(x, y, z):  # wrist flexion (about x, fingers down for pitch > 0), then roll (about y)
        y, z = y * cp + z * sp, -y * sp + z * cp
        return (x * cr + z * sr, y, -x * sr + z * cr)

    caps = []
    pts = {}
    shadow = [(P(0.0, 0.3, 0.0), P(0.0, 0.72, 0.0), 0.43)]  # palm
    for f in range(4):
        kx, ky, kz = KNUCKLE[f]
        bx, by, bz = META_BASE[f]
        caps.append((P(bx, by, bz), P(kx, ky, kz), META_R[f], SKIN))
        s = float(p[I_SPREAD + f])
        ss, cs = math.sin(s), math.cos(s)
        phi = 0.0
        cur = (kx, ky, kz)
        for j in range(3):
            phi += float(p[3 * f + j])
            L = FLEN[f][j]
            nxt = (cur[0] + L * ss * math.cos(phi), cur[1] + L * cs * math.cos(phi), cur[2] - L * math.sin(phi))
            caps.append((P(*cur), P(*nxt), FRAD[f][j], SKIN))
            if j == 0:
                pts[f"pip{f}"] = P(*nxt)
                shadow.append((P(*cur), P(*nxt), FRAD[f][0]))
            if j == 2:
                a0 = (
                    cur[0] + 0.4 * (nxt[0] - cur[0]),
                    cur[1] + 0.4 * (nxt[1] - cur[1]),
                    cur[2] + 0.4 * (nxt[2] - cur[2]),
                )
                a1 = (
                    cur[0] + 0.88 * (nxt[0] - cur[0]),
                    cur[1] + 0.88 * (nxt[1] - cur[1]),
                    cur[2] + 0.88 * (nxt[2] - cur[2]),
                )
                rn = FRAD[f][j] * 0.62
                up = FRAD[f][j] - rn + 0.012
                caps.append((P(a0[0], a0[1], a0[2] + up), P(a1[0], a1[1], a1[2] + up), rn, NAIL))
                pts[f"tip{f}"] = P(*nxt)
                pts[f"pad{f}"] = P(*(0.5 * (cur[i] + nxt[i]) for i in range(3)))
                shadow.append((pts[f"pip{f}"], P(*nxt), FRAD[f][1]))
            cur = nxt
    # thumb
    ty, tp, b1, b2 = (float(v) for v in p[I_THUMB : I_THUMB + 4])
    cur = THUMB_CMC
    yaw, pit = ty, tp
    for j in range(3):
        if j == 1:
            yaw, pit = yaw - 0.55 * b1, pit + 0.75 * b1
        if j == 2:
            yaw, pit = yaw - 0.55 * b2, pit + 0.75 * b2
        L = TLEN[j]
        nxt = (
            cur[0] - L * math.sin(yaw) * math.cos(pit),
            cur[1] + L * math.cos(yaw) * math.cos(pit),
            cur[2] - L * math.sin(pit),
        )
        caps.append((P(*cur), P(*nxt), TRAD[j], SKIN))
        if j == 0:
            pts["tm1"] = nxt  # unpitched: the thenar is built from it below
        if j == 1:
            shadow.append((P(*THUMB_CMC), P(*nxt), TRAD[0]))
        if j == 2:
            a0 = tuple(cur[i] + 0.45 * (nxt[i] - cur[i]) for i in range(3))
            a1 = tuple(cur[i] + 0.88 * (nxt[i] - cur[i]) for i in range(3))
            rn, up = TRAD[j] * 0.62, TRAD[j] * 0.38 + 0.012
            caps.append((P(a0[0], a0[1], a0[2] + up), P(a1[0], a1[1], a1[2] + up), rn, NAIL))
            pts["tip_t"] = P(*nxt)
            shadow.append((shadow[-1][1], P(*nxt), TRAD[2]))
        cur = nxt
    # thenar (ball of the thumb) and the wrist
    tm = pts["tm1"]
    caps.append(
        (P(-0.14, 0.14, -0.03), P(*(THUMB_CMC[i] + 0.45 * (tm[i] - THUMB_CMC[i]) for i in range(3))), 0.17, SKIN)
    )
    for e in (-1, 1):  # the wrist: wide and flat
        caps.append((P(0.09 * e, -0.25, 0.0), P(0.08 * e, 0.16, 0.0), 0.23, SKIN))
    it, tt = pts["tip0"], pts["tip_t"]
    pts["pinch"] = tuple(0.5 * (it[i] + tt[i]) for i in range(3))
    pts["index"] = it
    pts["flat"] = tuple(0.5 * (pts["pad0"][i] + pts["pad1"][i]) for i in range(3))  # finger pads
    pts["tips"] = tuple(0.5 * (pts["tip0"][i] + pts["tip1"][i]) for i in range(3))
    pts["midtip"] = pts["tip1"]
    pts["_shadow"] = shadow
    return caps, pts


def _touch(name: str, contact: str, height: float = 0.1) -> None:
    """Set a pose's lift so that its contact point is `height` palm widths above the bench."""
    cz = hand_fk(POSES[name])[1][contact][2]
    POSES[name][I_LIFT] = height - cz - PALM_THICK


for _n, _c in (
    ("pinch", "pinch"),
    ("pinch_open", "pinch"),
    ("flat", "flat"),
    ("point", "index"),
    ("point2", "index"),
    ("press", "tips"),
):
    _touch(_n, _c)


@dataclass
class HandState:
    wx: float  # wrist, world (bench plane)
    wy: float
    yaw: float  # direction the hand points, image angle
    pose: np.ndarray


def _ang_lerp(a, b, u):
    d = (b - a + math.pi) % (2 * math.pi) - math.pi
    return a + d * u


def lerp_state(s0: HandState, s1: HandState, u: float, arc: float = 0.0, open_w: float = 0.0) -> HandState:
    m = _mjerk(u)
    pose = s0.pose + (s1.pose - s0.pose) * m
    if open_w:
        b = math.sin(math.pi * min(max(u, 0), 1)) * open_w
        pose = pose + (POSES["open"] - pose) * b
        pose[I_LIFT] += arc * math.sin(math.pi * min(max(u, 0), 1))
    return HandState(s0.wx + (s1.wx - s0.wx) * m, s0.wy + (s1.wy - s0.wy) * m, _ang_lerp(s0.yaw, s1.yaw, m), pose)


# ---------------------------------------------------------------- scene (per task)
@dataclass
class Scene:
    seed: int
    steps: list[str]  # kind of each gold step
    durations: list[float]
    transition: float
    lead_in: float
    tail: float
    extra_kind: str
    fixture: tuple[float, float]  # block centre
    tray_side: int  # -1 left, +1 right
    tray_box: tuple[float, float, float, float]
    compartments: dict[str, tuple[float, float]]
    tray_fill: list[tuple[str, float, float, float]]  # kind, x, y, angle
    shoulder: tuple[float, float]
    hand_sign: float  # +1 right hand, -1 left
    palm_w: float
    skin: np.ndarray
    sleeve: np.ndarray
    wood: dict
    plate_col: np.ndarray
    tray_col: np.ndarray
    block_col: np.ndarray
    rest: tuple[float, float]
    extra_loc: tuple[float, float]
    cable_anchor: tuple[float, float]


def make_scene(task_seed: int) -> Scene:
    rng = np.random.default_rng(task_seed)
    n = int(rng.choice([4, 5, 5, 5, 6]))
    order = [KINDS[int(i)][0] for i in rng.permutation(len(KINDS))]
    steps, extra_kind = order[:n], order[n]
    durations = [float(d) for d in np.round(rng.uniform(3.0, 7.0, n), 2)]
    transition = float(np.round(rng.uniform(0.7, 1.0), 2))
    lead_in, tail = 0.8, 0.5
    while True:  # every variant at most ~44 s
        worst = max(
            plans.lay_out(plans.plan_variant(durations, v)[0], transition, lead_in, tail).duration_sec
            for v in plans.VARIANTS
        )
        if worst <= 44.0 or max(durations) <= 3.0:
            break
        durations = [max(3.0, round(d * 0.95, 2)) for d in durations]
    side = int(rng.choice([-1, 1]))
    fx = 0.5 - side * float(rng.uniform(0.055, 0.085))
    fy = WORLD_H * 0.5 + float(rng.uniform(-0.02, 0.02))
    tx0 = 0.025 if side < 0 else 0.765
    tb = (tx0, 0.045, tx0 + 0.21, 0.045 + 0.47)
    cw, ch = (tb[2] - tb[0] - 0.02) / 2, (tb[3] - tb[1] - 0.02) / 4
    comp_kinds = [KINDS[int(i)][0] for i in rng.permutation(len(KINDS))]
    comps, fill = {}, []
    for i, k in enumerate(comp_kinds):
        cx = tb[0] + 0.01 + cw * (i % 2 + 0.5)
        cy = tb[1] + 0.01 + ch * (i // 2 + 0.5)
        comps[k] = (cx, cy)
        for _ in range(int(rng.integers(2, 4))):
            fill.append(
                (
                    k,
                    cx + float(rng.uniform(-0.22, 0.22)) * cw,
                    cy + float(rng.uniform(-0.2, 0.2)) * ch,
                    float(rng.uniform(0, 2 * math.pi)),
                )
            )
    top = rng.random() < 0.25
    sx = fx + side * -float(rng.uniform(0.05, 0.3)) if not top else fx + float(rng.uniform(-0.2, 0.2))
    shoulder = (sx, (WORLD_H + 0.5) if not top else -0.5)
    hand_sign = 1.0 if (rng.random() < 0.8) else -1.0
    t = float(rng.uniform(0.0, 1.0))
    skin = np.array([0.95, 0.78, 0.66]) * (1 - t) + np.array([0.42, 0.28, 0.2]) * t
    skin = np.clip(skin * rng.uniform(0.95, 1.05, 3), 0, 1).astype(F32)
    sleeves = [
        (0.16, 0.22, 0.38),
        (0.3, 0.32, 0.34),
        (0.2, 0.3, 0.22),
        (0.1, 0.1, 0.12),
        (0.45, 0.15, 0.12),
        (0.55, 0.5, 0.4),
    ]
    sleeve = np.array(sleeves[int(rng.integers(len(sleeves)))], F32) * F32(rng.uniform(0.85, 1.15))
    wt = float(rng.uniform(0, 1))
    wood = {
        "seed": int(rng.integers(1 << 31)),
        "light": np.array([0.80, 0.62, 0.42]) * (1 - wt) + np.array([0.62, 0.44, 0.28]) * wt,
        "dark": np.array([0.55, 0.36, 0.2]) * (1 - wt) + np.array([0.36, 0.22, 0.12]) * wt,
        "plank": float(rng.uniform(0.11, 0.17)),
        "off": float(rng.uniform(0, 0.2)),
        "freq": float(rng.uniform(40, 70)),
        "w": rng.uniform(0, 2 * math.pi, 12).tolist(),
        "k": rng.uniform(0.5, 1.5, 12).tolist(),
        "knots": [
            (
                float(rng.uniform(-0.05, 1.05)),
                float(rng.uniform(-0.05, WORLD_H + 0.05)),
                float(rng.uniform(0.015, 0.035)),
            )
            for _ in range(int(rng.integers(1, 4)))
        ],
        "tones": rng.uniform(-0.12, 0.12, 16).tolist(),
    }
    plates = [(0.22, 0.26, 0.32), (0.2, 0.3, 0.24), (0.36, 0.18, 0.14), (0.26, 0.26, 0.28)]
    trays = [(0.12, 0.12, 0.13), (0.1, 0.16, 0.32), (0.75, 0.72, 0.62), (0.3, 0.32, 0.3)]
    plate_col = np.array(plates[int(rng.integers(len(plates)))], F32)
    tray_col = np.array(trays[int(rng.integers(len(trays)))], F32)
    block_col = (np.array([0.76, 0.77, 0.79]) * rng.uniform(0.92, 1.04, 3)).astype(F32)
    # where the hand rests: just inside the bench edge towards the shoulder
    rx = min(max(shoulder[0], 0.15), 0.85)
    rest = (rx, WORLD_H - 0.04) if shoulder[1] > 0 else (rx, 0.04)
    ex = 0.5 * (tb[0] + tb[2]) * 0.45 + fx * 0.55
    extra_loc = (ex, fy + (0.1 if shoulder[1] > 0 else -0.1))
    cable_anchor = (fx - 0.13, fy - 0.2)
    return Scene(
        task_seed,
        steps,
        durations,
        transition,
        lead_in,
        tail,
        extra_kind,
        (fx, fy),
        side,
        tb,
        comps,
        fill,
        shoulder,
        hand_sign,
        float(0.095 * rng.uniform(0.95, 1.05)),
        skin,
        sleeve,
        wood,
        plate_col,
        tray_col,
        block_col,
        rest,
        extra_loc,
        cable_anchor,
    )


def slot_pos(sc: Scene, kind: str) -> tuple[float, float]:
    u, v = SLOTS[kind]
    return sc.fixture[0] + u, sc.fixture[1] + v


# ---------------------------------------------------------------- static background
def _noise1d(rng: np.random.Generator, n: int, smooth: int) -> np.ndarray:
    v = rng.normal(0.0, 1.0, n + 2 * smooth)
    k = np.hanning(2 * smooth + 1)
    v = np.convolve(v, k / k.sum(), mode="valid")[:n]
    return ((v - v.mean()) / (v.std() + 1e-9)).astype(F32)


def draw_wood(cv: Canvas, w: dict):
    """Planks of wood: nearly straight, irregular growth rings, fine fibres and knots. Every
    term is a function of world coordinates, so each camera's resolution shows the same wood."""
    s = cv.s
    rng = np.random.default_rng(w["seed"])
    X = ((np.arange(cv.W, dtype=F32) + 0.5) / s - MARGIN)[None, :]
    Y = ((np.arange(cv.H, dtype=F32) + 0.5) / s - MARGIN)[:, None]
    ph, k = w["w"], w["k"]
    pl = w["plank"]
    idx = np.floor((Y + w["off"]) / pl).astype(np.int64)
    tones = np.array(w["tones"], F32)[idx % 16]
    shift = (idx * 0.37 % 1.0).astype(F32)
    warp = (
        0.005 * np.sin(X * 4.0 * k[0] + ph[0] + shift * 6) * np.sin(Y * 7 + ph[7])
        + 0.0025 * np.sin(X * 9.0 * k[1] + Y * 11 + ph[1] + shift * 4)
        + 0.0008 * np.sin(X * 23.0 * k[2] + ph[2] + shift * 3)
    )
    for kx, ky, kr in w["knots"]:
        r2 = ((X - kx) / 2.2) ** 2 + (Y - ky) ** 2
        warp = warp + kr * 0.55 * np.exp(-r2 / (kr * kr)) * np.sign(Y - ky + 1e-6)
    u = Y + warp + shift * 0.37
    grid = 1.0 / 1500.0  # 1-D noise along the grain's cross direction, world units per sample
    n = 1500 * 2
    fib = np.interp(u.ravel() % (n * grid), np.arange(n) * grid, _noise1d(rng, n, 1)).reshape(u.shape)
    mid = np.interp(u.ravel() % (n * grid), np.arange(n) * grid, _noise1d(rng, n, 12)).reshape(u.shape)
    ring = u * w["freq"] + 0.35 * mid
    g = (0.5 + 0.5 * np.cos(2 * math.pi * ring)) ** 6  # thin dark latewood lines
    low = np.sin(X * 2.3 * k[5] + ph[5] + shift * 5) * np.sin(Y * 4.0 + ph[6])
    for kx, ky, kr in w["knots"]:  # the knot itself
        r2 = ((X - kx) / 1.4) ** 2 + (Y - ky) ** 2
        low = low + 2.5 * np.exp(-r2 / (0.25 * kr * kr))
    t = np.clip(0.3 + 0.42 * g + 0.07 * fib + 0.1 * mid + 0.08 * low + tones, 0, 1)
    light, dark = np.asarray(w["light"], F32), np.asarray(w["dark"], F32)
    img = light[None, None, :] + (dark - light)[None, None, :] * t[..., None]
    # plank seams
    dseam = np.abs(((Y + w["off"]) / pl + 0.5) % 1.0 - 0.5) * pl
    seam = np.clip(1.0 - dseam * s / 1.2, 0, 1) * 0.55 + np.clip(1.0 - dseam / 0.006, 0, 1) * 0.12
    img *= (1.0 - seam)[..., None]
    cv.img[:] = img


def _brushed(freq):
    return lambda X, Y: 0.96 + 0.04 * np.sin(X * 40 + np.sin(Y * freq) * 3) * np.sin(Y * freq * 1.7 + X * 5)


def draw_fixture(cv: Canvas, sc: Scene):
    fx, fy = sc.fixture
    side = -sc.tray_side  # the vice screw points away from the tray
    # base plate with mounting bolts
    draw(
        cv,
        (fx - 0.26, fy - 0.15, fx + 0.26, fy + 0.15),
        sd_box(fx, fy, 0.245, 0.135, 0, 0.012),
        sc.plate_col,
        sh_off=(0.006, 0.008),
        sh_soft=0.008,
        shadow=0.55,
        bevel=0.006,
        relief=0.45,
    )
    for ux in (-0.222, 0.222):
        for uy in (-0.11, 0.11):
            draw(
                cv,
                (fx + ux - 0.012, fy + uy - 0.012, fx + ux + 0.012, fy + uy + 0.012),
                sd_poly(fx + ux, fy + uy, 0.009, 6, 0.3 + ux * uy * 40),
                (0.62, 0.63, 0.66),
                bevel=0.003,
                sh_soft=0.002,
                sh_off=(0.0015, 0.002),
            )
    # guide bars
    for uy in (-0.1, 0.1):
        draw(
            cv,
            (fx - 0.2, fy + uy - 0.012, fx + 0.2, fy + uy + 0.012),
            sd_seg(fx - 0.19, fy + uy, fx + 0.19, fy + uy, 0.0075),
            (0.7, 0.71, 0.74),
            bevel=0.0075,
            relief=0.8,
            gloss=0.12,
        )
    # vice screw and T-handle
    hx = fx + side * 0.27
    draw(
        cv,
        (min(fx, hx) - 0.02, fy - 0.02, max(fx, hx) + 0.02, fy + 0.02),
        sd_seg(fx + side * 0.2, fy, hx, fy, 0.0085),
        (0.66, 0.67, 0.7),
        bevel=0.0085,
        relief=0.8,
        gloss=0.1,
        sh_off=(0.006, 0.008),
        sh_soft=0.005,
    )
    draw(
        cv,
        (hx - 0.02, fy - 0.08, hx + 0.02, fy + 0.08),
        sd_seg(hx, fy - 0.062, hx, fy + 0.062, 0.0065),
        (0.7, 0.71, 0.74),
        bevel=0.0065,
        relief=0.8,
        gloss=0.12,
        sh_off=(0.008, 0.011),
        sh_soft=0.006,
    )
    for e in (-1, 1):
        draw(
            cv,
            (hx - 0.02, fy + e * 0.062 - 0.02, hx + 0.02, fy + e * 0.062 + 0.02),
            sd_circle(hx, fy + e * 0.062, 0.011),
            (0.15, 0.15, 0.17),
            bevel=0.008,
            relief=0.8,
            gloss=0.15,
            sh_off=(0.008, 0.011),
            sh_soft=0.006,
        )
    # jaws
    for e in (-1, 1):
        jx = fx + e * 0.182
        draw(
            cv,
            (jx - 0.04, fy - 0.12, jx + 0.04, fy + 0.12),
            sd_box(jx, fy, 0.032, 0.105, 0, 0.004),
            (0.58, 0.6, 0.63),
            sh_off=(0.006, 0.008),
            sh_soft=0.006,
            shadow=0.5,
            bevel=0.006,
            relief=0.5,
            tex=_brushed(60),
        )
        for k in range(9):
            gy = fy - 0.09 + k * 0.0225
            draw(
                cv,
                (jx - 0.035, gy - 0.004, jx + 0.035, gy + 0.004),
                sd_box(jx - e * 0.012, gy, 0.016, 0.0013),
                (0.4, 0.41, 0.44),
                shadow=0,
                inner=True,
                bevel=0.0013,
                outline=0.05,
            )
    # workpiece block
    draw(
        cv,
        (fx - 0.16, fy - 0.095, fx + 0.16, fy + 0.095),
        sd_box(fx, fy, 0.15, 0.086, 0, 0.004),
        sc.block_col,
        sh_off=(0.004, 0.006),
        sh_soft=0.004,
        shadow=0.5,
        bevel=0.005,
        relief=0.45,
        tex=_brushed(90),
    )
    # holes and sockets where the parts go
    for kind in SLOTS:
        x, y = slot_pos(sc, kind)
        dark = (0.28, 0.29, 0.31)
        if kind in ("bolt", "pin", "knob", "lever"):
            r = {"bolt": 0.0075, "pin": 0.0085, "knob": 0.006, "lever": 0.005}[kind] * Z
            draw(
                cv,
                (x - 0.012, y - 0.012, x + 0.012, y + 0.012),
                sd_circle(x, y, r),
                dark,
                shadow=0,
                inner=True,
                bevel=0.003,
            )
        elif kind == "rail":
            draw(
                cv,
                (x - 0.08, y - 0.02, x + 0.08, y + 0.02),
                sd_box(x, y, 0.05 * Z, 0.011 * Z, 0, 0.002),
                sc.block_col * 0.7,
                shadow=0,
                inner=True,
                bevel=0.003,
            )
        elif kind == "cable":
            draw(
                cv,
                (x - 0.025, y - 0.03, x + 0.025, y + 0.03),
                sd_box(x, y + 0.004 * Z, 0.0095 * Z, 0.012 * Z, 0, 0.002),
                (0.2, 0.2, 0.22),
                shadow=0,
                inner=True,
                bevel=0.003,
            )
        elif kind == "bracket":
            for u, v in ((0.014 * Z, 0.012 * Z), (-0.012 * Z, -0.015 * Z)):
                draw(
                    cv,
                    (x + u - 0.006, y + v - 0.006, x + u + 0.006, y + v + 0.006),
                    sd_circle(x + u, y + v, 0.0028 * Z),
                    dark,
                    shadow=0,
                    inner=True,
                    bevel=0.002,
                )
        elif kind == "clip":
            draw(
                cv,
                (x - 0.01, y - 0.01, x + 0.01, y + 0.01),
                sd_circle(x, y, 0.0045 * Z),
                dark,
                shadow=0,
                inner=True,
                bevel=0.002,
            )


def draw_tray(cv: Canvas, sc: Scene):
    x0, y0, x1, y1 = sc.tray_box
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    draw(
        cv,
        (x0 - 0.01, y0 - 0.01, x1 + 0.01, y1 + 0.01),
        sd_box(cx, cy, (x1 - x0) / 2, (y1 - y0) / 2, 0, 0.012),
        sc.tray_col,
        sh_off=(0.005, 0.007),
        sh_soft=0.007,
        shadow=0.5,
        bevel=0.006,
        relief=0.6,
    )
    cw, ch = (x1 - x0 - 0.02) / 2, (y1 - y0 - 0.02) / 4
    for px, py in sc.compartments.values():
        draw(
            cv,
            (px - cw / 2, py - ch / 2, px + cw / 2, py + ch / 2),
            sd_box(px, py, cw / 2 - 0.005, ch / 2 - 0.005, 0, 0.008),
            sc.tray_col * 0.72,
            shadow=0,
            inner=True,
            bevel=0.008,
            relief=0.7,
        )
    for kind, px, py, ang in sc.tray_fill:
        draw_part(cv, kind, px, py, ang=ang, tray=True)


def static_background(sc: Scene, s: float, attached: frozenset, cache: dict) -> np.ndarray:
    key = (round(s, 3), attached)
    if key in cache:
        return cache[key]
    base_key = (round(s, 3), None)
    if base_key not in cache:
        cv = Canvas(s)
        draw_wood(cv, sc.wood)
        draw_tray(cv, sc)
        draw_fixture(cv, sc)
        cache[base_key] = cv.img
    cv = Canvas(s, cache[base_key].copy())
    for kind in sorted(attached, key=lambda k: KIND_INDEX[k]):
        x, y = slot_pos(sc, kind)
        draw_part(cv, kind, x, y, _final(kind), anchor=sc.cable_anchor)
    cache[key] = cv.img
    return cv.img


# ---------------------------------------------------------------- motions
@dataclass
class Work:
    """What one activity does at one moment: where the hand's contact point goes, its pose, and
    the part's state."""

    contact: str
    target: tuple[float, float]
    yaw_off: float
    pose: np.ndarray  # drawn pose
    cpose: np.ndarray  # pose that fixes the contact point (without the motion's finger play)
    part: str | None  # part drawn
    where: str  # "slot" (drawn at its slot) or "hand" (at the pinch point) or "none"
    prm: tuple = (0.0, 0.0, 0.0, 0.0, 0.0)
    anchor: tuple[float, float] | None = None


def _env(tg: float, dg: float, ramp: float = 0.35) -> float:
    return _sstep(min(tg, dg - tg) / ramp)


def motion_work(sc: Scene, kind: str, motion: str, tg: float, dg: float) -> Work:
    """The hand working part `kind` at its slot with `motion`, tg gold seconds into a dg-second step."""
    sx, sy = slot_pos(sc, kind)
    e = _env(tg, dg)
    prog = min(max(tg / dg, 0.0), 1.0)
    tp = 2 * math.pi * tg
    rot = dx = dy = press = squeeze = 0.0
    tx, ty = sx, sy
    if kind == "lever":  # the lever is worked at its tip
        tx, ty = sx + LEVER_LEN * math.cos(LEVER_A0), sy + LEVER_LEN * math.sin(LEVER_A0)
    yaw = 0.0
    if motion == "screw":
        ph = 1.25 * tp
        pose = POSES["pinch"].copy()
        pose[0] += 0.12 * e * math.sin(ph)
        pose[1] += 0.1 * e * math.sin(ph)
        pose[I_THUMB + 2] += 0.14 * e * math.sin(ph + math.pi)
        tx += 0.004 * e * math.cos(ph)
        ty += 0.004 * e * math.sin(ph)
        yaw = 0.2 * e * math.sin(ph)
        contact, cpose = "pinch", POSES["pinch"]
        total = max(1, round(dg * BOLT_TURNS)) * math.pi / 3
        rot, press = total * prog, 0.7 * prog
    elif motion == "press":
        lift = e * 0.4 * (0.5 - 0.5 * math.cos(1.0 * tp))
        pose = POSES["press"].copy()
        pose[I_LIFT] += lift
        pose[0:6] -= 0.1 * lift
        pose[I_PITCH] -= 0.12 * lift
        contact, cpose = "tips", POSES["press"]
        press = e * (1.0 - lift / 0.4)
    elif motion == "slide":
        d = e * 0.035 * math.sin(0.55 * tp)
        tx += d
        pose = POSES["flat"].copy()
        pose[0:12] += 0.08
        yaw = 0.06 * math.sin(0.55 * tp) * e
        contact, cpose = "flat", POSES["flat"]
        dx = d
    elif motion == "tap":
        pulse = e * max(0.0, math.sin(2.4 * tp)) ** 1.5
        pose = POSES["point"].copy()
        pose[0] -= 0.6 * pulse
        pose[1] -= 0.1 * pulse
        pose[I_LIFT] += 0.12 * pulse
        contact, cpose = "index", POSES["point"]
        press = min(1.0, prog * 1.2) * (1 - 0.3 * pulse)
    elif motion == "turn":
        yd = 0.55 * e * math.sin(0.6 * tp)
        yaw = yd
        pose = POSES["pinch"].copy()
        pose[I_THUMB] += 0.1
        contact, cpose = "pinch", pose
        rot = yd + (math.pi / 2) * _sstep(prog) if kind == "knob" else yd
    elif motion == "wiggle":
        w = e * math.sin(3.2 * tp)
        ins = 0.022 * (1.0 - _sstep(prog * 1.15))
        tx += 0.005 * w
        ty -= ins
        yaw = 0.12 * e * math.sin(3.2 * tp + 0.6)
        pose = POSES["pinch"].copy()
        pose[I_THUMB + 2] += 0.08 * w
        contact, cpose = "pinch", POSES["pinch"]
        dx, dy = 0.005 * w, -ins
        rot = 0.06 * w
    elif motion == "flip":
        th = 2.6 * e * (0.5 - 0.5 * math.cos(0.45 * tp))
        px, py = sx, sy
        if kind != "lever":
            px, py = sx - LEVER_LEN * math.cos(LEVER_A0), sy - LEVER_LEN * math.sin(LEVER_A0)
        tx, ty = px + LEVER_LEN * math.cos(LEVER_A0 - th), py + LEVER_LEN * math.sin(LEVER_A0 - th)
        yaw = -0.25 * th
        pose = POSES["point"].copy()
        contact, cpose = "index", POSES["point"]
        rot = -th
    elif motion == "pinch":
        sq = e * (0.5 - 0.5 * math.cos(1.6 * tp))
        pose = POSES["pinch_open"] + (POSES["pinch"] - POSES["pinch_open"]) * sq
        contact, cpose = "pinch", POSES["pinch"]
        squeeze = sq
    else:
        raise ValueError(motion)
    prm = (rot, dx, dy, press, squeeze)
    if kind in START and motion != "wiggle":  # a part that starts off its seat is pushed home
        k = 1.0 - _sstep(prog * 1.15)
        prm = tuple(p + q * k for p, q in zip(prm, START[kind]))
    b = _sstep((prog - 0.85) / 0.15)  # ends in its finished state (only a wrong motion needs this)
    fin = _final(kind)
    if kind == "bolt":  # a hexagon: any sixth of a turn is finished
        fin = (round(prm[0] / (math.pi / 3)) * math.pi / 3, *fin[1:])
    prm = tuple(p + (f - p) * b for p, f in zip(prm, fin))
    return Work(contact, (tx, ty), yaw, pose, cpose, kind, "slot", prm, sc.cable_anchor)


def extra_work(sc: Scene, tg: float, dg: float) -> Work:
    """The extra activity: the unused part lifted beside the fixture and turned over."""
    e = _env(tg, dg, 0.5)
    ex, ey = sc.extra_loc
    w = 2 * math.pi * 0.3 * tg
    pose = POSES["pinch"].copy()
    pose[I_LIFT] += 1.0 * e
    pose[I_THUMB + 2] += 0.2 * math.sin(2 * math.pi * 1.3 * tg) * e
    pose[I_PITCH] += 0.15 * e
    tgt = (ex + 0.025 * e * math.sin(w), ey + 0.012 * e * math.sin(2 * w))
    return Work(
        "pinch",
        tgt,
        0.45 * e * math.sin(2 * math.pi * 0.45 * tg),
        pose,
        POSES["pinch"],
        sc.extra_kind,
        "hand",
        (CARRY_ROT + 1.4 * e * math.sin(2 * math.pi * 0.35 * tg), 0.0, 0.0, 0.0, 0.0),
    )


def rest_work(sc: Scene, t: float) -> Work:
    """The hand resting at the bench edge (pauses, start and end)."""
    pose = POSES["relax"].copy()
    pose[I_LIFT] += 0.015 * math.sin(2 * math.pi * 0.25 * t)
    return Work("midtip", sc.rest, 0.0, pose, POSES["relax"], None, "none")


def _hand_scale(pw: float, lift: float) -> float:
    """World units per palm width: a lifted hand is nearer the camera and looks larger."""
    return pw * (1.0 + 2.0 * (lift + PALM_THICK) * pw)


def hand_state(sc: Scene, wk: Work, fk_cache: dict) -> HandState:
    """Where the wrist goes so that the contact point of `wk.cpose` is seen at `wk.target`; the
    hand points away from the shoulder, turned by the activity's yaw."""
    tx, ty = wk.target
    S = sc.shoulder
    yaw = math.atan2(ty - S[1], tx - S[0]) + wk.yaw_off
    key = (wk.contact, wk.cpose.tobytes())
    if key not in fk_cache:
        fk_cache[key] = hand_fk(wk.cpose)[1][wk.contact]
    cx, cy, cz = fk_cache[key]
    pw = sc.palm_w
    lift = float(wk.cpose[I_LIFT])
    k = _hand_scale(pw, lift)
    zc = (lift + PALM_THICK) * pw + k * cz  # the contact point's height, as hand_world has it
    f = (math.cos(yaw), math.sin(yaw))
    lat = (-f[1] * sc.hand_sign, f[0] * sc.hand_sign)
    wx = tx - k * (cx * lat[0] + cy * f[0])
    wy = ty - k * (cx * lat[1] + cy * f[1]) + KAPPA * zc
    return HandState(wx, wy, yaw, wk.pose)


# ---------------------------------------------------------------- drawing the hand
def _split(a, b, r, m, maxlen):
    """A long capsule as short ones along the same axis (smaller boxes; seamless when blended)."""
    n = max(1, int(math.ceil(math.hypot(b[0] - a[0], b[1] - a[1]) / maxlen)))
    pts = [tuple(a[i] + (b[i] - a[i]) * k / n for i in range(3)) for k in range(n + 1)]
    # inner joints get no round caps (5th field: 1 = open at the start, 2 = open at the end)
    return [(pts[k], pts[k + 1], r, m, (1 if k > 0 else 0) | (2 if k < n - 1 else 0)) for k in range(n)]


def hand_world(sc: Scene, hs: HandState):
    """The hand's capsules in world coordinates (x, y on the bench, z up), and its named points."""
    caps, pts = hand_fk(hs.pose)
    pw = sc.palm_w
    lift = float(hs.pose[I_LIFT])
    k = _hand_scale(pw, lift)
    f = (math.cos(hs.yaw), math.sin(hs.yaw))
    lat = (-f[1] * sc.hand_sign, f[0] * sc.hand_sign)
    z0 = (lift + PALM_THICK) * pw

    def W(p):
        return (hs.wx + k * (p[0] * lat[0] + p[1] * f[0]), hs.wy + k * (p[0] * lat[1] + p[1] * f[1]), z0 + k * p[2])

    out = [(W(a), W(b), r * k, m) for a, b, r, m in caps]
    shadow = [(W(a), W(b), r * k) for a, b, r in pts.pop("_shadow")]
    # forearm towards the shoulder, and the sleeve
    S = sc.shoulder
    dx, dy = S[0] - hs.wx, S[1] - hs.wy
    dl = math.hypot(dx, dy)
    ux, uy = dx / dl, dy / dl
    w0 = W((0.0, -0.2, 0.0))
    px, py = -uy * k, ux * k  # across the forearm
    for e, r0 in ((-1, 0.25), (1, 0.25)):  # radius and ulna, blended into one forearm
        a = (w0[0] + e * 0.08 * px, w0[1] + e * 0.08 * py, w0[2])
        b = (w0[0] + ux * 2.6 * pw + e * 0.11 * px, w0[1] + uy * 2.6 * pw + e * 0.11 * py, z0 + 0.9 * pw)
        out += _split(a, b, r0 * k, SKIN, 3.0 * r0 * k)
    shadow.append((w0, (w0[0] + ux * 2.6 * pw, w0[1] + uy * 2.6 * pw, z0 + 0.9 * pw), 0.33 * k))
    s0 = (w0[0] + ux * 2.0 * pw, w0[1] + uy * 2.0 * pw, z0 + 0.8 * pw)
    far = 1.2
    s1 = (w0[0] + ux * far, w0[1] + uy * far, z0 + 1.6 * pw)
    out += _split(s0, s1, 0.5 * k, SLEEVE, 2.5 * 0.5 * k)
    shadow.append((s0, s1, 0.5 * k))
    wpts = {n: W(p) for n, p in pts.items()}
    wpts["_shadow"] = shadow
    return out, wpts


def _img_pt(cv: Canvas, p):
    return (p[0] + MARGIN) * cv.s, (p[1] - KAPPA * p[2] + MARGIN) * cv.s, p[2] * cv.s


def draw_shadow(cv: Canvas, caps, strength=0.42):
    """Soft shadow of the capsules (a, b, r) on the bench, computed at half resolution."""
    s = cv.s
    sh = []
    for a, b, r in caps:
        za, zb = max(a[2], 0.0), max(b[2], 0.0)
        pa = ((a[0] + za * SHADOW[0] + MARGIN) * s, (a[1] + za * SHADOW[1] + MARGIN) * s)
        pb = ((b[0] + zb * SHADOW[0] + MARGIN) * s, (b[1] + zb * SHADOW[1] + MARGIN) * s)
        soft = (0.003 + 0.35 * 0.5 * (za + zb)) * s
        sh.append((pa, pb, r * s * 0.95, soft))
    x0 = min(min(p[0][0], p[1][0]) - p[2] - p[3] for p in sh)
    x1 = max(max(p[0][0], p[1][0]) + p[2] + p[3] for p in sh)
    y0 = min(min(p[0][1], p[1][1]) - p[2] - p[3] for p in sh)
    y1 = max(max(p[0][1], p[1][1]) + p[2] + p[3] for p in sh)
    j0, j1 = max(int(x0) & ~1, 0), min(int(x1) + 2, cv.W)
    i0, i1 = max(int(y0) & ~1, 0), min(int(y1) + 2, cv.H)
    if j1 - j0 < 2 or i1 - i0 < 2:
        return
    X = (np.arange(j0, j1, 2, dtype=F32) + 1.0)[None, :]
    Y = (np.arange(i0, i1, 2, dtype=F32) + 1.0)[:, None]
    A = np.zeros((Y.shape[0], X.shape[1]), F32)
    for (ax, ay), (bx, by), r, soft in sh:
        pad = r + soft
        cj0, cj1 = max(int((min(ax, bx) - pad - j0) / 2), 0), min(int((max(ax, bx) + pad - j0) / 2) + 2, X.shape[1])
        ci0, ci1 = max(int((min(ay, by) - pad - i0) / 2), 0), min(int((max(ay, by) + pad - i0) / 2) + 2, Y.shape[0])
        if cj1 <= cj0 or ci1 <= ci0:
            continue
        x = X[:, cj0:cj1]
        y = Y[ci0:ci1]
        bax, bay = bx - ax, by - ay
        l2 = bax * bax + bay * bay + 1e-6
        pax, pay = x - ax, y - ay
        t = _clip((pax * bax + pay * bay) * (1.0 / l2), 0.0, 1.0)
        ex, ey = pax - t * bax, pay - t * bay
        d = np.sqrt(ex * ex + ey * ey)
        a = _clip((r - d) * (1.0 / soft) + 0.5, 0.0, 1.0)
        sub = A[ci0:ci1, cj0:cj1]
        np.maximum(sub, a, out=sub)
    A = np.repeat(np.repeat(A, 2, axis=0), 2, axis=1)[: i1 - i0, : j1 - j0]
    sl = (slice(i0, i1), slice(j0, j1))
    if cv.dirty is not None:
        cv.dirty.append(sl)
    cv.img[sl] *= (1.0 - strength * A)[..., None]


def draw_hand(cv: Canvas, sc: Scene, caps, single: int | None = None):
    """Sphere-swept capsules blended into one smooth surface: each pixel's normal and material
    are the capsules' own, weighted by a soft maximum of their heights (so joints and the
    palm-to-finger junctions have no creases), then lit per pixel. `single`: every capsule is of
    that material (a cheaper pass)."""
    pc = []
    for c in caps:
        a, b, r, m = c[:4]
        A, B = _img_pt(cv, a), _img_pt(cv, b)
        rp = r * cv.s
        j0, j1 = max(int(min(A[0], B[0]) - rp) - 1, 0), min(int(max(A[0], B[0]) + rp) + 2, cv.W)
        i0, i1 = max(int(min(A[1], B[1]) - rp) - 1, 0), min(int(max(A[1], B[1]) + rp) + 2, cv.H)
        if j1 > j0 and i1 > i0:
            pc.append((A, B, rp, m, j0, j1, i0, i1, c[4] if len(c) > 4 else 0))
    if not pc:
        return
    x0, x1 = min(p[4] for p in pc), max(p[5] for p in pc)
    y0, y1 = min(p[6] for p in pc), max(p[7] for p in pc)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    h, w = y1 - y0, x1 - x0
    ik = 1.0 / max(0.05 * sc.palm_w * cv.s, 0.8)  # 1 / blending height (px)
    ztop = max(max(p[0][2], p[1][2]) + p[2] for p in pc)
    snx = np.zeros((h, w), F32)
    sny = np.zeros((h, w), F32)
    snz = np.zeros((h, w), F32)
    sw = np.full((h, w), 1e-36, F32)
    snail = np.zeros((h, w), F32) if single is None else None
    cov = np.zeros((h, w), F32)
    xs, ys = cv.xs, cv.ys
    for A, B, r, m, j0, j1, i0, i1, op in pc:
        X = xs[None, j0:j1]
        Y = ys[i0:i1, None]
        bax, bay, baz = B[0] - A[0], B[1] - A[1], B[2] - A[2]
        il2 = 1.0 / (bax * bax + bay * bay + 1e-6)
        pax, pay = X - A[0], Y - A[1]
        t = (pax * bax + pay * bay) * il2
        if op:
            keep = ((t >= 0.0) if op & 1 else True) & ((t <= 1.0) if op & 2 else True)
        t = _clip(t, 0.0, 1.0)
        dx = pax - t * bax
        dy = pay - t * bay
        d2 = dx * dx + dy * dy
        r2 = r * r
        q = r2 - d2
        if op:
            q = np.where(keep, q, F32(-1e9))
        inside = q > 0
        sq = np.sqrt(np.maximum(q, 0.0))
        wgt = np.exp(_clip((A[2] - ztop + t * baz + sq) * ik, -80.0, 0.0)) * inside
        sl = (slice(i0 - y0, i1 - y0), slice(j0 - x0, j1 - x0))
        wr = wgt * (1.0 / r)
        snx[sl] += wr * dx
        sny[sl] += wr * dy
        snz[sl] += wr * sq
        sw[sl] += wgt
        if m == NAIL and snail is not None:
            snail[sl] += wgt
        c = _clip((q + r + 0.25) * (1.0 / (2 * r + 1.0)), 0.0, 1.0)  # ((r + 1/2)^2 - d^2) / (2r + 1) ~ r + 1/2 - d
        np.maximum(cov[sl], c, out=cov[sl])
    iw = 1.0 / sw
    snx *= iw
    sny *= iw
    snz *= iw
    inv = 1.0 / (np.sqrt(snx * snx + sny * sny + snz * snz) + 1e-6)
    nx, ny, nz = snx * inv, sny * inv, snz * inv
    lam = _clip(nx * LIGHT3[0] + ny * LIGHT3[1] + nz * LIGHT3[2], 0.0, 1.0)
    sp = _clip(nx * HALF3[0] + ny * HALF3[1] + nz * HALF3[2], 0.0, 1.0) ** 12
    skin = sc.skin
    dark = (skin * np.array([0.42, 0.3, 0.28], F32), np.array([0.62, 0.5, 0.48], F32) * skin + 0.06, sc.sleeve * 0.35)
    light = (np.minimum(skin * 1.08 + 0.02, 1.0), np.minimum(skin * 0.55 + 0.45, 1.0), sc.sleeve * 1.1)
    spk = (0.06, 0.2, 0.015)
    if single is not None:
        col = dark[single] + (light[single] - dark[single]) * lam[..., None]
        spec = sp * spk[single]
    else:
        f1 = (snail * iw)[..., None]
        d0, l0 = dark[0], light[0] - dark[0]
        # colour = dark + (light - dark) * lambert, skin and nail blended by their weights
        col = (d0 + f1 * (dark[1] - d0)) + (l0 + f1 * (light[1] - dark[1] - l0)) * lam[..., None]
        spec = sp * (spk[0] + (spk[1] - spk[0]) * f1[..., 0])
    col *= (0.72 + 0.28 * nz)[..., None]
    col += spec[..., None]
    sl = (slice(y0, y1), slice(x0, x1))
    if cv.dirty is not None:
        cv.dirty.append(sl)
    tgt = cv.img[sl]
    tgt += (col - tgt) * cov[..., None]


# ---------------------------------------------------------------- cameras and video
@dataclass(frozen=True)
class Camera:
    w: int
    h: int
    fps: float
    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    rot_deg: float = 0.0
    gain: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 2.6  # sensor noise sigma, 8-bit levels
    shake: float = 0.0035  # world units
    shake_rot_deg: float = 0.5


CAMERAS = {
    "gold": Camera(640, 360, 30.0),
    "correct_nuisance": Camera(
        512, 288, 25.0, zoom=1.1, shift=(0.028, -0.016), rot_deg=2.0, gain=0.8, tint=(1.06, 0.97, 0.8), noise=4.0
    ),
}
TRAINEE = Camera(480, 270, 24.0)
ROT_STEP_DEG = 0.04


class _Shake:
    """Camera shake (x, y in units of Camera.shake, rotation in units of shake_rot_deg) and the
    light's gain drift, as smooth sums of sines."""

    def __init__(self, rng: np.random.Generator):
        self.f = rng.uniform(0.15, 1.6, (3, 3))
        self.p = rng.uniform(0, 2 * math.pi, (3, 3))
        self.a = rng.uniform(0.5, 1.0, (3, 3)) / np.array([1.0, 1.6, 2.4])[None, :]
        self.drift_f = rng.uniform(1 / 14, 1 / 6, 2)
        self.drift_p = rng.uniform(0, 2 * math.pi, 2)

    def __call__(self, t: float):
        v = (self.a * np.sin(2 * math.pi * self.f * t + self.p)).sum(axis=1) / 1.6
        g = (
            1.0
            + 0.045 * math.sin(2 * math.pi * self.drift_f[0] * t + self.drift_p[0])
            + 0.02 * math.sin(2 * math.pi * self.drift_f[1] * t + self.drift_p[1])
        )
        return float(v[0]), float(v[1]), float(v[2]), g


class _Layout:
    """Activity lookup over the timeline."""

    def __init__(self, tl: plans.Timeline):
        self.segs = tl.segments
        self.starts = [s.start_sec for s in self.segs]

    def at(self, t: float):
        i = bisect.bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.segs[i].end_sec:
            return "act", i
        return "gap", i  # after segment i (i = -1: lead-in)


def _work_at(sc: Scene, act: plans.Activity, tau: float) -> Work:
    if act.kind == "step":
        kind = sc.steps[act.step]
        motion = KINDS[KIND_INDEX[kind]][1]
        if act.wrong:
            motion = WRONG_MOTION[motion]
        dg = sc.durations[act.step]
        return motion_work(sc, kind, motion, tau / act.duration * dg, dg)
    if act.kind == "extra":
        return extra_work(sc, tau / act.duration * plans.EXTRA_SEC, plans.EXTRA_SEC)
    return rest_work(sc, tau)


def _needs(act: plans.Activity | None, sc: Scene) -> str | None:
    if act is None:
        return None
    if act.kind == "step":
        return sc.steps[act.step]
    if act.kind == "extra":
        return sc.extra_kind
    return None


class Director:
    """The hand's state and the parts to draw at any time of one video."""

    def __init__(self, sc: Scene, tl: plans.Timeline):
        self.sc, self.tl, self.lay = sc, tl, _Layout(tl)
        self.fk_cache: dict = {}

    def _tray_state(self, kind: str) -> HandState:
        pose = POSES["pinch"].copy()
        pose[I_LIFT] += 0.15
        cx, cy = self.sc.compartments[kind]
        return hand_state(self.sc, Work("pinch", (cx, cy), 0.0, pose, pose, None, "none"), self.fk_cache)

    def _hs(self, wk: Work) -> HandState:
        return hand_state(self.sc, wk, self.fk_cache)

    def frame(self, t: float):
        """(HandState, [(kind, x, y, prm, lift, anchor)] drawn this frame, attached set)."""
        sc, segs = self.sc, self.lay.segs
        where, i = self.lay.at(t)
        done = [s.activity for s in segs if s.end_sec <= t]
        attached = {sc.steps[a.step] for a in done if a.kind == "step"}
        parts = []
        if where == "act":
            seg = segs[i]
            wk = _work_at(sc, seg.activity, t - seg.start_sec)
            hs = self._hs(wk)
            if wk.part is not None:
                attached.discard(wk.part)
                parts.append(self._part_draw(wk, hs))
            return hs, parts, frozenset(attached)
        # between activities: travel (via the tray when the next activity needs a part)
        prev = segs[i].activity if i >= 0 else None
        nxt = segs[i + 1].activity if i + 1 < len(segs) else None
        t0 = segs[i].end_sec if i >= 0 else 0.0
        t1 = segs[i + 1].start_sec if nxt is not None else self.tl.duration_sec
        s0 = self._hs(_work_at(sc, prev, prev.duration)) if prev is not None else self._hs(rest_work(sc, 0.0))
        T = max(t1 - t0, 1e-6)
        u = (t - t0) / T
        if nxt is None:  # tail: withdraw to the edge
            s1 = self._hs(rest_work(sc, 0.0))
            return lerp_state(s0, s1, u / 0.9, arc=0.4, open_w=0.3), parts, frozenset(attached)
        w1 = _work_at(sc, nxt, 0.0)
        s1 = self._hs(w1)
        drop = _needs(prev, sc) if (prev is not None and prev.kind == "extra") else None
        pick = _needs(nxt, sc)
        legs = []  # (state, part carried on the leg towards it)
        if drop:
            legs.append((self._tray_state(drop), drop))
        if pick:
            legs.append((self._tray_state(pick), None))
        legs.append((s1, pick))
        # leg timing: travel legs share the time, with a short grasp at each tray stop
        n = len(legs)
        hold = 0.12 if n > 1 else 0.0
        travel = (1.0 - hold * (n - 1)) / n
        cur = s0
        pos = 0.0
        for k, (st, carried) in enumerate(legs):
            if u <= pos + travel or k == n - 1:
                v = (u - pos) / travel
                hs = lerp_state(cur, st, v, arc=0.55, open_w=0.45 if carried is None else 0.15)
                if carried:
                    parts.append(self._carried(carried, hs, st if k == n - 1 else None, w1, v))
                return hs, parts, frozenset(attached)
            pos += travel
            if u <= pos + hold:  # grasp at the tray
                hs = st
                if carried is None and k + 1 < n and legs[k + 1][1] is not None and (u - pos) / hold > 0.5:
                    parts.append(self._carried(legs[k + 1][1], hs, None, None, 0.0))
                elif carried is not None and (u - pos) / hold < 0.5:
                    parts.append(self._carried(carried, hs, None, None, 0.0))
                return hs, parts, frozenset(attached)
            pos += hold
            cur = st
        return s1, parts, frozenset(attached)

    def _pinch_point(self, hs: HandState):
        caps, pts = hand_world(self.sc, hs)
        return pts["pinch"]

    def _part_draw(self, wk: Work, hs: HandState):
        if wk.where == "hand":
            p = self._pinch_point(hs)
            return (wk.part, p[0], p[1] - KAPPA * p[2], wk.prm, p[2], None)
        x, y = slot_pos(self.sc, wk.part)
        return (wk.part, x, y, wk.prm, 0.0, wk.anchor)

    def _carried(self, kind: str, hs: HandState, final: HandState | None, w1: Work | None, v: float):
        p = self._pinch_point(hs)
        x, y, z = p[0], p[1] - KAPPA * p[2], p[2]
        held = (CARRY_ROT, 0.0, 0.0, 0.0, 0.0)  # a part in the fingers sits a little turned
        prm = held
        anchor = None
        if final is not None and w1 is not None and w1.where == "slot":
            # place it: glide onto its start position on the fixture during the last 30 %
            b = _sstep((v - 0.7) / 0.3)
            sx, sy = slot_pos(self.sc, kind)
            x, y, z = x + (sx - x) * b, y + (sy - y) * b, z * (1 - b)
            prm = tuple(a + (c - a) * b for a, c in zip(held, w1.prm))
            ax, ay = x - 0.03, y - 0.05
            anchor = (ax + (self.sc.cable_anchor[0] - ax) * b, ay + (self.sc.cable_anchor[1] - ay) * b)
        if kind == "cable" and anchor is None:
            anchor = (x - 0.03, y - 0.05)
        return (kind, x, y, prm, max(z, 0.0), anchor)


def compose(cv: Canvas, sc: Scene, hs: HandState, parts) -> None:
    """Draw what moves onto the background: the parts being worked or carried, the hand's
    shadow, the hand, the sleeve."""
    for kind, x, y, prm, lift, anchor in parts:  # on the bench or the fixture: under the hand
        if lift <= 0.004:
            draw_part(cv, kind, x, y, prm, lift=lift, anchor=anchor)
    caps, pts = hand_world(sc, hs)
    draw_shadow(cv, pts["_shadow"])
    draw_hand(cv, sc, [c for c in caps if c[3] != SLEEVE])
    draw_hand(cv, sc, [c for c in caps if c[3] == SLEEVE], single=SLEEVE)
    for kind, x, y, prm, lift, anchor in parts:  # held up between thumb and index: seen over them
        if lift > 0.004:
            draw_part(cv, kind, x, y, prm, lift=lift, anchor=anchor)


def render_video(
    sc: Scene, acts: list[plans.Activity], path: Path, cam: Camera, seed: int, cache: dict
) -> plans.Timeline:
    tl = plans.lay_out(acts, sc.transition, sc.lead_in, sc.tail)
    rng = np.random.default_rng(seed)
    director = Director(sc, tl)
    shake = _Shake(rng)
    s = cam.w * cam.zoom
    n = int(round(tl.duration_sec * cam.fps))
    # output grid -> world
    vw = 1.0 / cam.zoom
    U = ((np.arange(cam.w, dtype=F32) + 0.5 - cam.w / 2) / cam.w * vw)[None, :]
    V = ((np.arange(cam.h, dtype=F32) + 0.5 - cam.h / 2) / cam.w * vw)[:, None]
    yy, xx = np.mgrid[0 : cam.h, 0 : cam.w].astype(F32)
    r2 = ((xx - cam.w / 2) / (cam.w / 2)) ** 2 + ((yy - cam.h / 2) / (cam.w / 2)) ** 2
    vig = (1.0 - 0.22 * r2).astype(F32)
    light = (vig[..., None] * np.array(cam.tint, F32)[None, None, :] * F32(255.0 * cam.gain)).astype(F32)
    noise = rng.normal(0.0, cam.noise, (4, cam.h, cam.w, 3)).astype(F32)
    maps: dict[int, np.ndarray] = {}
    state_key = None
    work = bg = None
    cv = None
    with plans.VideoWriter(path, (cam.w, cam.h), cam.fps, codec="h264") as vwr:
        for fi in range(n):
            t = fi / cam.fps
            hs, parts, attached = director.frame(t)
            if attached != state_key:
                bg = static_background(sc, s, attached, cache)
                work = bg.copy()
                cv = Canvas(s, work)
                cv.dirty = []
                state_key = attached
            compose(cv, sc, hs, parts)
            # camera: a nearest-neighbour map per rotation (quantised), the shake's shift in whole pixels
            ox, oy, orot, g = shake(t)
            q = int(round((cam.rot_deg + cam.shake_rot_deg * orot) / ROT_STEP_DEG))
            if q not in maps:
                th = math.radians(q * ROT_STEP_DEG)
                c, si = math.cos(th), math.sin(th)
                J = (0.5 + cam.shift[0] + MARGIN) * s - 0.5 + s * (c * U - si * V)
                row = (WORLD_H / 2 + cam.shift[1] + MARGIN) * s - 0.5 + s * (si * U + c * V)
                maps[q] = (np.rint(row).astype(np.int32) * cv.W + np.rint(J).astype(np.int32)).astype(np.int32)
            off = int(round(cam.shake * oy * s)) * cv.W + int(round(cam.shake * ox * s))
            idx = _clip(maps[q] + np.int32(off), 0, cv.H * cv.W - 1)
            frame = np.take(work.reshape(-1, 3), idx, axis=0)
            frame *= light
            frame *= F32(g)
            frame += noise[fi % 4] if (fi // 4) % 2 == 0 else -noise[(fi + 1) % 4]
            np.clip(frame, 0, 255, out=frame)
            vwr.write(frame.astype(np.uint8))
            for sl in cv.dirty:
                work[sl] = bg[sl]
            cv.dirty.clear()
    return tl


# ---------------------------------------------------------------- the task
def render_task(out_dir: Path, task_seed: int, variants: Sequence[str] = plans.VARIANTS) -> plans.Task:
    sc = make_scene(task_seed)
    cache: dict = {}

    def render(acts: list[plans.Activity], path: Path, variant: str, seed: int) -> plans.Timeline:
        cam = CAMERAS.get(variant, TRAINEE)
        return render_video(sc, acts, path, cam, seed, cache)

    return plans.build_task(NAME, f"{NAME}-{task_seed:04d}", Path(out_dir), sc.durations, variants, render, task_seed)


# ---------------------------------------------------------------- contact sheet
def contact_sheet(task: plans.Task, path: Path) -> None:
    """The middle of every gold step, then correct_nuisance, wrong_execution and the extra."""
    from PIL import Image, ImageDraw

    sc = make_scene(int(task.task_id.split("-")[-1]))
    tiles = []
    for k, (a, b) in enumerate(task.gold_steps()):
        kind = sc.steps[k]
        tiles.append(
            (
                plans.read_frame(task.gold.path, 0.5 * (a + b), (640, 360)),
                f"gold step {k}: {kind} ({KINDS[KIND_INDEX[kind]][1]})",
            )
        )
    for v in ("correct_nuisance", "wrong_execution", "extra_step"):
        vid = task.trainees.get(v)
        if vid is None:
            continue
        cam = CAMERAS.get(v, TRAINEE)
        segs = vid.timeline.segments
        seg, label = segs[len(segs) // 2], v
        if v == "wrong_execution":
            seg = next(s for s in segs if s.activity.wrong)
            kind = sc.steps[seg.activity.step]
            motion = KINDS[KIND_INDEX[kind]][1]
            label = f"{v}: {kind} ({WRONG_MOTION[motion]} instead of {motion})"
        elif v == "extra_step":
            seg = next(s for s in segs if s.activity.kind == "extra")
            label = f"extra: {sc.extra_kind} turned over in the lifted hand"
        im = plans.read_frame(vid.path, 0.5 * (seg.start_sec + seg.end_sec), (cam.w, cam.h))
        tiles.append((np.asarray(Image.fromarray(im).resize((640, 360))), label))
    cols = 3
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * 644, rows * 384), (30, 30, 30))
    d = ImageDraw.Draw(sheet)
    for i, (im, label) in enumerate(tiles):
        x, y = (i % cols) * 644, (i // cols) * 384
        sheet.paste(Image.fromarray(im), (x + 2, y + 22))
        d.text((x + 6, y + 5), label, fill=(240, 240, 240))
    sheet.save(path)


if __name__ == "__main__":
    out, seed, task = plans.render_from_argv(render_task, "/tmp/fixture_task")
    sc = make_scene(seed)
    for k, kind in enumerate(sc.steps):
        print(f"step {k}: {kind:8s} {KINDS[KIND_INDEX[kind]][1]:7s} {sc.durations[k]:.2f} s")
    print(f"extra : {sc.extra_kind}")
    for v, vid in task.trainees.items():
        print(f"{v:17s} {vid.timeline.duration_sec:6.2f} s  {vid.path.name}")
    sheet = out / f"{task.task_id}_contact.png"
    contact_sheet(task, sheet)
    print("contact sheet:", sheet)

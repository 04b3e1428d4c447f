"""Instruction slides: each step is a full-frame slide (background colour, title, one line of
text, a drawn icon). Within a step the slide slowly darkens (to 60 % by its end) while a progress
bar fills and/or a mouse cursor travels to the icon. Steps change by a short crossfade or a hard
cut (per task). Some steps share their background colour, so colour alone does not tell steps
apart; a wrong execution keeps title and colour but shows another icon and text line.

    python -m bench.styles.slides OUT_DIR [--seed N] [--variants gold,swap,...]

renders one task and writes OUT_DIR/contact_sheet.png (decoded frames) for a look.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

try:
    from . import plans
except ImportError:  # run as a plain script
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import plans  # type: ignore[no-redef]

NAME = "slides"

MW, MH = 640, 480  # master slide size (4:3); every slide is drawn once at this size
SS = 2  # supersampling when drawing
DARKEST = 0.6  # brightness at the end of a step
MAX_VIDEO_SEC = 45.0
LEAD_IN = (0.3, 0.8)
TAIL = 0.5

GOLD_FMT = ((640, 480), 24.0)
TRAINEE_FMT = ((320, 180), 12.0)
NUISANCE_FMT = ((480, 360), 15.0)

# title, text, icon, wrong text, wrong icon
TEMPLATES = (
    ("Wear gloves", "Pull both gloves over the cuffs", "hand", "Skip gloves, start bare-handed", "cross"),
    ("Open the valve", "Quarter turn anticlockwise", "arrow", "Open it fully in one go", "bolt"),
    ("Add coolant", "Fill up to the MAX line", "drop", "Pour until it overflows", "waves"),
    ("Tighten bolts", "Star pattern, hand tight", "wrench", "Hammer the bolts home", "hammer"),
    ("Start the motor", "Press START once and release", "gear", "Hold START down for 10 s", "flame"),
    ("Check pressure", "Needle inside the green band", "gauge", "Skip the reading, look away", "eye"),
    ("Lock the panel", "Close the cover and lock it", "lock", "Leave the cover unlocked", "unlock"),
    ("Set temperature", "Turn the dial to 40 degrees", "thermometer", "Turn the dial to maximum", "star"),
    ("Unplug the unit", "Pull the plug by its body", "plug", "Yank it out by the cable", "bolt"),
    ("Sign the checklist", "Tick each box after checking", "check", "Tick every box at once", "cross"),
    ("Call the supervisor", "Press the call bell once", "bell", "Shout across the hall", "waves"),
    ("Seal the box", "Tape along the centre seam", "box", "Fold the flaps, no tape", "hand"),
)
EXTRAS = (  # activities that are never a gold step
    ("Check your phone", "Scroll through new messages", "phone"),
    ("Coffee break", "Refill the mug at the machine", "cup"),
    ("Look around", "Watch what the others are doing", "eye"),
)
PALETTE = (
    (35, 85, 165),
    (15, 120, 125),
    (45, 130, 60),
    (200, 105, 25),
    (170, 45, 45),
    (105, 55, 145),
    (120, 120, 30),
    (115, 75, 45),
    (30, 45, 100),
    (165, 50, 115),
)
PAUSE_BG = ((105, 105, 105), (22, 22, 22))

_FONT_DIR = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=None)
def _font(size: int, bold: bool) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size)


# --------------------------------------------------------------------------- icons
def _icon(d: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, s: float, fg, hole) -> None:
    """Draw icon `kind` in white-ish `fg` within [-s, s] around (cx, cy); `hole` is the badge colour."""

    def P(x, y):
        return (cx + x * s, cy + y * s)

    def W(w):
        return max(1, int(round(w * s)))

    def dot(x, y, r, col=fg):
        d.ellipse([P(x - r, y - r), P(x + r, y + r)], fill=col)

    def line(pts, w, col=fg):
        d.line([P(*p) for p in pts], fill=col, width=W(w), joint="curve")
        for p in (pts[0], pts[-1]):
            dot(*p, w / 2, col)

    if kind == "arrow":
        d.polygon(
            [P(-0.8, -0.2), P(0.15, -0.2), P(0.15, -0.55), P(0.85, 0), P(0.15, 0.55), P(0.15, 0.2), P(-0.8, 0.2)],
            fill=fg,
        )
    elif kind == "gear":
        pts = []
        for i in range(8):
            a = 2 * math.pi * i / 8
            for da, r in ((-0.32, 0.66), (-0.17, 0.92), (0.17, 0.92), (0.32, 0.66)):
                pts.append(P(r * math.cos(a + da), r * math.sin(a + da)))
        d.polygon(pts, fill=fg)
        dot(0, 0, 0.28, hole)
    elif kind in ("drop", "flame"):
        ts = np.linspace(0, 2 * math.pi, 90)
        if kind == "drop":
            pts = [P(0.72 * math.sin(t) * math.sin(t / 2), -0.95 * math.cos(t) + 0.05) for t in ts]
            d.polygon(pts, fill=fg)
            d.arc([P(-0.45, -0.1), P(0.35, 0.7)], 100, 170, fill=hole, width=W(0.08))
        else:

            def flame(sc, dx, dy, lean):
                return [
                    P(
                        dx + sc * (0.7 * math.sin(t) * math.sin(t / 2) ** 2.2 + lean * (1 + math.cos(t)) ** 2 / 4),
                        dy + sc * (-0.95 * math.cos(t)),
                    )
                    for t in ts
                ]

            d.polygon(flame(1.0, 0.0, 0.05, -0.18), fill=fg)
            d.polygon(flame(0.45, 0.0, 0.52, 0.08), fill=hole)
    elif kind == "check":
        line([(-0.7, 0.0), (-0.2, 0.5), (0.72, -0.55)], 0.24)
    elif kind == "cross":
        line([(-0.6, -0.6), (0.6, 0.6)], 0.26)
        line([(0.6, -0.6), (-0.6, 0.6)], 0.26)
    elif kind == "hand":
        d.rounded_rectangle([P(-0.52, -0.15), P(0.5, 0.88)], radius=W(0.25), fill=fg)
        for x, top in ((-0.39, -0.78), (-0.13, -0.92), (0.13, -0.87), (0.38, -0.66)):
            d.rounded_rectangle([P(x - 0.115, top), P(x + 0.115, 0.1)], radius=W(0.11), fill=fg)
        line([(-0.42, 0.4), (-0.85, -0.12)], 0.24)
        for x in (-0.26, 0.0, 0.26):
            d.line([P(x, -0.2), P(x, 0.05)], fill=hole, width=W(0.03))
    elif kind == "wrench":
        line([(-0.62, 0.62), (0.2, -0.2)], 0.26)
        dot(0.36, -0.36, 0.38)
        u, v = (0.7071, -0.7071), (0.7071, 0.7071)
        c = (0.36 + 0.05 * u[0], -0.36 + 0.05 * u[1])
        slot = [
            (c[0] + a * u[0] + b * v[0], c[1] + a * u[1] + b * v[1])
            for a, b in ((0, -0.14), (0.6, -0.14), (0.6, 0.14), (0, 0.14))
        ]
        d.polygon([P(*p) for p in slot], fill=hole)
        dot(-0.62, 0.62, 0.06, hole)
    elif kind in ("lock", "unlock"):
        up = 0.28 if kind == "unlock" else 0.0
        d.arc([P(-0.38, -0.85 - up), P(0.38, -0.1 - up)], 180, 360, fill=fg, width=W(0.16))
        d.line([P(-0.3, -0.48 - up), P(-0.3, (-0.05 if kind == "lock" else -0.48))], fill=fg, width=W(0.16))
        d.line([P(0.3, -0.48 - up), P(0.3, -0.05)], fill=fg, width=W(0.16))
        d.rounded_rectangle([P(-0.62, -0.08), P(0.62, 0.85)], radius=W(0.12), fill=fg)
        dot(0, 0.3, 0.12, hole)
        d.polygon([P(-0.06, 0.32), P(0.06, 0.32), P(0.1, 0.6), P(-0.1, 0.6)], fill=hole)
    elif kind == "bolt":
        d.polygon(
            [
                P(0.12, -0.95),
                P(-0.5, 0.12),
                P(-0.05, 0.12),
                P(-0.22, 0.95),
                P(0.52, -0.22),
                P(0.06, -0.22),
                P(0.32, -0.95),
            ],
            fill=fg,
        )
    elif kind == "gauge":
        d.arc([P(-0.85, -0.7), P(0.85, 1.0)], 180, 360, fill=fg, width=W(0.14))
        for a in np.linspace(math.pi, 2 * math.pi, 7):
            d.line(
                [P(0.55 * math.cos(a), 0.15 + 0.55 * math.sin(a)), P(0.7 * math.cos(a), 0.15 + 0.7 * math.sin(a))],
                fill=fg,
                width=W(0.06),
            )
        a = math.radians(300)
        line([(0, 0.15), (0.62 * math.cos(a), 0.15 + 0.62 * math.sin(a))], 0.09)
        dot(0, 0.15, 0.13)
        d.rectangle([P(-0.85, 0.35), P(0.85, 0.5)], fill=fg)
    elif kind == "hammer":
        d.rounded_rectangle([P(-0.1, -0.35), P(0.1, 0.95)], radius=W(0.06), fill=fg)
        d.rounded_rectangle([P(-0.7, -0.75), P(0.55, -0.3)], radius=W(0.08), fill=fg)
        d.polygon([P(0.55, -0.75), P(0.85, -0.9), P(0.85, -0.15), P(0.55, -0.3)], fill=fg)
    elif kind == "thermometer":
        d.rounded_rectangle([P(-0.17, -0.92), P(0.17, 0.4)], radius=W(0.17), fill=fg)
        dot(0, 0.6, 0.32)
        d.rounded_rectangle([P(-0.07, -0.2), P(0.07, 0.5)], radius=W(0.07), fill=hole)
        dot(0, 0.6, 0.18, hole)
        for y in (-0.7, -0.5, -0.3, -0.1):
            d.line([P(0.28, y), P(0.5, y)], fill=fg, width=W(0.06))
    elif kind == "plug":
        d.rounded_rectangle([P(-0.45, -0.4), P(0.45, 0.35)], radius=W(0.12), fill=fg)
        d.rectangle([P(-0.3, -0.85), P(-0.14, -0.4)], fill=fg)
        d.rectangle([P(0.14, -0.85), P(0.3, -0.4)], fill=fg)
        line([(0, 0.35), (0, 0.65), (0.35, 0.95)], 0.14)
    elif kind == "star":
        pts = [
            P(
                (0.92 if i % 2 == 0 else 0.4) * math.cos(-math.pi / 2 + i * math.pi / 5),
                0.08 + (0.92 if i % 2 == 0 else 0.4) * math.sin(-math.pi / 2 + i * math.pi / 5),
            )
            for i in range(10)
        ]
        d.polygon(pts, fill=fg)
    elif kind == "bell":
        d.rounded_rectangle([P(-0.5, -0.65), P(0.5, 0.5)], radius=W(0.45), fill=fg)
        d.polygon([P(-0.78, 0.58), P(0.78, 0.58), P(0.5, 0.15), P(-0.5, 0.15)], fill=fg)
        dot(0, 0.72, 0.16)
        dot(0, -0.72, 0.11)
    elif kind == "phone":
        d.rounded_rectangle([P(-0.42, -0.92), P(0.42, 0.92)], radius=W(0.14), fill=fg)
        d.rectangle([P(-0.32, -0.72), P(0.32, 0.58)], fill=hole)
        dot(0, 0.75, 0.08, hole)
    elif kind == "cup":
        d.polygon([P(-0.62, -0.3), P(0.38, -0.3), P(0.28, 0.75), P(-0.52, 0.75)], fill=fg)
        d.arc([P(0.12, -0.15), P(0.75, 0.5)], 270, 90, fill=fg, width=W(0.13))
        for x in (-0.4, -0.12, 0.16):
            ys = np.linspace(-0.9, -0.45, 12)
            d.line([P(x + 0.07 * math.sin(8 * y), y) for y in ys], fill=fg, width=W(0.07))
    elif kind == "eye":
        ts = np.linspace(0, 2 * math.pi, 80)
        d.polygon([P(0.9 * math.cos(t), 0.5 * math.sin(t) * abs(math.sin(t)) ** 0.3) for t in ts], fill=fg)
        dot(0, 0, 0.3, hole)
        dot(0, 0, 0.13)
    elif kind == "waves":
        for y0 in (-0.45, 0.0, 0.45):
            xs = np.linspace(-0.8, 0.8, 40)
            line([(x, y0 + 0.13 * math.sin(x * 2 * math.pi / 0.8)) for x in xs], 0.13)
    elif kind == "box":
        d.polygon([P(-0.75, -0.35), P(0.75, -0.35), P(0.75, 0.8), P(-0.75, 0.8)], fill=fg)
        d.polygon([P(-0.75, -0.35), P(-0.45, -0.75), P(0.45, -0.75), P(0.75, -0.35)], fill=fg)
        d.line([P(0, -0.75), P(0, 0.8)], fill=hole, width=W(0.12))
        d.line([P(-0.75, -0.35), P(0.75, -0.35)], fill=hole, width=W(0.04))
    elif kind == "hourglass":
        d.rectangle([P(-0.62, -0.92), P(0.62, -0.78)], fill=fg)
        d.rectangle([P(-0.62, 0.78), P(0.62, 0.92)], fill=fg)
        d.polygon([P(-0.5, -0.78), P(0.5, -0.78), P(0.08, 0), P(0.5, 0.78), P(-0.5, 0.78), P(-0.08, 0)], fill=fg)
        d.polygon([P(-0.3, -0.6), P(0.3, -0.6), P(0.0, -0.15)], fill=hole)
        d.polygon([P(0.0, 0.35), P(0.36, 0.7), P(-0.36, 0.7)], fill=hole)
    else:
        raise ValueError(f"unknown icon {kind!r}")


# --------------------------------------------------------------------------- slides
def _mix(c, other, t):
    return tuple(int(round(a * (1 - t) + b * t)) for a, b in zip(c, other))


def _text(d, xy, s, font, fill, max_w):
    f = font
    while d.textlength(s, font=f) > max_w and f.size > 10:
        f = _font(f.size - 2, "Bold" in f.getname()[1])
    d.text(xy, s, font=f, fill=fill, anchor="mm")


def _draw_slide(title: str, text: str, icon: str, bg, footer: str, dots: int | None = None) -> np.ndarray:
    """One slide at MW x MH (drawn at SS x and downsampled), as uint8 RGB."""
    W, H = MW * SS, MH * SS
    im = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(im)
    band = _mix(bg, (0, 0, 0), 0.3)
    d.rectangle([0, 0, W, 92 * SS], fill=band)
    d.rectangle([0, 92 * SS, W, 96 * SS], fill=_mix(bg, (255, 255, 255), 0.35))
    _text(d, (W / 2, 48 * SS), title, _font(40 * SS, True), (255, 255, 255), W - 60 * SS)
    badge = _mix(bg, (0, 0, 0), 0.28)
    cx, cy, r = W / 2, 232 * SS, 108 * SS
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=badge, outline=_mix(bg, (255, 255, 255), 0.3), width=3 * SS)
    _icon(d, icon, cx, cy, 70 * SS, (248, 248, 242), badge)
    _text(d, (W / 2, 378 * SS), text, _font(26 * SS, False), (245, 245, 245), W - 70 * SS)
    if dots is not None:  # the "please wait" slide's busy indicator
        for i in range(3):
            col = (255, 255, 255) if i == dots else _mix(bg, (255, 255, 255), 0.3)
            x = W / 2 + (i - 1) * 34 * SS
            d.ellipse([x - 9 * SS, 418 * SS - 9 * SS, x + 9 * SS, 418 * SS + 9 * SS], fill=col)
    d.text((22 * SS, 462 * SS), footer, font=_font(13 * SS, False), fill=_mix(bg, (255, 255, 255), 0.45), anchor="lm")
    return np.asarray(im.resize((MW, MH), Image.LANCZOS))


def _cursor_sprite() -> np.ndarray:
    """A mouse pointer, RGBA at master scale (about 22 x 34 px)."""
    S = 4
    im = Image.new("RGBA", (24 * S, 36 * S), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    pts = [(1, 1), (1, 27), (7.5, 21), (12, 32), (16.5, 30), (12, 19.5), (20.5, 19.5)]
    d.polygon([(x * S, y * S) for x, y in pts], fill=(255, 255, 255, 255), outline=(0, 0, 0, 255), width=int(1.6 * S))
    return np.asarray(im.resize((24, 36), Image.LANCZOS))


class _Procedure:
    """Everything about one task's slides that does not depend on the video format."""

    def __init__(self, task_seed: int):
        rng = np.random.default_rng(task_seed)
        self.seed = task_seed
        self.n = n = int(rng.choice([4, 5, 5, 5, 6]))
        order = rng.permutation(len(TEMPLATES))
        self.steps = [TEMPLATES[i] for i in order[:n]]
        unused = [(t[0], t[1], t[2]) for t in (TEMPLATES[i] for i in order[n:])]
        m = int(rng.integers(max(2, n - 2), n))  # n-2 or n-1 distinct colours: some steps share one
        cols = [PALETTE[i] for i in rng.permutation(len(PALETTE))]
        step_cols = cols[:m] + [cols[int(i)] for i in rng.integers(0, m, n - m)]
        self.colours = [step_cols[i] for i in rng.permutation(n)]
        pool = unused + list(EXTRAS)
        self.extra = pool[int(rng.integers(len(pool)))]
        self.extra_colour = cols[m + int(rng.integers(len(cols) - m))]
        self.pause_colour = PAUSE_BG[int(rng.integers(2))]
        self.transition = 0.0 if rng.random() < 0.35 else float(np.round(rng.uniform(0.3, 0.6), 2))
        self.overlay = ("bar", "cursor", "both")[int(rng.integers(3))]
        self.footer = f"SOP-{100 + task_seed % 900:03d}"
        self.cursor_paths: dict[tuple, tuple] = {}
        for _ in range(50):  # durations: 3-7 s, every variant's video within MAX_VIDEO_SEC
            d = [float(x) for x in np.round(rng.uniform(3.0, 7.0, n), 1)]
            if self.longest(d) <= MAX_VIDEO_SEC:
                break
        else:
            k = (MAX_VIDEO_SEC - 3.0) / self.longest(d)
            d = [round(x * k, 1) for x in d]
        self.durations = d
        self._slides: dict[tuple, np.ndarray] = {}

    def longest(self, durations) -> float:
        worst = 0.0
        for v in plans.VARIANTS:
            acts, _ = plans.plan_variant(durations, v)
            worst = max(worst, plans.lay_out(acts, self.transition, LEAD_IN[1], TAIL).duration_sec)
        return worst

    @staticmethod
    def key(a: plans.Activity) -> tuple:
        if a.kind == "step":
            return ("step", a.step, a.wrong)
        return (a.kind,)

    def slide(self, key: tuple) -> np.ndarray:
        if key not in self._slides:
            if key[0] == "step":
                title, text, icon, wtext, wicon = self.steps[key[1]]
                if key[2]:
                    text, icon = wtext, wicon
                img = _draw_slide(title, text, icon, self.colours[key[1]], self.footer)
            elif key[0] == "extra":
                title, text, icon = self.extra
                img = _draw_slide(title, text, icon, self.extra_colour, self.footer)
            else:  # ("pause", dot)
                img = _draw_slide(
                    "Please wait", "The line is paused", "hourglass", self.pause_colour, self.footer, dots=key[1]
                )
            self._slides[key] = img
        return self._slides[key]

    def cursor_path(self, key: tuple) -> tuple:
        if key not in self.cursor_paths:
            kid = key[1] * 2 + int(key[2]) if key[0] == "step" else 1000  # str hashes vary per process
            r = np.random.default_rng([self.seed, kid])
            start = (float(r.uniform(40, 600)), float(r.choice([r.uniform(110, 150), r.uniform(400, 440)])))
            ang = r.uniform(0, 2 * math.pi)
            end = (320 + 45 * math.cos(ang), 232 + 45 * math.sin(ang))
            self.cursor_paths[key] = (start, end)
        return self.cursor_paths[key]


class _Format:
    """Where the 4:3 slide lands in one video's frame, and the slides resized for it."""

    def __init__(self, proc: _Procedure, size: tuple[int, int], letterbox: bool):
        self.proc, self.size = proc, size
        W, H = size
        if letterbox and abs(W / H - MW / MH) > 1e-3:
            h = H if W / H > MW / MH else round(W * MH / MW)
            w = round(h * MW / MH) if W / H > MW / MH else W
        else:
            w, h = W, H
        self.w, self.h, self.x0, self.y0 = w, h, (W - w) // 2, (H - h) // 2
        self.sx, self.sy = w / MW, h / MH
        self._base: dict[tuple, np.ndarray] = {}
        spr = _cursor_sprite()
        cw, ch = max(3, round(spr.shape[1] * max(self.sx, 0.45))), max(4, round(spr.shape[0] * max(self.sy, 0.45)))
        spr = np.asarray(Image.fromarray(spr).resize((cw, ch), Image.LANCZOS)).astype(np.uint16)
        self.cur_rgb, self.cur_a = spr[..., :3], spr[..., 3:4]
        # progress bar, in output px of the slide region
        self.bar = (
            round(200 * self.sx),
            round(452 * self.sy),
            round(600 * self.sx),
            max(round(462 * self.sy), round(452 * self.sy) + 2),
        )

    def base(self, key: tuple) -> np.ndarray:
        if key not in self._base:
            img = self.proc.slide(key)
            if (self.w, self.h) != (MW, MH):
                img = np.asarray(Image.fromarray(img).resize((self.w, self.h), Image.LANCZOS))
            self._base[key] = img.astype(np.uint16)
        return self._base[key]

    def frame(self, a: plans.Activity, p: float, t: float) -> np.ndarray:
        """The slide of activity `a` at progress p in [0, 1] (t: seconds of video), uint16."""
        key = self.proc.key(a)
        if a.kind == "pause":
            return self.base(("pause", int(t * 3) % 3)).copy()  # no darkening, a busy indicator
        f = self.base(key).copy()
        ov = self.proc.overlay
        if ov in ("bar", "both"):
            x0, y0, x1, y1 = self.bar
            f[y0:y1, x0:x1] = (f[y0:y1, x0:x1] * 2) // 5
            xe = x0 + int(round((x1 - x0) * p))
            f[y0:y1, x0:xe] = 240
        if ov in ("cursor", "both"):
            (xs, ys), (xe, ye) = self.proc.cursor_path(key)
            q = min(1.0, p / 0.75)
            q = q * q * (3 - 2 * q)
            x, y = xs + (xe - xs) * q, ys + (ye - ys) * q
            if p > 0.75:  # small back-and-forth "click" once it has arrived
                y += 4 * math.sin((p - 0.75) * 40)
            self._paste(f, round(x * self.sx), round(y * self.sy))
        k = int(round(256 * (1.0 - (1.0 - DARKEST) * p)))
        return (f * k) >> 8

    def _paste(self, f, x, y):
        h, w = self.cur_a.shape[:2]
        H, W = f.shape[:2]
        x1, y1 = min(W, x + w), min(H, y + h)
        if x1 <= x or y1 <= y or x < 0 or y < 0:
            return
        a = self.cur_a[: y1 - y, : x1 - x]
        f[y:y1, x:x1] = (f[y:y1, x:x1] * (255 - a) + self.cur_rgb[: y1 - y, : x1 - x] * a) // 255


def _nuisance_fx(rng: np.random.Generator):
    """A colour cast, lower contrast and JPEG-like blocking, as a frame -> frame function."""
    gains = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.14, 0.14, 3)
    contrast = rng.uniform(0.62, 0.78)
    lift = rng.uniform(10, 30)
    x = np.arange(256, dtype=np.float64)
    luts = [np.clip((128 + (x - 128) * contrast + lift) * g, 0, 255).astype(np.uint8) for g in gains]
    quality = int(rng.integers(12, 28))

    def fx(frame: np.ndarray) -> np.ndarray:
        out = np.stack([luts[c][frame[..., c]] for c in range(3)], axis=-1)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        return np.asarray(Image.open(buf).convert("RGB"))

    return fx


def _render_video(proc: _Procedure, acts: list[plans.Activity], path: Path, variant: str, seed: int) -> plans.Timeline:
    rng = np.random.default_rng(seed)
    vi = plans.VARIANTS.index(variant) if variant in plans.VARIANTS else 0
    if variant == "gold":
        (size, fps), codec, letterbox, fx = GOLD_FMT, "mpeg4", False, None
    elif variant == "correct_nuisance":
        (size, fps), letterbox = NUISANCE_FMT, False
        codec = ("mpeg4", "h264")[(proc.seed + 1) % 2]
        fx = _nuisance_fx(rng)
    else:
        (size, fps), fx = TRAINEE_FMT, None
        codec = ("mpeg4", "h264")[(vi + proc.seed) % 2]
        letterbox = (vi // 2 + proc.seed) % 2 == 0
    lead = float(np.round(rng.uniform(*LEAD_IN), 2))
    tl = plans.lay_out(acts, proc.transition, lead, TAIL)
    fmt = _Format(proc, size, letterbox)
    segs = tl.segments
    W, H = size
    canvas = np.zeros((H, W, 3), np.uint8)
    n_frames = int(round(tl.duration_sec * fps))
    with plans.VideoWriter(path, size, fps, codec=codec) as vw:
        for i in range(n_frames):
            t = i / fps
            j = 0
            while j < len(segs) and t >= segs[j].end_sec:
                j += 1
            if j < len(segs) and t >= segs[j].start_sec:
                s = segs[j]
                f = fmt.frame(s.activity, (t - s.start_sec) / (s.end_sec - s.start_sec), t)
            elif j == 0:  # lead-in: fade in from black
                f = (fmt.frame(segs[0].activity, 0.0, t) * int(256 * t / segs[0].start_sec)) >> 8
            elif j == len(segs):  # tail: fade out to black
                e = segs[-1].end_sec
                f = (fmt.frame(segs[-1].activity, 1.0, t) * int(256 * max(0.0, 1 - (t - e) / TAIL))) >> 8
            else:  # crossfade between segs[j-1] and segs[j]
                a, b = segs[j - 1], segs[j]
                al = int(256 * (t - a.end_sec) / (b.start_sec - a.end_sec))
                f = (fmt.frame(a.activity, 1.0, t) * (256 - al) + fmt.frame(b.activity, 0.0, t) * al) >> 8
            canvas[fmt.y0 : fmt.y0 + fmt.h, fmt.x0 : fmt.x0 + fmt.w] = f
            vw.write(fx(canvas) if fx else canvas)
    return tl


def render_task(out_dir: Path, task_seed: int, variants: Sequence[str] = plans.VARIANTS) -> plans.Task:
    proc = _Procedure(task_seed)

    def render(acts: list[plans.Activity], path: Path, variant: str, seed: int) -> plans.Timeline:
        return _render_video(proc, acts, path, variant, seed)

    return plans.build_task(NAME, f"slides{task_seed}", out_dir, proc.durations, variants, render, task_seed)


# --------------------------------------------------------------------------- look at it
def _decode(path: Path) -> tuple[list[np.ndarray], float]:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]
    return frames, float(meta["fps"])


def contact_sheet(task: plans.Task, out_png: Path) -> None:
    tiles: list[tuple[np.ndarray, str]] = []

    def grab(video: plans.Video, t: float, label: str):
        frames, fps = _decode(video.path)
        tiles.append((frames[min(len(frames) - 1, int(t * fps))], label))

    for k, (s, e) in enumerate(task.gold_steps()):
        grab(task.gold, (s + e) / 2, f"gold step {k}")
    grab(task.gold, task.gold_steps()[0][1] - 0.05, "gold step 0 end")
    for v, kind in (
        ("wrong_execution", "step"),
        ("extra_step", "extra"),
        ("repeated", "pause"),
        ("correct_nuisance", "step"),
    ):
        if v in task.trainees:
            vid = task.trainees[v]
            seg = next(
                s
                for s in vid.timeline.segments
                if (s.activity.wrong if v == "wrong_execution" else s.activity.kind == kind)
            )
            grab(vid, (seg.start_sec + seg.end_sec) / 2, f"{v}")
    tw, th = 320, 240
    cols = 4
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * tw, rows * (th + 18)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for i, (img, label) in enumerate(tiles):
        im = Image.fromarray(img)
        im.thumbnail((tw, th))
        x, y = (i % cols) * tw, (i // cols) * (th + 18)
        sheet.paste(im, (x + (tw - im.width) // 2, y + 18 + (th - im.height) // 2))
        d.text((x + 4, y + 2), f"{label} {img.shape[1]}x{img.shape[0]}", fill=(0, 0, 0), font=_font(12, False))
    sheet.save(out_png)


if __name__ == "__main__":
    import time

    ap = plans.arg_parser(__doc__.splitlines()[0])
    args = ap.parse_args()
    t0 = time.perf_counter()
    task = render_task(args.out_dir, args.seed, [v for v in args.variants.split(",") if v])
    dt = time.perf_counter() - t0
    proc = _Procedure(args.seed)
    print(
        f"rendered {task.task_id} ({len(task.trainees)} trainees) in {dt:.1f} s; "
        f"steps {proc.durations}, transition {proc.transition}, overlay {proc.overlay}"
    )
    for v, vid in task.trainees.items():
        print(f"  {v:17s} {vid.path.name:32s} {vid.timeline.duration_sec:6.2f} s")
    contact_sheet(task, args.out_dir / "contact_sheet.png")
    print("contact sheet:", args.out_dir / "contact_sheet.png")

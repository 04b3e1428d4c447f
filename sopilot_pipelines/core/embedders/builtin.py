"""The builtin clip embedder ("builtin:v1"): hand-crafted, deterministic, numpy only, fast.

Every frame is reduced to an 80x60 working resolution (whatever its input size), its gray
version is divided by its own mean brightness (brightness drift cancels) and lightly blurred,
and camera shake is undone: each frame is registered onto the video's median frame (phase
correlation, then Gauss-Newton refinement that ignores pixels a moving hand covers; about 0.03 px
accurate on the synthetic benches). Then five feature groups are computed per frame and averaged
over each clip with cumulative sums (each frame is processed once, however many clips overlap it):

* colour layout: on a 6x8 grid, each cell's chromaticity (r, g of r+g+b) and its brightness
  relative to the frame's; both ignore a global gain change.
* shape: HOG-like histograms of gradient orientation (8 unsigned bins, soft-assigned, weighted by
  the gradient magnitude above the sensor-noise level) on the 6x8 grid.
* motion energy: |difference of consecutive normalised frames| above the noise level, on the 6x8
  grid: where something moves.
* motion direction: on a 3x4 grid, histograms (8 signed bins over 360 degrees) of the normal-flow
  direction -dI/dt * grad(I), weighted by its magnitude, less their mean over the bins (the
  isotropic part is motion energy): an up-down oscillation and a sideways one come out opposite,
  a circular motion about flat.
* rotation: per 3x4 cell, how consistently the cell's net motion turns between consecutive frame
  pairs (sum of cross products over the sum of their magnitudes, -1..1, signed: clockwise or
  not), weighted by the cell's share of the clip's motion. Circling sums up; back-and-forth does
  not. With motion direction, this is what tells circular tightening from up-down pressing or
  sideways sliding at the same spot.

Per-video background removal (the documented choice): the bench behind the work is static, so
most of a frame's colour and shape features describe the bench, not the step. Before the clip
features are normalised, a per-video background is subtracted from the appearance groups (colour,
shape): for each grid cell, the median of its features over the frames in which nothing moves in
or next to it (the hand working there moves; the bench does not), or over all frames where there
are too few such frames. A clip's appearance part then says how it differs from the empty bench:
a hand at A, a part attached. This also cancels what two videos of the same procedure do not
share (a different background, a camera offset of a few pixels, white balance), which is why it
helps rather than hurts comparing two videos. What it costs:
  - an embedding depends on the whole video it was computed from: embed whole videos;
  - a cell that is never seen empty and still (a very short video of one step, a hand that
    never leaves) takes the median over all frames, and a state held there for more than half of
    the video becomes background. Motion is not centred (a static scene has none to remove), so
    such clips keep where and how things move.
A small constant component is appended, so clips where nothing happens (appearance at its
background, no motion) map to one shared direction instead of amplified noise.

Each group is scaled by a soft norm v / sqrt(|v|^2 + eps^2) (about unit length when the group is
active, proportionally smaller when it holds little but noise), weighted (motion direction and
rotation count double: the appearance of a hand at a station is the same whatever it does
there), and the whole vector is L2-normalised: 685 dimensions (144 colour, 384 shape, 48 motion,
96 direction, 12 rotation, 1 constant).
"""

from __future__ import annotations

import numpy as np

from .base import ArraySource, FrameSource, StreamingEmbedder, VideoAccumulator, l2_normalize_rows, validate_spans

__all__ = ["BuiltinEmbedder"]

# Working resolution (height, width) every frame is reduced to before features are computed.
_WORK_H, _WORK_W = 60, 80
_GRID = (6, 8)  # colour, shape and motion-energy grid (rows, cols): 10x10 working pixels a cell
_DIR_GRID = (3, 4)  # motion-direction grid
_HOG_BINS = 8
_DIR_BINS = 8
# Noise floors, in units of the frame's mean brightness (gray / mean(gray)).
_GRAD_FLOOR = 0.03
_DIFF_FLOOR = 0.04
_EPS = 1e-6
# A clip whose motion energy (sum over cells of |v_t| |v_t-1|) is well below this (a hand at rest,
# shake residue) has no rotation to speak of.
_ROT_MIN_ENERGY = 1e-4
_CHUNK = 256  # frames processed at once (bounds memory for long videos)
_REF_FRAMES = 64  # frames the registration reference is the median of
_MAX_SHAKE = 4.0  # working pixels (8 px at 160x120): larger global shifts are not shake
_PAD = 6  # > _MAX_SHAKE + 1
_LK_COARSE = 2
_LK_FINE = 1
_SLACK_COARSE = 1.0
_SLACK_FINE = 0.5
_MIN_SLACK = 0.15
_STILL = 0.1  # working pixels: shake below this everywhere is left alone
# Background estimation: a cell is static in a frame when its motion energy, and that of its
# 8 neighbours, stays at most _STATIC_MOTION within +-_STATIC_HALF_WINDOW frames.
_STATIC_MOTION = 0.002
_STATIC_HALF_WINDOW = 4
_MIN_STATIC_FRAMES = 8
_MIN_STATIC_FRACTION = 0.1

# name: (eps of the soft norm, weight). Each eps is about a third of the group's norm for a clip in
# which a hand works at one station, so an active group reaches about its weight in length.
_GROUPS = {
    "colour": (0.03, 1.0),
    "shape": (0.015, 1.0),
    "motion": (0.015, 1.0),
    "direction": (0.00025, 2.0),
    "rotation": (0.25, 2.0),
}
_BIAS = 0.35


def _cell_index(h: int, w: int, grid: tuple[int, int]) -> np.ndarray:
    """(h, w) int array: the grid cell of each pixel, row-major."""
    rows = (np.arange(h) * grid[0]) // h
    cols = (np.arange(w) * grid[1]) // w
    return (rows[:, None] * grid[1] + cols[None, :]).astype(np.int64)


def _block_sum(x: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Sums of fy x fx blocks over the last two axes of ``x`` (sizes multiples of fy, fx).
    Written as slab additions: numpy's multi-axis reductions are several times slower here."""
    *lead, h, w = x.shape
    xr = x.reshape(*lead, h // fy, fy, w)
    acc = xr[..., 0, :].copy()
    for k in range(1, fy):
        acc += xr[..., k, :]
    if fx <= 4:
        out = acc[..., 0::fx].copy()
        for k in range(1, fx):
            out += acc[..., k::fx]
        return out
    return acc.reshape(*lead, h // fy, w // fx, fx).sum(axis=-1)


def _pool_cells(x: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(N, h, w) -> (N, gh*gw) cell means; h, w must be multiples of the grid."""
    n, h, w = x.shape
    gh, gw = grid
    return _block_sum(x, h // gh, w // gw).reshape(n, gh * gw) / ((h // gh) * (w // gw))


def _resize_area(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> planar (N, 3, out_h, out_w) float32 in [0, 1] by box averaging
    (nearest sampling along an axis where the input is smaller than the output)."""
    n, h, w, _ = frames.shape
    planar = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))  # (N, 3, H, W), long inner rows
    if h % out_h == 0 and w % out_w == 0 and (h // out_h) * (w // out_w) <= 257:
        fy, fx = h // out_h, w // out_w
        acc = planar.reshape(n, 3, out_h, fy, w)
        if fy > 1:  # uint8 + uint8 -> uint16 without converting the whole frame first
            rows = np.add(acc[:, :, :, 0], acc[:, :, :, 1], dtype=np.uint16)
            for k in range(2, fy):
                rows += acc[:, :, :, k]
        else:
            rows = acc[:, :, :, 0].astype(np.uint16)
        cols = rows[..., 0::fx] + rows[..., 1::fx] if fx > 1 else rows
        for k in range(2, fx):
            cols += rows[..., k::fx]
        return cols.astype(np.float32) * np.float32(1.0 / (255.0 * fy * fx))
    xf = planar.astype(np.float32) * np.float32(1.0 / 255.0)
    if h >= out_h:
        edges = np.linspace(0, h, out_h + 1).round().astype(np.int64)
        xf = np.add.reduceat(xf, edges[:-1], axis=2) / np.diff(edges).astype(np.float32)[:, None]
    else:
        xf = xf[:, :, (np.arange(out_h) * h) // out_h]
    if w >= out_w:
        edges = np.linspace(0, w, out_w + 1).round().astype(np.int64)
        xf = np.add.reduceat(xf, edges[:-1], axis=3) / np.diff(edges).astype(np.float32)
    else:
        xf = xf[:, :, :, (np.arange(out_w) * w) // out_w]
    return np.ascontiguousarray(xf, dtype=np.float32)


def _blur121(x: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1]/4 blur over the last two axes, edges replicated."""
    p = np.pad(x, ((0, 0), (1, 1), (0, 0)), mode="edge")
    x = (p[:, :-2] + 2.0 * p[:, 1:-1] + p[:, 2:]) * np.float32(0.25)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1)), mode="edge")
    return (p[:, :, :-2] + 2.0 * p[:, :, 1:-1] + p[:, :, 2:]) * np.float32(0.25)


def _gradients_yx(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = _gradients(g)
    return gy, gx


def _gradients(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences over (h, w) of (N, h, w); one-sided at the border."""
    gx = np.empty_like(g)
    gy = np.empty_like(g)
    gx[:, :, 1:-1] = (g[:, :, 2:] - g[:, :, :-2]) * np.float32(0.5)
    gx[:, :, 0] = g[:, :, 1] - g[:, :, 0]
    gx[:, :, -1] = g[:, :, -1] - g[:, :, -2]
    gy[:, 1:-1] = (g[:, 2:] - g[:, :-2]) * np.float32(0.5)
    gy[:, 0] = g[:, 1] - g[:, 0]
    gy[:, -1] = g[:, -1] - g[:, -2]
    return gx, gy


def _orientation_histograms(
    angle: np.ndarray, weight: np.ndarray, period: float, bins: int, base: np.ndarray, size: int
) -> np.ndarray:
    """Soft-binned (linear between the two nearest bin centres) histograms of ``angle`` (radians
    in [-pi, pi], taken modulo ``period``; ``bins`` a power of two) weighted by ``weight``.

    ``base`` (N, h, w) int64 holds ``(frame * n_cells + cell) * bins`` for each pixel; the result
    is the flat (size,) array of per-frame, per-cell histograms."""
    pos = angle * np.float32(bins / period) + np.float32(2 * bins)  # > 0
    lo_f = np.floor(pos)
    frac = pos - lo_f  # float32, like weight
    lo = lo_f.astype(np.int64)
    lo &= bins - 1
    w_hi = weight * frac
    hist = np.bincount((base + lo).ravel(), weights=(weight - w_hi).ravel(), minlength=size)
    lo += 1
    lo &= bins - 1
    hist += np.bincount((base + lo).ravel(), weights=w_hi.ravel(), minlength=size)
    return hist


def _phase_correlation(gray: np.ndarray, ref: np.ndarray, max_shift: float) -> np.ndarray:
    """Integer-pixel translation (dy, dx) of each (N, h, w) frame's content relative to ``ref``
    by phase correlation, searched within +-``max_shift``."""
    n, h, w = gray.shape
    win = (np.hanning(h)[:, None] * np.hanning(w)[None, :]).astype(np.float32)
    fr = np.fft.rfft2((ref - ref.mean()) * win)
    f = np.fft.rfft2((gray - gray.mean(axis=(1, 2), keepdims=True)) * win)
    f *= np.conj(fr)[None]
    f /= np.abs(f) + 1e-9
    corr = np.fft.irfft2(f, s=(h, w))
    m = int(np.ceil(max_shift))
    ys = np.arange(-m, m + 1) % h
    xs = np.arange(-m, m + 1) % w
    local = corr[:, ys][:, :, xs].reshape(n, -1)  # the (2m+1)^2 smallest shifts (wrapped)
    iy, ix = np.divmod(local.argmax(axis=1), 2 * m + 1)
    return np.stack([iy - m, ix - m], axis=1).astype(np.float64)


def _shift_frames(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Bilinear resampling of each (h, w) frame of (N, h, w) at (y + dy, x + dx): undoes a
    content translation of (dy, dx). Edges replicated; |shift| must stay below _PAD."""
    n, h, w = x.shape
    p = _PAD
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), mode="edge")
    out = np.empty_like(x)
    y0 = np.floor(shifts[:, 0]).astype(np.int64)
    x0 = np.floor(shifts[:, 1]).astype(np.int64)
    fy = (shifts[:, 0] - y0).astype(np.float32)[:, None, None]
    fx = (shifts[:, 1] - x0).astype(np.float32)[:, None, None]
    # Frames that share an integer shift are resampled together.
    keys = (y0 + p) * (2 * p + 1) + (x0 + p)
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        r, c = divmod(int(key), 2 * p + 1)
        blk = xp[idx, r : r + h + 1, c : c + w + 1] if len(idx) < n else xp[:, r : r + h + 1, c : c + w + 1]
        rows = blk[:, :-1] + fy[idx] * (blk[:, 1:] - blk[:, :-1])
        out[idx] = rows[:, :, :-1] + fx[idx] * (rows[:, :, 1:] - rows[:, :, :-1])
    return out


def _lk_refine(
    gray: np.ndarray, ref: np.ndarray, shifts: np.ndarray, iterations: int, slack: float, limit: float
) -> np.ndarray:
    """Refines per-frame translations of (N, h, w) frames onto ``ref`` by Gauss-Newton steps
    with the symmetric (ESM) gradient.

    Robust to things that move in front of the scene (a hand, an arm): a pixel is used only
    when its residual could come from a misalignment of at most ``slack`` pixels (its residual
    is at most slack * |gradient| plus the noise level). The slack halves every iteration.
    Shifts stay within +-``limit`` pixels at this resolution."""
    n = gray.shape[0]
    m = 2  # ignore the border, where replicated edges are not the scene
    inner = (slice(None), slice(m, -m), slice(m, -m))
    ry, rx = np.gradient(ref)
    ry, rx = ry[m:-m, m:-m], rx[m:-m, m:-m]
    ref_in = ref[m:-m, m:-m]
    for _ in range(iterations):
        moved = _shift_frames(gray, shifts)
        my, mx = _gradients_yx(moved)
        gy = 0.5 * (my[inner] + ry)
        gx = 0.5 * (mx[inner] + rx)
        r = moved[inner] - ref_in
        a = np.abs(r)
        noise = 3.0 * np.median(a.reshape(n, -1)[:, ::5], axis=1)[:, None, None] + 1e-6
        keep = a <= slack * (np.abs(gx) + np.abs(gy)) + noise
        r = r * keep
        gx = gx * keep
        gy = gy * keep
        sxx = np.einsum("nij,nij->n", gx, gx)
        syy = np.einsum("nij,nij->n", gy, gy)
        sxy = np.einsum("nij,nij->n", gx, gy)
        bx = np.einsum("nij,nij->n", gx, r)
        by = np.einsum("nij,nij->n", gy, r)
        det = sxx * syy - sxy * sxy
        ok = det > 1e-6 * (sxx + syy) ** 2 + 1e-12
        det = np.where(ok, det, 1.0)
        # gray(y) = ref(y - d), moved(y) = gray(y + s) = ref(y - e) with e = d - s; to first
        # order r = moved - ref = -grad . e, so e = -(G^T G)^-1 G^T r and d = s + e.
        ex = -(syy * bx - sxy * by) / det
        ey = -(sxx * by - sxy * bx) / det
        shifts = shifts + np.clip(np.stack([ey, ex], axis=1) * ok[:, None], -1.0, 1.0)
        shifts = np.clip(shifts, -limit, limit)
        slack = max(0.5 * slack, _MIN_SLACK)
    return shifts


def _register(gray: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Removes camera shake: translates every frame of (N, h, w) onto ``ref`` (the video's
    median frame).

    Coarse to fine: integer shifts by phase correlation and Gauss-Newton refinement at half
    resolution, then robust sub-pixel refinement at full resolution. Returns (registered frames,
    shifts in working pixels)."""
    half = _block_sum(gray, 2, 2) * np.float32(0.25)
    ref_half = _block_sum(ref, 2, 2) * np.float32(0.25)
    shifts = _phase_correlation(half, ref_half, _MAX_SHAKE / 2)
    # limits per resolution: a half-resolution shift doubles below, and must stay inside _PAD
    shifts = _lk_refine(half, ref_half, shifts, _LK_COARSE, slack=_SLACK_COARSE, limit=_MAX_SHAKE / 2)
    if np.abs(shifts).max() < 0.5 * _STILL:
        return gray, np.zeros_like(shifts)  # a still camera: nothing to undo
    shifts = _lk_refine(gray, ref, 2.0 * shifts, _LK_FINE, slack=_SLACK_FINE, limit=_MAX_SHAKE)
    return _shift_frames(gray, shifts), shifts


class BuiltinEmbedder(StreamingEmbedder):
    """Hand-crafted clip features; see the module docstring. Deterministic; no model files."""

    name = "builtin:v1"
    frame_size = (160, 120)

    def __init__(self) -> None:
        n_cells = _GRID[0] * _GRID[1]
        n_dir = _DIR_GRID[0] * _DIR_GRID[1]
        self._sizes = {
            "colour": n_cells * 3,
            "shape": n_cells * _HOG_BINS,
            "motion": n_cells,
            "direction": n_dir * _DIR_BINS,
            "rot_cross": n_dir,
            "rot_energy": n_dir,
        }
        self._slices: dict[str, slice] = {}
        start = 0
        for key, size in self._sizes.items():
            self._slices[key] = slice(start, start + size)
            start += size
        self._n_app = self._sizes["colour"] + self._sizes["shape"]  # appearance = centered part
        self._n_feat = start
        # Output layout: the groups of _GROUPS (rotation: one value a cell, from its cross and
        # energy sums), then the constant component.
        out_sizes = {key: self._sizes[key] for key in ("colour", "shape", "motion", "direction")}
        out_sizes["rotation"] = n_dir
        self._out_slices: dict[str, slice] = {}
        start = 0
        for key, size in out_sizes.items():
            self._out_slices[key] = slice(start, start + size)
            start += size
        self.dim = start + 1
        self._cell = _cell_index(_WORK_H, _WORK_W, _GRID)
        # The appearance dims of each cell: r, g, lum (three blocks of n_cells) and the HOG bins.
        shape0 = self._slices["shape"].start
        self._cell_dims = [
            np.array([c, n_cells + c, 2 * n_cells + c] + [shape0 + c * _HOG_BINS + b for b in range(_HOG_BINS)])
            for c in range(n_cells)
        ]
        self._dir_cell_half = _cell_index(_WORK_H // 2, _WORK_W // 2, _DIR_GRID)

    # -- per-frame features -------------------------------------------------------------------
    @staticmethod
    def _gray(rgb: np.ndarray) -> np.ndarray:
        """Planar (N, 3, h, w) -> (N, h, w) gray divided by its frame mean, lightly blurred."""
        gray = np.float32(0.299) * rgb[:, 0]
        gray += np.float32(0.587) * rgb[:, 1]
        gray += np.float32(0.114) * rgb[:, 2]
        gray /= gray.mean(axis=(1, 2), keepdims=True) + np.float32(_EPS)
        return _blur121(gray)

    def reference_frame(self, source: FrameSource) -> np.ndarray | None:
        """The video's median (normalised, blurred) gray frame over up to _REF_FRAMES evenly
        spread frames: what camera shake is undone against (None for a single frame)."""
        n = source.n_hint
        if n <= 1:
            return None
        pick = np.unique(np.linspace(0, n - 1, min(n, _REF_FRAMES)).round().astype(np.int64))
        return np.median(self._gray(_resize_area(source.frames_at(pick), _WORK_H, _WORK_W)), axis=0)

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, n_features) float64 per-frame features (before clip
        averaging, centering and normalisation)."""
        acc = _BuiltinVideo(self, ArraySource(frames))
        acc.add(frames)
        return acc.features()

    def _chunk_features(self, frames, ref, prev, out):
        m = frames.shape[0]
        gh, gw = _GRID
        dh, dw = _DIR_GRID
        n_cells, n_dir = gh * gw, dh * dw
        rgb = _resize_area(frames, _WORK_H, _WORK_W)  # (m, 3, h, w) in [0, 1]

        # Colour layout: chromaticity and relative brightness per cell.
        cell_rgb = (
            _block_sum(rgb, _WORK_H // gh, _WORK_W // gw).astype(np.float64) / ((_WORK_H // gh) * (_WORK_W // gw))
        ).reshape(m, 3, n_cells)
        cell_sum = cell_rgb.sum(axis=1) + _EPS
        cell_lum = 0.299 * cell_rgb[:, 0] + 0.587 * cell_rgb[:, 1] + 0.114 * cell_rgb[:, 2]
        frame_lum = cell_lum.mean(axis=1, keepdims=True) + _EPS
        out[:, self._slices["colour"]] = np.concatenate(
            [
                cell_rgb[:, 0] / cell_sum,
                cell_rgb[:, 1] / cell_sum,
                # scaled so that its changes weigh about like the chromaticities' (it varies more)
                0.25 * cell_lum / frame_lum,
            ],
            axis=1,
        )

        # Brightness-normalised, lightly blurred gray, with camera shake undone.
        gray = self._gray(rgb)
        if ref is not None:
            gray, _ = _register(gray, ref)
        gx, gy = _gradients(gray)

        # Shape: orientation histograms of the gradient magnitude above the noise floor.
        mag = np.sqrt(gx * gx + gy * gy)
        mag -= np.float32(_GRAD_FLOOR)
        np.maximum(mag, 0.0, out=mag)
        frame_ids = np.arange(m, dtype=np.int64)[:, None, None]
        base = (frame_ids * n_cells + self._cell[None]) * _HOG_BINS
        shape = _orientation_histograms(np.arctan2(gy, gx), mag, np.pi, _HOG_BINS, base, m * n_cells * _HOG_BINS)
        out[:, self._slices["shape"]] = shape.reshape(m, n_cells * _HOG_BINS) / ((_WORK_H // gh) * (_WORK_W // gw))

        # Motion between each frame and the one before it (the chunk's first frame: the last
        # frame of the previous chunk, when there is one).
        if prev is not None:
            g_all = np.concatenate([prev[0][None], gray])
            gx_all = np.concatenate([prev[1][None], gx])
            gy_all = np.concatenate([prev[2][None], gy])
            first = 0
        else:
            g_all, gx_all, gy_all = gray, gx, gy
            first = 1
        k = g_all.shape[0] - 1  # number of frame pairs
        if k > 0:
            d = g_all[1:] - g_all[:-1]
            ad = np.abs(d)
            ad -= np.float32(_DIFF_FLOOR)
            np.maximum(ad, 0.0, out=ad)
            out[first:, self._slices["motion"]] = _pool_cells(ad, _GRID)
            # Normal-flow direction -dI/dt * grad I, with the gradients of both frames summed
            # (right at the leading and at the trailing edge of a moving object, even when it
            # moves further than an edge's width between two samples); the flow vectors are
            # summed over 2x2 pixels (locally coherent) before their direction is binned.
            ad *= -np.sign(d)
            mx = _block_sum(ad * (gx_all[1:] + gx_all[:-1]), 2, 2)
            my = _block_sum(ad * (gy_all[1:] + gy_all[:-1]), 2, 2)
            wdir = np.sqrt(mx * mx + my * my)
            base = (np.arange(k, dtype=np.int64)[:, None, None] * n_dir + self._dir_cell_half[None]) * _DIR_BINS
            hist = _orientation_histograms(
                np.arctan2(my, mx), wdir, 2.0 * np.pi, _DIR_BINS, base, k * n_dir * _DIR_BINS
            )
            hh, hw = _WORK_H // 2, _WORK_W // 2
            hist = hist.reshape(k, n_dir, _DIR_BINS) / (8.0 * (hh // dh) * (hw // dw))
            # Without its isotropic part (that is motion energy, kept in its own group) the
            # histogram says how directional the motion is: a circle is about flat, an up-down
            # oscillation is not, and a sideways one is its opposite.
            hist -= hist.mean(axis=2, keepdims=True)
            out[first:, self._slices["direction"]] = hist.reshape(k, n_dir * _DIR_BINS)

            # Rotation: per cell, the cross product of its net motion vector in consecutive
            # frame pairs. Circling (tightening, loosening) turns the same way frame after frame
            # and sums up, with its sign; a back-and-forth or up-down motion sums to about 0.
            ch, cw = hh // dh, hw // dw
            vec = np.stack([_block_sum(mx, ch, cw), _block_sum(my, ch, cw)], axis=-1).reshape(k, n_dir, 2) / (ch * cw)
            before = np.concatenate([prev[3][None], vec[:-1]]) if prev is not None else vec[:-1]
            after = vec if prev is not None else vec[1:]
            rows = slice(out.shape[0] - after.shape[0], out.shape[0])
            out[rows, self._slices["rot_cross"]] = before[..., 0] * after[..., 1] - before[..., 1] * after[..., 0]
            out[rows, self._slices["rot_energy"]] = np.sqrt(
                (before * before).sum(axis=-1) * (after * after).sum(axis=-1)
            )
            last_vec = vec[-1]
        else:
            last_vec = prev[3] if prev is not None else np.zeros((n_dir, 2))
        return gray[-1], gx[-1], gy[-1], last_vec

    # -- per-video background --------------------------------------------------------------
    def background(self, feats: np.ndarray) -> np.ndarray:
        """Per-video background of the appearance features: for each grid cell, the median of
        its colour and shape features over the frames in which nothing moves in or next to that
        cell (a hand working there is moving, the bench is not). Where too few such frames
        exist, the median over all frames."""
        n = feats.shape[0]
        gh, gw = _GRID
        motion = feats[:, self._slices["motion"]].reshape(n, gh, gw)
        # ~1 s moving maximum over time, then 3x3 maximum over the grid.
        half = _STATIC_HALF_WINDOW
        busy = motion.copy()
        for k in range(1, min(half, n - 1) + 1):
            np.maximum(busy[k:], motion[:-k], out=busy[k:])
            np.maximum(busy[:-k], motion[k:], out=busy[:-k])
        p = np.pad(busy, ((0, 0), (1, 1), (1, 1)), mode="edge")
        busy = np.max(np.stack([p[:, i : i + gh, j : j + gw] for i in range(3) for j in range(3)]), axis=0).reshape(
            n, gh * gw
        )
        static = busy <= _STATIC_MOTION
        min_static = max(_MIN_STATIC_FRAMES, int(np.ceil(_MIN_STATIC_FRACTION * n)))
        app = feats[:, : self._n_app]
        bg = np.median(app, axis=0)
        for c in np.flatnonzero(static.sum(axis=0) >= min_static):
            dims = self._cell_dims[c]
            bg[dims] = np.median(app[static[:, c]][:, dims], axis=0)
        return bg

    # -- clips --------------------------------------------------------------------------------
    def begin(self, source: FrameSource) -> "_BuiltinVideo":
        return _BuiltinVideo(self, source)

    def pool(self, feats: np.ndarray, spans: np.ndarray) -> np.ndarray:
        """Clip vectors from the per-frame features of the whole video (changed in place)."""
        # Per-video centering of the appearance part (see the module docstring).
        feats[:, : self._n_app] -= self.background(feats)
        csum = np.zeros((feats.shape[0] + 1, feats.shape[1]))
        np.cumsum(feats, axis=0, out=csum[1:])
        starts, ends = spans[:, 0], spans[:, 1]
        clip = (csum[ends] - csum[starts]) / (ends - starts).astype(np.float64)[:, None]

        out = np.empty((clip.shape[0], self.dim))
        for key, (eps, weight) in _GROUPS.items():
            if key == "rotation":
                # Per cell: how consistently its motion turns (sin of the turn between frames,
                # -1..1), weighted by the square root of the cell's share of the clip's motion.
                cross = clip[:, self._slices["rot_cross"]]
                energy = clip[:, self._slices["rot_energy"]]
                share = energy / (energy.sum(axis=1, keepdims=True) + _ROT_MIN_ENERGY)
                v = cross / (energy + 1e-12) * np.sqrt(share)
            else:
                v = clip[:, self._slices[key]]
            norm = np.sqrt(np.einsum("ij,ij->i", v, v) + eps * eps)
            out[:, self._out_slices[key]] = v * (weight / norm)[:, None]
        out[:, -1] = _BIAS
        return l2_normalize_rows(out)


class _BuiltinVideo(VideoAccumulator):
    """Per-frame features of one video, computed _CHUNK frames at a time as frames arrive.

    Camera shake is undone against a reference (the median of up to _REF_FRAMES frames spread
    over the video), so the reference is read from the source before the first chunk."""

    def __init__(self, embedder: BuiltinEmbedder, source: FrameSource) -> None:
        self.e, self.source = embedder, source
        self.ref: np.ndarray | None = None
        self.started = False
        self.prev = None  # (gray, gx, gy, cell motion vectors) of the last frame processed
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.parts: list[np.ndarray] = []

    def add(self, frames: np.ndarray) -> None:
        if not self.started:
            self.started = True
            self.ref = self.e.reference_frame(self.source)
        self.pending.append(frames)
        self.n_pending += len(frames)
        # Chunks start at multiples of _CHUNK whatever the caller's chunking: the still-camera
        # test in _register is made per chunk.
        while self.n_pending >= _CHUNK:
            self._run(_CHUNK)

    def _run(self, m: int) -> None:
        block = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        chunk, rest = block[:m], block[m:]
        self.pending, self.n_pending = ([rest] if len(rest) else []), len(rest)
        out = np.zeros((m, self.e._n_feat))
        self.prev = self.e._chunk_features(chunk, self.ref, self.prev, out)
        self.parts.append(out)

    def features(self) -> np.ndarray:
        """(N, n_features) float64: every frame added so far."""
        if self.n_pending:
            self._run(self.n_pending)
        feats = np.concatenate(self.parts) if len(self.parts) != 1 else self.parts[0]
        self.parts = [feats]
        n = feats.shape[0]
        e = self.e
        if n > 1:  # the first frame has no predecessor: give it the motion of the second
            feats[0, e._n_app :] = feats[1, e._n_app :]
        if n > 2:  # nor has the second a rotation (two frame pairs): the third's
            rot = slice(e._slices["rot_cross"].start, e._slices["rot_energy"].stop)
            feats[:2, rot] = feats[2, rot]
        return feats

    def finish(self, spans: np.ndarray) -> np.ndarray:
        feats = self.features()
        self.parts = []
        return self.e.pool(feats, validate_spans(spans, feats.shape[0]))

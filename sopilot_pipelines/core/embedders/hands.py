"""The "hands" clip embedder: hand keypoints (MediaPipe's hand models) turned into clip vectors.

Models and runtime
------------------
The two TFLite models of MediaPipe Hands, ``palm_detection_full.tflite`` and
``hand_landmark_full.tflite`` (Apache-2.0), ship inside the ``mediapipe==0.10.14`` wheel. That
package's own API needs protobuf < 5, which the Dagster stack here (protobuf 6) rules out, so it is
installed with ``--no-deps`` for its model files only and is never imported: the files are found
with ``importlib.util.find_spec`` (which locates a package without running it). The models run on
the small LiteRT interpreter (``ai-edge-litert``; ``tflite_runtime``'s Interpreter, the same API,
is taken if it is the one installed). Nothing is downloaded at run time. Install::

    pip install 'sopilot[hands]'                 # the runtime (ai-edge-litert)
    pip install --no-deps mediapipe==0.10.14     # the model files only

The pipeline is MediaPipe's hand-tracking graph re-implemented in numpy, with the parameters of
its graph files (``palm_detection_cpu.pbtxt``, ``palm_detection_detection_to_roi.pbtxt``,
``hand_landmark_cpu.pbtxt``, ``hand_landmark_landmarks_to_roi.pbtxt``,
``hand_landmark_tracking_cpu.pbtxt``):

* palm detection: the frame letterboxed onto 192x192 (values 0..1, zero border), 2016 SSD
  anchors (strides 8, 16, 16, 16; fixed size), boxes and 7 keypoints decoded, sigmoid scores
  >= 0.5, weighted non-max suppression (IoU 0.3), the best two palms kept;
* palm -> hand region: rotated so that wrist -> middle-finger MCP points up, the long side
  scaled 2.6x and shifted half a box towards the fingers;
* hand landmarks: the rotated region cropped to 224x224 (bilinear, border replicated), giving 21
  landmarks (x, y in the frame, z relative), a hand-presence score and a handedness score;
* tracking: a hand found in a frame gives the next frame's region (landmark box scaled 2x,
  shifted 0.1 towards the fingers); palm detection runs only while fewer than two hands are
  tracked; a hand whose presence drops below 0.5 is dropped. One departure from MediaPipe,
  measured: MediaPipe drops a palm whose region overlaps a tracked hand's by IoU > 0.5, which in
  hand washing (hands on top of each other) loses the second hand in most frames (two hands in
  ~20 % of the frames). Here every candidate region is run through the landmark model and a
  result is dropped only when its landmarks lie within 0.15 hand sizes (mean distance) of a hand
  already found, tracked hands first: two hands in ~45 % of the frames, one in ~50 %. The
  handedness of a tracked hand is smoothed along its track (exponential, rate 0.3), so one
  uncertain frame does not swap the slots. Every step is a pure function of the frames, run in
  order on one interpreter thread: the same video gives the same vectors.

The handedness score is MediaPipe's, which assumes a mirrored (selfie) image: for an unmirrored
camera, the model's "Left" is the person's right hand. The embedder never relabels it (it needs
only a consistent side, the same in the gold and the trainee), and calls the hand whose score
says "Left" slot 0. A top-down camera over a sink shows hands in every direction: the regions
rotate with the hand, so that is what the models expect.

Features
--------
Per frame and hand slot (the two hands ordered by handedness, so a mirrored action -- left palm
over right dorsum vs right over left -- does not look the same): the landmarks relative to the
hand's own box (finger pose, in image orientation; z too) and in the hand's own frame (wrist at
the origin, fingers up), the hand's place in the frame (wrist, centre, fingertips, box size,
pointing direction), and between the two hands: their relative position, box overlap, closest
fingertip-to-palm distances and relative direction. Per clip: means (and for pose and place
standard deviations) of these over the frames where the hand is seen, the velocities of wrist
and fingertips (mean signed velocity, mean speed, velocity covariance, how consistently the
motion turns: circling vs back-and-forth), the same for the motion of one hand against the
other, and the fraction of frames with no hand, one or two. Velocities are per sampled frame
(8 fps by default) in hand sizes.

Per-video standardisation: each clip feature is centred on its mean over the video's clips and
scaled (``STD_FLOOR``), which removes what differs between people and takes rather than steps
(hand size, where the person stands, a habitual finger pose) and measured +0.06 to +0.08
per-clip accuracy. As with the builtin embedder, a vector depends on the whole video: embed
whole videos. Then each block is L2-normalised, weighted (``BLOCK_WEIGHTS``, measured on real
recordings), a small constant appended, and the whole vector L2-normalised (471 dimensions).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import EmbedderError, FrameSource, StreamingEmbedder, VideoAccumulator, l2_normalize_rows, validate_spans

__all__ = [
    "HandTracker",
    "HandTracks",
    "HandsEmbedder",
    "find_model_files",
    "load_interpreter_class",
]

MODEL_PACKAGE = "mediapipe"
MODEL_PACKAGE_VERSION = "0.10.14"
PALM_MODEL = ("palm_detection", "palm_detection_full.tflite")
LANDMARK_MODEL = ("hand_landmark", "hand_landmark_full.tflite")
RUNTIME_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
EXTRA_HINT = (
    "install the optional extra and the model files: pip install 'sopilot[hands]' && "
    f"pip install --no-deps {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"
)

# ----------------------------------------------------------------------------------------------
# Locating the models and the runtime
# ----------------------------------------------------------------------------------------------


def _package_dirs(package: str) -> list[Path]:
    """Directories of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def find_model_files(model_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Paths of (palm detection, hand landmark) TFLite models.

    ``model_dir``: a directory holding them, as ``<dir>/palm_detection/...`` and
    ``<dir>/hand_landmark/...``, as ``<dir>/modules/...`` (a mediapipe package directory) or
    side by side; default: inside the installed ``mediapipe`` package (never imported).
    Raises EmbedderError naming the install lines when either file is missing.
    """
    roots = [Path(model_dir)] if model_dir is not None else [d / "modules" for d in _package_dirs(MODEL_PACKAGE)]
    where = str(model_dir) if model_dir is not None else f"the installed {MODEL_PACKAGE} package"
    if model_dir is None and not roots:
        raise EmbedderError(
            f"the hands embedder needs the hand models of {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION} "
            f"(package not installed); {EXTRA_HINT}"
        )
    found: list[Path] = []
    for sub, fname in (PALM_MODEL, LANDMARK_MODEL):
        path = None
        for root in roots:
            for cand in (root / sub / fname, root / "modules" / sub / fname, root / fname):
                if cand.is_file():
                    path = cand
                    break
            if path:
                break
        if path is None:
            raise EmbedderError(f"hand model file {sub}/{fname} not found in {where}; {EXTRA_HINT}")
        found.append(path)
    return found[0], found[1]


def load_interpreter_class(modules: tuple[str, ...] = RUNTIME_MODULES):
    """The TFLite ``Interpreter`` class of the first runtime module that imports.

    Raises EmbedderError naming the extra when none does."""
    errors = []
    for mod in modules:
        try:
            return importlib.import_module(mod).Interpreter
        except (ImportError, AttributeError) as exc:
            errors.append(f"{mod}: {exc}")
    raise EmbedderError(
        f"the hands embedder needs a TFLite runtime (ai-edge-litert), none imports ({'; '.join(errors)}); {EXTRA_HINT}"
    )


# ----------------------------------------------------------------------------------------------
# Geometry: rotated rectangles, crops, anchors
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rect:
    """A rotated rectangle in normalised frame coordinates (MediaPipe's NormalizedRect)."""

    xc: float
    yc: float
    w: float
    h: float
    rot: float  # radians, clockwise in image coordinates (y down)


def _normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def _transform_rect(r: Rect, width: int, height: int, scale: float, shift_y: float) -> Rect:
    """MediaPipe's RectTransformationCalculator (shift_x 0, square_long)."""
    if r.rot == 0.0:
        xc, yc = r.xc, r.yc + r.h * shift_y
    else:
        xc = r.xc - height * r.h * shift_y * math.sin(r.rot) / width
        yc = r.yc + height * r.h * shift_y * math.cos(r.rot) / height
    long_side = max(r.w * width, r.h * height)
    return Rect(xc, yc, long_side / width * scale, long_side / height * scale, r.rot)


def _rotation(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> float:
    """Rotation that makes the vector (x0, y0) -> (x1, y1) (normalised) point up."""
    return _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0) * height, (x1 - x0) * width))


def _iou_axis_aligned(a: Rect, b: Rect) -> float:
    """IoU of the rectangles ignoring rotation (as MediaPipe's association does)."""
    ax0, ax1, ay0, ay1 = a.xc - a.w / 2, a.xc + a.w / 2, a.yc - a.h / 2, a.yc + a.h / 2
    bx0, bx1, by0, by1 = b.xc - b.w / 2, b.xc + b.w / 2, b.yc - b.h / 2, b.yc + b.h / 2
    iw = min(ax1, bx1) - max(ax0, bx0)
    ih = min(ay1, by1) - max(ay0, by0)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a.w * a.h + b.w * b.h - inter)


def _crop(
    frame: np.ndarray, cx: float, cy: float, w: float, h: float, rot: float, out: int, zero_border: bool
) -> np.ndarray:
    """Bilinear crop of a rotated rectangle (centre, size in pixels) to ``(out, out, 3)`` float32
    in 0..1. Outside the frame: zeros, or the nearest edge pixel."""
    fh, fw = frame.shape[:2]
    cx, cy, w, h = float(cx), float(cy), float(w), float(h)  # python floats stay weak: float32 math
    u = (np.arange(out, dtype=np.float32) + 0.5) / out - 0.5
    c, s = math.cos(rot), math.sin(rot)
    # Pixel i covers [i, i+1): its centre is at i + 0.5.
    xs = (cx - 0.5) + (u[None, :] * (w * c) - u[:, None] * (h * s))
    ys = (cy - 0.5) + (u[None, :] * (w * s) + u[:, None] * (h * c))
    x0f, y0f = np.floor(xs), np.floor(ys)
    ax, ay = xs - x0f, ys - y0f
    x0, y0 = x0f.astype(np.int32), y0f.astype(np.int32)
    x1, y1 = x0 + 1, y0 + 1
    w00 = (1 - ax) * (1 - ay)
    w01 = ax * (1 - ay)
    w10 = (1 - ax) * ay
    w11 = ax * ay
    if zero_border:
        okx0, okx1 = (x0 >= 0) & (x0 < fw), (x1 >= 0) & (x1 < fw)
        oky0, oky1 = (y0 >= 0) & (y0 < fh), (y1 >= 0) & (y1 < fh)
        w00 = w00 * (okx0 & oky0)
        w01 = w01 * (okx1 & oky0)
        w10 = w10 * (okx0 & oky1)
        w11 = w11 * (okx1 & oky1)
    x0, x1 = np.clip(x0, 0, fw - 1), np.clip(x1, 0, fw - 1)
    y0, y1 = np.clip(y0, 0, fh - 1), np.clip(y1, 0, fh - 1)
    flat = frame.reshape(fh * fw, 3)
    res = flat.take((y0 * fw + x0).ravel(), axis=0) * (w00.ravel()[:, None] * np.float32(1 / 255.0))
    res += flat.take((y0 * fw + x1).ravel(), axis=0) * (w01.ravel()[:, None] * np.float32(1 / 255.0))
    res += flat.take((y1 * fw + x0).ravel(), axis=0) * (w10.ravel()[:, None] * np.float32(1 / 255.0))
    res += flat.take((y1 * fw + x1).ravel(), axis=0) * (w11.ravel()[:, None] * np.float32(1 / 255.0))
    return res.reshape(out, out, 3).astype(np.float32, copy=False)


def _palm_anchors() -> np.ndarray:
    """(2016, 2) anchor centres of palm_detection_full (SsdAnchorsCalculator: 4 layers, strides
    8, 16, 16, 16, aspect ratio 1 plus the interpolated one, offset 0.5, fixed size 1x1; layers
    of the same stride share one grid)."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        g = int(math.ceil(192 / stride))
        ys, xs = np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float64)


# Landmarks HandLandmarksToRectCalculator uses: wrist, thumb CMC/MCP/IP, MCP and PIP of the fingers.
_ROI_LANDMARKS = np.array([0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18])


def _landmarks_to_rect(lm: np.ndarray, width: int, height: int) -> Rect:
    """MediaPipe's HandLandmarksToRectCalculator + the 2x / -0.1 transformation."""
    pts = lm[_ROI_LANDMARKS, :2].astype(np.float64)
    x0, y0 = pts[0]
    mid = ((pts[4] + pts[8]) / 2 + pts[6]) / 2  # index, ring, middle PIP joints
    rot = _rotation(x0, y0, mid[0], mid[1], width, height)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    d = (pts - centre) * (width, height)
    c, s = math.cos(-rot), math.sin(-rot)
    px = d[:, 0] * c - d[:, 1] * s
    py = d[:, 0] * s + d[:, 1] * c
    pcx, pcy = (px.max() + px.min()) / 2, (py.max() + py.min()) / 2
    c, s = math.cos(rot), math.sin(rot)
    xc = (pcx * c - pcy * s) / width + centre[0]
    yc = (pcx * s + pcy * c) / height + centre[1]
    r = Rect(xc, yc, (px.max() - px.min()) / width, (py.max() - py.min()) / height, rot)
    return _transform_rect(r, width, height, scale=2.0, shift_y=-0.1)


# ----------------------------------------------------------------------------------------------
# The tracker
# ----------------------------------------------------------------------------------------------


@dataclass
class HandTracks:
    """Hands found in each frame of a video, at most two a frame.

    landmarks: ``(N, 2, 21, 3)`` float32, x and y normalised to the frame (0..1), z relative
        (MediaPipe's scale); NaN where slot empty. Slot 0 holds the hand whose handedness score
        says "Left" (MediaPipe's label, mirrored-camera convention), slot 1 the other.
    present: ``(N, 2)`` bool.
    handedness: ``(N, 2)`` float32, the model's score for "Left" (NaN where empty).
    presence: ``(N, 2)`` float32, the landmark model's hand-presence score (NaN where empty).
    detections: number of frames on which palm detection ran.
    """

    landmarks: np.ndarray
    present: np.ndarray
    handedness: np.ndarray
    presence: np.ndarray
    detections: int = 0

    @property
    def n_hands(self) -> np.ndarray:
        return self.present.sum(axis=1)


class HandTracker:
    """Palm detection + hand landmarks + tracking on one TFLite interpreter thread each.

    ``min_detection_score``: palm score threshold (MediaPipe's min_detection_confidence);
    ``min_presence``: hand-presence threshold (min_tracking_confidence); ``same_hand_dist``: two
    results closer than this (mean landmark distance, in hand sizes) are one hand (0: off);
    ``roi_iou``: drop a palm region overlapping a tracked one by more than this before the
    landmark model (MediaPipe's association: 0.5; 1.0: off); ``handedness_rate``: smoothing of
    the handedness along a track (1.0: none). ``runtime_modules``: TFLite runtimes tried in order.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        min_detection_score: float = 0.5,
        min_presence: float = 0.5,
        max_hands: int = 2,
        roi_iou: float = 1.0,
        same_hand_dist: float = 0.15,
        handedness_rate: float = 0.3,
        runtime_modules: tuple[str, ...] = RUNTIME_MODULES,
    ) -> None:
        palm_path, lm_path = find_model_files(model_dir)
        interpreter = load_interpreter_class(runtime_modules)
        try:
            self._palm = interpreter(model_path=str(palm_path), num_threads=1)
            self._lm = interpreter(model_path=str(lm_path), num_threads=1)
            self._palm.allocate_tensors()
            self._lm.allocate_tensors()
        except Exception as exc:  # a corrupt model file or an unusable runtime
            raise EmbedderError(f"cannot load the hand models ({palm_path}, {lm_path}): {exc}") from exc
        self.palm_path, self.landmark_path = palm_path, lm_path
        self._palm_in = self._palm.get_input_details()[0]["index"]
        self._palm_out = {tuple(d["shape"][1:]): d["index"] for d in self._palm.get_output_details()}
        self._lm_in = self._lm.get_input_details()[0]["index"]
        self._lm_out = [d["index"] for d in sorted(self._lm.get_output_details(), key=lambda d: d["name"])]
        self._anchors = _palm_anchors()
        self.min_detection_score = float(min_detection_score)
        self.min_presence = float(min_presence)
        self.max_hands = int(max_hands)
        self.roi_iou = float(roi_iou)
        self.same_hand_dist = float(same_hand_dist)
        self.handedness_rate = float(handedness_rate)
        self._lock = threading.Lock()

    # -- palm detection ----------------------------------------------------------------------
    def detect_palms(self, frame: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Palms in ``frame`` (H, W, 3) uint8: ``(score, box, keypoints)`` best first, box
        ``(xmin, ymin, xmax, ymax)`` and 7 keypoints ``(7, 2)`` normalised to the frame."""
        fh, fw = frame.shape[:2]
        side = max(fw, fh)
        x = _crop(frame, fw / 2, fh / 2, side, side, 0.0, 192, zero_border=True)
        self._palm.set_tensor(self._palm_in, x[None])
        self._palm.invoke()
        raw = self._palm.get_tensor(self._palm_out[(2016, 18)])[0].astype(np.float64)
        logits = self._palm.get_tensor(self._palm_out[(2016, 1)])[0, :, 0].astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = np.flatnonzero(scores >= self.min_detection_score)
        if keep.size == 0:
            return []
        a = self._anchors[keep]
        r = raw[keep] / 192.0
        xc, yc = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        w, h = r[:, 2], r[:, 3]
        boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)
        kps = r[:, 4:18].reshape(-1, 7, 2) + a[:, None, :]
        dets = _weighted_nms(scores[keep], boxes, kps, 0.3)
        # Letterbox removal: the frame filled the middle of the square.
        px, py = (side - fw) / 2 / side, (side - fh) / 2 / side
        sx, sy = 1.0 / (1 - 2 * px), 1.0 / (1 - 2 * py)
        out = []
        for score, box, kp in dets:
            box = (box - [px, py, px, py]) * [sx, sy, sx, sy]
            kp = (kp - [px, py]) * [sx, sy]
            out.append((score, box, kp))
        return out

    def _palm_rect(self, box: np.ndarray, kp: np.ndarray, fw: int, fh: int) -> Rect:
        rot = _rotation(kp[0, 0], kp[0, 1], kp[2, 0], kp[2, 1], fw, fh)
        r = Rect((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1], rot)
        return _transform_rect(r, fw, fh, scale=2.6, shift_y=-0.5)

    # -- landmarks ---------------------------------------------------------------------------
    def hand_landmarks(self, frame: np.ndarray, rect: Rect) -> tuple[np.ndarray, float, float]:
        """Landmarks in ``rect``: ``((21, 3) normalised to the frame, presence, handedness)``."""
        fh, fw = frame.shape[:2]
        x = _crop(frame, rect.xc * fw, rect.yc * fh, rect.w * fw, rect.h * fh, rect.rot, 224, zero_border=False)
        self._lm.set_tensor(self._lm_in, x[None])
        self._lm.invoke()
        # Outputs sorted by name: Identity (landmarks), _1 (presence), _2 (handedness), _3 (world).
        lm = self._lm.get_tensor(self._lm_out[0]).reshape(21, 3).astype(np.float64) / 224.0
        presence = float(self._lm.get_tensor(self._lm_out[1]).ravel()[0])
        handed = float(self._lm.get_tensor(self._lm_out[2]).ravel()[0])
        u, v = lm[:, 0] - 0.5, lm[:, 1] - 0.5
        c, s = math.cos(rect.rot), math.sin(rect.rot)
        out = np.empty((21, 3))
        out[:, 0] = (c * u - s * v) * rect.w + rect.xc
        out[:, 1] = (s * u + c * v) * rect.h + rect.yc
        out[:, 2] = lm[:, 2] / 0.4 * rect.w
        return out, presence, handed

    # -- tracking ----------------------------------------------------------------------------
    def track(self, frames: np.ndarray) -> HandTracks:
        """Hands in every frame, tracked from frame to frame (frames in order)."""
        tracking = Tracking()
        self.track_more(frames, tracking)
        return tracking.result()

    def track_more(self, frames: np.ndarray, tracking: "Tracking") -> None:
        """Track the hands on through ``frames``, the frames that follow those ``tracking`` has
        seen."""
        n, fh, fw = frames.shape[:3]
        aspect = fw / fh
        L = np.full((n, 2, 21, 3), np.nan, dtype=np.float32)
        hand = np.full((n, 2), np.nan, dtype=np.float32)
        pres = np.full((n, 2), np.nan, dtype=np.float32)
        prev = tracking.prev  # this frame's regions from the last one, with their track's handedness
        with self._lock:
            for i in range(n):
                frame = frames[i]
                cands: list[tuple[Rect, float | None]] = []
                if len(prev) < self.max_hands:
                    tracking.detections += 1
                    for _score, box, kp in self.detect_palms(frame)[: self.max_hands]:
                        cands = _associate(cands, (self._palm_rect(box, kp, fw, fh), None), self.roi_iou)
                if self.roi_iou < 1.0:
                    for c in prev:
                        cands = _associate(cands, c, self.roi_iou)
                    cands = cands[::-1]  # tracked regions first
                else:
                    cands = list(prev) + cands
                found: list[tuple[np.ndarray, float, float, float]] = []  # lm, presence, hd, smoothed hd
                for rect, track_hd in cands:
                    if len(found) == self.max_hands:
                        break
                    lm, p, hd = self.hand_landmarks(frame, rect)
                    if p < self.min_presence:
                        continue
                    if any(_same_hand(lm, f[0], aspect, self.same_hand_dist) for f in found):
                        continue
                    smooth = hd if track_hd is None else track_hd + self.handedness_rate * (hd - track_hd)
                    found.append((lm, p, hd, smooth))
                prev = [(_landmarks_to_rect(lm, fw, fh), sm) for lm, _, _, sm in found]
                # Slots by (smoothed) handedness: the more "Left" hand first.
                if len(found) == 2:
                    found.sort(key=lambda t: -t[3])
                    slots = [0, 1]
                elif len(found) == 1:
                    slots = [0 if found[0][3] >= 0.5 else 1]
                else:
                    slots = []
                for (lm, p, hd, _), k in zip(found, slots):
                    L[i, k] = lm
                    hand[i, k] = hd
                    pres[i, k] = p
        tracking.prev = prev
        tracking.parts.append((L, hand, pres))


class Tracking:
    """Where hand tracking stands in a video: the regions to look at in the next frame and the
    hands found so far."""

    def __init__(self) -> None:
        self.prev: list = []
        self.detections = 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def result(self) -> HandTracks:
        if not self.parts:
            empty = np.empty((0, 2), np.float32)
            return HandTracks(np.empty((0, 2, 21, 3), np.float32), np.zeros((0, 2), bool), empty, empty, 0)
        L, hand, pres = (np.concatenate(k) for k in zip(*self.parts))
        return HandTracks(L, ~np.isnan(hand), hand, pres, self.detections)


def _same_hand(a: np.ndarray, b: np.ndarray, aspect: float, max_dist: float) -> bool:
    """Two landmark sets (21, 3) describe one hand: their mean landmark distance is below
    ``max_dist`` hand sizes."""
    if max_dist <= 0:
        return False
    sc = np.array([aspect, 1.0])
    pa, pb = a[:, :2] * sc, b[:, :2] * sc
    size = max(np.ptp(pa, axis=0).max(), np.ptp(pb, axis=0).max(), 1e-6)
    return float(np.linalg.norm(pa - pb, axis=1).mean()) < max_dist * size


def _associate(items: list, new, threshold: float = 0.5) -> list:
    """Add ``new`` (a ``(Rect, ...)`` tuple), dropping earlier ones whose rectangle it overlaps
    by IoU > threshold (the later one wins, as in MediaPipe's AssociationNormRectCalculator)."""
    return [it for it in items if _iou_axis_aligned(it[0], new[0]) <= threshold] + [new]


def _weighted_nms(scores: np.ndarray, boxes: np.ndarray, kps: np.ndarray, thresh: float):
    """MediaPipe's WEIGHTED non-max suppression (IoU): each kept detection is the score-weighted
    mean of the detections overlapping the best remaining one; its score is the best one's."""
    order = np.argsort(-scores, kind="stable")
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    out = []
    while order.size:
        top = order[0]
        b = boxes[order]
        iw = np.minimum(b[:, 2], boxes[top, 2]) - np.maximum(b[:, 0], boxes[top, 0])
        ih = np.minimum(b[:, 3], boxes[top, 3]) - np.maximum(b[:, 1], boxes[top, 1])
        inter = np.maximum(iw, 0) * np.maximum(ih, 0)
        union = area[order] + area[top] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        cand = order[iou > thresh]
        if cand.size == 0:  # degenerate box: keep it as is
            cand = order[:1]
        wts = scores[cand] / scores[cand].sum()
        out.append((float(scores[top]), (boxes[cand] * wts[:, None]).sum(0), (kps[cand] * wts[:, None, None]).sum(0)))
        order = order[~np.isin(order, cand)]
    return out


# ----------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------

WRIST, THUMB_TIP, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 4, 5, 9, 17
TIPS = (4, 8, 12, 16, 20)
MOVING = (WRIST,) + TIPS  # points whose velocities are features
PALM = (0, 5, 9, 13, 17)  # the palm centre is their mean


def _cumsum0(x: np.ndarray) -> np.ndarray:
    out = np.zeros((x.shape[0] + 1,) + x.shape[1:])
    np.cumsum(x, axis=0, dtype=np.float64, out=out[1:])
    return out


class _Span:
    """Sums over the frame ranges of the clips, by cumulative sums."""

    def __init__(self, spans: np.ndarray) -> None:
        self.lo, self.hi = spans[:, 0], spans[:, 1]

    def mean_std(self, x: np.ndarray, m: np.ndarray, lo_off: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and std of x (N, d) over the frames of each clip where m (N,) holds; count."""
        x = np.where(m[:, None], x, 0.0)
        cs, cs2, cn = _cumsum0(x), _cumsum0(x * x), _cumsum0(m.astype(np.float64))
        lo = np.minimum(self.lo + lo_off, self.hi)
        n = cn[self.hi] - cn[lo]
        s = np.maximum(n, 1.0)[:, None]
        mean = (cs[self.hi] - cs[lo]) / s
        var = np.maximum((cs2[self.hi] - cs2[lo]) / s - mean**2, 0.0)
        return mean, np.sqrt(var), n


def _hand_geometry(lm: np.ndarray, aspect: float) -> dict[str, np.ndarray]:
    """Per frame geometry of one hand slot; lm (N, 21, 3) in frame coordinates (NaN if absent).
    x is scaled by the aspect ratio so that distances are isotropic (units: frame height)."""
    xy = lm[..., :2] * np.array([aspect, 1.0])
    lo, hi = np.nanmin(xy, axis=1), np.nanmax(xy, axis=1)  # (N, 2), NaN rows stay NaN
    centre = (lo + hi) / 2
    size = np.maximum(np.max(hi - lo, axis=1), 1e-3)  # (N,)
    rel = (xy - centre[:, None]) / size[:, None, None]
    z = lm[..., 2] / size[:, None]
    palm = xy[:, PALM].mean(axis=1)
    direction = xy[:, MIDDLE_MCP] - xy[:, WRIST]
    direction = direction / np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-6)
    # The hand in its own frame: wrist at the origin, wrist -> middle MCP pointing up (-y).
    c, s = -direction[:, 1], direction[:, 0]  # rotation taking the direction to (0, -1)
    d = (xy - xy[:, WRIST : WRIST + 1]) / size[:, None, None]
    c, s = c[:, None], s[:, None]
    own = np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], axis=-1)
    return {
        "xy": xy,
        "lo": lo,
        "hi": hi,
        "centre": centre,
        "size": size,
        "rel": rel,
        "z": z,
        "palm": palm,
        "dir": direction,
        "own": own,
    }


def _turning(v: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: cross and product of magnitudes of consecutive velocities (N, 2) -> (N,)
    where both exist (ok), for sum(cross) / sum(|v||v'|) per clip."""
    cross = np.zeros(len(v))
    mag = np.zeros(len(v))
    both = ok[1:] & ok[:-1]
    a, b = v[:-1][both], v[1:][both]
    cross[1:][both] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    mag[1:][both] = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    okt = np.zeros(len(v), dtype=bool)
    okt[1:] = both
    return np.stack([cross, mag], axis=1), okt


def clip_blocks(tracks: HandTracks, spans: np.ndarray, aspect: float) -> dict[str, np.ndarray]:
    """The per clip feature blocks (not yet normalised or weighted), each ``(C, d)`` float64.

    Block names end in 0 or 1 for the hand slot. ``aspect``: frame width / height."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN rows of absent hands
        return _clip_blocks(tracks, spans, aspect)


def _clip_blocks(tracks: HandTracks, spans: np.ndarray, aspect: float) -> dict[str, np.ndarray]:
    span = _Span(spans)
    n = tracks.present.shape[0]
    blocks: dict[str, np.ndarray] = {}
    geo = [_hand_geometry(tracks.landmarks[:, k].astype(np.float64), aspect) for k in range(2)]
    pres = tracks.present
    # Which hands are seen: none, slot 0 only, slot 1 only, both.
    count = np.stack(
        [~pres[:, 0] & ~pres[:, 1], pres[:, 0] & ~pres[:, 1], ~pres[:, 0] & pres[:, 1], pres[:, 0] & pres[:, 1]], axis=1
    ).astype(np.float64)
    blocks["count"], _, _ = span.mean_std(count, np.ones(n, dtype=bool))
    for k, g in enumerate(geo):
        m = pres[:, k]
        pose = np.concatenate([g["rel"].reshape(n, -1), g["z"]], axis=1)
        mean, std, _ = span.mean_std(np.nan_to_num(pose), m)
        blocks[f"pose{k}"], blocks[f"pose_std{k}"] = mean, std
        blocks[f"shape{k}"], _, _ = span.mean_std(np.nan_to_num(g["own"].reshape(n, -1)), m)
        place = np.concatenate(
            [g["xy"][:, WRIST], g["centre"], g["xy"][:, TIPS].reshape(n, -1), np.log(g["size"])[:, None], g["dir"]],
            axis=1,
        )
        mean, std, _ = span.mean_std(np.nan_to_num(place), m)
        blocks[f"place{k}"], blocks[f"place_std{k}"] = mean, std
        # Motion: displacement per sampled frame of wrist and finger tips, in hand sizes.
        ok = np.zeros(n, dtype=bool)
        ok[1:] = m[1:] & m[:-1]
        v = np.zeros((n, len(MOVING), 2))
        v[1:] = (g["xy"][1:, MOVING] - g["xy"][:-1, MOVING]) / g["size"][1:, None, None]
        v = np.nan_to_num(v)
        speed = np.linalg.norm(v, axis=2)
        vc = np.nan_to_num(
            np.concatenate([np.zeros((1, 2)), (g["centre"][1:] - g["centre"][:-1])], axis=0) / g["size"][:, None]
        )
        cov = np.stack([vc[:, 0] ** 2, vc[:, 1] ** 2, vc[:, 0] * vc[:, 1]], axis=1)
        mv, _, _ = span.mean_std(np.concatenate([v.reshape(n, -1), speed, cov], axis=1), ok, lo_off=1)
        tv, okt = _turning(vc, ok)
        ts, _, _ = span.mean_std(tv, okt, lo_off=2)
        turn = ts[:, :1] / np.maximum(ts[:, 1:], 1e-9)
        blocks[f"motion{k}"] = np.concatenate([mv, turn], axis=1)
    # The two hands together.
    both = pres[:, 0] & pres[:, 1]
    g0, g1 = geo
    s = (g0["size"] + g1["size"]) / 2
    d = (g1["centre"] - g0["centre"]) / s[:, None]
    dw = (g1["xy"][:, WRIST] - g0["xy"][:, WRIST]) / s[:, None]
    ix = np.clip(np.minimum(g0["hi"], g1["hi"]) - np.maximum(g0["lo"], g1["lo"]), 0, None)
    inter = ix[:, 0] * ix[:, 1]
    a0 = np.prod(g0["hi"] - g0["lo"], axis=1)
    a1 = np.prod(g1["hi"] - g1["lo"], axis=1)
    iou = inter / np.maximum(a0 + a1 - inter, 1e-9)
    tip0 = np.linalg.norm(g0["xy"][:, TIPS] - g1["palm"][:, None], axis=2).min(axis=1) / s
    tip1 = np.linalg.norm(g1["xy"][:, TIPS] - g0["palm"][:, None], axis=2).min(axis=1) / s
    cosang = np.sum(g0["dir"] * g1["dir"], axis=1)
    sinang = g0["dir"][:, 0] * g1["dir"][:, 1] - g0["dir"][:, 1] * g1["dir"][:, 0]
    pair = np.stack(
        [
            d[:, 0],
            d[:, 1],
            np.linalg.norm(d, axis=1),
            dw[:, 0],
            dw[:, 1],
            iou,
            tip0,
            tip1,
            cosang,
            sinang,
            np.log(g1["size"] / g0["size"]),
        ],
        axis=1,
    )
    blocks["pair"], _, _ = span.mean_std(np.nan_to_num(pair), both)
    okr = np.zeros(n, dtype=bool)
    okr[1:] = both[1:] & both[:-1]
    rv = np.zeros((n, 2))
    rv[1:] = d[1:] - d[:-1]
    rv = np.nan_to_num(rv)
    rel = np.concatenate(
        [
            np.abs(rv),
            np.linalg.norm(rv, axis=1, keepdims=True),
            np.stack([rv[:, 0] ** 2, rv[:, 1] ** 2, rv[:, 0] * rv[:, 1]], axis=1),
        ],
        axis=1,
    )
    mr, _, _ = span.mean_std(rel, okr, lo_off=1)
    tv, okt = _turning(rv, okr)
    ts, _, _ = span.mean_std(tv, okt, lo_off=2)
    blocks["relmotion"] = np.concatenate([mr, ts[:, :1] / np.maximum(ts[:, 1:], 1e-9)], axis=1)
    return blocks


# ----------------------------------------------------------------------------------------------
# The embedder
# ----------------------------------------------------------------------------------------------

#: Weight of each feature block (both hand slots alike), chosen by measurement on the real
#: hand-washing recordings (data/handwash-dev: every gold/trainee pair of the three videos,
#: clip-to-step nearest neighbour); blocks left out (weight 0 there) are not computed.
BLOCK_WEIGHTS: dict[str, float] = {
    "count": 1.5,  # fraction of frames with no hand, the left/right one only, both
    "pose": 2.0,  # landmarks in the hand's box (image orientation) and z: mean over the clip
    "pose_std": 1.5,  # ... and their standard deviation (how the fingers move)
    "shape": 1.0,  # landmarks in the hand's own frame (wrist at origin, fingers up)
    "place": 1.5,  # wrist, centre, finger tips in the frame, size, pointing direction: mean
    "place_std": 1.0,  # ... and standard deviation
    "motion": 1.0,  # wrist and finger-tip velocities, speeds, centre-velocity covariance, turning
    "pair": 2.0,  # relative position of the hands, overlap, finger tip to palm distances
    "relmotion": 1.0,  # motion of one hand against the other, and how consistently it turns
}
#: A constant component: clips without any signal share one direction instead of a zero row.
BIAS_WEIGHT = 0.1
#: Per-video standardisation: each feature is centred on its mean over the video's clips and
#: divided by sqrt(std^2 + (STD_FLOOR * rms std of its block)^2); the floor keeps features that
#: barely vary in a video from being blown up into noise.
STD_FLOOR = 0.3


def _standardize(b: np.ndarray) -> np.ndarray:
    sd = b.std(axis=0)
    floor = STD_FLOOR * np.sqrt(np.mean(sd**2))
    return (b - b.mean(axis=0)) / np.sqrt(sd**2 + floor**2 + 1e-12)


class HandsEmbedder(StreamingEmbedder):
    """Hand-keypoint features (MediaPipe Hands models on LiteRT), per clip; see module doc.

    Vectors depend on the whole video (per-video standardisation): embed whole videos.
    """

    name = f"hands:{MODEL_PACKAGE}-{MODEL_PACKAGE_VERSION}:v1"
    frame_size = (480, 320)

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        runtime_modules: tuple[str, ...] = RUNTIME_MODULES,
        weights: dict[str, float] | None = None,
    ) -> None:
        """``model_dir``: where the two .tflite files are (default: the installed mediapipe
        package). ``weights``: block weights in place of ``BLOCK_WEIGHTS`` (the name then says
        so: such vectors do not compare with the default ones)."""
        self.tracker = HandTracker(model_dir, runtime_modules=runtime_modules)
        self.weights = dict(BLOCK_WEIGHTS if weights is None else weights)
        unknown = set(self.weights) - set(BLOCK_WEIGHTS)
        if unknown:
            raise EmbedderError(f"unknown hands feature blocks {sorted(unknown)}; known: {sorted(BLOCK_WEIGHTS)}")
        if weights is not None and self.weights != BLOCK_WEIGHTS:
            tag = ",".join(f"{k}={v:g}" for k, v in sorted(self.weights.items()))
            self.name = f"{type(self).name}:w[{tag}]"
        # Block sizes, from an empty video of one frame.
        empty = HandTracks(
            np.full((1, 2, 21, 3), np.nan, np.float32),
            np.zeros((1, 2), bool),
            np.full((1, 2), np.nan, np.float32),
            np.full((1, 2), np.nan, np.float32),
        )
        self._dims = {k: b.shape[1] for k, b in clip_blocks(empty, np.array([[0, 1]]), 1.5).items()}
        self.dim = sum(d for k, d in self._dims.items() if self._weight(k) > 0) + 1

    def _weight(self, block: str) -> float:
        return float(self.weights.get(block.rstrip("01"), 0.0))

    def track(self, frames: np.ndarray) -> HandTracks:
        """The hands of every frame (see HandTracker.track)."""
        return self.tracker.track(frames)

    def embed_tracks(self, tracks: HandTracks, spans: np.ndarray, aspect: float) -> np.ndarray:
        """Clip vectors ``(C, dim)`` from tracked hands; ``aspect`` = frame width / height."""
        blocks = clip_blocks(tracks, spans, aspect)
        parts = []
        for k, b in blocks.items():
            w = self._weight(k)
            if w > 0:
                parts.append(w * l2_normalize_rows(_standardize(b)).astype(np.float64))
        parts.append(np.full((len(spans), 1), BIAS_WEIGHT))
        return l2_normalize_rows(np.concatenate(parts, axis=1))

    def begin(self, source: FrameSource) -> "_HandsVideo":
        return _HandsVideo(self)


class _HandsVideo(VideoAccumulator):
    """Hands tracked chunk by chunk; only the landmarks are kept."""

    def __init__(self, embedder: HandsEmbedder) -> None:
        self.e = embedder
        self.tracking = Tracking()
        self.aspect = 1.0

    def add(self, frames: np.ndarray) -> None:
        self.aspect = frames.shape[2] / frames.shape[1]
        self.e.tracker.track_more(frames, self.tracking)

    def finish(self, spans: np.ndarray) -> np.ndarray:
        tracks = self.tracking.result()
        return self.e.embed_tracks(tracks, validate_spans(spans, len(tracks.present)), self.aspect)

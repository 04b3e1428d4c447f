"""The "hands" embedder: MediaPipe's hand models (from the mediapipe==0.10.14 wheel, installed
with --no-deps) run on LiteRT, no mocks. Tests that need the models skip when the optional extra
is not installed; the real-hand tests need ../shared/data/handwash-dev beside the clone."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from sopilot_pipelines.core.embedders import EmbedderError, get_embedder
from sopilot_pipelines.core.embedders.hands import (
    BIAS_WEIGHT,
    BLOCK_WEIGHTS,
    MOVING,
    STD_FLOOR,
    TIPS,
    HandsEmbedder,
    HandTracker,
    HandTracks,
    Rect,
    _palm_anchors,
    clip_blocks,
    find_model_files,
    load_interpreter_class,
)
from sopilot_pipelines.core.embedding import embed_video
from sopilot_pipelines.core.video import ClipSettings, decode
from tests.helpers import ROOT as REPO

_GOLD_REL = "shared/data/handwash-dev/handwash_003.mp4"
GOLD = next((p for p in (REPO / _GOLD_REL, REPO.parent / _GOLD_REL) if p.is_file()), None)
needs_video = pytest.mark.skipif(GOLD is None, reason=f"{_GOLD_REL} not found beside the clone (or inside it)")


@pytest.fixture(scope="module")
def hands():
    try:
        return get_embedder("hands")
    except EmbedderError as exc:
        pytest.skip(f"optional extra 'hands' not installed: {exc}")


def _gold_clip(tmp_path_factory, seconds: int, start: int | None = None):
    """``seconds`` of the real gold recording from ``start`` (from the beginning when None),
    re-encoded into a temp dir; skips when the recording is not there."""
    if GOLD is None:
        pytest.skip(f"{_GOLD_REL} not found beside the clone (or inside it)")
    import imageio_ffmpeg

    name = f"gold_{seconds}s.mp4" if start is None else f"gold_{start}s_{seconds}s.mp4"
    out = tmp_path_factory.mktemp("hands") / name
    seek = [] if start is None else ["-ss", str(start)]
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            *seek,
            "-i",
            str(GOLD),
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-an",
            str(out),
        ],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    """The first 8 s of the real gold recording (palm to palm)."""
    return _gold_clip(tmp_path_factory, 8)


@pytest.fixture(scope="module")
def short_frames(short_video, hands):
    return decode(short_video, sample_fps=8.0, frame_size=hands.frame_size).frames


# --- errors that name the extra (no models or runtime needed) -----------------------------------


def test_missing_model_files_name_the_extra(tmp_path):
    with pytest.raises(EmbedderError, match=r"sopilot\[hands\]") as err:
        HandsEmbedder(model_dir=tmp_path)
    assert "mediapipe==0.10.14" in str(err.value) and "palm_detection_full.tflite" in str(err.value)
    with pytest.raises(EmbedderError, match=r"--no-deps mediapipe==0.10.14"):
        find_model_files(tmp_path / "missing")


def test_missing_runtime_names_the_extra():
    with pytest.raises(EmbedderError, match=r"sopilot\[hands\]") as err:
        load_interpreter_class(("sopilot_no_such_tflite_runtime",))
    assert "ai-edge-litert" in str(err.value)


def test_registered():
    assert get_embedder("hands").name == HandsEmbedder.name


def test_palm_anchors():
    a = _palm_anchors()
    assert a.shape == (2016, 2)
    np.testing.assert_allclose(a[0], [0.5 / 24, 0.5 / 24])  # stride 8: 24x24 cells, 2 anchors each
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2], [1.5 / 24, 0.5 / 24])
    np.testing.assert_allclose(a[1152], [0.5 / 12, 0.5 / 12])  # strides 16 (x3): 12x12, 6 each
    np.testing.assert_allclose(a[-1], [11.5 / 12, 11.5 / 12])


# --- with the real models ------------------------------------------------------------------------


def test_model_files_found_without_importing_mediapipe(hands):
    import sys

    palm, lm = find_model_files()
    assert palm.name == "palm_detection_full.tflite" and lm.name == "hand_landmark_full.tflite"
    assert "mediapipe" not in sys.modules  # located, never imported (its protobuf pins would clash)


def test_model_dir_parameter(hands, tmp_path):
    palm, lm = find_model_files()
    (tmp_path / "palm_detection").mkdir()
    (tmp_path / "palm_detection" / palm.name).write_bytes(palm.read_bytes())
    (tmp_path / lm.name).write_bytes(lm.read_bytes())  # side by side works too
    tracker = HandTracker(tmp_path)
    assert tracker.palm_path.parent == tmp_path / "palm_detection" and tracker.landmark_path.parent == tmp_path
    with pytest.raises(EmbedderError, match=r"sopilot\[hands\]"):
        HandTracker(tmp_path, runtime_modules=("sopilot_no_such_tflite_runtime",))


def test_registry_names(hands):
    assert hands.name == "hands:mediapipe-0.10.14:v1"
    assert get_embedder("hands:mediapipe-0.10.14:v1") is hands
    custom = HandsEmbedder(weights={**BLOCK_WEIGHTS, "motion": 0.0})
    assert custom.name != hands.name and custom.dim < hands.dim
    with pytest.raises(EmbedderError, match="unknown hands feature blocks"):
        HandsEmbedder(weights={"nonsense": 1.0})


def test_no_hand_in_a_blank_scene(hands):
    frames = np.full((6, 320, 480, 3), 128, dtype=np.uint8)
    assert hands.tracker.detect_palms(frames[0]) == []
    tracks = hands.track(frames)
    assert not tracks.present.any() and np.isnan(tracks.landmarks).all()
    emb = hands.embed(frames, np.array([[0, 4], [2, 6]]))
    assert emb.shape == (2, hands.dim) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # the constant part: no zero row


@pytest.mark.slow
@needs_video
def test_detects_real_hands(hands, short_frames):
    """One real frame (both hands, palm to palm over a sink): palms, landmarks, handedness."""
    frame = short_frames[48]  # 6 s in
    palms = hands.tracker.detect_palms(frame)
    assert palms and palms[0][0] > 0.7
    score, box, kp = palms[0]
    assert 0 <= box[0] < box[2] <= 1.05 and 0 <= box[1] < box[3] <= 1.05 and kp.shape == (7, 2)
    rect = hands.tracker._palm_rect(box, kp, frame.shape[1], frame.shape[0])
    lm, presence, handedness = hands.tracker.hand_landmarks(frame, rect)
    assert presence > 0.8 and lm.shape == (21, 3)
    xy = lm[:, :2]
    assert (xy > -0.05).all() and (xy < 1.05).all()
    size = np.ptp(xy * [1.5, 1.0], axis=0).max()
    assert 0.1 < size < 0.9  # a hand, in frame heights
    # The same hands in the mirrored frames come out with the other handedness (mostly: palm to
    # palm seen from above is ambiguous in some frames) and mirrored landmarks.
    flips = []
    for frame in short_frames[0:64:8]:
        score, box, kp = hands.tracker.detect_palms(frame)[0]
        rect = hands.tracker._palm_rect(box, kp, frame.shape[1], frame.shape[0])
        lm, presence, handedness = hands.tracker.hand_landmarks(frame, rect)
        mirrored = Rect(1.0 - rect.xc, rect.yc, rect.w, rect.h, -rect.rot)
        lm_m, presence_m, handedness_m = hands.tracker.hand_landmarks(np.ascontiguousarray(frame[:, ::-1]), mirrored)
        flips.append((handedness - 0.5) * (handedness_m - 0.5) < 0)
        if presence > 0.8 and presence_m > 0.8:
            assert np.median(np.abs(1.0 - lm_m[:, 0] - lm[:, 0])) < 0.03
    assert np.mean(flips) >= 0.6, flips
    # Tracked over the 8 s: a hand in (nearly) every frame.
    tracks = hands.track(short_frames)
    assert tracks.n_hands.mean() > 0.9 and (tracks.n_hands >= 1).mean() > 0.9


@pytest.mark.slow
@needs_video
def test_contract_and_determinism(hands, short_video):
    settings = ClipSettings()
    a = embed_video(short_video, settings, hands)
    assert a.model == hands.name
    assert a.embeddings.shape == (a.n_clips, hands.dim) and a.embeddings.dtype == np.float32
    assert a.n_clips >= 10 and np.isfinite(a.embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(a.embeddings, axis=1), 1.0, atol=1e-5)
    b = embed_video(short_video, settings, HandsEmbedder())  # a fresh model: same vectors
    assert np.array_equal(a.embeddings, b.embeddings)


@pytest.mark.slow
@needs_video
def test_mirrored_video_is_not_the_same(hands, short_frames):
    """Left and right are kept apart: the mirrored recording embeds differently."""
    n = len(short_frames)
    spans = np.array([[s, s + 16] for s in range(0, n - 15, 4)])  # 2 s clips every 0.5 s at 8 fps
    emb = hands.embed(short_frames, spans)
    emb_m = hands.embed(np.ascontiguousarray(short_frames[:, :, ::-1]), spans)
    assert np.sum(emb * emb_m, axis=1).mean() < 0.9


# --- the feature layout, on tracks built by hand (known landmarks) ------------------------------
#
# The clip vector is clip_blocks' blocks in their order (those of weight > 0), each standardised
# over the video's clips, L2-normalised and weighted, then the constant BIAS_WEIGHT, the whole
# L2-normalised. The block sizes below come from the module's definitions (21 landmarks, TIPS,
# MOVING, the docstring), not from the embedder.

ASPECT = 1.5  # the embedder's 480x320 frames
PER_CLIP = 8  # frames a clip in the hand-built videos
HAND_BLOCKS = ("pose", "pose_std", "shape", "place", "place_std", "motion")
PLACE_SIZE = 2 + 2 + 2 * len(TIPS) + 1 + 2  # wrist, box centre, finger tips, log size, direction
BLOCK_SIZES = {
    "count": 4,  # fraction of frames with: no hand, slot 0 only, slot 1 only, both
    "pose": 21 * 2 + 21,  # landmarks in the hand's box (x, y), then z / size
    "pose_std": 21 * 3,
    "shape": 21 * 2,  # landmarks in the hand's own frame
    "place": PLACE_SIZE,
    "place_std": PLACE_SIZE,
    "motion": 2 * len(MOVING) + len(MOVING) + 3 + 1,  # mean velocity, speed, centre-velocity cov, turning
    "pair": 11,  # relative centre (x, y, dist), relative wrist, overlap, 2 tip-to-palm, cos, sin, log size ratio
    "relmotion": 2 + 1 + 3 + 1,
}
BLOCK_ORDER = ["count", *(f"{b}0" for b in HAND_BLOCKS), *(f"{b}1" for b in HAND_BLOCKS), "pair", "relmotion"]
SLOT0 = [f"{b}0" for b in HAND_BLOCKS]
SLOT1 = [f"{b}1" for b in HAND_BLOCKS]


def _layout(weights: dict[str, float] = BLOCK_WEIGHTS) -> dict[str, slice]:
    """Slice of each block in a clip vector, and of the constant ("bias", last)."""
    out, at = {}, 0
    for name in BLOCK_ORDER:
        if weights.get(name.rstrip("01"), 0.0) > 0:
            size = BLOCK_SIZES[name.rstrip("01")]
            out[name] = slice(at, at + size)
            at += size
    out["bias"] = slice(at, at + 1)
    return out


def _hand(x: float, y: float, size: float = 0.2, angle: float = 0.0, curl: float = 0.0) -> np.ndarray:
    """(21, 3) float32 landmarks of a schematic hand (MediaPipe's order: wrist, thumb, index, middle,
    ring, pinky), x and y normalised to a 480x320 frame: wrist at (x, y), fingers up, turned
    clockwise by ``angle``, each joint bent by ``curl`` radians, ``size`` in frame heights.
    Quantised to 2**-16 so that translations by multiples of 1/64 are exact."""
    pts = [np.zeros(2)]
    for finger, (bx, by, spread) in enumerate(
        ((-0.2, -0.1, -0.8), (-0.2, -0.5, -0.15), (0.0, -0.55, 0.0), (0.17, -0.52, 0.15), (0.32, -0.45, 0.3))
    ):
        p, a = np.array([bx, by]), spread
        pts.append(p)
        for _ in range(3):
            a += curl if finger else curl / 2
            p = p + 0.15 * np.array([np.sin(a), -np.cos(a)])
            pts.append(p)
    own = np.array(pts)  # x right, y down (image), in hand lengths
    c, s = np.cos(angle), np.sin(angle)
    xy = own @ np.array([[c, s], [-s, c]]) * size + [x * ASPECT, y]
    z = size * (0.1 + curl) * own[:, 1]
    lm = np.stack([xy[:, 0] / ASPECT, xy[:, 1], z], axis=1)
    return (np.round(lm * 65536) / 65536).astype(np.float32)


def _tracks(frames: list) -> HandTracks:
    """HandTracks from ``[(slot 0 landmarks or None, slot 1 landmarks or None), ...]``: slot 0 is
    the hand the model calls "Left" (handedness score 0.9), slot 1 the other (0.1)."""
    n = len(frames)
    lms = np.full((n, 2, 21, 3), np.nan, np.float32)
    hd = np.full((n, 2), np.nan, np.float32)
    pres = np.full((n, 2), np.nan, np.float32)
    for i, pair in enumerate(frames):
        for k, lm in enumerate(pair):
            if lm is not None:
                lms[i, k], hd[i, k], pres[i, k] = lm, (0.9, 0.1)[k], 0.95
    return HandTracks(lms, ~np.isnan(hd), hd, pres)


def _spans(n_clips: int) -> np.ndarray:
    return np.array([[i * PER_CLIP, (i + 1) * PER_CLIP] for i in range(n_clips)])


def _moving(clip: int, f: int, x0: float, y0: float, turn: float = 0.0) -> np.ndarray:
    """Frame f of clip ``clip``: a hand circling, its pose and size depending on the clip."""
    t = 2 * np.pi * f / PER_CLIP
    r = 0.02 * (1 + clip % 3)
    return _hand(
        x0 + r * np.cos(t),
        y0 + r * np.sin(t),
        size=0.2 + 0.01 * (clip % 4),
        angle=turn + 0.2 * clip,
        curl=0.1 * (clip % 5) + 0.05 * np.sin(t),
    )


def _two_hands_video(n_clips: int = 6) -> list:
    """An asymmetric two-hand action: slot 0 low left, pointing up-right; slot 1 higher, right."""
    return [
        (_moving(c, f, 0.4, 0.65, turn=0.4), _moving(c + 2, f, 0.6, 0.5, turn=-0.6))
        for c in range(n_clips)
        for f in range(PER_CLIP)
    ]


def _mirror(tracks: HandTracks) -> HandTracks:
    """The tracks of the mirrored video: x -> 1 - x and the handedness swapped (so the slots too)."""
    lms = tracks.landmarks[:, ::-1].copy()
    lms[..., 0] = 1.0 - lms[..., 0]
    return HandTracks(
        lms, tracks.present[:, ::-1].copy(), 1.0 - tracks.handedness[:, ::-1], tracks.presence[:, ::-1].copy()
    )


def _translate(tracks: HandTracks, dx: float, dy: float, frames=slice(None)) -> HandTracks:
    lms = tracks.landmarks.copy()
    lms[frames, ..., 0] += dx
    lms[frames, ..., 1] += dy
    return HandTracks(lms, tracks.present.copy(), tracks.handedness.copy(), tracks.presence.copy())


def test_layout_block_order_and_sizes(hands):
    blocks = clip_blocks(_tracks([(None, None)]), np.array([[0, 1]]), ASPECT)
    assert list(blocks) == BLOCK_ORDER
    assert {k: b.shape for k, b in blocks.items()} == {k: (1, BLOCK_SIZES[k.rstrip("01")]) for k in BLOCK_ORDER}
    assert hands.dim == _layout()["bias"].stop == 471  # the module docstring's 471 dimensions
    custom = HandsEmbedder(weights={**BLOCK_WEIGHTS, "motion": 0.0, "pair": 0.0})
    assert custom.dim == _layout(custom.weights)["bias"].stop == 471 - 2 * BLOCK_SIZES["motion"] - BLOCK_SIZES["pair"]
    emb = custom.embed_tracks(_tracks(_two_hands_video(3)), _spans(3), ASPECT)
    assert emb.shape == (3, custom.dim)


def test_vector_slices_are_the_weighted_blocks(hands):
    """Each slice of the vector is its block standardised over the clips, L2-normalised and
    weighted; the last component is the constant."""
    left = _hand(0.35, 0.6, curl=0.2)
    frames = [(None, None)] * PER_CLIP + [(left, None)] * PER_CLIP + [(None, left)] * PER_CLIP + _two_hands_video(4)
    tracks, spans = _tracks(frames), _spans(7)
    emb = hands.embed_tracks(tracks, spans, ASPECT)
    assert emb.shape == (7, hands.dim) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    blocks = clip_blocks(tracks, spans, ASPECT)
    layout = _layout()
    want = []
    for name, sl in layout.items():
        if name == "bias":
            want.append(np.full((7, 1), BIAS_WEIGHT))
            continue
        b = blocks[name]
        sd = b.std(axis=0)
        z = (b - b.mean(axis=0)) / np.sqrt(sd**2 + (STD_FLOOR * np.sqrt(np.mean(sd**2))) ** 2 + 1e-12)
        want.append(BLOCK_WEIGHTS[name.rstrip("01")] * z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12))
        # Independently of the standardisation: a block's share of the vector is its weight.
        norms = np.linalg.norm(emb[:, sl], axis=1) / emb[:, -1]
        ok = np.isclose(norms, BLOCK_WEIGHTS[name.rstrip("01")] / BIAS_WEIGHT, rtol=1e-4) | (norms == 0)
        assert ok.all(), (name, norms)
    want = np.concatenate(want, axis=1)
    np.testing.assert_allclose(emb, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-6)


def test_blocks_for_zero_one_two_hands():
    """Raw clip blocks of known landmarks: no hand, the "Left" hand only (slot 0), the other only
    (slot 1), both, and a clip with the hand in 6 of its 8 frames."""
    left = _hand(0.35, 0.6, size=0.2, angle=0.3, curl=0.2)
    right = _hand(0.65, 0.55, size=0.22, angle=-0.4, curl=0.1)
    clips = [
        [(None, None)] * 8,
        [(left, None)] * 8,
        [(None, left)] * 8,
        [(left, right)] * 8,
        [(None, None)] * 2 + [(left, None)] * 6,
    ]
    b = clip_blocks(_tracks(sum(clips, [])), _spans(5), ASPECT)
    # The hand-count block: fractions of frames with no hand / slot 0 only / slot 1 only / both.
    want = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.25, 0.75, 0, 0]]
    np.testing.assert_array_equal(b["count"], want)
    for name in BLOCK_ORDER[1:]:  # no hand: nothing but the no-hand flag
        assert not b[name][0].any(), name
    for name in SLOT1 + ["pair", "relmotion"]:  # "Left" only: slot 1 and the two-hand blocks empty
        assert not b[name][1].any() and not b[name][4].any(), name
    for name in SLOT0 + ["pair", "relmotion"]:  # the other only: slot 0 empty
        assert not b[name][2].any(), name
    for name in SLOT0 + SLOT1:  # the same hand gives the same numbers in either slot
        np.testing.assert_allclose(b[name[:-1] + "1"][2], b[name[:-1] + "0"][1], atol=1e-12)
    for name in ("pose", "shape", "place"):
        assert np.abs(b[f"{name}0"][1]).max() > 0.05
        assert np.abs(b[f"{name}0"][3]).max() > 0.05 and np.abs(b[f"{name}1"][3]).max() > 0.05
    assert np.abs(b["pair"][3]).max() > 0.05
    # Known values. Pose: landmarks relative to the hand's box centre in box sizes (x scaled by
    # the aspect ratio), then z / size; place: wrist, box centre, finger tips, log size, direction.
    xy = left[:, :2].astype(np.float64) * [ASPECT, 1.0]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre, size = (lo + hi) / 2, (hi - lo).max()
    pose = np.concatenate([((xy - centre) / size).ravel(), left[:, 2] / size])
    direction = (xy[9] - xy[0]) / np.linalg.norm(xy[9] - xy[0])
    place = np.concatenate([xy[0], centre, xy[list(TIPS)].ravel(), [np.log(size)], direction])
    for clip in (1, 4):  # means over the frames where the hand is seen
        np.testing.assert_allclose(b["pose0"][clip], pose, atol=1e-9)
        np.testing.assert_allclose(b["place0"][clip], place, atol=1e-9)
    np.testing.assert_allclose(b["pose1"][2], pose, atol=1e-9)
    # A still hand: no spread, no motion.
    for name in ("pose_std0", "place_std0", "motion0"):
        np.testing.assert_allclose(b[name][1], 0.0, atol=1e-6)
    # Pair: the other hand's box centre relative to slot 0's, in mean hand sizes.
    xy1 = right[:, :2].astype(np.float64) * [ASPECT, 1.0]
    centre1, size1 = (xy1.min(0) + xy1.max(0)) / 2, np.ptp(xy1, axis=0).max()
    d = (centre1 - centre) / ((size + size1) / 2)
    np.testing.assert_allclose(b["pair"][3][:3], [d[0], d[1], np.linalg.norm(d)], atol=1e-9)
    np.testing.assert_allclose(b["pair"][3][-1], np.log(size1 / size), atol=1e-9)


def test_vectors_for_zero_one_two_hands(hands):
    layout = _layout()
    # No hand in the whole video: only the constant is left, a finite unit vector.
    emb = hands.embed_tracks(_tracks([(None, None)] * 24), _spans(3), ASPECT)
    assert emb.shape == (3, hands.dim)
    np.testing.assert_array_equal(emb, np.eye(hands.dim)[[-1, -1, -1]])
    # Mixed: the count slice says which clip has no hand, the slot-0 hand, the slot-1 hand, both.
    left, right = _hand(0.35, 0.6, curl=0.2), _hand(0.65, 0.55, angle=-0.4)
    clips = [[(None, None)] * 8, [(left, None)] * 8, [(None, right)] * 8, [(left, right)] * 8]
    emb = hands.embed_tracks(_tracks(sum(clips, [])), _spans(4), ASPECT)
    count = emb[:, layout["count"]]
    assert count.argmax(axis=1).tolist() == [0, 1, 2, 3]
    assert count[0, 0] > 0 and (count[1:, 0] < 0).all()  # the no-hand flag set in the no-hand clip only
    # A video of the "Left" hand only fills slot 0 and leaves slot 1 empty; the other hand only,
    # the reverse, with the same numbers in the other slot.
    frames = [_moving(c, f, 0.45, 0.6) for c in range(5) for f in range(PER_CLIP)]
    emb_l = hands.embed_tracks(_tracks([(lm, None) for lm in frames]), _spans(5), ASPECT)
    emb_r = hands.embed_tracks(_tracks([(None, lm) for lm in frames]), _spans(5), ASPECT)
    for e, filled, empty in ((emb_l, SLOT0, SLOT1), (emb_r, SLOT1, SLOT0)):
        assert np.isfinite(e).all() and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)
        for name in empty + ["count", "pair", "relmotion"]:
            assert not e[:, layout[name]].any(), name
        for name in filled:
            assert (np.linalg.norm(e[:, layout[name]], axis=1) > 0.05).all(), name
    for a, b in zip(SLOT0, SLOT1):
        np.testing.assert_allclose(emb_r[:, layout[b]], emb_l[:, layout[a]], atol=1e-6)
    assert np.sum(emb_l * emb_r, axis=1).max() < 0.5


def test_mirrored_tracks_embed_differently(hands):
    """x -> 1 - x with the handedness swapped (the mirrored video of an asymmetric two-hand
    action) gives other vectors; mirroring twice gives the same ones back."""
    tracks, spans = _tracks(_two_hands_video(6)), _spans(6)
    emb = hands.embed_tracks(tracks, spans, ASPECT)
    mirrored = _mirror(tracks)
    assert mirrored.present[:, 0].all() and (mirrored.handedness[:, 0] > 0.5).all()  # still "Left" in slot 0
    emb_m = hands.embed_tracks(mirrored, spans, ASPECT)
    assert np.isfinite(emb_m).all()
    assert np.sum(emb * emb_m, axis=1).mean() < 0.9
    layout = _layout()
    for name in ("pose0", "shape0", "place0", "pair"):
        assert np.abs(emb[:, layout[name]] - emb_m[:, layout[name]]).max() > 0.05, name
    np.testing.assert_allclose(hands.embed_tracks(_mirror(mirrored), spans, ASPECT), emb, atol=1e-6)


def test_translation_changes_place_not_pose(hands):
    tracks, spans = _tracks(_two_hands_video(6)), _spans(6)
    dx, dy = 0.125, -0.0625  # exact on the quantised landmarks
    b = clip_blocks(tracks, spans, ASPECT)
    bt = clip_blocks(_translate(tracks, dx, dy), spans, ASPECT)
    shift = np.array([dx * ASPECT, dy] * (2 + len(TIPS)) + [0.0, 0.0, 0.0])  # wrist, centre, tips; size, direction
    for name in BLOCK_ORDER:
        if name in ("place0", "place1"):
            np.testing.assert_allclose(bt[name] - b[name], np.broadcast_to(shift, b[name].shape), atol=1e-9)
        else:  # pose, shape, spreads, motion, the two hands' relations
            np.testing.assert_allclose(bt[name], b[name], atol=1e-9, err_msg=name)
    # In the vectors (standardised over the video's clips, so a shift of every frame cancels):
    # moving the hands of one clip changes the place slices only.
    layout = _layout()
    emb = hands.embed_tracks(tracks, spans, ASPECT)
    emb_t = hands.embed_tracks(_translate(tracks, dx, dy, frames=slice(2 * PER_CLIP, 3 * PER_CLIP)), spans, ASPECT)
    assert np.isfinite(emb_t).all()
    for name in layout:
        if name in ("place0", "place1"):
            assert np.abs(emb_t[2, layout[name]] - emb[2, layout[name]]).max() > 0.05, name
        else:  # pose, shape, the spreads (place_std too), motion, the two hands' relations, count
            np.testing.assert_allclose(emb_t[:, layout[name]], emb[:, layout[name]], atol=1e-6, err_msg=name)


# --- failure modes on real frames ---------------------------------------------------------------


@pytest.fixture(scope="module")
def wrist_frames(hands, tmp_path_factory):
    """6 s of the gold recording (104-110 s, rubbing the wrists: both hands found in nearly every
    frame) at 8 fps."""
    out = _gold_clip(tmp_path_factory, 6, start=104)
    return decode(out, sample_fps=8.0, frame_size=hands.frame_size).frames


@pytest.fixture(scope="module")
def wrist_tracks(hands, wrist_frames):
    tracks = hands.track(wrist_frames)
    assert (tracks.n_hands == 2).mean() > 0.8  # the reference the failure modes are measured against
    return tracks


def _real_spans(n: int) -> np.ndarray:
    return np.array([[s, s + 16] for s in range(0, n - 15, 8)])  # 2 s clips every 1 s


def _embed_ok(hands, tracks, frames) -> np.ndarray:
    emb = hands.embed_tracks(tracks, _real_spans(len(frames)), frames.shape[2] / frames.shape[1])
    assert emb.shape == (len(_real_spans(len(frames))), hands.dim) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    return emb


@pytest.mark.slow
@needs_video
def test_real_frames_without_hands(hands, wrist_frames, wrist_tracks):
    """The hands painted out with a uniform patch, and a hand-free part of the scene (faucet and
    sink rim) blown up to the frame: no hand found, finite unit vectors (the constant only)."""
    f = wrist_frames
    n, h, w = f.shape[:3]
    painted = f.copy()
    painted[:, int(0.1 * h) :, int(0.3 * w) : int(0.85 * w)] = 128
    x0 = int(0.3 * w)
    band = np.ascontiguousarray(np.repeat(np.repeat(f[:, : h // 5, x0 : x0 + w // 5], 5, axis=1), 5, axis=2))
    assert band.shape == f.shape
    for frames in (painted, band):
        tracks = hands.track(frames)
        assert tracks.n_hands.sum() == 0 and np.isnan(tracks.landmarks).all()
        emb = _embed_ok(hands, tracks, frames)
        np.testing.assert_array_equal(emb, np.eye(hands.dim)[np.full(len(emb), -1)])


@pytest.mark.slow
@needs_video
def test_real_frames_with_one_hand(hands, wrist_frames, wrist_tracks):
    """The right half of the frame blanked out (one hand and the other's fingers gone): at most
    one hand in most frames, and still one in most."""
    f = wrist_frames.copy()
    f[:, :, f.shape[2] // 2 :] = 128
    tracks = hands.track(f)
    assert (tracks.n_hands <= 1).mean() >= 0.9, tracks.n_hands
    assert (tracks.n_hands == 1).mean() >= 0.6, tracks.n_hands
    assert tracks.n_hands.sum() < wrist_tracks.n_hands.sum()
    _embed_ok(hands, tracks, f)


@pytest.mark.slow
@needs_video
def test_real_frames_with_hands_partly_out_of_frame(hands, wrist_frames, wrist_tracks):
    """The picture shifted (edge pixels repeated) so that the hands are half outside, or mostly:
    no crash, finite unit vectors, no more hands found than in the full frames."""
    f = wrist_frames
    n, h, w = f.shape[:3]
    full = int(wrist_tracks.n_hands.sum())
    for axis, frac in ((1, 0.4), (2, 0.4), (1, 0.6)):  # down, right
        s = int(f.shape[axis] * frac)
        g = np.empty_like(f)
        if axis == 1:
            g[:, s:], g[:, :s] = f[:, : h - s], f[:, :1]
        else:
            g[:, :, s:], g[:, :, :s] = f[:, :, : w - s], f[:, :, :1]
        tracks = hands.track(g)
        assert tracks.n_hands.sum() <= full, (axis, frac, tracks.n_hands.sum(), full)
        assert np.isfinite(tracks.landmarks[tracks.present]).all()
        _embed_ok(hands, tracks, g)
        if (axis, frac) == (1, 0.4):  # the hands found do reach past the bottom edge
            below = tracks.landmarks[tracks.present][..., 1].max(axis=1) > 1.0
            assert tracks.present.any() and below.mean() > 0.5


@pytest.mark.slow
@needs_video
def test_real_slots_follow_the_handedness_score(hands, wrist_frames):
    """Slot assignment happens in HandTracker.track (embed_tracks takes the slots as given): with
    the smoothing off, a lone hand goes to slot 0 iff its "Left" score >= 0.5, and of two hands
    the more "Left" one is in slot 0 -- on the full frames and with one half blanked."""
    tracker = HandTracker(handedness_rate=1.0)
    one = wrist_frames.copy()
    one[:, :, one.shape[2] // 2 :] = 128
    for frames in (wrist_frames, one):
        t = tracker.track(frames)
        single, both = t.n_hands == 1, t.n_hands == 2
        assert single.any() or both.any()
        slot = np.where(t.present[single, 0], 0, 1)
        score = t.handedness[single][np.arange(single.sum()), slot]
        assert ((score >= 0.5) == (slot == 0)).all()
        assert (t.handedness[both, 0] >= t.handedness[both, 1]).all()

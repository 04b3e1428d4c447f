"""No crash on any input a decoder accepts: property-based tests over generated videos (odd
sizes, 4:3, 9:16, tiny to 4K, four codecs, 1-120 fps, variable rate, flat, static, text-only
and very dark content, a single frame). Every file either embeds to finite unit vectors or is
refused with a VideoDecodeError naming the file."""

import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sopilot_pipelines.core.embedders import DEFAULT_EMBEDDER, get_embedder
from sopilot_pipelines.core.embedding import embed_video
from sopilot_pipelines.core.scoring import score
from sopilot_pipelines.core.video import ClipSettings, VideoDecodeError, raw_rgb_input

CODECS = {  # (ffmpeg args, container, needs even sizes)
    "h264": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p"], ".mp4", False),
    "mpeg4": (["-c:v", "mpeg4", "-q:v", "5", "-pix_fmt", "yuv420p"], ".avi", True),
    "vp9": (
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-pix_fmt", "yuv444p"],
        ".webm",
        False,
    ),
    "mjpeg": (["-c:v", "mjpeg", "-q:v", "6", "-pix_fmt", "yuvj444p"], ".avi", False),
}
SIZES = [(32, 24), (33, 25), (640, 480), (270, 480), (77, 131), (1281, 719), (200, 200)]


def _frames(content: str, n: int, w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    base = rng.integers(0, 255, 3)
    for i in range(n):
        if content == "flat":
            f = np.broadcast_to(base, (h, w, 3))
        elif content == "static":
            f = ((xx // max(1, w // 7) + yy // max(1, h // 5)) % 2 * 200 + 30)[..., None].repeat(3, -1)
        elif content == "text":  # black glyph-like bars on white, a new line every few frames
            f = np.full((h, w, 3), 245)
            line = (i // 4) % 5
            f[(yy % 9 < 3) & (yy // 9 <= line) & ((xx * 7 + yy) % 11 < 6)] = 10
        elif content == "dark":
            f = (rng.integers(0, 6, (h, w, 1)) + (xx[..., None] * 3 // max(w, 1))).repeat(3, -1)
        else:  # a square moving across with a hard cut half-way (a big global change)
            f = np.full((h, w, 3), 90 if i < n // 2 else 170)
            x0 = int(i * w / max(n, 1))
            f[h // 3 : h // 3 + max(2, h // 4), x0 : x0 + max(2, w // 5)] = (220, 40, 40)
        out[i] = f
    return out


def _encode(path, frames: np.ndarray, fps: float, codec: str, vfr: bool) -> None:
    args, _, _ = CODECS[codec]
    n, h, w, _ = frames.shape
    vf = ["-vf", "select='lt(random(0),0.6)+eq(n,0)'", "-fps_mode", "vfr"] if vfr else []
    cmd = [
        *raw_rgb_input(w, h, fps),
        *vf,
        *args,
        str(path),
    ]
    subprocess.run(cmd, input=frames.tobytes(), check=True, capture_output=True)


def _check(path, embedder) -> None:
    try:
        v = embed_video(path, ClipSettings(), embedder)
    except VideoDecodeError as exc:
        assert path.name in str(exc)
        return
    assert v.n_clips >= 1 and v.embeddings.shape[1] == embedder.dim
    assert np.isfinite(v.embeddings).all()
    assert np.allclose(np.linalg.norm(v.embeddings, axis=1), 1.0, atol=1e-3)
    r = score(v, v).result  # a video against itself: no crash, nothing deviates
    assert r["score"] == 100 and r["deviations"] == []


@pytest.mark.slow
@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    codec=st.sampled_from(sorted(CODECS)),
    size=st.sampled_from(SIZES),
    fps=st.floats(1.0, 120.0),
    seconds=st.floats(0.05, 6.0),
    content=st.sampled_from(["flat", "static", "text", "dark", "moving"]),
    vfr=st.booleans(),
    seed=st.integers(0, 1000),
)
@example(
    codec="mpeg4", size=(640, 480), fps=24.0, seconds=5.0, content="moving", vfr=False, seed=1
)  # 4:3 MPEG-4 Part 2
@example(codec="h264", size=(32, 24), fps=10.0, seconds=0.05, content="static", vfr=False, seed=2)  # one frame
@example(codec="vp9", size=(270, 480), fps=120.0, seconds=2.0, content="dark", vfr=True, seed=3)  # 9:16, 120 fps, VFR
@example(
    codec="vp9", size=(32, 24), fps=30.0, seconds=3.0, content="flat", vfr=False, seed=7
)  # three clips, one step: scored 50 against itself (execution rule with no other step to compare)
def test_any_decodable_video_embeds_and_scores(tmp_path_factory, codec, size, fps, seconds, content, vfr, seed):
    w, h = size
    if CODECS[codec][2]:
        w, h = w + w % 2, h + h % 2
    n = max(1, int(round(seconds * fps)))
    path = tmp_path_factory.mktemp("any") / f"v_{codec}_{w}x{h}{CODECS[codec][1]}"
    _encode(path, _frames(content, n, w, h, seed), fps, codec, vfr)
    _check(path, get_embedder(DEFAULT_EMBEDDER))


@pytest.mark.slow
def test_a_4k_video_embeds(tmp_path):
    path = tmp_path / "uhd.mp4"
    _encode(path, _frames("moving", 6, 3840, 2160, 0), 3.0, "h264", False)
    _check(path, get_embedder(DEFAULT_EMBEDDER))


@pytest.mark.slow
def test_a_big_camera_jump_in_4_3_mpeg4_does_not_crash_the_builtin_embedder(tmp_path):
    """The instruction-slide case that crashed `_shift_frames` (a half-resolution shift doubled
    past the padding): full-frame content that jumps between frames."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 255, (480, 640 + 80, 3), dtype=np.uint8)
    frames = np.stack([base[:, (i * 9) % 80 : (i * 9) % 80 + 640] for i in range(60)])
    path = tmp_path / "slides.avi"
    _encode(path, frames, 12.0, "mpeg4", False)
    _check(path, get_embedder("builtin"))

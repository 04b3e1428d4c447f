"""Tests for sopilot_pipelines.core.video, on small videos generated with the shipped ffmpeg."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from sopilot_pipelines.core.video import (
    Clip,
    ClipSettings,
    DecodedVideo,
    VideoDecodeError,
    VideoInfo,
    clip_spans,
    container_suffix,
    cut_clips,
    decode,
    probe,
    write_proxy,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

# Luma of a geq-generated frame whose limited-range Y is 16 + LUMA_PER_SEC * t, seen as RGB.
LUMA_PER_SEC = 60.0
RGB_PER_SEC = LUMA_PER_SEC * 255.0 / 219.0


def ffmpeg(*args: str) -> None:
    proc = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def vdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


def make(vdir: Path, name: str, source: str, *out_args: str, vf: str | None = None) -> Path:
    """Encode the lavfi ``source`` (with optional ``vf``) to ``vdir/name`` (cached per module)."""
    path = vdir / name
    if not path.exists():
        args = ["-f", "lavfi", "-i", source]
        if vf:
            args += ["-vf", vf]
        ffmpeg(*args, *out_args, str(path))
    return path


def h264(*extra: str) -> tuple[str, ...]:
    return ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra)


def time_ramp(size: str, rate: str, seconds: float) -> tuple[str, str]:
    """A grey video whose brightness encodes its timestamp (RGB ~= RGB_PER_SEC * t)."""
    return (
        f"color=black:s={size}:r={rate}:d={seconds}",
        f"format=yuv420p,geq=lum='16+{LUMA_PER_SEC}*T':cb=128:cr=128",
    )


def frame_means(video: DecodedVideo) -> np.ndarray:
    return video.frames.reshape(len(video.frames), -1).mean(axis=1)


def assert_shows_time(video: DecodedVideo, times: np.ndarray, max_lag: float) -> None:
    """Each frame of a time_ramp video shows content from [t - max_lag, t] (+-3 of coding noise)."""
    shown = frame_means(video) / RGB_PER_SEC  # the timestamp the frame's content comes from
    lag = times - shown
    noise = 3.0 / RGB_PER_SEC
    assert lag.min() >= -noise, (lag.min(), lag)
    assert lag.max() <= max_lag + noise, (lag.max(), lag)


# ------------------------------------------------------------------------------------------
# Frame rates, resolutions, containers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rate, expected_fps",
    [("12", 12.0), ("24", 24.0), ("25", 25.0), ("30000/1001", 29.97), ("30", 30.0), ("60", 60.0)],
)
def test_frame_rates_sample_at_requested_fps_with_correct_times(vdir, rate, expected_fps):
    source, vf = time_ramp("64x48", rate, 2.5)
    path = make(vdir, f"ramp_{rate.replace('/', '_')}.mp4", source, *h264("-crf", "10"), vf=vf)

    info = probe(path)
    assert info.source_fps == pytest.approx(expected_fps, abs=0.01)
    assert (info.width, info.height, info.rotation, info.codec) == (64, 48, 0, "h264")
    assert info.duration_sec == pytest.approx(2.5, abs=0.05)

    video = decode(path, sample_fps=8.0)
    assert video.sampled_fps == 8.0
    assert video.frames.dtype == np.uint8
    assert video.frames.shape[1:] == (120, 160, 3)
    assert abs(len(video.frames) - 2.5 * 8) <= 1
    np.testing.assert_allclose(video.times, np.arange(len(video.frames)) / 8.0)
    # Sampled frame i is the source frame on screen at i/8 s, i.e. the latest one at or before
    # it: the brightness ramp says which one it was.
    assert_shows_time(video, video.times, 1.0 / expected_fps)


def test_sample_fps_controls_frame_count(vdir):
    source, vf = time_ramp("64x48", "30", 3)
    path = make(vdir, "ramp3s.mp4", source, *h264("-crf", "10"), vf=vf)
    for fps in (2.0, 5.0, 15.0):
        video = decode(path, sample_fps=fps)
        assert abs(len(video.frames) - 3 * fps) <= 1, fps
        assert video.times[1] == pytest.approx(1.0 / fps)
        assert_shows_time(video, video.times, 1.0 / 30)


def test_variable_frame_rate(vdir):
    # 10 fps for the first second (two of every three frames dropped), then 30 fps; the
    # timestamps are kept (-fps_mode vfr), so the file has 70 frames over 3 s.
    source, vf = time_ramp("64x48", "30", 3)
    path = make(
        vdir,
        "vfr.mp4",
        source,
        "-fps_mode",
        "vfr",
        *h264("-crf", "10"),
        vf=vf + ",select='gte(t,1)+not(mod(n,3))'",
    )
    assert count_source_frames(path) == 70  # really variable-rate: 10 + 60 frames in 3 s
    info = probe(path)
    assert 10.0 < info.source_fps < 30.0  # the average rate of a variable-rate stream
    assert info.duration_sec == pytest.approx(3.0, abs=0.05)

    video = decode(path, sample_fps=8.0)
    assert abs(len(video.frames) - 24) <= 1
    # The frame on screen at t is at most 100 ms old in the 10 fps part and 33 ms in the rest.
    first = video.times < 1.0
    assert_shows_time(_subset(video, first), video.times[first], 0.1)
    assert_shows_time(_subset(video, ~first), video.times[~first], 1.0 / 30)
    # Reading the 70 frames as if they were constant-rate would put the last frame at 2.33 s:
    # the ramp at the last frame proves the real timestamps were used.
    assert frame_means(video)[-1] / RGB_PER_SEC > 2.8


def count_source_frames(path: Path) -> int:
    proc = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    return int(re.findall(r"frame=\s*(\d+)", proc.stderr)[-1])


def _subset(video: DecodedVideo, mask: np.ndarray) -> DecodedVideo:
    return DecodedVideo(info=video.info, frames=video.frames[mask], sampled_fps=video.sampled_fps)


def test_nonzero_start_time_and_single_frame(vdir):
    # MPEG-TS streams start at 1.4 s or so; frame times still count from the first frame.
    source, vf = time_ramp("64x48", "30", 2)
    mp4 = make(vdir, "ramp2s.mp4", source, *h264("-crf", "10"), vf=vf)
    ts = vdir / "ramp2s.ts"
    ffmpeg("-i", str(mp4), "-c", "copy", str(ts))
    video = decode(ts)
    assert probe(ts).duration_sec == pytest.approx(2.0, abs=0.05)
    assert abs(len(video.frames) - 16) <= 1
    assert_shows_time(video, video.times, 1.0 / 30)

    one = vdir / "one_frame.mp4"
    ffmpeg("-i", str(mp4), "-frames:v", "1", "-c", "copy", str(one))
    video = decode(one)
    assert len(video.frames) == 1
    clips = cut_clips(video, ClipSettings())
    assert [(c.start_frame, c.end_frame, c.start_sec) for c in clips] == [(0, 1, 0.0)]
    assert 0 < clips[0].end_sec <= 1 / 8


@pytest.mark.parametrize(
    "size, pix_fmt",
    [("320x240", "yuv420p"), ("75x41", "yuv444p"), ("97x33", "yuv444p"), ("48x96", "yuv420p"), ("17x9", "yuv444p")],
)
def test_resolutions_including_odd_and_portrait(vdir, size, pix_fmt):
    width, height = map(int, size.split("x"))
    # testsrc2 only makes even sizes: crop an odd size out of a larger one.
    path = make(
        vdir,
        f"size_{size}.mp4",
        f"testsrc2=s={width + 1}x{height + 1}:r=25:d=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        pix_fmt,
        vf=f"format=yuv444p,crop={width}:{height}:0:0",
    )
    info = probe(path)
    assert (info.width, info.height) == (width, height)
    video = decode(path, frame_size=(40, 30))
    assert video.frames.shape == (8, 30, 40, 3)
    assert video.frames.std() > 20  # the pattern came through, not a blank frame
    assert video.info == info


def test_frame_size_is_width_height(vdir):
    path = make(vdir, "portrait.mp4", "testsrc2=s=48x96:r=25:d=1", *h264())
    video = decode(path, frame_size=(32, 64))
    assert video.frames.shape[1:] == (64, 32, 3)


@pytest.mark.parametrize(
    "name, codec_args, codec",
    [
        ("mpeg4.mkv", ("-c:v", "mpeg4", "-q:v", "3"), "mpeg4"),
        ("vp9.webm", ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"), "vp9"),
        ("mjpeg.avi", ("-c:v", "mjpeg", "-q:v", "3"), "mjpeg"),
        ("h264.mov", h264(), "h264"),
    ],
)
def test_other_containers_and_codecs(vdir, name, codec_args, codec):
    path = make(vdir, name, "testsrc2=s=160x120:r=24:d=2", *codec_args)
    info = probe(path)
    assert info.codec == codec
    assert (info.width, info.height) == (160, 120)
    assert info.source_fps == pytest.approx(24.0)
    assert info.duration_sec == pytest.approx(2.0, abs=0.1)
    video = decode(path)
    assert abs(len(video.frames) - 16) <= 1
    # Same content as the mp4 decode of the same pattern, up to coding loss.
    reference = decode(make(vdir, "ref_160x120.mp4", "testsrc2=s=160x120:r=24:d=2", *h264("-crf", "12")))
    n = min(len(video.frames), len(reference.frames))
    diff = np.abs(video.frames[:n].astype(np.int16) - reference.frames[:n]).mean()
    assert diff < 12.0


VP9 = ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k")


@pytest.mark.parametrize(
    "name, codec_args, claimed, stored",
    [
        ("avi", ("-c:v", "mpeg4"), ".mp4", ".avi"),  # AVI inside, named .mp4 by its sender
        ("mkv", h264(), "", ".mkv"),  # no extension at all
        ("webm", VP9, ".avi", ".webm"),  # VP9 in Matroska: WebM
        ("webm", VP9, ".mkv", ".mkv"),  # the Matroska demuxer reads .mkv: the sender's is kept
        ("mov", h264(), ".MOV", ".mov"),  # the sender's, lower-cased
        ("mp4", h264(), ".avi", ".mp4"),
        ("mpg", ("-c:v", "mpeg2video"), ".mp4", ".mpg"),
        ("ts", h264(), ".bin", ".ts"),
        ("h264", h264(), ".h264", ".h264"),  # a raw stream, no container: the sender's
    ],
)
def test_a_stored_original_is_named_by_its_probed_container(vdir, name, codec_args, claimed, stored):
    """Upload and inbox store an original under its container's extension (so /file serves the
    right media type), from ffmpeg's probe, not from what the sender called it."""
    path = make(vdir, f"container.{name}", "testsrc2=s=160x120:r=24:d=1", *codec_args)
    assert container_suffix(probe(path), claimed) == stored


def test_audio_track_is_ignored(vdir):
    path = vdir / "with_audio.mp4"
    if not path.exists():
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=64x48:r=25:d=2",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            *h264(),
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        )
    info = probe(path)
    assert info.codec == "h264"
    assert abs(len(decode(path).frames) - 16) <= 1


# ------------------------------------------------------------------------------------------
# Rotation
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def red_top_blue_bottom(vdir) -> Path:
    """64x48 landscape frames: top half red, bottom half blue."""
    return make(
        vdir,
        "red_top.mp4",
        "color=red:s=64x24:r=25:d=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv444p",
        "-crf",
        "10",
        vf="pad=64:48:0:0:blue",
    )


def test_unrotated_reference_orientation(red_top_blue_bottom):
    video = decode(red_top_blue_bottom, frame_size=(64, 48))
    frame = video.frames[0].astype(int)
    assert frame[:20, :, 0].mean() > 200 and frame[:20, :, 2].mean() < 50  # red on top
    assert frame[-20:, :, 2].mean() > 200 and frame[-20:, :, 0].mean() < 50  # blue below


# display_rotation is ffmpeg's counter-clockwise angle; phones write "rotate=90" (clockwise),
# which ffmpeg shows as a display matrix rotation of -90 degrees.
@pytest.mark.parametrize(
    "display_rotation, rotation, red_side",
    [("-90", 90, "right"), ("90", 270, "left"), ("180", 180, "bottom")],
)
def test_rotation_metadata_gives_upright_display_size_frames(
    vdir, red_top_blue_bottom, display_rotation, rotation, red_side
):
    path = vdir / f"rot_{display_rotation}.mp4"
    ffmpeg("-display_rotation", display_rotation, "-i", str(red_top_blue_bottom), "-c", "copy", str(path))

    info = probe(path)
    assert info.rotation == rotation
    if rotation in (90, 270):
        assert (info.width, info.height) == (48, 64)  # display orientation: portrait
    else:
        assert (info.width, info.height) == (64, 48)

    # Decode at the display size so the check is not blurred by an aspect change.
    video = decode(path, frame_size=(info.width, info.height))
    frame = video.frames[0].astype(int)
    h, w = frame.shape[:2]
    halves = {
        "top": (frame[: h // 2 - 2], frame[h // 2 + 2 :]),
        "bottom": (frame[h // 2 + 2 :], frame[: h // 2 - 2]),
        "left": (frame[:, : w // 2 - 2], frame[:, w // 2 + 2 :]),
        "right": (frame[:, w // 2 + 2 :], frame[:, : w // 2 - 2]),
    }
    red, blue = halves[red_side]
    # Had the rotation been ignored, red would still be on top (and each of these halves would
    # be half red, half blue).
    assert red[..., 0].mean() > 200 and red[..., 2].mean() < 50
    assert blue[..., 2].mean() > 200 and blue[..., 0].mean() < 50


# ------------------------------------------------------------------------------------------
# Clips
# ------------------------------------------------------------------------------------------


def synthetic(n: int, fps: float = 8.0, value: int = 0, duration: float | None = None) -> DecodedVideo:
    frames = np.full((n, 12, 16, 3), value, dtype=np.uint8)
    dur = n / fps if duration is None else duration
    info = VideoInfo(
        path="synthetic.mp4", width=16, height=12, source_fps=30.0, duration_sec=dur, rotation=0, codec="h264"
    )
    return DecodedVideo(info=info, frames=frames, sampled_fps=fps)


def test_clips_cover_the_video_with_correct_times(vdir):
    path = make(vdir, "clips5s.mp4", "testsrc2=s=160x120:r=30:d=5", *h264())
    video = decode(path, sample_fps=8.0)
    assert len(video.frames) == 40
    clips = cut_clips(video, ClipSettings(sample_fps=8.0, clip_seconds=2.0, stride_seconds=0.5))
    # 16-frame windows every 4 frames: starts 0, 4, ..., 24; the last ends exactly at frame 40.
    assert [(c.start_frame, c.end_frame) for c in clips] == [(s, s + 16) for s in range(0, 25, 4)]
    assert [c.index for c in clips] == list(range(len(clips)))
    for c in clips:
        assert c.start_sec == pytest.approx(c.start_frame / 8.0)
        assert c.end_sec == pytest.approx(c.end_frame / 8.0)
        assert c.end_sec - c.start_sec == pytest.approx(2.0)
        assert c.quality == ()
    assert clips[0].start_sec == 0.0
    assert clips[-1].end_sec == pytest.approx(video.info.duration_sec)

    spans = clip_spans(clips)
    assert spans.dtype == np.int64 and spans.shape == (len(clips), 2)
    np.testing.assert_array_equal(spans, [[c.start_frame, c.end_frame] for c in clips])


@pytest.mark.parametrize(
    "n, expected",
    [
        (40, [(s, s + 16) for s in range(0, 25, 4)]),
        # a 1-frame tail (<= half a stride) joins the last clip
        (41, [(s, s + 16) for s in range(0, 21, 4)] + [(24, 41)]),
        # a 3-frame tail (> half a stride) gets its own clip aligned to the end
        (43, [(s, s + 16) for s in range(0, 25, 4)] + [(27, 43)]),
        (16, [(0, 16)]),  # exactly one clip
        (5, [(0, 5)]),  # shorter than one clip
        (1, [(0, 1)]),
    ],
)
def test_clip_boundaries(n, expected):
    clips = cut_clips(synthetic(n, value=128), ClipSettings())
    assert [(c.start_frame, c.end_frame) for c in clips] == expected
    covered = np.zeros(n, bool)
    for c in clips:
        covered[c.start_frame : c.end_frame] = True
    assert covered.all()
    assert clips[-1].end_frame == n
    assert clips[-1].end_sec == pytest.approx(n / 8.0)


def test_clip_end_clamped_to_duration():
    # 41 sampled frames but the container says the video ends at 5.05 s (< 41/8 = 5.125 s).
    clips = cut_clips(synthetic(41, duration=5.05), ClipSettings())
    assert clips[-1].end_sec == pytest.approx(5.05)
    assert all(c.end_sec <= 5.05 for c in clips)


def test_clip_settings_in_other_units():
    clips = cut_clips(synthetic(30, fps=10.0), ClipSettings(sample_fps=10.0, clip_seconds=1.0, stride_seconds=1.0))
    assert [(c.start_frame, c.end_frame) for c in clips] == [(0, 10), (10, 20), (20, 30)]
    assert [(c.start_sec, c.end_sec) for c in clips] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]


def test_zero_frames_raise():
    with pytest.raises(VideoDecodeError, match="synthetic.mp4"):
        cut_clips(synthetic(0, duration=1.0), ClipSettings())


def test_clip_spans_of_nothing():
    assert clip_spans([]).shape == (0, 2)
    assert clip_spans([Clip(0, 3, 9, 0.375, 1.125, ())]).tolist() == [[3, 9]]


# ------------------------------------------------------------------------------------------
# Quality flags
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, source, vf, flag",
    [
        ("black.mp4", "color=black:s=160x120:r=25:d=3", None, ("dark",)),
        ("white.mp4", "color=white:s=160x120:r=25:d=3", None, ("overexposed",)),
        ("blurred.mp4", "testsrc2=s=320x240:r=25:d=3", "gblur=sigma=16", ("blurry",)),
        ("sharp.mp4", "testsrc2=s=320x240:r=25:d=3", None, ()),
        ("dim_but_ok.mp4", "testsrc2=s=320x240:r=25:d=3", "eq=brightness=-0.3", ()),
    ],
)
def test_quality_flags(vdir, name, source, vf, flag):
    path = make(vdir, name, source, *h264(), vf=vf)
    clips = cut_clips(decode(path), ClipSettings())
    assert len(clips) >= 2
    assert {c.quality for c in clips} == {flag}


def test_quality_is_per_clip():
    video = synthetic(48, value=128)
    rng = np.random.default_rng(0)
    video.frames[:] = rng.integers(0, 256, size=video.frames.shape, dtype=np.uint8)  # sharp noise
    video.frames[32:] = 5  # the last 2 s go dark
    clips = cut_clips(video, ClipSettings())
    assert clips[0].quality == ()
    assert clips[-1].quality == ("dark",)


# ------------------------------------------------------------------------------------------
# Browser proxy
# ------------------------------------------------------------------------------------------


def stream_line(path: Path) -> str:
    """ffmpeg's description of the file's video stream (codec, profile, pixel format, size)."""
    err = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in err.splitlines() if "Video:" in line)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order."""
    data, boxes, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8].decode("latin-1")
        if size == 1:  # a 64-bit size follows the type
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        boxes.append(kind)
        at += size if size else len(data)
    return boxes


def key_frames(path: Path) -> int:
    """How many key frames the file's video has (the decoder told to skip the others)."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", "-skip_frame", "nokey", "-i", str(path), "-fps_mode", "passthrough"]
        + ["-f", "framemd5", "-"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return sum(1 for line in out.stdout.splitlines() if line and not line.startswith("#"))


@pytest.mark.slow
def test_proxy_of_mpeg4_avi_is_browser_h264_on_the_same_time_axis(vdir, tmp_path):
    # MPEG-4 Part 2 in AVI, 1280x720: neither codec nor container plays in Chromium
    source, vf = time_ramp("1280x720", "30", 3)
    src = make(vdir, "ramp_720p.avi", source, "-c:v", "mpeg4", "-q:v", "2", vf=vf)
    dest = tmp_path / "proxies" / "video_1.mp4"
    assert write_proxy(src, dest) > 0
    assert [p.name for p in dest.parent.iterdir()] == ["video_1.mp4"]  # no temp file left beside it
    info = probe(dest)
    assert (info.codec, info.width, info.height, info.rotation) == ("h264", 960, 540, 0)
    line = stream_line(dest)
    assert "(High)" in line and "yuv420p" in line, line
    boxes = top_level_boxes(dest)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # +faststart: playable before it is all fetched
    assert key_frames(dest) == 3  # one a second: a seek decodes at most a second
    assert info.duration_sec == pytest.approx(probe(src).duration_sec, abs=0.05)
    # frame i of the proxy shows the same instant as frame i of the original: the steps and the
    # alignment (times in the original) hold in the proxy the browser plays
    video = decode(dest, sample_fps=8.0)
    assert abs(len(video.frames) - 24) <= 1
    assert_shows_time(video, video.times, 1.0 / 30)


def test_proxy_has_even_dimensions_and_is_upright(vdir, tmp_path, red_top_blue_bottom):
    odd = make(
        vdir,
        "size_333x201.mp4",
        "testsrc2=s=334x202:r=25:d=1",
        *h264(),
        vf="crop=333:201:0:0",
    )
    write_proxy(odd, tmp_path / "odd.mp4")
    info = probe(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (332, 200) and "yuv420p" in stream_line(tmp_path / "odd.mp4")
    # a phone's portrait video (landscape frames, rotate=90): the proxy's frames are upright
    rotated = vdir / "rot_proxy_src.mp4"
    ffmpeg("-display_rotation", "-90", "-i", str(red_top_blue_bottom), "-c", "copy", str(rotated))
    write_proxy(rotated, tmp_path / "rot.mp4")
    info = probe(tmp_path / "rot.mp4")
    assert (info.width, info.height, info.rotation) == (48, 64, 0)
    frame = decode(tmp_path / "rot.mp4", frame_size=(48, 64)).frames[0].astype(int)
    assert frame[:, 26:, 0].mean() > 200 and frame[:, :22, 2].mean() > 200  # red right, blue left


def test_proxy_of_a_non_video_raises_and_writes_nothing(tmp_path):
    path = tmp_path / "notes.avi"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoDecodeError, match="notes.avi"):
        write_proxy(path, tmp_path / "out" / "video_1.mp4")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


def assert_decode_error(path: Path, reason: str) -> None:
    for fn in (probe, decode):
        with pytest.raises(VideoDecodeError) as excinfo:
            fn(path)
        message = str(excinfo.value)
        assert path.name in message
        assert re.search(reason, message, re.I), message
        assert isinstance(excinfo.value, ValueError)


def test_text_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    assert_decode_error(path, "invalid data|moov atom")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert_decode_error(path, "empty")


def test_missing_file(tmp_path):
    assert_decode_error(tmp_path / "nowhere.mp4", "not found")


def test_directory(tmp_path):
    path = tmp_path / "folder.mp4"
    path.mkdir()
    assert_decode_error(path, "not a regular file")


def test_audio_only(vdir):
    path = vdir / "voice.m4a"
    if not path.exists():
        ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(path))
    assert_decode_error(path, "no video stream")


def test_still_image(vdir):
    path = vdir / "still.png"
    if not path.exists():
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48", "-frames:v", "1", str(path))
    assert_decode_error(path, "still image")


def test_truncated_mp4_without_index(vdir, tmp_path):
    # ffmpeg writes the moov index last: cutting the file loses it.
    full = make(vdir, "long.mp4", "testsrc2=s=160x120:r=25:d=4", *h264())
    path = tmp_path / "cut.mp4"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert_decode_error(path, "moov atom")


@pytest.mark.parametrize(
    "name, out_args",
    [
        ("faststart.mp4", h264("-movflags", "+faststart")),
        ("stream.webm", ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8")),
    ],
)
def test_truncated_file_with_index_first(vdir, tmp_path, name, out_args):
    # The header survives, so probing works, but half of the frames are gone.
    full = make(vdir, name, "testsrc2=s=160x120:r=25:d=4", *out_args)
    assert len(decode(full).frames) == 32
    path = tmp_path / f"half_{name}"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert probe(path).duration_sec == pytest.approx(4.0, abs=0.1)
    with pytest.raises(VideoDecodeError, match=rf"{re.escape(path.name)}.*truncated"):
        decode(path)


def test_name_with_colon_and_dash(vdir, tmp_path):
    src = make(vdir, "plain.mp4", "testsrc2=s=64x48:r=25:d=1", *h264())
    path = tmp_path / "-odd:name.mp4"
    path.write_bytes(src.read_bytes())
    assert len(decode(path).frames) == 8


# ------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------


def test_clip_settings_defaults_and_env(monkeypatch):
    from sopilot_pipelines.settings import VideoSettings

    for var in ("SOPILOT_SAMPLE_FPS", "SOPILOT_CLIP_SECONDS", "SOPILOT_CLIP_STRIDE_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    assert VideoSettings().clips() == ClipSettings(8.0, 2.0, 0.5)
    monkeypatch.setenv("SOPILOT_SAMPLE_FPS", "10")
    monkeypatch.setenv("SOPILOT_CLIP_SECONDS", "3")
    monkeypatch.setenv("SOPILOT_CLIP_STRIDE_SECONDS", "1.5")
    assert VideoSettings().clips() == ClipSettings(sample_fps=10.0, clip_seconds=3.0, stride_seconds=1.5)


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("SOPILOT_SAMPLE_FPS", "fast", "SOPILOT_SAMPLE_FPS"),
        ("SOPILOT_SAMPLE_FPS", "0", "SOPILOT_SAMPLE_FPS"),
        ("SOPILOT_CLIP_SECONDS", "-2", "SOPILOT_CLIP_SECONDS"),
        ("SOPILOT_CLIP_STRIDE_SECONDS", "nan", "SOPILOT_CLIP_STRIDE_SECONDS"),
        (
            "SOPILOT_CLIP_STRIDE_SECONDS",
            "5",
            r"SOPILOT_CLIP_STRIDE_SECONDS \(5.0\) must not exceed SOPILOT_CLIP_SECONDS",
        ),
        ("SOPILOT_FFMPEG_THREADS", "-1", "SOPILOT_FFMPEG_THREADS"),
        ("SOPILOT_FRAME_BUFFER_MB", "lots", "SOPILOT_FRAME_BUFFER_MB"),
    ],
)
def test_clip_settings_env_validation(monkeypatch, var, value, message):
    from sopilot_pipelines.settings import settings

    for v in ("SOPILOT_SAMPLE_FPS", "SOPILOT_CLIP_SECONDS", "SOPILOT_CLIP_STRIDE_SECONDS"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, value)
    settings.cache_clear()
    try:
        with pytest.raises(ValueError, match=message):
            settings()
    finally:
        settings.cache_clear()


def test_clip_settings_validate_direct_construction():
    with pytest.raises(ValueError, match="must not exceed"):
        ClipSettings(clip_seconds=1.0, stride_seconds=2.0)
    with pytest.raises(ValueError, match="sample_fps"):
        ClipSettings(sample_fps=0)
    assert ClipSettings(clip_seconds=1.0, stride_seconds=1.0).stride_seconds == 1.0

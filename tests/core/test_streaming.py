"""Long videos stream through decoding and embedding: memory holds per-frame features, not frames.

A video whose sampled frames fit in the frame buffer is decoded whole; a longer one (forced
here with ``decode=DecodeSettings(frame_buffer_mb=0)``) goes through ``VideoStream.chunks`` and the embedders'
accumulators. Both must give the same clips and (up to the reference frames the builtin
embedder reads by seeking) the same vectors.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import imageio_ffmpeg
import numpy as np
import pytest

from sopilot_pipelines.core import synth
from sopilot_pipelines.core.embedders import DEFAULT_EMBEDDER, get_embedder
from sopilot_pipelines.core.embedding import embed_video
from sopilot_pipelines.core.video import ClipSettings, DecodeSettings, VideoDecodeError, VideoStream, decode

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _encode(path, source: str, *extra: str):
    subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            source,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            *extra,
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def shaky(tmp_path_factory):
    """A generated procedure with camera shake (the builtin embedder registers against its
    reference frames), 320x240."""
    path = tmp_path_factory.mktemp("stream") / "gold.mp4"
    synth.render(synth.default_procedure(), "gold", path, fps=24.0, size=(320, 240))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", ["builtin", "deep", DEFAULT_EMBEDDER])
def test_streamed_video_embeds_like_one_held_in_memory(shaky, name):
    embedder = get_embedder(name)
    whole = embed_video(shaky, ClipSettings(), embedder)
    streamed = embed_video(shaky, ClipSettings(), embedder, decode=DecodeSettings(frame_buffer_mb=0))
    assert streamed.model == whole.model
    np.testing.assert_array_equal(streamed.clip_starts, whole.clip_starts)
    np.testing.assert_array_equal(streamed.clip_ends, whole.clip_ends)
    assert streamed.quality == whole.quality
    assert streamed.duration_sec == whole.duration_sec
    cos = np.einsum("ij,ij->i", streamed.embeddings, whole.embeddings)
    assert cos.min() > 0.995, f"{name}: least cosine between streamed and in-memory clip vectors {cos.min():.4f}"


@pytest.mark.slow
def test_embedding_in_memory_does_not_depend_on_how_frames_are_chunked(shaky):
    """The accumulators re-chunk what they are given: the caller's chunk size changes nothing."""
    embedder = get_embedder("builtin")
    video = decode(shaky, frame_size=embedder.frame_size)
    spans = np.array([[0, 16], [8, 24], [len(video.frames) - 16, len(video.frames)]])
    reference = embedder.embed(video.frames, spans)
    for chunk in (1, 37, 1000):
        acc = embedder.begin(_Frames(video.frames))
        for s in range(0, len(video.frames), chunk):
            acc.add(video.frames[s : s + chunk])
        np.testing.assert_array_equal(acc.finish(spans), reference)


class _Frames:
    def __init__(self, frames):
        self.frames, self.n_hint = frames, len(frames)

    def frames_at(self, idx):
        return self.frames[np.asarray(idx)]


def test_frames_read_by_seeking_are_the_streamed_frames(tmp_path):
    path = _encode(tmp_path / "ramp.mp4", "testsrc2=s=160x120:r=25:d=6")
    stream = VideoStream(path, 8.0, (160, 120))
    frames = np.concatenate(list(stream.chunks(chunk_frames=10)))
    assert stream.n_frames == len(frames) == 48 == stream.n_hint
    # 8 and 40 fall exactly on a source frame's time (1 s, 5 s): that frame, not the one before it
    picked = stream.frames_at(np.array([0, 8, 17, 40, 47, 60]))
    diff = np.abs(picked.astype(int) - frames[[0, 8, 17, 40, 47, 47]].astype(int)).mean(axis=(1, 2, 3))
    assert diff.max() < 2.0, diff  # the same source frames (past the end: the last one)


@pytest.mark.slow
def test_a_truncated_file_fails_with_its_name_when_streamed(tmp_path):
    full = _encode(tmp_path / "full.mp4", "testsrc2=s=160x120:r=25:d=4", "-movflags", "+faststart")
    path = tmp_path / "half.mp4"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match=rf"{re.escape(path.name)}.*truncated"):
        embed_video(path, ClipSettings(), get_embedder("builtin"), decode=DecodeSettings(frame_buffer_mb=0))


_PEAK = textwrap.dedent(
    """
    import sys, tracemalloc
    from sopilot_pipelines.core.embedders import get_embedder
    from sopilot_pipelines.core.embedding import embed_video
    from sopilot_pipelines.core.video import ClipSettings, DecodeSettings
    embedder = get_embedder("builtin")
    tracemalloc.start()
    v = embed_video(sys.argv[1], ClipSettings(), embedder, DecodeSettings(frame_buffer_mb=float(sys.argv[2])))
    print(v.n_clips, tracemalloc.get_traced_memory()[1])
    """
)


def _peak_bytes(path, budget_mb: float) -> int:
    """Peak traced (Python and numpy) memory of embedding ``path``, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path), str(budget_mb)], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[1])


@pytest.mark.slow
def test_memory_stays_bounded_on_a_long_video(tmp_path):
    """Streamed, 4 more minutes of video add little memory; held whole, they add their frames."""
    short = _encode(tmp_path / "short.mp4", "testsrc2=s=320x240:r=8:d=120")
    long = _encode(tmp_path / "long.mp4", "testsrc2=s=320x240:r=8:d=360")
    w, h = get_embedder("builtin").frame_size
    extra_frame_bytes = (360 - 120) * 8 * w * h * 3  # 110 MB at 160x120
    streamed = _peak_bytes(long, 0) - _peak_bytes(short, 0)
    whole = _peak_bytes(long, 1 << 20) - _peak_bytes(short, 1 << 20)  # budgets in MB
    assert whole > 0.9 * extra_frame_bytes, (whole, extra_frame_bytes)  # the measure sees frames
    assert streamed < 0.25 * extra_frame_bytes, (streamed, extra_frame_bytes)

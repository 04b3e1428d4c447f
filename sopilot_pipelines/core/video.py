"""Video probing, decoding and clip cutting.

Everything goes through the ffmpeg binary that ``imageio-ffmpeg`` ships (it has no ffprobe):

* :func:`probe` runs ``ffmpeg -i FILE`` and parses the stream description ffmpeg prints.
* :class:`VideoStream` lets ffmpeg do the frame-rate sampling and the scaling (``-vf
  fps=...,scale=...``) and reads the small rgb24 frames from a pipe in chunks, so Python never
  touches a full-size frame and a long video need not be held whole; :func:`decode` reads all
  chunks into one preallocated array. ffmpeg's autorotation stays on, so frames come out
  upright and in display orientation.
* :func:`write_proxy` writes the browser proxy of a video: H.264 (yuv420p) in MP4 with the
  index up front, what Chromium plays whatever the original's codec or container.
* :func:`cut_clips` (:func:`clips_from_stats` for streamed frames) cuts the sampled frames into
  overlapping fixed-length windows and flags clips that are dark, overexposed or blurry.

Frame ``i`` of a decoded video is at ``i / sampled_fps`` seconds: ffmpeg's ``fps`` filter emits
one frame every ``1/fps`` seconds from the start of the video, whatever the source frame rate,
constant or variable. It runs with ``round=up`` so that frame ``i`` is the source frame on screen at
``i / fps`` (the latest one with a timestamp <= ``i / fps``); the default ``round=near`` keeps the
last source frame before ``(i + 0.5) / fps``, i.e. content up to half a sampling period late
(62 ms at 8 fps, 250 ms at 2 fps).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Iterable

import numpy as np

from .files import atomic_target

__all__ = [
    "ClipSettings",
    "VideoInfo",
    "container_suffix",
    "DecodedVideo",
    "Clip",
    "VideoDecodeError",
    "probe",
    "decode",
    "raw_rgb_input",
    "write_proxy",
    "PROXY_MAX_WIDTH",
    "VideoStream",
    "FrameStats",
    "DecodeSettings",
    "cut_clips",
    "clips_from_stats",
    "clip_spans",
]

# --------------------------------------------------------------------------------------------
# Quality thresholds. They are evaluated on the small analysis frames decode() produces
# (default 160x120, luma 0-255, BT.601 weights).
# --------------------------------------------------------------------------------------------

#: A clip is "dark" when its mean luma is below this. Dim but usable indoor footage sits around
#: 60-100; below ~40 (about 15 % of full scale) hands and tools are hard to make out, and camera
#: noise dominates what an embedder sees.
DARK_MEAN_LUMA = 40.0

#: A pixel counts as near-white (clipped highlight) at or above this luma.
NEAR_WHITE_LUMA = 245.0

#: A clip is "overexposed" when on average more than this fraction of its pixels are near-white.
#: A well-exposed scene with a white bench or sheet of paper can clip a quarter of the frame;
#: beyond ~40 % the camera has lost most of the scene to the highlights.
OVEREXPOSED_FRACTION = 0.40

#: A clip is "blurry" when the median over its frames of the variance of the 4-neighbour
#: Laplacian of luma is below this. Measured at 160x120: testsrc2 gives ~950 (from 720p) to
#: ~1750 (from 320x240), a mandelbrot zoom ~750, the same frames 35 % darker ~600; a Gaussian
#: blur of sigma 2 *at analysis size* brings testsrc2 down to ~30, sigma 4 to ~9. The variance
#: scales with contrast squared, so real, lower-contrast footage sits lower than these test
#: patterns: 20 flags only blur bad enough to hide detail at analysis size (the downscale itself
#: removes mild blur). Clips that are already dark or overexposed are not also flagged blurry:
#: a featureless frame has a low Laplacian variance for reasons the other flag already names.
BLURRY_LAPLACIAN_VAR = 20.0


#: If the frames decoded cover less than this fraction of the duration the container declares
#: *and* ffmpeg reported errors, the file is treated as truncated/corrupt and rejected.
_MIN_COVERAGE = 0.9

#: decode() preallocates at most this much up front (it grows the buffer beyond if needed).
_MAX_PREALLOC_BYTES = 4 << 30

#: Formats that are still images rather than videos (gif_pipe is animated, so it stays allowed).
_STILL_IMAGE_FORMATS_EXCEPT = {"gif_pipe"}


# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


class VideoDecodeError(ValueError):
    """The file is missing, empty, not a video, has no video stream, or is truncated/corrupt."""


def _positive_finite(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


@dataclass(frozen=True)
class ClipSettings:
    sample_fps: float = 8.0  # frames per second ffmpeg samples
    clip_seconds: float = 2.0  # clip length; steps as short as 3 s must be resolvable
    stride_seconds: float = 0.5  # hop between clip starts (overlapping clips)

    def __post_init__(self) -> None:
        for name in ("sample_fps", "clip_seconds", "stride_seconds"):
            object.__setattr__(self, name, _positive_finite(name, getattr(self, name)))
        if self.stride_seconds > self.clip_seconds:
            raise ValueError(
                f"stride_seconds ({self.stride_seconds}) must not exceed clip_seconds "
                f"({self.clip_seconds}): clips would leave gaps between them"
            )


@dataclass(frozen=True)
class DecodeSettings:
    threads: int = 0  # ffmpeg decoder threads; 0: ffmpeg picks (one per core + 1, as a plain `ffmpeg -i`)
    frame_buffer_mb: float = 1024.0  # a video whose sampled frames fit in this is decoded whole; a longer one streams

    def __post_init__(self) -> None:
        if int(self.threads) != self.threads or self.threads < 0:
            raise ValueError(f"threads must be an integer >= 0, got {self.threads!r}")
        if not math.isfinite(self.frame_buffer_mb) or self.frame_buffer_mb < 0:
            raise ValueError(f"frame_buffer_mb must be a number >= 0, got {self.frame_buffer_mb!r}")

    @property
    def frame_buffer_bytes(self) -> int:
        return int(self.frame_buffer_mb * (1 << 20))


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int  # display orientation (after rotation)
    height: int  # display orientation (after rotation)
    source_fps: float  # average frame rate ffmpeg reports (0.0 if unknown)
    duration_sec: float  # container duration (0.0 if the container does not say; decode() fills it)
    rotation: int  # clockwise degrees applied for display: 0, 90, 180 or 270
    codec: str  # ffmpeg decoder name, e.g. "h264", "vp9", "mpeg4"
    container: str = ""  # ffmpeg demuxer name(s), e.g. "avi", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"


# The file extensions each of ffmpeg's demuxers reads (the first is the container's own): how a
# stored original is named, and so the media type it is served with, whatever the client called it.
_DEMUXER_SUFFIXES = {
    "mov": (".mov",),
    "mp4": (".mp4", ".m4v"),
    "3gp": (".3gp",),
    "3g2": (".3g2",),
    "mj2": (".mj2",),
    "avi": (".avi",),
    "matroska": (".mkv",),
    "webm": (".webm",),
    "mpeg": (".mpg", ".mpeg"),
    "mpegts": (".ts", ".m2ts", ".mts"),
    "ogg": (".ogv", ".ogg"),
    "asf": (".wmv", ".asf"),
    "flv": (".flv",),
}
_WEBM_CODECS = ("vp8", "vp9", "av1")


def container_suffix(info: VideoInfo, claimed: str = "") -> str:
    """The extension a file of ``info``'s container is stored under: ``claimed`` (the client's,
    any case) when the probed demuxer reads that extension, else the container's own (".mp4" for
    ISO media, ".webm" for Matroska holding VP8/VP9/AV1); for a demuxer not listed here (a raw
    elementary stream, an image sequence) the claimed one, or ""."""
    names = [n for n in info.container.split(",") if n in _DEMUXER_SUFFIXES]
    known = [sfx for n in names for sfx in _DEMUXER_SUFFIXES[n]]
    if not known or claimed.lower() in known:
        return claimed.lower()
    if "mp4" in names:
        return ".mp4"
    if "webm" in names and info.codec in _WEBM_CODECS:
        return ".webm"
    return known[0]


@dataclass
class DecodedVideo:
    info: VideoInfo
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB sampled at sampled_fps, scaled to frame_size
    sampled_fps: float

    @property
    def times(self) -> np.ndarray:
        """(N,) float64 seconds of each sampled frame: frame i is at i / sampled_fps."""
        return np.arange(len(self.frames), dtype=np.float64) / float(self.sampled_fps)


@dataclass(frozen=True)
class Clip:
    index: int
    start_frame: int  # [start, end) into DecodedVideo.frames
    end_frame: int
    start_sec: float
    end_sec: float
    quality: tuple[str, ...]  # subset of ("dark", "overexposed", "blurry")


# --------------------------------------------------------------------------------------------
# ffmpeg plumbing
# --------------------------------------------------------------------------------------------


_FFMPEG_EXE: str | None = None


def _ffmpeg() -> str:
    global _FFMPEG_EXE
    if _FFMPEG_EXE is None:
        import imageio_ffmpeg

        _FFMPEG_EXE = imageio_ffmpeg.get_ffmpeg_exe()
    return _FFMPEG_EXE


def _ffmpeg_url(path: str) -> str:
    # "file:" stops ffmpeg reading a ':' in the name as a protocol ("a:b.mp4") or a leading '-'
    # as an option.
    return "file:" + os.path.abspath(path)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoDecodeError(f"cannot decode video {path}: file not found")
    if not os.path.isfile(path):
        raise VideoDecodeError(f"cannot decode video {path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(f"cannot decode video {path}: file is empty")


_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")


def _ffmpeg_reason(stderr: str, path: str) -> str:
    """The useful part of ffmpeg's error output, without addresses and repeated boilerplate."""
    reasons: list[str] = []
    url = _ffmpeg_url(path)
    for line in stderr.splitlines():
        line = _LOG_PREFIX.sub("", line.strip())
        if not line or "misdetection possible" in line or line.startswith("Error opening input file"):
            continue
        if line.startswith("Error opening input files:") or line == "At least one output file must be specified":
            continue
        line = line.replace(url, os.path.basename(path)).replace("Error opening input: ", "")
        if line not in reasons:
            reasons.append(line)
    return "; ".join(reasons[-4:]) or "ffmpeg could not read it"


def _split_top_level(text: str) -> list[str]:
    """Split a stream description on ', ' outside parentheses/brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


_INPUT_RE = re.compile(r"^Input #0, (?P<fmt>[^ ]+), from ")
_DURATION_RE = re.compile(r"^\s*Duration: (?:(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)|N/A)")
_STREAM_RE = re.compile(r"^\s*Stream #0:(?P<idx>\d+)\S*: (?P<kind>\w+): (?P<desc>.*)$")
_SIZE_RE = re.compile(r"^(?P<w>[1-9]\d*)x(?P<h>[1-9]\d*)(?:\s|$)")
_RATE_RE = re.compile(r"^(?P<v>\d+(?:\.\d+)?)(?P<k>k?) (?P<unit>fps|tbr)$")
_DISPLAYMATRIX_RE = re.compile(r"display ?matrix: rotation of (?P<deg>-?\d+(?:\.\d+)?) degrees", re.I)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*:\s*(?P<deg>-?\d+(?:\.\d+)?)\s*$")


@dataclass
class _Probed:
    info: VideoInfo
    stream_index: int
    input_format: str


def _parse_probe(stderr: str, path: str) -> _Probed:
    lines = stderr.splitlines()
    fmt = None
    duration = 0.0
    for line in lines:
        m = _INPUT_RE.match(line)
        if m:
            fmt = m.group("fmt")
            continue
        m = _DURATION_RE.match(line)
        if m and m.group("h") is not None:
            duration = int(m.group("h")) * 3600 + int(m.group("m")) * 60 + float(m.group("s"))
            break
    if fmt is None:
        raise VideoDecodeError(f"cannot decode video {path}: {_ffmpeg_reason(stderr, path)}")
    if (fmt == "image2" or fmt.endswith("_pipe")) and fmt not in _STILL_IMAGE_FORMATS_EXCEPT:
        raise VideoDecodeError(f"cannot decode video {path}: it is a still image ({fmt}), not a video")

    # Stream blocks: a "Stream #0:k" line followed by its more indented metadata / side data.
    blocks: list[tuple[re.Match, list[str]]] = []
    current: list[str] | None = None
    for line in lines:
        m = _STREAM_RE.match(line)
        if m:
            current = []
            blocks.append((m, current))
        elif current is not None and line.startswith("    "):
            current.append(line)
        else:
            current = None
    kinds = []
    for m, extra in blocks:
        kinds.append(m.group("kind"))
        if m.group("kind") != "Video" or "(attached pic)" in m.group("desc"):
            continue
        parts = _split_top_level(m.group("desc"))
        codec = parts[0].split(" ")[0] if parts else "unknown"
        width = height = 0
        fps = tbr = 0.0
        for part in parts[1:]:
            sm = _SIZE_RE.match(part)
            if sm and not width:
                width, height = int(sm.group("w")), int(sm.group("h"))
                continue
            rm = _RATE_RE.match(part)
            if rm:
                value = float(rm.group("v")) * (1000.0 if rm.group("k") else 1.0)
                if rm.group("unit") == "fps":
                    fps = value
                else:
                    tbr = value
        if not width:
            continue  # a stream ffmpeg cannot size is not decodable
        rotation = 0
        for line in extra:
            dm = _DISPLAYMATRIX_RE.search(line)
            if dm:
                # The display matrix angle is counter-clockwise; report the clockwise rotation
                # (the convention of the legacy "rotate" tag phones write).
                rotation = round(-float(dm.group("deg")))
                break
            tm = _ROTATE_TAG_RE.match(line)
            if tm:
                rotation = round(float(tm.group("deg")))
                break
        rotation %= 360
        if rotation not in (0, 90, 180, 270):
            rotation = 0  # ffmpeg's autorotate only applies multiples of 90 degrees
        if rotation in (90, 270):
            width, height = height, width
        info = VideoInfo(
            path=path,
            width=width,
            height=height,
            source_fps=fps or tbr,
            duration_sec=duration,
            rotation=rotation,
            codec=codec,
            container=fmt,
        )
        return _Probed(info=info, stream_index=int(m.group("idx")), input_format=fmt)
    if "Video" in kinds:
        reason = "its video stream cannot be decoded (no frame size)"
    else:
        reason = "it has no video stream (" + (", ".join(sorted(set(kinds))).lower() or "no") + " streams only)"
    raise VideoDecodeError(f"cannot decode video {path}: {reason}")


def _probe(path) -> _Probed:
    path = os.fspath(path)
    _check_file(path)
    proc = subprocess.run(
        [_ffmpeg(), "-hide_banner", "-nostdin", "-i", _ffmpeg_url(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    return _parse_probe(stderr, path)


def probe(path) -> VideoInfo:
    """Describe the first video stream of ``path`` (raises VideoDecodeError if there is none)."""
    return _probe(path).info


def _fps_arg(fps: float) -> str:
    frac = Fraction(fps).limit_denominator(1001000)
    return f"{frac.numerator}/{frac.denominator}"


def raw_rgb_input(width: int, height: int, fps: float) -> list[str]:
    """ffmpeg's arguments (from the binary on) that read rgb24 frames of ``width`` x ``height`` at
    ``fps`` from stdin: what an encoder of generated frames puts before its output options."""
    return [
        _ffmpeg(),
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        _fps_arg(fps),
        "-i",
        "-",
    ]


#: The browser proxy is at most this wide: enough to see hands and tools side by side on a 1280 px
#: review page, and small enough to seek quickly over a LAN.
PROXY_MAX_WIDTH = 960
# veryfast: a third of the size of ultrafast for 2.3x its time (a minute of 720p: 14 s, 7 MB)
_PROXY_ENCODER = (
    "-c:v libx264 -preset veryfast -crf 23 -profile:v high -force_key_frames expr:gte(t,n_forced*1)"
    " -movflags +faststart -f mp4"
).split()


def write_proxy(path, dest, max_width: int = PROXY_MAX_WIDTH, threads: int = 0) -> float:
    """Write ``dest``, the browser-playable copy of ``path``'s first video stream, atomically;
    returns the seconds it took.

    H.264 High in MP4 with ``+faststart`` (the index first, so playback starts before the whole
    file is fetched), yuv420p (what browsers decode; 4:2:2/4:4:4 and 10-bit H.264 they do not),
    upright (ffmpeg's autorotation), at most ``max_width`` wide with even dimensions (yuv420p
    needs them) and a key frame every second, so that a seek decodes at most a second of video.
    No audio: the review pages play muted. The source's timestamps are kept, so a time in the
    proxy is the same time in the original (what the alignment and the steps are in).
    """
    t0 = time.perf_counter()
    probed = _probe(path)
    src = probed.info.path
    width = f"trunc(min({int(max_width)},iw)/2)*2"  # quoted below: the comma is not a filter separator
    threads_arg = str(int(DecodeSettings(threads=threads).threads))
    with atomic_target(dest) as tmp:
        cmd = [_ffmpeg(), *"-hide_banner -nostdin -nostats -v error -y -i".split(), _ffmpeg_url(src)]
        cmd += ["-map", f"0:{probed.stream_index}", "-an", "-sn", "-dn"]
        cmd += ["-vf", f"scale='{width}':-2,format=yuv420p", "-threads", threads_arg, *_PROXY_ENCODER]
        proc = subprocess.run(
            [*cmd, _ffmpeg_url(os.fspath(tmp))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if proc.returncode != 0:
            reason = _ffmpeg_reason(proc.stderr.decode("utf-8", "replace"), src)
            raise VideoDecodeError(f"cannot write the browser proxy of video {src}: ffmpeg failed: {reason}")
    return time.perf_counter() - t0


class VideoStream:
    """One video's sampled frames, read from ffmpeg in chunks (see :meth:`chunks`).

    ``n_hint`` is the number of frames the container's duration promises (0 if it says
    nothing): enough to plan, never trusted for indexing. After :meth:`chunks` has run to the
    end, ``n_frames`` is the real count and ``info.duration_sec`` is filled when the container
    had none. :meth:`frames_at` reads single frames by seeking, for what must be known before
    the stream reaches it (an embedder's reference frames).
    """

    def __init__(self, path, sample_fps: float = 8.0, frame_size: tuple[int, int] = (160, 120), threads: int = 0):
        self.sample_fps = _positive_finite("sample_fps", sample_fps)
        self.threads = str(int(DecodeSettings(threads=threads).threads))
        width, height = (int(v) for v in frame_size)
        if width <= 0 or height <= 0:
            raise ValueError(f"frame_size must be positive (width, height), got {frame_size!r}")
        self.width, self.height = width, height
        self.frame_bytes = width * height * 3
        self._probed = _probe(path)
        self.info = self._probed.info
        self.path = self.info.path
        self.n_frames: int | None = None
        d = self.info.duration_sec
        self.n_hint = int(math.ceil(d * self.sample_fps)) if d > 0 else 0

    def _cmd(self, *, seek_sec: float | None = None, until_sec: float | None = None) -> list[str]:
        """ffmpeg reading the sampled stream; with ``seek_sec``, the source frames from there on
        (up to ``until_sec`` after it, or just the first one)."""
        vf = f"scale={self.width}:{self.height}:flags=area"
        cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-v", "error", "-threads", self.threads]
        if seek_sec is None:
            vf = f"fps=fps={_fps_arg(self.sample_fps)}:round=up," + vf
        else:
            cmd += ["-ss", f"{seek_sec:.6f}"]  # input seeking: exact since ffmpeg 2.1, fast on long files
            if until_sec is not None:
                vf = f"trim=end={until_sec:.6f}," + vf  # times count from the seek point
        cmd += [
            "-i",
            _ffmpeg_url(self.path),
            "-map",
            f"0:{self._probed.stream_index}",
            "-an",
            "-sn",
            "-dn",
            "-vf",
            vf,
            "-filter_threads",
            "1",
        ]
        if seek_sec is not None and until_sec is None:
            cmd += ["-frames:v", "1"]
        return cmd + ["-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]

    def chunks(self, chunk_frames: int = 256):
        """Yield ``(m, H, W, 3)`` uint8 arrays of consecutive frames (``m <= chunk_frames``), each
        a fresh array. Raises VideoDecodeError, after the last chunk, when ffmpeg failed or the
        file ended well before the duration its container declares."""
        chunk_frames = max(1, int(chunk_frames))
        h, w, fb = self.height, self.width, self.frame_bytes
        n = 0
        with tempfile.TemporaryFile() as errfile:
            proc = subprocess.Popen(
                self._cmd(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errfile, bufsize=0
            )
            stdout: Any = proc.stdout  # an unbuffered FileIO (bufsize=0): readinto fills numpy's buffer
            try:
                _enlarge_pipe(stdout)
                while True:
                    buf = np.empty((chunk_frames, h, w, 3), dtype=np.uint8)
                    view = buf.reshape(-1).data
                    filled = 0
                    while filled < view.nbytes:
                        got = stdout.readinto(view[filled:])
                        if not got:
                            break
                        filled += got
                    m = filled // fb
                    if m:
                        n += m
                        yield buf[:m]
                    if filled < view.nbytes:
                        break
                rc = proc.wait()
            except BaseException:  # includes GeneratorExit: a consumer that stops early
                proc.kill()
                proc.wait()
                raise
            finally:
                stdout.close()
            errfile.seek(0)
            stderr = errfile.read().decode("utf-8", "replace")
        path, info, fps = self.path, self.info, self.sample_fps
        if rc != 0:
            raise VideoDecodeError(f"cannot decode video {path}: ffmpeg failed: {_ffmpeg_reason(stderr, path)}")
        if n == 0:
            reason = _ffmpeg_reason(stderr, path) if stderr.strip() else "ffmpeg produced no frames"
            raise VideoDecodeError(f"cannot decode video {path}: no frames decoded ({reason})")
        decoded_sec = n / fps
        if stderr.strip() and info.duration_sec > 0 and decoded_sec < _MIN_COVERAGE * info.duration_sec - 1.0 / fps:
            raise VideoDecodeError(
                f"cannot decode video {path}: truncated or corrupt: decoded {decoded_sec:.2f} s of the "
                f"{info.duration_sec:.2f} s the container declares ({_ffmpeg_reason(stderr, path)})"
            )
        self.n_frames = n
        if info.duration_sec <= 0:
            self.info = replace(info, duration_sec=decoded_sec)

    def frames_at(self, indices) -> np.ndarray:
        """Frames ``indices`` (of the sampled sequence), read by seeking: frame ``i`` is the
        source frame on screen at ``i / sample_fps``, as in the stream. An index past the end
        gives the last frame."""
        out = np.empty((len(indices), self.height, self.width, 3), dtype=np.uint8)
        for k, i in enumerate(indices):
            t = float(min(i, self.n_hint - 1) if self.n_hint > 0 else i) / self.sample_fps
            # From up to a second before t, every frame up to t: the last one is on screen at t.
            # None (t before the first frame, as the fps filter also sees it): the first one.
            # None either (a broken file; the stream will say what is wrong): the last frame
            # that decodes before t.
            start = max(0.0, t - 1.0)
            # "up to t" plus 1 ms: trim rounds its end to the stream's time base (ffmpeg 9: to the
            # nearest tick, so t + 1e-6 dropped the frame shown at t), and 1 ms is far less than
            # the gap to the next frame
            for begin, until in ((start, t - start + 1e-3), (start, None), (0.0, t + 1e-3)):
                raw = subprocess.run(
                    self._cmd(seek_sec=begin, until_sec=until),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                ).stdout
                got = len(raw) // self.frame_bytes
                if got:
                    last = raw[(got - 1) * self.frame_bytes : got * self.frame_bytes]
                    out[k] = np.frombuffer(last, np.uint8).reshape(self.height, self.width, 3)
                    break
            else:
                raise VideoDecodeError(f"cannot decode video {self.path}: no frame at {t:.2f} s")
        return out

    def read_all(self) -> "DecodedVideo":
        """Every frame in one array (what :func:`decode` returns)."""
        # Preallocate for the declared duration (+2 frames of slack) and grow if the container
        # lied. np.empty only reserves address space; the cap keeps a bogus header from asking
        # for more.
        fb = self.frame_bytes
        capacity = self.n_hint + 2 if self.n_hint > 0 else 256
        capacity = max(1, min(capacity, _MAX_PREALLOC_BYTES // fb))
        buf = np.empty((capacity, self.height, self.width, 3), dtype=np.uint8)
        n = 0
        for chunk in self.chunks():
            if n + len(chunk) > capacity:
                capacity = max(capacity * 3 // 2, n + len(chunk) + 64)
                grown = np.empty((capacity, self.height, self.width, 3), dtype=np.uint8)
                grown[:n] = buf[:n]
                buf = grown
            buf[n : n + len(chunk)] = chunk
            n += len(chunk)
        frames = buf[:n]
        if n < capacity * 0.9:
            frames = frames.copy()  # do not pin a much larger buffer
        return DecodedVideo(info=self.info, frames=frames, sampled_fps=self.sample_fps)


def decode(path, sample_fps: float = 8.0, frame_size: tuple[int, int] = (160, 120), threads: int = 0) -> DecodedVideo:
    """Decode ``path`` to upright RGB frames sampled at ``sample_fps`` and scaled to ``frame_size``.

    ``frame_size`` is (width, height); the frame is scaled to exactly that size (no letterbox).
    Sampling, rotation and scaling all happen inside ffmpeg. All frames are held in memory: for
    long videos use :class:`VideoStream`.
    """
    return VideoStream(path, sample_fps, frame_size, threads).read_all()


def _enlarge_pipe(pipe) -> None:
    """Ask for a 1 MiB pipe (Linux) so each read moves more than the default 64 KiB."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass


# --------------------------------------------------------------------------------------------
# Clips
# --------------------------------------------------------------------------------------------


def _frame_stats(frames: np.ndarray, chunk: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame mean luma, near-white fraction and Laplacian variance (chunked to bound memory)."""
    n = len(frames)
    mean_luma = np.empty(n, dtype=np.float64)
    white = np.empty(n, dtype=np.float64)
    lap_var = np.empty(n, dtype=np.float64)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for s in range(0, n, chunk):
        y = frames[s : s + chunk].astype(np.float32) @ weights  # (c, H, W)
        mean_luma[s : s + chunk] = y.mean(axis=(1, 2))
        white[s : s + chunk] = (y >= NEAR_WHITE_LUMA).mean(axis=(1, 2))
        if y.shape[1] >= 3 and y.shape[2] >= 3:
            lap = y[:, :-2, 1:-1] + y[:, 2:, 1:-1] + y[:, 1:-1, :-2] + y[:, 1:-1, 2:] - 4.0 * y[:, 1:-1, 1:-1]
            lap_var[s : s + chunk] = lap.var(axis=(1, 2))
        else:
            lap_var[s : s + chunk] = np.inf  # too small to judge sharpness
    return mean_luma, white, lap_var


def _quality(mean_luma: np.ndarray, white: np.ndarray, lap_var: np.ndarray) -> tuple[str, ...]:
    flags = []
    if float(mean_luma.mean()) < DARK_MEAN_LUMA:
        flags.append("dark")
    if float(white.mean()) > OVEREXPOSED_FRACTION:
        flags.append("overexposed")
    if not flags and float(np.median(lap_var)) < BLURRY_LAPLACIAN_VAR:
        flags.append("blurry")
    return tuple(flags)


def _clip_bounds(n: int, clip_len: int, stride: int) -> list[tuple[int, int]]:
    if n <= clip_len:
        return [(0, n)]
    bounds = [(s, s + clip_len) for s in range(0, n - clip_len + 1, stride)]
    tail = n - bounds[-1][1]
    if tail * 2 > stride:
        bounds.append((n - clip_len, n))  # a final clip aligned to the end
    elif tail > 0:
        bounds[-1] = (bounds[-1][0], n)  # a short tail joins the last clip
    return bounds


class FrameStats:
    """Per-frame quality statistics, gathered chunk by chunk as frames stream past."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, frames: np.ndarray) -> None:
        self._parts.append(_frame_stats(frames))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._parts:
            return (np.empty(0),) * 3
        return tuple(np.concatenate(k) for k in zip(*self._parts))  # type: ignore[return-value]


def cut_clips(video: DecodedVideo, settings: ClipSettings) -> list[Clip]:
    """Overlapping windows of ``clip_seconds`` every ``stride_seconds`` over the sampled frames
    of a decoded video; see :func:`clips_from_stats`."""
    stats = FrameStats()
    stats.add(video.frames)
    return clips_from_stats(stats, video.info, video.sampled_fps, settings)


def clips_from_stats(stats: FrameStats, info: VideoInfo, sampled_fps: float, settings: ClipSettings) -> list[Clip]:
    """Overlapping windows of ``clip_seconds`` every ``stride_seconds`` over the sampled frames
    whose statistics ``stats`` holds (one entry per frame, in order).

    Window lengths are rounded to whole sampled frames (at least one) of ``sampled_fps``
    (``settings.sample_fps`` is what the caller should have decoded at; it is not used here).
    A video shorter than one clip gives a single clip over all frames; the last clip always ends
    at the last frame: a tail of more than half a stride gets its own clip aligned to the end, a
    shorter one is added to the last clip.
    """
    mean_luma, white, lap_var = stats.arrays()
    n = len(mean_luma)
    if n == 0:
        raise VideoDecodeError(f"cannot cut clips from video {info.path}: it has no frames")
    fps = float(sampled_fps)
    clip_len = max(1, int(round(settings.clip_seconds * fps)))
    stride = max(1, int(round(settings.stride_seconds * fps)))
    duration = info.duration_sec
    clips = []
    for i, (s, e) in enumerate(_clip_bounds(n, clip_len, stride)):
        start_sec, end_sec = s / fps, e / fps
        if duration > 0:
            # The last sampled frame stands for [(n-1)/fps, n/fps): clamp to the real end, and let
            # the last clip reach it when the fps filter stopped less than a frame short.
            end_sec = min(end_sec, duration)
            if e == n and 0 < duration - end_sec <= 1.0 / fps:
                end_sec = duration
            start_sec = min(start_sec, end_sec)
        clips.append(
            Clip(
                index=i,
                start_frame=s,
                end_frame=e,
                start_sec=start_sec,
                end_sec=end_sec,
                quality=_quality(mean_luma[s:e], white[s:e], lap_var[s:e]),
            )
        )
    return clips


def clip_spans(clips: Iterable[Clip]) -> np.ndarray:
    """(C, 2) int64 array of [start_frame, end_frame) for the embedders."""
    spans = [(c.start_frame, c.end_frame) for c in clips]
    return np.asarray(spans, dtype=np.int64).reshape(len(spans), 2)

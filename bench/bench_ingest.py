"""Ingest throughput: decode + clips + embed (each embedder named on the command line) of a 60 s 1280x720 30 fps H.264 video,
against a plain full decode of the same file (`ffmpeg -i FILE -f null -`) in the same run.

The test video is ffmpeg's testsrc2 with temporal noise, so it decodes like camera footage.
Runs are interleaved (peer, ours, streamed, peer, ours, streamed, ...) and the medians compared.
"streamed" is the same file forced through the path a long video takes (SOPILOT_FRAME_BUFFER_MB
exceeded: frames stream through the embedder chunk by chunk, its reference frames read by
seeking), with the peak traced memory of both paths.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imageio_ffmpeg import get_ffmpeg_exe

from sopilot_pipelines.core.embedders import get_embedder
from sopilot_pipelines.core.embedding import embed_video
from sopilot_pipelines.core.video import ClipSettings, DecodeSettings

REPEATS = 5


def make_video(path: Path) -> None:
    subprocess.run(
        [
            get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-t",
            "60",
            "-vf",
            "noise=alls=12:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )


def full_decode(path: Path) -> float:
    t = time.perf_counter()
    subprocess.run([get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "null", "-"], check=True)
    return time.perf_counter() - t


def main(names: list[str]) -> None:
    """Each embedder named (default: builtin, deep, deep+builtin) against the plain decode."""
    settings = ClipSettings()
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "ingest_60s_720p30.mp4"
        make_video(video)
        for name in names:
            embedder = get_embedder(name)
            embed_video(video, settings, embedder)  # warm-up (page cache, imports, model load)
            peer, ours, streamed, parts, peaks = [], [], [], [], {}
            for _ in range(REPEATS):
                peer.append(full_decode(video))
                t = time.perf_counter()
                ev = embed_video(video, settings, embedder)
                ours.append(time.perf_counter() - t)
                parts.append(ev.timings)
                t = time.perf_counter()
                embed_video(video, settings, embedder, DecodeSettings(frame_buffer_mb=0))
                streamed.append(time.perf_counter() - t)
            for label, budget in (("in memory", 1 << 20), ("streamed", 0)):  # untimed: tracing slows numpy
                tracemalloc.start()
                embed_video(video, settings, embedder, DecodeSettings(frame_buffer_mb=budget))
                peaks[label] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            p, o, s = statistics.median(peer), statistics.median(ours), statistics.median(streamed)
            print(f"== {embedder.name}: 60 s 1280x720 30 fps H.264 (noisy); {ev.n_clips} clips, {settings}")
            print(f"ffmpeg full decode (-f null), median of {REPEATS}: {p:.2f}s  ({60 / p:.1f}x real time)")
            print(f"decode+clips+embed, median of {REPEATS}: {o:.2f}s  ({60 / o:.1f}x real time)")
            print(
                f"  of which decode {statistics.median(x['decode_sec'] for x in parts):.2f}s, "
                f"embed {statistics.median(x['embed_sec'] for x in parts):.2f}s"
            )
            print(
                f"streamed: {s:.2f}s = {s / p:.2f}x the full decode; peak traced memory "
                f"{peaks['streamed'] >> 20} MB streamed vs {peaks['in memory'] >> 20} MB in memory"
            )
            print(f"ratio ours / full decode: {o / p:.2f}x  (target <= 3x)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["builtin", "deep", "deep+builtin"])

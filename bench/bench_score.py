"""Score time for two 5-minute videos, engine only (decode + embed each, then score).

A 5-minute gold and a trainee (same procedure, 1.2x slower, one step skipped) are generated
with the synthetic workbench; the score step is timed alone and beside the embedding work.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopilot_pipelines.core import synth
from sopilot_pipelines.core.embedding import embed_video
from sopilot_pipelines.core.scoring import score


def long_procedure(seconds: float = 300.0) -> synth.Procedure:
    steps, total, i = [], 0.0, 0
    while total < seconds - 8:
        dur = 4.0 + (i * 7 % 5) * 0.5
        steps.append(synth.Step(i % 7, synth.MOTIONS[(i // 7 + i) % 4], dur))
        total += dur + synth.TRANSITION_SEC
        i += 1
    return synth.Procedure(tuple(steps))


def main() -> None:
    proc = long_procedure()
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        gold_file = synth.render(proc, "gold", Path(d) / "gold.mp4", fps=30, size=(320, 240), seed=1)
        trainee_file = synth.render(proc, "missing", Path(d) / "trainee.mp4", fps=30, size=(320, 240), seed=2)
        print(
            f"rendered 2 videos of {gold_file.duration_sec:.0f}s / {trainee_file.duration_sec:.0f}s "
            f"({len(proc.steps)} steps) in {time.perf_counter() - t:.1f}s"
        )
        t = time.perf_counter()
        gold = embed_video(gold_file.path)
        trainee = embed_video(trainee_file.path)
        embed_s = time.perf_counter() - t
        score(gold, trainee)  # warm-up: numba compile / cache load
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            result = score(gold, trainee).result
            runs.append(time.perf_counter() - t)
    print(f"clips: gold {gold.n_clips}, trainee {trainee.n_clips}; embedder {gold.model}")
    print(f"decode+embed both videos: {embed_s:.2f}s")
    print(f"score (median of 5):      {statistics.median(runs) * 1000:.0f} ms  (min {min(runs) * 1000:.0f} ms)")
    print(
        f"result: score {result['score']}, {len(result['step_boundaries']['gold']) - 1} gold steps found, "
        f"deviations {[d['type'] for d in result['deviations']]}"
    )


if __name__ == "__main__":
    main()

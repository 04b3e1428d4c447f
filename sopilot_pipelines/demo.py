"""The demo: a generated gold video and trainee variants, scored by the engine, as a table."""

from __future__ import annotations

import time
from pathlib import Path

DEMO_VARIANTS = ("correct_slower", "missing", "swap", "over_time", "wrong_execution", "extra_step", "repeated")


def run_demo(out_dir: Path) -> int:
    from .core import synth
    from .core.embedding import embed_video
    from .core.scoring import ScoringConfig, score

    t0 = time.perf_counter()
    print(f"generating a gold video and {len(DEMO_VARIANTS)} trainee videos in {out_dir} ...", flush=True)
    videos = synth.render_suite(out_dir, variants=DEMO_VARIANTS)
    gold = embed_video(videos["gold"].path)
    cfg = ScoringConfig.from_env()
    print(f"gold: {videos['gold'].path} ({gold.n_clips} clips, {gold.model})\n")
    print(f"{'trainee variant':<18} {'score':>6}  {'decision':<13} deviations (type@gold step)")
    for name in DEMO_VARIANTS:
        trainee = embed_video(videos[name].path)
        result = score(gold, trainee, cfg).result
        devs = ", ".join(f"{d['type']}@{'-' if d['gold_step'] is None else d['gold_step']}" for d in result["deviations"])
        print(f"{name:<18} {result['score']:>6.1f}  {result['decision']:<13} {devs or 'none'}", flush=True)
    print(f"\ndone in {time.perf_counter() - t0:.1f}s; score any pair yourself with:")
    print(f"  sopilot score --gold {videos['gold'].path} --trainee {videos['swap'].path}")
    return 0

"""The project's own workbench scenes (`sopilot_pipelines.core.synth`): stations on a bench, a
hand working at one station per step. Steps differ by place, part and motion."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sopilot_pipelines.core import synth

from . import plans

NAME = "bench"
_OTHER_MOTION = {"circle": "vertical", "vertical": "horizontal", "horizontal": "circle", "tap": "circle"}
_FORMATS = {"gold": (24.0, (320, 240)), "correct_nuisance": (15.0, (480, 270))}
_TRAINEE = (30.0, (400, 300))


def render_task(out_dir: Path, task_seed: int, variants: Sequence[str]) -> plans.Task:
    rng = np.random.default_rng(task_seed)
    n = int(rng.integers(4, 7))
    stations = rng.permutation(len(synth.STATIONS) - 1)[:n]  # the last station stays free for extras
    motions = [synth.MOTIONS[int(i)] for i in rng.integers(0, len(synth.MOTIONS), n)]
    durations = [float(d) for d in np.round(rng.uniform(3.0, 6.0, n), 1)]

    def render(acts: list[plans.Activity], path: Path, variant: str, seed: int) -> plans.Timeline:
        plan = []
        for a in acts:
            if a.kind == "step":
                m = _OTHER_MOTION[motions[a.step]] if a.wrong else motions[a.step]
                plan.append(("step", a.step, int(stations[a.step]), m, a.duration))
            elif a.kind == "extra":
                plan.append(("extra", None, len(synth.STATIONS) - 1, "horizontal", a.duration))
            else:
                plan.append(("rest", None, None, None, a.duration))
        fps, size = _FORMATS.get(variant, _TRAINEE)
        nuisance = (
            synth.Nuisance(shake_px=3.5, brightness_drift=0.3, noise_sigma=7.0)
            if variant == "correct_nuisance"
            else synth.Nuisance()
        )
        r = synth.render_plan(plan, variant, path, fps=fps, size=size, nuisance=nuisance, seed=seed)
        segs = [plans.Segment(a, s.start_sec, s.end_sec) for a, s in zip(acts, r.segments)]
        return plans.Timeline(segs, r.duration_sec)

    return plans.build_task(NAME, f"bench{task_seed}", out_dir, durations, variants, render, task_seed)

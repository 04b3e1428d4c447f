"""Real recordings: WHO hand washing (`../shared/data/handwash-dev/`, read in place, never
copied). Gold 003; 003 itself, 002 (a correct wash by another take) and 005 (action 2R
skipped) as trainees."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from . import plans

NAME = "handwash"
GOLD = "003"
TRAINEES = {"gold": "003", "correct_other_take": "002", "missing": "005"}


def data_dir() -> Path:
    env = os.environ.get("SOPILOT_HANDWASH_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "handwash-dev"


def available() -> bool:
    return (data_dir() / "truth.json").is_file()


def _video(truth: dict, key: str, variant: str, gold_actions: list[int]) -> plans.Video:
    rec = truth[key]
    segs = [
        plans.Segment(
            plans.Activity("step", gold_actions.index(s["action"]), s["end_sec"] - s["start_sec"]),
            s["start_sec"],
            s["end_sec"],
        )
        for s in rec["steps"]
    ]
    expected = [plans.Expected("step_missing", gold_actions.index(a)) for a in rec["missing_actions"]]
    return plans.Video(data_dir() / rec["file"], variant, plans.Timeline(segs, rec["seconds"]), expected)


def render_task(out_dir: Path, task_seed: int = 0, variants: Sequence[str] = tuple(TRAINEES)) -> plans.Task:
    """The recordings as a task (nothing is rendered; out_dir is unused)."""
    if not available():
        raise FileNotFoundError(f"no hand-washing recordings in {data_dir()} (set SOPILOT_HANDWASH_DIR)")
    truth = json.loads((data_dir() / "truth.json").read_text())
    actions = [s["action"] for s in truth[GOLD]["steps"]]
    gold = _video(truth, GOLD, "gold", actions)
    trainees = {
        v: (gold if TRAINEES[v] == GOLD else _video(truth, TRAINEES[v], v, actions)) for v in variants if v in TRAINEES
    }
    return plans.Task(NAME, "handwash", gold, trainees)


CORRECT_VARIANTS = ("gold", "correct_other_take")

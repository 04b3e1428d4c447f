"""The scoring rules' settings: thresholds, the engine's rule constants and penalty weights.

A plain frozen dataclass (the core never reads the environment); `sopilot_pipelines.settings`
builds it from SOPILOT_<FIELD> variables. Each field's doc is the README's description of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _rule(default: float, doc: str):
    return field(default=default, metadata={"doc": doc})


DECISIONS = ("pass", "needs_review", "retrain", "fail")


@dataclass(frozen=True)
class ScoringConfig:
    pass_score: float = _rule(85.0, "pass needs this score and no deviation at all (a skipped optional step is none)")
    review_score: float = _rule(70.0, ">= this: needs_review")
    retrain_score: float = _rule(50.0, ">= this: retrain; below: fail")
    min_step_seconds: float = _rule(2.0, "shortest gold step the segmentation may cut")
    over_time_ratio: float = _rule(1.6, "step duration over the trainee's own tempo that counts as over time")
    min_extra_seconds: float = _rule(
        2.5,
        "unexplained activity shorter than this, or than a real attempt (attempt_share) of the gold's shortest step at the trainee's pace, is transition, not an extra step",
    )
    execution_drop: float = _rule(
        0.35,
        "a step matching this far below the trainee's typical step (as a share of the way down to the pair's non-match level) was done differently",
    )
    # The engine's rules below are in units of the pair's spread (its match level less its
    # non-match level), so they hold for any embedder, person and camera; set on the benchmark's
    # tuning styles (bench/README.md).
    step_cost: float = _rule(0.2, "labelling: going on to another step in order (or skipping one)")
    repeat_cost: float = _rule(0.5, "labelling: the same step again after something else")
    jump_cost: float = _rule(1.0, "labelling: going back to an earlier step")
    repeat_fit: float = _rule(
        0.1, "a long run fitting the gold step twice over this much better (mean cost) is a repeat"
    )
    slot_level: float = _rule(
        0.15, "an unexplained stretch where a missing step belongs, this far above non-match: done differently"
    )
    prior_cap: float = _rule(0.3, "the positional prior's largest penalty, well below a match's margin")
    min_spread_share: float = _rule(0.25, "the pair's spread is at least this share of the gold's own")
    # Durations, as shares of a gold step's expected length at the trainee's tempo.
    attempt_share: float = _rule(0.5, "a run this long is a real attempt (a later one: a repeat)")
    slot_share: float = _rule(0.4, "an unexplained stretch this long can stand in for a missing step")
    glimpse_share: float = _rule(0.25, "a step seen for less than this was only glimpsed, not done")
    prior_reach_seconds: float = _rule(20.0, "the positional prior reaches its cap this far from the step")
    min_run_seconds: float = _rule(1.0, "shortest run of clips that counts as a stretch of activity")
    # Penalties, in units of one gold step's share of the score.
    weight_missing: float = _rule(1.0, "penalty of a missing step")
    weight_swap: float = _rule(0.8, "penalty of a step out of order")
    weight_execution: float = _rule(0.5, "penalty of a step done differently")
    weight_extra: float = _rule(0.35, "penalty of an extra step")
    weight_repeated: float = _rule(0.3, "penalty of a repeated step")
    weight_over_time: float = _rule(0.25, "penalty of a step over time")

    def __post_init__(self) -> None:
        if not self.pass_score >= self.review_score >= self.retrain_score:
            raise ValueError("decision thresholds must satisfy pass_score >= review_score >= retrain_score")

"""The engine against ground truth: every synthetic variant yields exactly its deviations."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sopilot_pipelines.core import synth
from sopilot_pipelines.core.embedders import EmbedderError, get_embedder
from sopilot_pipelines.core.scoring import score
from sopilot_pipelines.core.scoring_config import DECISIONS

# every test scores conftest's rendered suite (its eleven videos take about a minute to render on
# 2 cores) or runs the CLI in a subprocess: slow, so `make test-fast` leaves the module out
pytestmark = pytest.mark.slow

CORRECT = ("gold", "correct_slower", "correct_faster")
ERRORS = ("missing", "swap", "over_time", "wrong_execution", "extra_step", "repeated", "two_errors")
RESULT_KEYS = {
    "score",
    "metrics",
    "step_boundaries",
    "deviations",
    "alignment_preview",
    "clip_count",
    "step_map_preview",
    "gold_steps",
    "trainee_steps",
}
METRIC_KEYS = {
    "miss",
    "swap",
    "deviation",
    "over_time",
    "temporal_warp",
    "path_stretch",
    "duplicate_ratio",
    "order_violation_ratio",
    "temporal_drift",
    "confidence_loss",
    "local_similarity_gap",
    "adaptive_low_similarity_threshold",
    "effective_low_similarity_threshold",
    "hard_miss_ratio",
    "mean_alignment_cost",
}


@pytest.fixture(scope="module")
def results(embedded):
    gold = embedded("gold")
    return {v: score(gold, embedded(v)).result for v in synth.VARIANTS}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _span(t: dict) -> tuple[float, float]:
    return t["start_sec"], t["end_sec"]


def test_gold_is_cut_into_its_true_steps(suite, results):
    truth = suite["gold"].step_times()
    bounds = results["gold"]["step_boundaries"]["gold"]
    assert len(bounds) - 1 == len(truth)
    # every interior boundary falls in the hand's travel between two true steps (+- one clip stride)
    stride = 0.5
    for k, b in enumerate(bounds[1:-1]):
        centre = b * stride + 1.0 - stride / 2  # the boundary time between clip b-1 and clip b
        end_prev, start_next = truth[k][0][1], truth[k + 1][0][0]
        assert end_prev - stride - 0.5 <= centre <= start_next + stride + 0.5


@pytest.mark.parametrize("variant", CORRECT)
def test_correct_trainee_has_no_deviation_and_passes(results, variant):
    r = results[variant]
    assert r["deviations"] == []
    assert r["score"] >= 90
    assert r["decision"] == "pass"


# A known miss, measured across styles in bench/README.md: a step done with another motion at the
# same station matches this pair's typical step too closely for the per-pair execution rule.
KNOWN_MISS = pytest.mark.xfail(strict=True, reason="wrong motion at the right station is under the execution rule")


@pytest.mark.parametrize(
    "variant", [pytest.param(v, marks=KNOWN_MISS) if v == "wrong_execution" else v for v in ERRORS]
)
def test_each_error_variant_yields_exactly_its_deviations(suite, results, variant):
    got = sorted((d["type"], d["gold_step"]) for d in results[variant]["deviations"])
    want = sorted((e.type, e.gold_step) for e in suite[variant].expected)
    assert got == want


@pytest.mark.parametrize("variant", ERRORS)
def test_deviations_are_at_the_right_times_in_both_videos(suite, results, variant):
    gold_truth = suite["gold"].step_times()
    trainee = suite[variant]
    trainee_truth = trainee.step_times()
    for d in results[variant]["deviations"]:
        assert 0.0 <= d["confidence"] <= 1.0 and d["confidence"] > 0.3
        assert d["reason"]
        k = d["gold_step"]
        if d["type"] == "extra_step":
            extra = next(s for s in trainee.segments if s.kind == "extra")
            assert _overlap(_span(d["trainee_time"]), (extra.start_sec, extra.end_sec)) > 2.0
            # in the gold, the extra activity sits between the steps it came between
            i = trainee.segments.index(extra)
            after = d["after_gold_step"]
            assert after == trainee.segments[i - 1].gold_step
            g0, g1 = _span(d["gold_time"])
            assert abs(g0 - gold_truth[after][0][1]) < 1.0 and abs(g1 - gold_truth[after + 1][0][0]) < 1.0
            continue
        assert _overlap(_span(d["gold_time"]), gold_truth[k][0]) > 0.6 * (gold_truth[k][0][1] - gold_truth[k][0][0])
        if d["type"] == "step_missing":
            assert d["trainee_time"] == {"start_sec": None, "end_sec": None}
            continue
        where = trainee_truth[k][-1] if d["type"] == "step_repeated" else trainee_truth[k][0]
        assert _overlap(_span(d["trainee_time"]), where) > 0.6 * (where[1] - where[0])
        if d["type"] == "order_swap":
            e = next(e for e in trainee.expected if e.type == "order_swap")
            assert (d["gold_step"], d["swapped_with"]) == (e.gold_step, e.swapped_with)
        if d["type"] == "over_time":
            assert d["duration_ratio"] > 1.8


def test_score_ranks_errors(results):
    correct = min(results[v]["score"] for v in CORRECT)
    for v in ERRORS + ("reversed",):
        if v != "wrong_execution":  # KNOWN_MISS above
            assert results[v]["score"] < correct, v
            assert results[v]["decision"] != "pass", v
    assert results["missing"]["score"] < results["over_time"]["score"]  # skipped costs more than slow
    assert results["reversed"]["score"] < results["missing"]["score"]
    assert results["two_errors"]["score"] < min(results["missing"]["score"], results["swap"]["score"])
    assert results["reversed"]["decision"] in ("retrain", "fail")
    assert results["missing"]["decision"] != "pass"


def test_reversed_procedure_reports_order_violations(results):
    r = results["reversed"]
    assert r["metrics"]["order_violation_ratio"] == 1.0
    assert r["deviations"] and all(d["type"] == "order_swap" for d in r["deviations"])


def test_result_has_the_contract_shape(results):
    for r in results.values():
        assert set(r) == RESULT_KEYS | {"decision"}
        assert set(r["metrics"]) == METRIC_KEYS
        assert r["decision"] in DECISIONS
        assert 0 <= r["score"] <= 100
        assert r["step_boundaries"]["gold"][0] == 0 and r["step_boundaries"]["gold"][-1] == r["clip_count"]["gold"]
        assert r["step_boundaries"]["trainee"][-1] == r["clip_count"]["trainee"]
        for p in r["alignment_preview"]:
            assert set(p) == {"gold_clip", "trainee_clip", "similarity"}
        json.dumps(r)  # serialisable as is
    assert results["missing"]["metrics"]["miss"] == 1
    assert results["swap"]["metrics"]["swap"] == 1
    assert results["correct_slower"]["metrics"]["temporal_warp"] < 0.2


def test_scoring_is_deterministic(embedded):
    a = score(embedded("gold"), embedded("two_errors")).result
    b = score(embedded("gold"), embedded("two_errors")).result
    assert a == b


def test_videos_of_different_models_are_refused(embedded):
    import dataclasses

    other = dataclasses.replace(embedded("swap"), model="deep:efficientnet_lite0:pt")
    with pytest.raises(EmbedderError, match="different models"):
        score(embedded("gold"), other)


def test_decision_thresholds_are_configurable(embedded, monkeypatch):
    from sopilot_pipelines.settings import ScoringSettings, settings

    monkeypatch.setenv("SOPILOT_PASS_SCORE", "99.5")
    monkeypatch.setenv("SOPILOT_REVIEW_SCORE", "94")
    r = score(embedded("gold"), embedded("over_time"), ScoringSettings().config()).result
    assert r["decision"] == "needs_review"
    monkeypatch.setenv("SOPILOT_REVIEW_SCORE", "not-a-number")
    settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="SOPILOT_REVIEW_SCORE"):
            settings()
        monkeypatch.setenv("SOPILOT_REVIEW_SCORE", "99.9")  # above the pass score
        with pytest.raises(ValueError, match="pass_score >= review_score"):
            settings()
    finally:
        settings.cache_clear()


def test_cli_score_json_and_bad_file(suite, tmp_path):
    cmd = [sys.executable, "-m", "sopilot_pipelines.cli", "score", "--gold", str(suite["gold"].path)]
    out = subprocess.run(cmd + ["--trainee", str(suite["swap"].path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert set(r) == RESULT_KEYS | {"decision"}
    assert [d["type"] for d in r["deviations"]] == ["order_swap"]
    table = subprocess.run(cmd + ["--trainee", str(suite["swap"].path)], capture_output=True, text=True)
    assert "order_swap" in table.stdout and "decision" in table.stdout
    # a person reads steps numbered from 1, with their names; the JSON keeps the 0-based index
    d = r["deviations"][0]
    assert f"{d['gold_step'] + 1}. {d['step_name']}" in table.stdout
    assert "steps:    1. Step 1 " in table.stdout
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    out = subprocess.run(cmd + ["--trainee", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "notes.mp4" in out.stderr


def test_step_map_preview_matches_boundaries(results):
    r = results["gold"]
    labels = np.array(r["step_map_preview"]["gold"])
    assert labels[0] == 0 and labels[-1] == len(r["step_boundaries"]["gold"]) - 2
    assert np.all(np.diff(labels) >= 0)


def test_a_procedure_that_repeats_a_sub_step_is_not_confused(tmp_path):
    """Step 3 is step 0 again (same place, same motion): only position tells them apart."""
    from sopilot_pipelines.core.embedding import embed_video

    s = synth.Step
    proc = synth.Procedure(
        (
            s(0, "circle", 4.0),
            s(1, "vertical", 4.0),
            s(2, "horizontal", 4.0),
            s(0, "circle", 4.0),
            s(3, "tap", 4.0),
            s(4, "vertical", 4.0),
        )
    )
    builtin = get_embedder("builtin")
    gold = embed_video(
        synth.render(proc, "gold", tmp_path / "g.mp4", seed=3, **synth.GOLD_FORMAT).path, embedder=builtin
    )
    slow = embed_video(
        synth.render(proc, "correct_slower", tmp_path / "t.mp4", seed=4, **synth.TRAINEE_FORMAT).path, embedder=builtin
    )
    r = score(gold, slow).result
    assert len(r["step_boundaries"]["gold"]) == 7
    assert r["deviations"] == []
    assert r["decision"] == "pass"

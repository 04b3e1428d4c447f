"""Steps given by the user (`--steps`, `score(..., steps=...)`): validation, names, any-order
groups, optional steps."""

import json
import subprocess
import sys

import pytest

from sopilot_pipelines.core.scoring import score
from sopilot_pipelines.core.sop import StepsError, StepSpec, load_steps, parse_steps


def _true_steps(suite, names=None, optional=(), groups=None):
    truth = suite["gold"].step_times()
    out = []
    for k in sorted(truth):
        a, b = truth[k][0]
        out.append(StepSpec(names[k] if names else f"step {k}", a, b, k in optional, (groups or {}).get(k)))
    return out


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"steps": []}, "empty"),
        ({"nothing": 1}, "expected"),
        (
            {"steps": [{"name": "a", "start_sec": 0, "end_sec": 3}, {"name": "b", "start_sec": 2, "end_sec": 5}]},
            "overlap",
        ),
        ({"steps": [{"name": "a", "start_sec": 0, "end_sec": 99}]}, "after the end of the gold"),
        ({"steps": [{"name": "a", "start_sec": 4, "end_sec": 3}]}, "must be after"),
        ({"steps": [{"name": "", "start_sec": 0, "end_sec": 3}]}, "non-empty"),
        ({"steps": [{"name": "x" * 201, "start_sec": 0, "end_sec": 3}]}, "longer than 200"),
        (
            {"steps": [{"name": "a", "start_sec": 0, "end_sec": 3}, {"name": "a", "start_sec": 4, "end_sec": 5}]},
            "two steps are named",
        ),
        ({"steps": [{"name": "a", "start_sec": "x", "end_sec": 3}]}, "must be numbers"),
        ({"steps": [{"name": "a", "start_sec": 0, "end_sec": 3, "optional": "yes"}]}, "optional must be"),
    ],
)
def test_bad_steps_are_refused_with_the_reason(obj, message):
    with pytest.raises(StepsError, match=message):
        parse_steps(obj, gold_duration=30.0)


def test_steps_are_sorted_and_gaps_are_allowed():
    steps = parse_steps(
        [{"name": "b", "start_sec": 5, "end_sec": 8}, {"name": "a", "start_sec": 0.5, "end_sec": 3, "group": 1}]
    )
    assert [s.name for s in steps] == ["a", "b"] and steps[0].group == "1" and not steps[0].optional


@pytest.mark.slow
def test_given_steps_name_every_deviation(suite, embedded):
    names = ["Fit the gear", "Press the cover", "Slide the rail", "Tap the pin", "Turn the knob"]
    steps = _true_steps(suite, names)
    r = score(embedded("gold"), embedded("swap"), steps=steps).result
    assert [(d["type"], d["step_name"]) for d in r["deviations"]] == [("order_swap", "Press the cover")]
    assert "'Press the cover' and 'Slide the rail'" in r["deviations"][0]["reason"]
    assert [s["name"] for s in r["gold_steps"]] == names
    assert r["gold_steps"][0]["start_sec"] == pytest.approx(steps[0].start_sec, abs=0.01)
    own = score(embedded("gold"), embedded("gold"), steps=steps).result
    assert own["score"] == 100 and own["deviations"] == [] and own["decision"] == "pass"


@pytest.mark.slow
def test_steps_of_one_group_may_be_done_in_any_order(suite, embedded):
    free = _true_steps(suite, groups={1: "fixings", 2: "fixings"})
    r = score(embedded("gold"), embedded("swap"), steps=free).result
    assert r["deviations"] == [] and r["decision"] == "pass"
    strict = score(embedded("gold"), embedded("swap"), steps=_true_steps(suite)).result
    assert [d["type"] for d in strict["deviations"]] == ["order_swap"]


@pytest.mark.slow
def test_a_skipped_optional_step_costs_nothing(suite, embedded):
    missing = 2  # synth's "missing" variant drops the middle step
    r = score(embedded("gold"), embedded("missing"), steps=_true_steps(suite, optional=(missing,))).result
    assert [(d["type"], d["gold_step"]) for d in r["deviations"]] == [("optional_step_skipped", missing)]
    assert r["score"] == 100 and r["decision"] == "pass"
    strict = score(embedded("gold"), embedded("missing"), steps=_true_steps(suite)).result
    assert [d["type"] for d in strict["deviations"]] == ["step_missing"] and strict["decision"] != "pass"


@pytest.mark.slow
def test_cli_takes_a_steps_file_and_refuses_a_bad_one(suite, tmp_path):
    steps = _true_steps(suite, names=["A", "B", "C", "D", "E"])
    good = tmp_path / "steps.json"
    good.write_text(json.dumps({"steps": [s.as_dict() for s in steps]}))
    cmd = [
        sys.executable,
        "-m",
        "sopilot_pipelines.cli",
        "score",
        "--gold",
        str(suite["gold"].path),
        "--trainee",
        str(suite["missing"].path),
        "--json",
    ]
    out = subprocess.run(cmd + ["--steps", str(good)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert [(d["type"], d["step_name"]) for d in r["deviations"]] == [("step_missing", "C")]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {"steps": [{"name": "A", "start_sec": 0, "end_sec": 4}, {"name": "B", "start_sec": 3, "end_sec": 6}]}
        )
    )
    out = subprocess.run(cmd + ["--steps", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and "bad.json" in out.stderr and "overlap" in out.stderr
    assert load_steps(good)[2].name == "C"

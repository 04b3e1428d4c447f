"""The synthetic procedure generator: plans carry the right ground truth, files are real videos."""

import pytest

from sopilot_pipelines.core import synth
from sopilot_pipelines.core.video import probe


def _steps(plan):
    return [(gold_step, motion) for kind, gold_step, _, motion, _ in plan if kind == "step"]


def test_variant_plans_change_exactly_what_they_claim():
    proc = synth.default_procedure()
    gold = _steps(synth.plan_variant(proc, "gold")[0])
    assert gold == [(k, s.motion) for k, s in enumerate(proc.steps)]
    missing, exp = synth.plan_variant(proc, "missing")
    assert [k for k, _ in _steps(missing)] == [0, 1, 3, 4] and exp == [synth.Expected("step_missing", 2)]
    swap, exp = synth.plan_variant(proc, "swap")
    assert [k for k, _ in _steps(swap)] == [0, 2, 1, 3, 4] and exp[0].swapped_with == 2
    wrong, _ = synth.plan_variant(proc, "wrong_execution")
    assert _steps(wrong)[2][1] != proc.steps[2].motion and _steps(wrong)[1] == gold[1]
    repeated, _ = synth.plan_variant(proc, "repeated")
    assert [k for k, _ in _steps(repeated)] == [0, 1, 1, 2, 3, 4]
    slow, _ = synth.plan_variant(proc, "correct_slower")
    assert [d for *_, d in slow] == pytest.approx([1.45 * s.duration_sec for s in proc.steps])
    extra, _ = synth.plan_variant(proc, "extra_step")
    assert [kind for kind, *_ in extra].count("extra") == 1
    with pytest.raises(ValueError, match="unknown variant"):
        synth.plan_variant(proc, "sideways")


@pytest.mark.slow
def test_render_writes_a_video_with_its_format_and_timeline(tmp_path):
    proc = synth.default_procedure(3)
    r = synth.render(proc, "over_time", tmp_path / "v.mp4", fps=25.0, size=(240, 180))
    info = probe(r.path)
    assert (info.width, info.height) == (240, 180)
    assert info.source_fps == pytest.approx(25.0, rel=0.01)
    assert info.duration_sec == pytest.approx(r.duration_sec, abs=0.1)
    times = r.step_times()
    assert sorted(times) == [0, 1, 2]
    ((s2, e2),) = times[2]
    assert e2 - s2 == pytest.approx(2.6 * proc.steps[2].duration_sec)

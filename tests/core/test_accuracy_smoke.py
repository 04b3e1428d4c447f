"""A smoke slice of the cross-style accuracy benchmark (`bench/accuracy.py`): two styles drawn by
independent generators (our bench, and shapes over textured backgrounds), a few variants,
steps given and found, through the engine's default embedder. The full benchmark is
`make accuracy`; this only catches an engine change that breaks what it already gets right."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for bench/

from bench import accuracy

VARIANTS = ("gold", "correct_slower", "missing", "swap")


@pytest.fixture(scope="module")
def out_root(tmp_path_factory):
    return tmp_path_factory.mktemp("accuracy")


@pytest.mark.slow
@pytest.mark.parametrize("style", ["bench", "shapes"])
@pytest.mark.parametrize("mode", ["given", "found"])
def test_smoke_slice(out_root, style, mode):
    from sopilot_pipelines.core.embedders import DEFAULT_EMBEDDER, get_embedder
    from sopilot_pipelines.core.scoring import ScoringConfig

    task = accuracy.load_task(style, 1, VARIANTS, out_root)
    run = accuracy.run_task(task, get_embedder(DEFAULT_EMBEDDER).name, mode, ScoringConfig(), out_root)
    summary = accuracy.summarise([run])
    by = {v["variant"]: v for v in summary["variants"]}
    print(style, mode, {k: v for k, v in summary.items() if k != "variants"})
    assert summary["gold_self_ok"] == "1/1"
    assert summary["false_alarms"] == 0
    assert by["correct_slower"]["decision"] == "pass" and by["correct_slower"]["reported"] == []
    assert by["missing"]["missed"] == [] and by["swap"]["missed"] == []
    assert summary["faulty_passed"] == 0 and summary["ranking_pairs"] == 1.0
    if mode == "found":
        assert summary["boundary_f1"] >= 0.8

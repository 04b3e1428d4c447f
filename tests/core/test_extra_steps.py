"""How long unexplained activity must last to be an extra step (scoring._extras), on embeddings
made to order: each step a direction of its own, the extra activity one that no step has. The
bar is a real attempt of the gold's shortest step at the trainee's pace, so a hesitation between
15 s steps is not an extra step where the same stretch between 4 s steps is."""

import numpy as np
import pytest

from sopilot_pipelines.core.embedding import EmbeddedVideo
from sopilot_pipelines.core.scoring import score
from tests.helpers import embedded_rows

K = 5
DIRS = np.random.default_rng(0).standard_normal((K + 1, 64)) / 8  # the last one: no step's
EXTRA = K
STRIDE = 0.5


def _video(order: list[int], seconds: list[float], seed: int, noise: float = 0.05) -> EmbeddedVideo:
    rng = np.random.default_rng(seed)
    rows = [
        DIRS[k] + noise * rng.standard_normal(64) for k, sec in zip(order, seconds) for _ in range(int(sec / STRIDE))
    ]
    return embedded_rows(rows, STRIDE)


def _types(steps: list[float], extra_sec: float) -> list[str]:
    gold = _video(list(range(K)), steps, seed=1)
    order = [0, 1, EXTRA, 2, 3, 4]  # something else between steps 2 and 3
    trainee = _video(order, [*steps[:2], extra_sec, *steps[2:]], seed=2)
    return sorted(d["type"] for d in score(gold, trainee).result["deviations"])


@pytest.mark.parametrize(
    ("steps", "extra_sec", "expected"),
    [
        ([4.0] * K, 3.5, ["extra_step"]),  # between 4 s steps, 3.5 s of something else is an extra step
        ([15.0] * K, 3.5, []),  # between 15 s steps it is a hesitation
        ([15.0] * K, 9.0, ["extra_step"]),  # more than half a 15 s step is an extra step again
        ([15.0, 15.0, 15.0, 4.0, 15.0], 3.5, ["extra_step"]),  # as long as a step of this gold could be
    ],
)
def test_an_extra_step_is_as_long_as_a_real_attempt_of_the_shortest_step(steps, extra_sec, expected):
    assert _types(steps, extra_sec) == expected

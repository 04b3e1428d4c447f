"""Steps done out of their place (scoring._out_of_place), on embeddings made to order: each step a
direction of its own, the last clips of a step blending into the next one (a transition), noise.
A short step far from where the global alignment expects it was labelled "other" by the decoder
(its positional prior and the jump back outweigh three clips): reported missing plus an extra
step, where it is only out of order."""

import numpy as np

from sopilot_pipelines.core.embedding import EmbeddedVideo
from sopilot_pipelines.core.scoring import score
from tests.helpers import embedded_rows

K = 6
DIRS = np.random.default_rng(0).standard_normal((K, 64)) / 8
STRIDE = 0.5


def _video(order: list[int], clips: list[int], seed: int, ramp: int = 2, noise: float = 0.05) -> EmbeddedVideo:
    rng = np.random.default_rng(seed)
    rows = []
    for j, k in enumerate(order):
        for i in range(clips[k]):
            v = DIRS[k]
            if j + 1 < len(order) and i >= clips[k] - ramp:  # blending into the next step
                w = (i - (clips[k] - ramp) + 1) / (ramp + 1)
                v = (1 - w) * DIRS[k] + w * DIRS[order[j + 1]]
            rows.append(v + noise * rng.standard_normal(len(v)))
    return embedded_rows(rows, STRIDE)


CLIPS = [12, 5, 12, 16, 14, 12]  # step 2 of the procedure ("Step 2", index 1) is short: 2.5 s
GOLD = _video(list(range(K)), CLIPS, seed=1)


def _types(result: dict) -> list[str]:
    return sorted(d["type"] for d in result["deviations"])


def test_a_reversed_procedure_is_out_of_order_not_missing_steps():
    r = score(GOLD, _video(list(range(K))[::-1], CLIPS, seed=2)).result
    assert _types(r) == ["order_swap"] * 4, r["deviations"]  # every step found, none missing, no extra
    assert [s["index"] for s in r["trainee_steps"]] == list(range(K))


def test_a_short_step_really_left_out_is_still_missing():
    order = [0, 2, 3, 4, 5]
    r = score(GOLD, _video(order, CLIPS, seed=3)).result
    assert _types(r) == ["step_missing"], r["deviations"]
    assert r["deviations"][0]["gold_step"] == 1


def test_the_same_procedure_in_order_has_no_deviation():
    r = score(GOLD, _video(list(range(K)), CLIPS, seed=4)).result
    assert r["deviations"] == [] and r["score"] == 100

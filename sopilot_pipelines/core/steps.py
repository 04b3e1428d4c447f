"""Step boundaries on the gold video, and where each gold step happens in a trainee video.

Gold: optimal piecewise-constant segmentation of the clip embeddings (ruptures' kernel
change points), the number of steps read off the knee of the cost curve, so a step boundary is
where the content visibly changes. Trainee: each clip is labelled with the gold step it looks like,
or "other" when it looks like none, by Viterbi decoding with a switching cost. Unlike one
monotone DTW path, labels may come in any order, so swaps, repeats and extra activity show up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OTHER = -1  # trainee label: activity that matches no gold step


def segment_steps(emb: np.ndarray, min_len: int, max_steps: int = 60) -> np.ndarray:
    """Boundaries [0, b1, ..., n] (clip indices) of the gold's steps.

    For every number of steps K, the optimal cut into K stretches of at least `min_len` clips
    (least squares on the embeddings: ruptures' kernel change-point search, linear kernel). K is
    where the cost curve bends (the "knee": the point farthest below the chord from one step to
    the most steps allowed). The knee is a property of the curve's shape, not of its scale, so
    the same rule holds for any embedder, scene and camera; no penalty is tuned.
    """
    import ruptures as rpt  # ~0.1 s to import; only scoring needs it

    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    min_len = max(1, int(min_len))
    k_max = min(n // min_len, max_steps)
    if k_max < 3:
        return np.array([0, n])
    algo = rpt.KernelCPD(kernel="linear", min_size=min_len, jump=1).fit(x)
    cuts = {1: [n]}
    for k in range(2, k_max + 1):
        try:
            cuts[k] = algo.predict(n_bkps=k - 1)
        except rpt.exceptions.BadSegmentationParameters:
            break
    ks = np.array(sorted(cuts))
    costs = np.array([algo.cost.sum_of_costs(cuts[k]) for k in ks])
    if len(ks) < 3 or costs[0] - costs[-1] <= 1e-9 * max(costs[0], 1.0):
        return np.array([0, n])
    u = (ks - 1) / (ks[-1] - 1)
    v = (costs - costs[-1]) / (costs[0] - costs[-1])
    best = int(ks[int(np.argmax((1.0 - u) - v))])
    return np.array([0] + [int(c) for c in cuts[best]], dtype=np.int64)


def step_of_clip(bounds: np.ndarray, n: int) -> np.ndarray:
    """Step label of each of n clips, from boundaries."""
    return np.searchsorted(bounds, np.arange(n), side="right") - 1


@dataclass(frozen=True)
class Run:
    """A maximal stretch of trainee clips [start, end) with one label."""

    label: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def step_similarity(sim: np.ndarray, gold_steps: np.ndarray, n_steps: int, top: int = 3) -> np.ndarray:
    """(m, K): how much each trainee clip looks like each gold step.

    sim is (m, n) trainee x gold clip similarity; a step's score is the mean of the clip's
    `top` best matches inside that step, robust to a step's clips differing by motion phase.
    """
    m = sim.shape[0]
    out = np.empty((m, n_steps), dtype=np.float64)
    for k in range(n_steps):
        cols = sim[:, gold_steps == k]
        t = min(top, cols.shape[1])
        out[:, k] = np.mean(np.partition(cols, cols.shape[1] - t, axis=1)[:, -t:], axis=1)
    return out


def label_trainee(
    step_sim: np.ndarray,
    other_level: float,
    ranks: list[int],
    step_cost: float,
    skip_cost: float,
    jump_cost: float,
    repeat_cost: float,
) -> np.ndarray:
    """Viterbi labels (m,) in 0..K-1 or OTHER, maximising similarity minus transition costs.

    The states are the K steps and, for each step, "other activity after it" (plus one before
    the first step), so the decoder knows which step came last even across an unexplained
    stretch. Going on to the next step in gold order (by `ranks`: steps of one any-order group
    share a rank) costs `step_cost`; skipping ahead `skip_cost`; coming back to the same step
    after something else `repeat_cost`; any other jump (back) `jump_cost`. Out-of-order work is still found when the evidence over a whole
    stretch outweighs one jump; flicker between look-alike steps is not.
    """
    m, k = step_sim.shape
    r = np.asarray(ranks)
    nxt = np.array([r[r > x].min() if (r > x).any() else np.inf for x in r])
    # move[i, j]: from "last step i" (i = k: none yet) to step j
    first = r.min()
    move = np.full((k + 1, k), jump_cost)
    for i in range(k):
        move[i, (r == nxt[i]) | ((r == r[i]) & (np.arange(k) != i))] = step_cost
        move[i, (r > nxt[i])] = skip_cost
    move[k] = np.where(r == first, step_cost, skip_cost)
    states = 2 * k + 1  # steps 0..k-1, then "other after step i" at k + i, "other before any" at 2k
    trans = np.full((states, states), np.inf)
    trans[:k, :k] = move[:k]
    trans[k:, :k] = move  # from other-after-i to a step: as from step i
    for i in range(k):
        trans[k + i, i] = repeat_cost  # a step, something else, the same step again
        trans[i, i] = 0.0
        trans[i, k + i] = step_cost  # a step, then unexplained activity
        trans[k + i, k + i] = 0.0
    trans[2 * k, 2 * k] = 0.0
    emit = np.hstack([step_sim, np.full((m, k + 1), other_level)])
    score = emit[0] - np.concatenate([move[k], np.full(k, np.inf), [0.0]])
    back = np.zeros((m, states), dtype=np.int64)
    for j in range(1, m):
        cand = score[:, None] - trans  # (from, to)
        back[j] = np.argmax(cand, axis=0)
        score = cand[back[j], np.arange(states)] + emit[j]
    labels = np.empty(m, dtype=np.int64)
    labels[-1] = int(np.argmax(score))
    for j in range(m - 1, 0, -1):
        labels[j - 1] = back[j, labels[j]]
    labels[labels >= k] = OTHER
    return labels


def runs_of(labels: np.ndarray) -> list[Run]:
    out: list[Run] = []
    start = 0
    for j in range(1, len(labels) + 1):
        if j == len(labels) or labels[j] != labels[start]:
            out.append(Run(int(labels[start]), start, j))
            start = j
    return out


def absorb_short_runs(labels: np.ndarray, step_sim: np.ndarray, min_len: int) -> np.ndarray:
    """Relabel runs shorter than min_len (flicker at transitions) with a neighbour's label."""
    labels = labels.copy()
    changed = True
    while changed:
        changed = False
        runs = runs_of(labels)
        if len(runs) < 2:
            break
        for i, r in enumerate(runs):
            if r.length >= min_len:
                continue
            neighbours = [runs[i - 1].label] if i > 0 else []
            if i + 1 < len(runs):
                neighbours.append(runs[i + 1].label)

            def fit(lbl: int, r: Run = r) -> float:
                return -np.inf if lbl == OTHER else float(step_sim[r.start : r.end, lbl].mean())

            best = max(neighbours, key=lambda lbl: (fit(lbl), lbl != OTHER))
            if best != r.label:
                labels[r.start : r.end] = best
                changed = True
                break
    return labels


def reassign_lookalikes(labels: np.ndarray, step_sim: np.ndarray, level: float) -> np.ndarray:
    """Where a step is labelled in two runs while another step is never labelled, the run that
    best matches the unlabelled step (at least at `level`) becomes that step. Two steps that
    look alike (the same colour, the same part) otherwise both go to whichever wins by a hair,
    and a correct trainee shows one step missing and another repeated."""
    labels = labels.copy()
    k_steps = step_sim.shape[1]
    while True:
        runs = runs_of(labels)
        seen = {r.label for r in runs}
        best = None
        for j in (k for k in range(k_steps) if k not in seen):
            for r in runs:
                if r.label == OTHER or sum(q.label == r.label for q in runs) < 2:
                    continue
                s = float(step_sim[r.start : r.end, j].mean())
                if s >= level and (best is None or s > best[0]):
                    best = (s, j, r)
        if best is None:
            return labels
        _, j, r = best
        labels[r.start : r.end] = j

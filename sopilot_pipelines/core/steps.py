"""Step boundaries on the gold video, and where each gold step happens in a trainee video.

Gold: optimal piecewise-constant segmentation of the clip embeddings (least squares, one
penalty per step, dynamic programming over all split points), so a step boundary is where the
work changes place or kind. Trainee: each clip is labelled with the gold step it looks like,
or "other" when it looks like none, by Viterbi decoding with a switching cost. Unlike one
monotone DTW path, labels may come in any order, so swaps, repeats and extra activity show up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OTHER = -1  # trainee label: activity that matches no gold step


def segment_steps(emb: np.ndarray, min_len: int, penalty_scale: float = 1.0) -> np.ndarray:
    """Boundaries [0, b1, ..., n] (clip indices) of the gold's steps.

    The penalty per step is proportional to the within-step noise, estimated from clips
    `min_len` apart (mostly within one step), so it adapts to any embedder and scene.
    """
    x = np.asarray(emb, dtype=np.float64)
    n = len(x)
    min_len = max(1, int(min_len))
    if n < 2 * min_len:
        return np.array([0, n])
    lag = min(min_len, n - 1)
    noise = 0.5 * float(np.median(np.sum((x[lag:] - x[:-lag]) ** 2, axis=1)))
    penalty = penalty_scale * max(noise, 1e-6) * (2.0 + np.log(n))

    s1 = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    s2 = np.concatenate([[0.0], np.cumsum(np.sum(x * x, axis=1))])
    gram = s1 @ s1.T  # ||s1[b]-s1[a]||^2 from one GEMM
    sq = np.diag(gram)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    prev = np.zeros(n + 1, dtype=np.int64)
    for b in range(min_len, n + 1):
        a = np.arange(0, b - min_len + 1)
        a = a[np.isfinite(best[a])]
        length = b - a
        cost = (s2[b] - s2[a]) - (sq[b] + sq[a] - 2 * gram[b, a]) / length
        total = best[a] + cost + penalty
        i = int(np.argmin(total))
        best[b], prev[b] = total[i], a[i]
    bounds = [n]
    while bounds[-1] > 0:
        bounds.append(int(prev[bounds[-1]]))
    return np.array(bounds[::-1], dtype=np.int64)


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


def label_trainee(step_sim: np.ndarray, other_level: float, switch_cost: float) -> np.ndarray:
    """Viterbi labels (m,) in 0..K-1 or OTHER, maximising similarity minus switching costs."""
    m, k = step_sim.shape
    emit = np.hstack([step_sim, np.full((m, 1), other_level)])  # last state is OTHER
    states = k + 1
    score = emit[0].copy()
    back = np.zeros((m, states), dtype=np.int64)
    for j in range(1, m):
        # staying costs nothing; switching from the best other state costs switch_cost
        best_prev = int(np.argmax(score))
        switch = score[best_prev] - switch_cost
        stay = score
        take_switch = switch > stay
        back[j] = np.where(take_switch, best_prev, np.arange(states))
        score = np.where(take_switch, switch, stay) + emit[j]
    labels = np.empty(m, dtype=np.int64)
    labels[-1] = int(np.argmax(score))
    for j in range(m - 1, 0, -1):
        labels[j - 1] = back[j, labels[j]]
    labels[labels == k] = OTHER
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

            def fit(lbl: int) -> float:
                return -np.inf if lbl == OTHER else float(step_sim[r.start : r.end, lbl].mean())

            best = max(neighbours, key=lambda lbl: (fit(lbl), lbl != OTHER))
            if best != r.label:
                labels[r.start : r.end] = best
                changed = True
                break
    return labels

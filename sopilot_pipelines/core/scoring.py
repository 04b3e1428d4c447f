"""Score a trainee video against the gold: steps, deviations, metrics, score and decision.

1. The gold is cut into steps (`steps.segment_steps`), or the user gives them (`sop.StepSpec`).
2. Every trainee clip is labelled with the gold step it resembles, or "other" (`steps.label_trainee`);
   the "other" level is the pair's own: halfway between how alike this trainee's clips are to
   their best step and to the other steps (each video centred on its own mean first).
3. Deviations are read off the labelled runs: a gold step with no run is missing (or, if an
   unexplained stretch sits exactly where it belongs, performed differently); runs out of gold
   order are swaps; a second run of a step is a repeat; a run much longer than the trainee's own
   tempo predicts is over time; a long "other" run is an extra step.
4. A global DTW path (`align.dtw`) gives the alignment preview and the path metrics.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields

import numpy as np

from . import align
from .embedders import check_compatible
from .embedding import EmbeddedVideo
from .sop import StepSpec
from .steps import (
    OTHER, Run, absorb_short_runs, label_trainee, reassign_lookalikes, runs_of, segment_steps, step_of_clip, step_similarity,
)  # fmt: skip

DECISIONS = ("pass", "needs_review", "retrain", "fail")
# In units of the pair's spread (its match level less its non-match level), so they hold for any
# embedder, person and camera; set on the benchmark's tuning styles (bench/README.md).
STEP_COST = 0.2  # labelling: going on to another step in order
REPEAT_COST = 0.5  # labelling: the same step again after something else (a jump back costs 1)
REPEAT_FIT = 0.1  # a long run fitting the gold step twice over this much better (mean cost) is a repeat
SLOT_LEVEL = 0.15  # an unexplained stretch where a missing step belongs, this far above non-match: done differently


@dataclass(frozen=True)
class ScoringConfig:
    pass_score: float = 85.0  # >= this (and no critical deviation): pass
    review_score: float = 70.0  # >= this: needs_review
    retrain_score: float = 50.0  # >= this: retrain; below: fail
    min_step_seconds: float = 2.0  # shortest gold step the segmentation may cut
    over_time_ratio: float = 1.6  # step duration over the trainee's own tempo that counts as over time
    min_extra_seconds: float = 2.5  # unexplained activity shorter than this is transition, not an extra step
    # a step matching this far below the trainee's typical step, as a share of the way down to the
    # pair's non-match level, was done differently (set on the tuning styles, bench/README.md)
    execution_drop: float = 0.35
    # penalty per deviation, in units of one gold step's share of the score
    weight_missing: float = 1.0
    weight_swap: float = 0.8
    weight_execution: float = 0.5
    weight_extra: float = 0.35
    weight_repeated: float = 0.3
    weight_over_time: float = 0.25

    @classmethod
    def from_env(cls) -> "ScoringConfig":
        """Each field from SOPILOT_<FIELD> (e.g. SOPILOT_PASS_SCORE=80)."""
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"SOPILOT_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = float(raw)
                except ValueError:
                    raise ValueError(f"SOPILOT_{f.name.upper()} must be a number, got {raw!r}") from None
        cfg = cls(**values)
        if not cfg.pass_score >= cfg.review_score >= cfg.retrain_score:
            raise ValueError("decision thresholds must satisfy pass_score >= review_score >= retrain_score")
        return cfg


@dataclass
class ScoreOutcome:
    result: dict  # the contract's `result` object plus `decision`
    path: np.ndarray  # full global DTW path (L, 2): gold clip, trainee clip
    similarity: np.ndarray  # (n, m) gold x trainee clip similarity
    gold_labels: np.ndarray  # (n,) gold step of each gold clip
    trainee_labels: np.ndarray  # (m,) gold step of each trainee clip, -1 for other
    extras: dict = field(default_factory=dict)


@dataclass
class _Video:
    """Clip timing of one side, for turning clip runs into seconds."""

    centres: np.ndarray
    stride: float
    duration: float

    @classmethod
    def of(cls, v: EmbeddedVideo) -> "_Video":
        end = max(float(v.duration_sec), float(v.clip_ends[-1]))
        return cls((v.clip_starts + v.clip_ends) / 2.0, float(v.settings.stride_seconds), end)

    def span(self, start: int, end: int) -> tuple[float, float]:
        """Seconds covered by clips [start, end): from half a stride before the first centre."""
        a = 0.0 if start == 0 else self.centres[start] - self.stride / 2
        b = self.duration if end >= len(self.centres) else self.centres[end - 1] + self.stride / 2
        return round(float(max(a, 0.0)), 2), round(float(min(b, self.duration)), 2)


def _time(span: tuple[float, float] | None) -> dict:
    if span is None:
        return {"start_sec": None, "end_sec": None}
    return {"start_sec": span[0], "end_sec": span[1]}


def _clip01(x: float) -> float:
    return round(float(min(1.0, max(0.0, x))), 3)


def _pair_levels(step_sim: np.ndarray) -> tuple[float, float]:
    """(match, non_match): this pair's own similarity levels. `match` is the median over the
    trainee's clips of their best step similarity (most clips of a trainee belong to some step);
    `non_match` the median of every other entry (a clip against a step it is not). Both move
    together with person, take, camera and light, so a threshold between them holds across them."""
    m, k = step_sim.shape
    if k < 2:
        top = float(np.median(step_sim[:, 0]))
        return top, top - 0.5
    order = np.argsort(step_sim, axis=1)
    best = np.take_along_axis(step_sim, order[:, -1:], axis=1)[:, 0]
    rest = np.take_along_axis(step_sim, order[:, :-1], axis=1)
    return float(np.median(best)), float(np.median(rest))


def _gold_spread(gold_step_sim: np.ndarray, labels: np.ndarray) -> float:
    """How far the gold's own clips match their step above the other steps (median margin): the
    scale below which a pair's margin means the trainee does not resemble the gold at all."""
    own = labels >= 0
    if not own.any() or gold_step_sim.shape[1] < 2:
        return 1.0
    rows = gold_step_sim[own]
    lab = labels[own]
    mine = rows[np.arange(len(lab)), lab]
    rows = rows.copy()
    rows[np.arange(len(lab)), lab] = -np.inf
    return float(np.median(mine - rows.max(axis=1)))


def _position_prior(
    path: np.ndarray, gold_labels: np.ndarray, k_steps: int, m: int, stride: float, cap: float, reach_sec: float = 20.0
) -> np.ndarray:
    """(m, K) penalty growing with a trainee clip's distance (seconds) from where the global
    alignment puts each gold step, reaching `cap` at `reach_sec`."""
    j = np.arange(m)[:, None]
    step_of_path = gold_labels[path[:, 0]]
    lo = np.array([path[step_of_path == k, 1].min() for k in range(k_steps)])[None, :]
    hi = np.array([path[step_of_path == k, 1].max() for k in range(k_steps)])[None, :]
    dist = np.maximum(0, np.maximum(lo - j, j - hi)) * stride
    return np.minimum(cap, cap * dist / reach_sec)


def _lis(seq: list[int]) -> list[int]:
    """Indices into seq of one longest non-decreasing subsequence (equal ranks: any order)."""
    if not seq:
        return []
    best_len = [1] * len(seq)
    prev = [-1] * len(seq)
    for i in range(len(seq)):
        for j in range(i):
            if seq[j] <= seq[i] and best_len[j] + 1 > best_len[i]:
                best_len[i], prev[i] = best_len[j] + 1, j
    i = int(np.argmax(best_len))
    out = []
    while i != -1:
        out.append(i)
        i = prev[i]
    return out[::-1]


def _ranks(steps: list[StepSpec]) -> list[int]:
    """Order rank of each step: a group's steps all take the rank of its first step."""
    first: dict[str, int] = {}
    return [first.setdefault(st.group, k) if st.group is not None else k for k, st in enumerate(steps)]


def _repeat_split(cost: np.ndarray, gold_rows: np.ndarray, run: Run, min_part: int, margin: float) -> int | None:
    """The trainee clip where a second pass of the step begins, when the run [start, end) fits
    the gold step's clips twice over (mean DTW path cost) by `margin` better than once."""
    c = cost[gold_rows][:, run.start : run.end]
    if c.shape[0] < 2 or run.length < 2 * min_part:
        return None
    once_total, once_path = align.dtw(c)
    twice_total, twice_path = align.dtw(np.vstack([c, c]))
    if twice_total / len(twice_path) > once_total / len(once_path) - margin:
        return None
    second = twice_path[twice_path[:, 0] >= c.shape[0], 1]
    split = int(second.min())
    if split < min_part or run.length - split < min_part:
        return None
    return run.start + split


def gold_step_bounds(gold_embeddings: np.ndarray, stride_seconds: float, cfg: ScoringConfig) -> np.ndarray:
    """The gold's step boundaries found automatically: no step shorter than cfg.min_step_seconds."""
    return segment_steps(centred(gold_embeddings), max(2, int(round(cfg.min_step_seconds / float(stride_seconds)))))


def centred(emb: np.ndarray) -> np.ndarray:
    """Rows less the video's own mean, re-normalised. What every clip of a video shares (the
    room, the camera, the person, the light) says nothing about which step it is; removed, two
    recordings by other people in other places compare on what differs between steps."""
    x = np.asarray(emb, dtype=np.float64)
    if len(x) < 2:
        return np.asarray(emb, dtype=np.float32)
    x = x - x.mean(axis=0)
    norms = np.linalg.norm(x, axis=1)
    scale = float(np.median(norms))
    if scale < 1e-6:  # a static video: nothing varies, keep the raw vectors
        return np.asarray(emb, dtype=np.float32)
    return (x / np.maximum(norms, 1e-3 * scale)[:, None]).astype(np.float32)


def labels_from_steps(steps: list[StepSpec], v: "_Video") -> np.ndarray:
    """(n,) gold step of each gold clip from user-given steps (-1: a clip between steps). A step
    shorter than a clip still gets the clip nearest its middle."""
    labels = np.full(len(v.centres), -1, dtype=np.int64)
    for k, st in enumerate(steps):
        inside = (v.centres >= st.start_sec) & (v.centres < st.end_sec)
        if not inside.any():
            inside[int(np.argmin(np.abs(v.centres - 0.5 * (st.start_sec + st.end_sec))))] = True
        labels[inside & (labels < 0)] = k
    return labels


def score(
    gold: EmbeddedVideo, trainee: EmbeddedVideo, config: ScoringConfig | None = None, steps: list[StepSpec] | None = None
) -> ScoreOutcome:
    """Score a trainee against the gold. `steps`: the gold's steps given by the user (gold
    seconds); without them the gold is segmented automatically."""
    cfg = config or ScoringConfig()
    check_compatible(gold.model, trainee.model)
    n, m = len(gold.embeddings), len(trainee.embeddings)
    if n == 0 or m == 0:
        raise ValueError("both videos need at least one clip")
    G, T = centred(gold.embeddings), centred(trainee.embeddings)
    gv, tv = _Video.of(gold), _Video.of(trainee)

    cost = align.cost_matrix(G, T)
    sim = 1.0 - cost
    t_dtw = time.perf_counter()
    total_cost, path = align.dtw(cost)
    dtw_sec = time.perf_counter() - t_dtw

    stride = float(gold.settings.stride_seconds)
    if steps:
        gold_labels = labels_from_steps(steps, gv)
        K = len(steps)
        gold_span = [(round(st.start_sec, 2), round(st.end_sec, 2)) for st in steps]
        names = [st.name for st in steps]
    else:
        bounds = gold_step_bounds(gold.embeddings, stride, cfg)
        K = len(bounds) - 1
        gold_labels = step_of_clip(bounds, n)
        gold_span = [gv.span(int(bounds[k]), int(bounds[k + 1])) for k in range(K)]
        names = [f"Step {k + 1}" for k in range(K)]
        steps = [StepSpec(names[k], *gold_span[k]) for k in range(K)]
    gold_dur = np.array([b - a for a, b in gold_span])
    starts = [int(np.flatnonzero(gold_labels == k)[0]) for k in range(K)]

    step_sim = step_similarity(sim.T, gold_labels, K)  # (m, K)
    # Levels from this pair's own similarities (Drop-DTW sets its drop cost the same way): what
    # a match and a non-match look like between these two recordings. A trainee that resembles
    # the gold far less than the gold's steps differ from each other gets the gold's own spread.
    match, non_match = _pair_levels(step_sim)
    gold_spread = _gold_spread(step_similarity(G @ G.T, gold_labels, K), gold_labels)
    spread = max(match - non_match, 0.25 * gold_spread, 1e-3)
    inter, intra = non_match, non_match + spread
    tau = non_match + 0.5 * spread
    t_stride = float(trainee.settings.stride_seconds)
    min_run = max(2, int(round(1.0 / t_stride)))
    # A mild positional prior from the global DTW path: where a procedure has look-alike steps,
    # a clip is labelled with the one expected nearby. It is capped well below the gap between
    # a match and a non-match, so a step done out of order is still recognised as itself.
    prior = _position_prior(path, gold_labels, K, m, t_stride, cap=0.3 * spread)
    rank = _ranks(steps)
    labels = label_trainee(step_sim - prior, tau, rank, step_cost=STEP_COST * spread, skip_cost=STEP_COST * spread, jump_cost=spread,
                           repeat_cost=REPEAT_COST * spread)
    labels = absorb_short_runs(labels, step_sim, min_run)
    labels = reassign_lookalikes(labels, step_sim, tau)

    def regroup(labels: np.ndarray) -> tuple[list[Run], dict[int, list[Run]], dict[int, Run]]:
        """Runs, each step's runs, and each found step's longest run."""
        runs = runs_of(labels)
        occurrences = {k: [r for r in runs if r.label == k] for k in range(K)}
        return runs, occurrences, {k: max(occ, key=lambda r: r.length) for k, occ in occurrences.items() if occ}

    runs, occurrences, longest = regroup(labels)

    def run_sim(r: Run, k: int) -> float:
        return float(step_sim[r.start : r.end, k].mean())

    def confidence(s: float) -> float:  # how surely a stretch is the step, from its similarity
        return _clip01((s - inter) / spread)

    def core_sim(r: Run, k: int) -> float:  # without the clips that straddle the transitions
        a, b = (r.start + 1, r.end - 1) if r.length >= 5 else (r.start, r.end)
        return float(step_sim[a:b, k].mean())

    # the trainee's own pace: time in its found steps over the gold's time for them (a ratio of
    # totals: one mislabelled step moves it little, and people's steps vary in length)
    def pace(longest: dict[int, Run]) -> float:
        return sum(r.length for r in longest.values()) * t_stride / max(sum(gold_dur[k] for k in longest), 1e-6) if longest else 1.0

    tempo = pace(longest)
    # a step seen only in a glimpse (a fraction of its expected length, e.g. the hand passing
    # through on its way) was not done: those clips are unexplained activity
    # (never more than the gold's own clips of the step: a very short gold is its own measure)
    gold_clips = np.bincount(gold_labels[gold_labels >= 0], minlength=K)
    glimpses = [k for k, r in longest.items()
                if r.length < min(max(min_run, 0.25 * gold_dur[k] * tempo / t_stride), gold_clips[k])]  # fmt: skip
    if glimpses:
        labels = np.where(np.isin(labels, glimpses), OTHER, labels)
        runs, occurrences, longest = regroup(labels)
    # a run far longer than this trainee's pace may be the step done twice with nothing clearly
    # else between (the pause looks like the step's own start): the trainee's run against the
    # gold step twice over fits clearly better than against it once, stretched
    splits = [c for k, r in longest.items()
              if r.length * t_stride / max(gold_dur[k] * tempo, 1e-6) >= cfg.over_time_ratio
              and (c := _repeat_split(cost, gold_labels == k, r, max(min_run, int(0.5 * gold_dur[k] * tempo / t_stride)),
                                      REPEAT_FIT * spread)) is not None]  # fmt: skip
    if splits:
        labels = labels.copy()
        labels[splits] = OTHER
        runs, occurrences, longest = regroup(labels)
        tempo = pace(longest)
    # a step's occurrence is its first run long enough to be a real attempt; later ones are repeats
    primary = {}
    for k, occ in occurrences.items():
        need = max(min_run, int(0.5 * gold_dur[k] * tempo / t_stride))
        if occ:
            primary[k] = next((r for r in occ if r.length >= need), longest[k])

    deviations: list[dict] = []
    consumed: set[Run] = set()

    def dev(kind, k, t_span, conf, reason, **extra):
        d = {
            "type": kind,
            "gold_step": k,
            "step_name": names[k] if k is not None else None,
            "gold_time": _time(gold_span[k] if k is not None else extra.pop("gold_span", None)),
            "trainee_time": _time(t_span),
            "confidence": conf,
            "reason": reason,
        }
        extra.pop("gold_span", None)
        d.update(extra)
        deviations.append(d)

    # steps with no run: missing, unless an unexplained stretch sits where the step belongs
    for k in range(K):
        if k in primary:
            continue
        before = [primary[p].end for p in primary if p < k]
        after = [primary[q].start for q in primary if q > k]
        lo, hi = (max(before) if before else 0), (min(after) if after else m)
        need = max(min_run, int(0.4 * gold_dur[k] * tempo / t_stride))
        slot = [r for r in runs if r.label == OTHER and r.start >= lo and r.end <= hi and r.length >= need]
        cand = max(slot, key=lambda r: run_sim(r, k), default=None)
        window = min(need, m)  # the most alike stretch of step length, not a single clip
        best_anywhere = float(np.convolve(step_sim[:, k], np.ones(window) / window, "valid").max())
        if cand is not None and run_sim(cand, k) > inter + SLOT_LEVEL * spread:
            consumed.add(cand)
            s = run_sim(cand, k)
            dev(
                "execution_deviation", k, tv.span(cand.start, cand.end), _clip01((intra - s) / spread),
                f"{names[k]!r} was performed at the expected point but looks different from the gold "
                f"(similarity {s:.2f}, gold consistency {intra:.2f})",
                similarity=round(s, 3),
            )  # fmt: skip
        elif steps[k].optional:
            dev(
                "optional_step_skipped", k, None, _clip01(0.5 + (tau - best_anywhere) / (2 * max(tau - inter, 1e-3))),
                f"{names[k]!r} (optional) was not done",
            )  # fmt: skip
        else:
            dev(
                "step_missing", k, None, _clip01(0.5 + (tau - best_anywhere) / (2 * max(tau - inter, 1e-3))),
                f"the trainee never performs {names[k]!r}: no stretch of the video matches it "
                f"(closest stretch: similarity {best_anywhere:.2f}, a match needs {tau:.2f})",
            )  # fmt: skip

    # found but clearly less alike than this trainee's other steps: performed differently
    cores = {k: core_sim(r, k) for k, r in primary.items()}
    typical = float(np.median(list(cores.values()))) if len(primary) >= 2 else intra
    for k, r in primary.items():
        s = cores[k]
        if (typical - s) / max(typical - inter, 1e-3) >= cfg.execution_drop:
            dev(
                "execution_deviation", k, tv.span(r.start, r.end), _clip01(2 * (typical - s) / max(typical - inter, 1e-3)),
                f"{names[k]!r} was done at the right point but differently from the gold "
                f"(similarity {s:.2f}; this trainee's other steps match at about {typical:.2f})",
                similarity=round(s, 3),
            )  # fmt: skip

    # order: steps whose first appearance breaks gold order
    # steps of one any-order group share a rank: no order among them is wrong
    found = sorted(primary, key=lambda k: primary[k].start)
    keep = {found[i] for i in _lis([rank[k] for k in found])}
    pos = {k: i for i, k in enumerate(found)}
    inversions = [(a, b) for a in found for b in found if rank[a] < rank[b] and pos[a] > pos[b]]
    reported: set[tuple[int, int]] = set()
    for k in sorted(set(found) - keep):
        partners = [b if a == k else a for a, b in inversions if k in (a, b)]
        p = min(partners, key=lambda q: (abs(q - k), q))
        a, b = min(k, p), max(k, p)
        if (a, b) in reported:
            continue
        reported.add((a, b))
        dev(
            "order_swap", a, tv.span(primary[a].start, primary[a].end),
            min(confidence(run_sim(primary[a], a)), confidence(run_sim(primary[b], b))),
            f"{names[a]!r} and {names[b]!r} were done in the wrong order: {names[b]!r} was done before {names[a]!r}",
            swapped_with=b, swapped_with_trainee_time=_time(tv.span(primary[b].start, primary[b].end)),
        )  # fmt: skip

    # repeats: a further run of a step, long enough to be a real second attempt
    repeated_clips = 0
    for k, occ in occurrences.items():
        need = max(min_run, int(0.5 * gold_dur[k] * tempo / t_stride))
        for r in occ:
            if r is primary.get(k) or r.length < need:
                continue
            repeated_clips += r.length
            dev(
                "step_repeated", k, tv.span(r.start, r.end), confidence(run_sim(r, k)),
                f"{names[k]!r} was done again after it was already completed",
                first_trainee_time=_time(tv.span(primary[k].start, primary[k].end)),
            )  # fmt: skip

    # over time, relative to the trainee's own tempo (a uniformly slow trainee is not flagged)
    ratios = {}
    for k, r in primary.items():
        ratio = r.length * t_stride / max(gold_dur[k], 1e-6)
        ratios[k] = ratio
        rel = ratio / max(tempo, 1e-6)
        if rel >= cfg.over_time_ratio:
            dev(
                "over_time", k, tv.span(r.start, r.end),
                _clip01(0.5 + (rel - cfg.over_time_ratio) / (2 * (cfg.over_time_ratio - 1))),
                f"{names[k]!r} took {ratio:.1f}x the gold's time ({rel:.1f}x this trainee's usual pace)",
                duration_ratio=round(ratio, 2), relative_ratio=round(rel, 2),
            )  # fmt: skip

    # extra: long stretches that match no gold step
    min_extra = max(min_run, int(round(cfg.min_extra_seconds / t_stride)))
    for i, r in enumerate(runs):
        if r.label != OTHER or r in consumed or r.length < min_extra:
            continue
        if 0 < i < len(runs) - 1 and runs[i - 1].label == runs[i + 1].label:
            continue  # the pause between a step and its repeat belongs to the repeat
        best = float(step_sim[r.start : r.end].max(axis=1).mean())
        prev_steps = [k for k in primary if primary[k].end <= r.start]
        next_steps = [k for k in primary if primary[k].start >= r.end]
        after = max(prev_steps, key=lambda k: primary[k].end, default=None)
        before = min(next_steps, key=lambda k: primary[k].start, default=None)
        g_lo = gold_span[after][1] if after is not None else 0.0
        g_hi = gold_span[before][0] if before is not None else gv.duration
        dev(
            "extra_step", None, tv.span(r.start, r.end), _clip01((tau - best) / spread + 0.5),
            "the trainee did something that matches no gold step"
            + (f" (after {names[after]!r})" if after is not None else " (before the first step)"),
            gold_span=(g_lo, max(g_lo, g_hi)), after_gold_step=after,
        )  # fmt: skip

    deviations.sort(key=lambda d: (d["gold_time"]["start_sec"] if d["gold_time"]["start_sec"] is not None else 1e9))
    counts = {t: sum(d["type"] == t for d in deviations) for t in
              ("step_missing", "order_swap", "execution_deviation", "over_time", "extra_step", "step_repeated")}  # fmt: skip

    # metrics
    path_sim = sim[path[:, 0], path[:, 1]]
    matched = [run_sim(r, k) for k, r in primary.items()]
    gap_local = float(np.mean([max(0.0, intra - s) for s in matched])) if matched else 1.0
    log_ratios = np.log([max(v, 1e-3) for v in ratios.values()]) if ratios else np.zeros(1)
    drift = (
        float(np.mean([abs(np.mean(tv.span(r.start, r.end)) / tv.duration - np.mean(gold_span[k]) / gv.duration)
                       for k, r in primary.items()]))
        if primary else 0.0
    )  # fmt: skip
    n_pairs = len(found) * (len(found) - 1) / 2
    flagged = sum(bool(q) for q in gold.quality) + sum(bool(q) for q in trainee.quality)
    metrics = {
        "miss": counts["step_missing"],
        "swap": counts["order_swap"],
        "deviation": round(counts["execution_deviation"] / K, 4),
        "over_time": round(counts["over_time"] / K, 4),
        "temporal_warp": round(float(np.std(log_ratios)), 4),
        "path_stretch": round(len(path) / max(n, m) - 1.0, 4),
        "duplicate_ratio": round(repeated_clips / m, 4),
        "order_violation_ratio": round(len(inversions) / n_pairs, 4) if n_pairs else 0.0,
        "temporal_drift": round(drift, 4),
        "confidence_loss": round(flagged / (n + m), 4),
        "local_similarity_gap": round(gap_local, 4),
        "adaptive_low_similarity_threshold": round(tau, 4),
        "effective_low_similarity_threshold": round(tau, 4),
        "hard_miss_ratio": round(float(np.mean(step_sim.max(axis=0) < tau)), 4),
        "mean_alignment_cost": round(total_cost / len(path), 4),
    }

    out_of_order = len(set(found) - keep)
    penalty = (
        cfg.weight_missing * counts["step_missing"]
        + cfg.weight_swap * out_of_order
        + cfg.weight_execution * counts["execution_deviation"]
        + cfg.weight_extra * counts["extra_step"]
        + cfg.weight_repeated * counts["step_repeated"]
        + cfg.weight_over_time * counts["over_time"]
    )
    value = round(float(np.clip(100.0 * (1.0 - penalty / K), 0.0, 100.0)), 1)

    preview_idx = np.unique(np.linspace(0, len(path) - 1, min(len(path), 50)).astype(int))
    result = {
        "score": value,
        "metrics": metrics,
        "step_boundaries": {
            "gold": starts + [n],
            "trainee": [0] + [r.end for r in runs],
        },
        "deviations": deviations,
        "alignment_preview": [
            {"gold_clip": int(path[i, 0]), "trainee_clip": int(path[i, 1]), "similarity": round(float(path_sim[i]), 4)}
            for i in preview_idx
        ],
        "clip_count": {"gold": n, "trainee": m},
        "gold_steps": [
            {"index": k, "name": st.name, "start_sec": gold_span[k][0], "end_sec": gold_span[k][1],
             "optional": st.optional, "group": st.group}
            for k, st in enumerate(steps)
        ],  # fmt: skip
        "step_map_preview": {
            "gold": _preview(gold_labels),
            "trainee": _preview(labels),
        },
        "decision": decide(value, deviations, cfg),
    }
    return ScoreOutcome(
        result, path, sim, gold_labels, labels,
        extras={"gold_step_times": gold_span, "intra": intra, "inter": inter, "tempo": tempo, "dtw_sec": dtw_sec,
                "core_sims": cores},
    )  # fmt: skip


def _preview(labels: np.ndarray, limit: int = 120) -> list[int]:
    idx = np.unique(np.linspace(0, len(labels) - 1, min(len(labels), limit)).astype(int))
    return [int(labels[i]) for i in idx]


def decide(value: float, deviations: list[dict], cfg: ScoringConfig) -> str:
    """pass needs the score and no deviation at all (a skipped optional step is none): any
    deviation is something a supervisor looks at. A critical one never gets above review."""
    flagged = any(d["type"] != "optional_step_skipped" for d in deviations)
    if value >= cfg.pass_score and not flagged:
        return "pass"
    if value >= cfg.review_score:
        return "needs_review"
    if value >= cfg.retrain_score:
        return "retrain"
    return "fail"

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

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import align
from .embedders import check_compatible
from .embedding import EmbeddedVideo
from .scoring_config import ScoringConfig
from .sop import MIN_ENVELOPE_RECORDINGS, Envelope, StepSpec
from .steps import (
    OTHER,
    Run,
    absorb_short_runs,
    label_trainee,
    reassign_lookalikes,
    runs_of,
    segment_steps,
    step_of_clip,
    step_similarity,
)


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
    path: np.ndarray, gold_labels: np.ndarray, k_steps: int, m: int, stride: float, cap: float, reach_sec: float
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


@dataclass
class _GoldSteps:
    """The gold's steps: each gold clip's step (-1 between user-given steps), names, seconds."""

    labels: np.ndarray
    steps: list[StepSpec]
    spans: list[tuple[float, float]]
    starts: list[int]  # first gold clip of each step

    @property
    def count(self) -> int:
        return len(self.steps)

    @property
    def names(self) -> list[str]:
        return [st.name for st in self.steps]


def _gold_steps(gold: EmbeddedVideo, gv: _Video, steps: list[StepSpec] | None, cfg: ScoringConfig) -> _GoldSteps:
    n = len(gold.embeddings)
    if steps:
        labels = labels_from_steps(steps, gv)
        spans = [(round(st.start_sec, 2), round(st.end_sec, 2)) for st in steps]
    else:
        bounds = gold_step_bounds(gold.embeddings, float(gold.settings.stride_seconds), cfg)
        labels = step_of_clip(bounds, n)
        spans = [gv.span(int(bounds[k]), int(bounds[k + 1])) for k in range(len(bounds) - 1)]
        steps = [StepSpec(f"Step {k + 1}", *spans[k]) for k in range(len(spans))]
    starts = [int(np.flatnonzero(labels == k)[0]) for k in range(len(steps))]
    return _GoldSteps(labels, steps, spans, starts)


def auto_steps(gold: EmbeddedVideo, config: ScoringConfig | None = None) -> list[StepSpec]:
    """The gold's steps as score() finds them when none are given ("Step 1", "Step 2", ...)."""
    return _gold_steps(gold, _Video.of(gold), None, config or ScoringConfig()).steps


class _Pair:
    """One gold and one trainee, their step similarities and this pair's own levels: what every
    stage below reads. Levels come from this pair's own similarities (Drop-DTW sets its drop
    cost the same way): what a match and a non-match look like between these two recordings."""

    def __init__(self, gold: EmbeddedVideo, trainee: EmbeddedVideo, steps: list[StepSpec] | None, cfg: ScoringConfig):
        self.cfg = cfg
        self.G, self.T = centred(gold.embeddings), centred(trainee.embeddings)
        self.n, self.m = len(self.G), len(self.T)
        self.gv, self.tv = _Video.of(gold), _Video.of(trainee)
        self.cost = align.cost_matrix(self.G, self.T)
        self.sim = 1.0 - self.cost
        self.gold = _gold_steps(gold, self.gv, steps, cfg)
        K = self.gold.count
        self.K, self.names = K, self.gold.names
        self.gold_dur = np.array([b - a for a, b in self.gold.spans])
        self.step_sim = step_similarity(self.sim.T, self.gold.labels, K)  # (m, K)
        match, non_match = _pair_levels(self.step_sim)
        # A trainee that resembles the gold far less than the gold's steps differ from each other
        # gets (a share of) the gold's own spread.
        gold_spread = _gold_spread(step_similarity(self.G @ self.G.T, self.gold.labels, K), self.gold.labels)
        self.spread = max(match - non_match, cfg.min_spread_share * gold_spread, 1e-3)
        self.inter, self.intra = non_match, non_match + self.spread
        self.tau = non_match + 0.5 * self.spread  # the "looks like no step" level
        self.t_stride = float(trainee.settings.stride_seconds)
        self.min_run = max(2, int(round(cfg.min_run_seconds / self.t_stride)))
        self.envelope: dict[str, Envelope] = {}  # per step name (score() sets it)

    def run_sim(self, r: Run, k: int) -> float:
        return float(self.step_sim[r.start : r.end, k].mean())

    def core_sim(self, r: Run, k: int) -> float:
        """run_sim without the clips that straddle the transitions."""
        a, b = (r.start + 1, r.end - 1) if r.length >= 5 else (r.start, r.end)
        return float(self.step_sim[a:b, k].mean())

    def confidence(self, s: float) -> float:
        """How surely a stretch is the step, from its similarity."""
        return _clip01((s - self.inter) / self.spread)

    def expected_clips(self, k: int, share: float, tempo: float) -> int:
        """Trainee clips in `share` of gold step k's duration at the trainee's tempo (at least a
        minimal run)."""
        return max(self.min_run, int(share * self.gold_dur[k] * tempo / self.t_stride))

    def pace(self, longest: dict[int, Run]) -> float:
        """The trainee's own pace: time in its found steps over the gold's time for them (a ratio
        of totals: one mislabelled step moves it little, and people's steps vary in length)."""
        if not longest:
            return 1.0
        return (
            sum(r.length for r in longest.values()) * self.t_stride / max(sum(self.gold_dur[k] for k in longest), 1e-6)
        )

    def deviation(self, kind: str, k: int | None, t_span, conf: float, reason: str, gold_span=None, **extra) -> dict:
        d = {
            "type": kind,
            "gold_step": k,
            "step_name": self.names[k] if k is not None else None,
            "gold_time": _time(self.gold.spans[k] if k is not None else gold_span),
            "trainee_time": _time(t_span),
            "confidence": conf,
            "reason": reason,
        }
        d.update(extra)
        return d


@dataclass
class _Labelling:
    """The trainee's clips labelled with gold steps, and its runs."""

    labels: np.ndarray
    runs: list[Run]
    occurrences: dict[int, list[Run]]  # each step's runs
    longest: dict[int, Run]  # each found step's longest run
    tempo: float = 1.0
    primary: dict[int, Run] = field(default_factory=dict)  # each found step's occurrence

    @classmethod
    def of(cls, labels: np.ndarray, K: int) -> "_Labelling":
        runs = runs_of(labels)
        occurrences = {k: [r for r in runs if r.label == k] for k in range(K)}
        longest = {k: max(occ, key=lambda r: r.length) for k, occ in occurrences.items() if occ}
        return cls(labels, runs, occurrences, longest)


def _label(p: _Pair, path: np.ndarray) -> _Labelling:
    cfg, K, spread = p.cfg, p.K, p.spread
    # A mild positional prior from the global DTW path: where a procedure has look-alike steps,
    # a clip is labelled with the one expected nearby. It is capped well below the gap between
    # a match and a non-match, so a step done out of order is still recognised as itself.
    prior = _position_prior(path, p.gold.labels, K, p.m, p.t_stride, cfg.prior_cap * spread, cfg.prior_reach_seconds)
    labels = label_trainee(
        p.step_sim - prior,
        p.tau,
        _ranks(p.gold.steps),
        step_cost=cfg.step_cost * spread,
        skip_cost=cfg.step_cost * spread,
        jump_cost=cfg.jump_cost * spread,
        repeat_cost=cfg.repeat_cost * spread,
    )
    labels = absorb_short_runs(labels, p.step_sim, p.min_run)
    labels = reassign_lookalikes(labels, p.step_sim, p.tau)
    lab = _Labelling.of(labels, K)
    tempo = p.pace(lab.longest)
    # a step seen only in a glimpse (a fraction of its expected length, e.g. the hand passing
    # through on its way) was not done: those clips are unexplained activity
    # (never more than the gold's own clips of the step: a very short gold is its own measure)
    gold_clips = np.bincount(p.gold.labels[p.gold.labels >= 0], minlength=K)
    glimpses = [
        k
        for k, r in lab.longest.items()
        if r.length < min(max(p.min_run, cfg.glimpse_share * p.gold_dur[k] * tempo / p.t_stride), gold_clips[k])
    ]
    if glimpses:
        lab = _Labelling.of(np.where(np.isin(labels, glimpses), OTHER, labels), K)
    # a run far longer than this trainee's pace may be the step done twice with nothing clearly
    # else between (the pause looks like the step's own start): the trainee's run against the
    # gold step twice over fits clearly better than against it once, stretched
    splits = [
        c
        for k, r in lab.longest.items()
        if r.length * p.t_stride / max(p.gold_dur[k] * tempo, 1e-6) >= cfg.over_time_ratio
        and (
            c := _repeat_split(
                p.cost, p.gold.labels == k, r, p.expected_clips(k, cfg.attempt_share, tempo), cfg.repeat_fit * spread
            )
        )
        is not None
    ]
    if splits:
        labels = lab.labels.copy()
        labels[splits] = OTHER
        lab = _Labelling.of(labels, K)
        tempo = p.pace(lab.longest)
    lab = _out_of_place(p, lab, tempo)
    lab.tempo = tempo
    # a step's occurrence is its first run long enough to be a real attempt; later ones are repeats
    for k, occ in lab.occurrences.items():
        if occ:
            need = p.expected_clips(k, cfg.attempt_share, tempo)
            lab.primary[k] = next((r for r in occ if r.length >= need), lab.longest[k])
    return lab


def _slot(found: dict[int, Run], k: int, m: int) -> tuple[int, int]:
    """Trainee clips [lo, hi) where step k belongs: after the found steps before it, before the
    found steps after it."""
    before = [r.end for q, r in found.items() if q < k]
    after = [r.start for q, r in found.items() if q > k]
    return (max(before) if before else 0), (min(after) if after else m)


def _out_of_place(p: _Pair, lab: _Labelling, tempo: float) -> _Labelling:
    """A step the decoder left out although it was done, far from where the global alignment
    expects it (a reversed or reshuffled procedure: the positional prior and the jump back
    outweigh a short step): an unexplained run away from the step's slot, as long as a real
    attempt, whose clips match that step above the pair's match level and match it best, is that
    step. The order rule then reports it out of order instead of missing plus an extra."""
    missing = set(range(p.K)) - set(lab.longest)
    if not missing:
        return lab
    labels, found = lab.labels.copy(), []
    for r in lab.runs:
        if r.label != OTHER or r.length < p.min_run:
            continue
        best = p.step_sim[r.start : r.end].argmax(axis=1)
        k = int(np.bincount(best, minlength=p.K).argmax())
        if k not in missing or (best == k).mean() < 0.5 or p.run_sim(r, k) < p.tau:
            continue
        if r.length < p.expected_clips(k, p.cfg.attempt_share, tempo):
            continue
        lo, hi = _slot(lab.longest, k, p.m)
        if lo <= r.start and r.end <= hi:
            continue  # in its slot: whether it is the step done differently is _not_found's call
        labels[r.start : r.end] = k
        missing.discard(k)
        found.append(k)
    return _Labelling.of(labels, p.K) if found else lab


def _not_found(p: _Pair, lab: _Labelling) -> tuple[list[dict], set[Run]]:
    """Steps with no run: missing (or optional and skipped), unless an unexplained stretch sits
    where the step belongs and resembles it: then done differently (that stretch is consumed)."""
    out, consumed = [], set()
    primary, tau, inter, spread = lab.primary, p.tau, p.inter, p.spread
    for k in range(p.K):
        if k in primary:
            continue
        name = repr(p.names[k])
        lo, hi = _slot(primary, k, p.m)
        need = p.expected_clips(k, p.cfg.slot_share, lab.tempo)
        slot = [r for r in lab.runs if r.label == OTHER and r.start >= lo and r.end <= hi and r.length >= need]
        cand = max(slot, key=lambda r: p.run_sim(r, k), default=None)
        window = min(need, p.m)  # the most alike stretch of step length, not a single clip
        best_anywhere = float(np.convolve(p.step_sim[:, k], np.ones(window) / window, "valid").max())
        absent = _clip01(0.5 + (tau - best_anywhere) / (2 * max(tau - inter, 1e-3)))
        if cand is not None and p.run_sim(cand, k) > inter + p.cfg.slot_level * spread:
            consumed.add(cand)
            s = p.run_sim(cand, k)
            out.append(
                p.deviation(
                    "execution_deviation",
                    k,
                    p.tv.span(cand.start, cand.end),
                    _clip01((p.intra - s) / spread),
                    f"{name} was performed at the expected point but looks different from the gold "
                    f"(similarity {s:.2f}, gold consistency {p.intra:.2f})",
                    similarity=round(s, 3),
                )
            )
        elif p.gold.steps[k].optional:
            out.append(p.deviation("optional_step_skipped", k, None, absent, f"{name} (optional) was not done"))
        else:
            out.append(
                p.deviation(
                    "step_missing",
                    k,
                    None,
                    absent,
                    f"the trainee never performs {name}: no stretch of the video matches it "
                    f"(closest stretch: similarity {best_anywhere:.2f}, a match needs {tau:.2f})",
                )
            )
    return out, consumed


def _done_differently(p: _Pair, lab: _Labelling) -> tuple[list[dict], dict[int, float]]:
    """Found steps clearly less alike than this trainee's other steps: performed differently.
    With one step found there is no other step to compare with (and its level against the pair's
    `intra`, the median of the same clips, only measures how a few clips spread): nothing to say."""
    cores = {k: p.core_sim(r, k) for k, r in lab.primary.items()}
    out: list[dict] = []
    if len(cores) < 2:
        return out, cores
    typical = float(np.median(list(cores.values())))
    for k, r in lab.primary.items():
        s = cores[k]
        drop = (typical - s) / max(typical - p.inter, 1e-3)
        if drop >= p.cfg.execution_drop:
            out.append(
                p.deviation(
                    "execution_deviation",
                    k,
                    p.tv.span(r.start, r.end),
                    _clip01(2 * drop),
                    f"{p.names[k]!r} was done at the right point but differently from the gold "
                    f"(similarity {s:.2f}; this trainee's other steps match at about {typical:.2f})",
                    similarity=round(s, 3),
                )
            )
    return out, cores


@dataclass
class _Order:
    found: list[int]  # found steps in the trainee's order
    kept: set[int]  # the longest run of them in gold order
    inversions: list[tuple[int, int]]


def _order(p: _Pair, lab: _Labelling) -> tuple[list[dict], _Order]:
    """Steps whose first appearance breaks gold order; the steps of one any-order group share a
    rank, so no order among them is wrong."""
    primary, rank = lab.primary, _ranks(p.gold.steps)
    found = sorted(primary, key=lambda k: primary[k].start)
    keep = {found[i] for i in _lis([rank[k] for k in found])}
    pos = {k: i for i, k in enumerate(found)}
    inversions = [(a, b) for a in found for b in found if rank[a] < rank[b] and pos[a] > pos[b]]
    out, reported = [], set()
    for k in sorted(set(found) - keep):
        partners = [b if a == k else a for a, b in inversions if k in (a, b)]
        q = min(partners, key=lambda q: (abs(q - k), q))
        a, b = min(k, q), max(k, q)
        if (a, b) in reported:
            continue
        reported.add((a, b))
        out.append(
            p.deviation(
                "order_swap",
                a,
                p.tv.span(primary[a].start, primary[a].end),
                min(p.confidence(p.run_sim(primary[a], a)), p.confidence(p.run_sim(primary[b], b))),
                f"{p.names[a]!r} and {p.names[b]!r} were done in the wrong order: {p.names[b]!r} was done before {p.names[a]!r}",
                swapped_with=b,
                swapped_with_trainee_time=_time(p.tv.span(primary[b].start, primary[b].end)),
            )
        )
    return out, _Order(found, keep, inversions)


def _repeats(p: _Pair, lab: _Labelling) -> tuple[list[dict], int]:
    """A further run of a step, long enough to be a real second attempt (and its clips)."""
    out, clips = [], 0
    for k, occ in lab.occurrences.items():
        need = p.expected_clips(k, p.cfg.attempt_share, lab.tempo)
        for r in occ:
            if r is lab.primary.get(k) or r.length < need:
                continue
            clips += r.length
            first = lab.primary[k]
            out.append(
                p.deviation(
                    "step_repeated",
                    k,
                    p.tv.span(r.start, r.end),
                    p.confidence(p.run_sim(r, k)),
                    f"{p.names[k]!r} was done again after it was already completed",
                    first_trainee_time=_time(p.tv.span(first.start, first.end)),
                )
            )
    return out, clips


def _over_time(p: _Pair, lab: _Labelling) -> tuple[list[dict], dict[int, float]]:
    """Steps much longer than the gold's, relative to the trainee's own tempo (a uniformly slow
    trainee is not flagged); and every found step's duration ratio."""
    limit = p.cfg.over_time_ratio
    out, ratios = [], {}
    for k, r in lab.primary.items():
        ratio = r.length * p.t_stride / max(p.gold_dur[k], 1e-6)
        ratios[k] = ratio
        rel = ratio / max(lab.tempo, 1e-6)
        env = p.envelope.get(p.names[k])
        if env is not None and env.count >= MIN_ENVELOPE_RECORDINGS:
            # enough recordings of the step: judged against how long it takes, not this trainee's pace
            span = p.tv.span(r.start, r.end)
            took, bound = span[1] - span[0], max(env.p90, limit * env.median)
            if took > bound:
                out.append(
                    p.deviation(
                        "over_time",
                        k,
                        span,
                        _clip01(0.5 + (took / max(bound, 1e-6) - 1) / 2),
                        f"{p.names[k]!r} took {took:.1f} s, over its duration envelope from {env.count} recordings "
                        f"({env.golds} gold, {env.trainees} passing trainee): median {env.median:.1f} s, "
                        f"90th percentile {env.p90:.1f} s",
                        duration_ratio=round(ratio, 2),
                        relative_ratio=round(rel, 2),
                        judged_against="envelope",
                        envelope=env.as_dict(),
                    )
                )
            continue
        if rel >= limit:
            out.append(
                p.deviation(
                    "over_time",
                    k,
                    p.tv.span(r.start, r.end),
                    _clip01(0.5 + (rel - limit) / (2 * (limit - 1))),
                    f"{p.names[k]!r} took {ratio:.1f}x the gold's time ({rel:.1f}x this trainee's usual pace)",
                    duration_ratio=round(ratio, 2),
                    relative_ratio=round(rel, 2),
                )
            )
    return out, ratios


def _extras(p: _Pair, lab: _Labelling, consumed: set[Run]) -> list[dict]:
    """Long stretches that match no gold step, placed in gold time between the found steps.
    Long: as long as a real attempt (`attempt_share`) of the gold's shortest step at the
    trainee's pace, and never under `min_extra_seconds`: what is shorter than any step could be
    is a hesitation, and one between 15 s steps lasts longer than one between 4 s steps."""
    primary, runs = lab.primary, lab.runs
    # rounded up, not down as expected_clips does: the stretch must last the whole attempt
    shortest = p.cfg.attempt_share * float(p.gold_dur.min()) * lab.tempo / p.t_stride
    min_extra = max(p.min_run, int(round(p.cfg.min_extra_seconds / p.t_stride)), math.ceil(shortest - 1e-9))
    out = []
    for i, r in enumerate(runs):
        if r.label != OTHER or r in consumed or r.length < min_extra:
            continue
        if 0 < i < len(runs) - 1 and runs[i - 1].label == runs[i + 1].label:
            continue  # the pause between a step and its repeat belongs to the repeat
        best = float(p.step_sim[r.start : r.end].max(axis=1).mean())
        after = max((k for k in primary if primary[k].end <= r.start), key=lambda k: primary[k].end, default=None)
        before = min((k for k in primary if primary[k].start >= r.end), key=lambda k: primary[k].start, default=None)
        g_lo = p.gold.spans[after][1] if after is not None else 0.0
        g_hi = p.gold.spans[before][0] if before is not None else p.gv.duration
        out.append(
            p.deviation(
                "extra_step",
                None,
                p.tv.span(r.start, r.end),
                _clip01((p.tau - best) / p.spread + 0.5),
                "the trainee did something that matches no gold step"
                + (f" (after {p.names[after]!r})" if after is not None else " (before the first step)"),
                gold_span=(g_lo, max(g_lo, g_hi)),
                after_gold_step=after,
            )
        )
    return out


_COUNTED = ("step_missing", "order_swap", "execution_deviation", "over_time", "extra_step", "step_repeated")


def _metrics(p, lab, order, counts, ratios, repeated_clips, path, total_cost, quality_flagged) -> dict:
    K = p.K
    matched = [p.run_sim(r, k) for k, r in lab.primary.items()]
    gap_local = float(np.mean([max(0.0, p.intra - s) for s in matched])) if matched else 1.0
    log_ratios = np.log([max(v, 1e-3) for v in ratios.values()]) if ratios else np.zeros(1)
    drift = (
        float(
            np.mean(
                [
                    abs(np.mean(p.tv.span(r.start, r.end)) / p.tv.duration - np.mean(p.gold.spans[k]) / p.gv.duration)
                    for k, r in lab.primary.items()
                ]
            )
        )
        if lab.primary
        else 0.0
    )
    n_found = len(order.found)
    n_pairs = n_found * (n_found - 1) / 2
    return {
        "miss": counts["step_missing"],
        "swap": counts["order_swap"],
        "deviation": round(counts["execution_deviation"] / K, 4),
        "over_time": round(counts["over_time"] / K, 4),
        "temporal_warp": round(float(np.std(log_ratios)), 4),
        "path_stretch": round(len(path) / max(p.n, p.m) - 1.0, 4),
        "duplicate_ratio": round(repeated_clips / p.m, 4),
        "order_violation_ratio": round(len(order.inversions) / n_pairs, 4) if n_pairs else 0.0,
        "temporal_drift": round(drift, 4),
        "confidence_loss": round(quality_flagged / (p.n + p.m), 4),
        "local_similarity_gap": round(gap_local, 4),
        "adaptive_low_similarity_threshold": round(p.tau, 4),
        "effective_low_similarity_threshold": round(p.tau, 4),
        "hard_miss_ratio": round(float(np.mean(p.step_sim.max(axis=0) < p.tau)), 4),
        "mean_alignment_cost": round(total_cost / len(path), 4),
    }


def _score_value(counts: dict[str, int], out_of_order: int, K: int, cfg: ScoringConfig) -> float:
    """100 less the weighted deviations, in units of one gold step's share of the score."""
    penalty = (
        cfg.weight_missing * counts["step_missing"]
        + cfg.weight_swap * out_of_order
        + cfg.weight_execution * counts["execution_deviation"]
        + cfg.weight_extra * counts["extra_step"]
        + cfg.weight_repeated * counts["step_repeated"]
        + cfg.weight_over_time * counts["over_time"]
    )
    return round(float(np.clip(100.0 * (1.0 - penalty / K), 0.0, 100.0)), 1)


def score(
    gold: EmbeddedVideo,
    trainee: EmbeddedVideo,
    config: ScoringConfig | None = None,
    steps: list[StepSpec] | None = None,
    envelope: dict[str, Envelope] | None = None,
) -> ScoreOutcome:
    """Score a trainee against the gold. `steps`: the gold's steps given by the user (gold
    seconds); without them the gold is segmented automatically. `envelope`: per step name, how
    long the step takes across golds and passing trainees; a step with at least
    MIN_ENVELOPE_RECORDINGS of them is over time against it, the others against the trainee's
    own pace."""
    cfg = config or ScoringConfig()
    check_compatible(gold.model, trainee.model)
    if len(gold.embeddings) == 0 or len(trainee.embeddings) == 0:
        raise ValueError("both videos need at least one clip")
    p = _Pair(gold, trainee, steps, cfg)
    p.envelope = dict(envelope or {})
    t_dtw = time.perf_counter()
    total_cost, path = align.dtw(p.cost)
    dtw_sec = time.perf_counter() - t_dtw

    lab = _label(p, path)
    missing, consumed = _not_found(p, lab)
    different, cores = _done_differently(p, lab)
    swaps, order = _order(p, lab)
    repeats, repeated_clips = _repeats(p, lab)
    slow, ratios = _over_time(p, lab)
    deviations = missing + different + swaps + repeats + slow + _extras(p, lab, consumed)
    deviations.sort(key=lambda d: d["gold_time"]["start_sec"] if d["gold_time"]["start_sec"] is not None else 1e9)
    counts = {t: sum(d["type"] == t for d in deviations) for t in _COUNTED}
    flagged = sum(bool(q) for q in gold.quality) + sum(bool(q) for q in trainee.quality)
    metrics = _metrics(p, lab, order, counts, ratios, repeated_clips, path, total_cost, flagged)
    value = _score_value(counts, len(set(order.found) - order.kept), p.K, cfg)

    path_sim = p.sim[path[:, 0], path[:, 1]]
    preview_idx = np.unique(np.linspace(0, len(path) - 1, min(len(path), 50)).astype(int))
    result = {
        "score": value,
        "metrics": metrics,
        "step_boundaries": {
            "gold": p.gold.starts + [p.n],
            "trainee": [0] + [r.end for r in lab.runs],
        },
        "deviations": deviations,
        "alignment_preview": [
            {"gold_clip": int(path[i, 0]), "trainee_clip": int(path[i, 1]), "similarity": round(float(path_sim[i]), 4)}
            for i in preview_idx
        ],
        "clip_count": {"gold": p.n, "trainee": p.m},
        "gold_steps": [
            {
                "index": k,
                "name": st.name,
                "start_sec": p.gold.spans[k][0],
                "end_sec": p.gold.spans[k][1],
                "optional": st.optional,
                "group": st.group,
            }
            for k, st in enumerate(p.gold.steps)
        ],
        # where the trainee did each found step (its first real attempt), in trainee seconds
        "trainee_steps": [
            {"index": k, "name": p.names[k], **_time(p.tv.span(lab.primary[k].start, lab.primary[k].end))}
            for k in sorted(lab.primary)
        ],
        "step_map_preview": {
            "gold": _preview(p.gold.labels),
            "trainee": _preview(lab.labels),
        },
        "decision": decide(value, deviations, cfg),
    }
    return ScoreOutcome(
        result,
        path,
        p.sim,
        p.gold.labels,
        lab.labels,
        extras={
            "gold_step_times": p.gold.spans,
            "intra": p.intra,
            "inter": p.inter,
            "tempo": lab.tempo,
            "dtw_sec": dtw_sec,
            "core_sims": cores,
        },
    )


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

"""Training the feature adapter, and judging it before it may go live.

Objective (self-supervised, from what the system already knows about each task):
* Clips aligned to the same gold step across videos of a task are positives; other steps and
  other tasks are negatives (a supervised-contrastive / InfoNCE loss). Alignments come from the
  gold's own steps and from completed score results (the trainee labels stored with them).
* Videos with no alignment yet (no score, or a task without a gold) add a weaker temporal term:
  clips within `temporal_window` seconds of each other in one video are positives, clips of the
  same video `temporal_gap` or more apart negatives.
* Clips a score found performed differently from the gold (execution deviations, in the stored
  score or a fresh one in the live space) are no step, so they are negatives: a wrong execution
  must not be learnt as the step.
* The model is a residual linear map y = normalise((x - mean) @ (I + W) + b), W starting at 0
  and decayed toward 0; a preserve term keeps clip-pair cosines near the centred raw space's, so
  the map sharpens steps without erasing what tells a right execution from a wrong one.

Judge: trainees of each task are split by video id into train and held-out. Held-out clips are
labelled by a fresh `score()` alignment in the *live* adapter's space -- never by stored labels,
which may be wrong or poisoned -- and the figure is step retrieval recall@R against the gold's
and the train trainees' clips (R = how many gallery clips show the query clip's step). The
candidate goes live only if it beats the live adapter by at least `min_improvement`, aligns
held-out clips to the gold's no worse, scoring in its space still reports every deviation the live
space reports on the task's trainees, and no stored labels it learnt from contradict a fresh
alignment; otherwise the live one stays, and the figures and the reason are recorded either way.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .adapter import FeatureAdapter
from .embedding import EmbeddedVideo
from .scoring import ScoringConfig, gold_step_bounds, score
from .steps import OTHER, step_of_clip

METRIC = "step_recall_at_R"  # R: the number of gallery clips of the query clip's step


@dataclass
class TrainingVideo:
    video_id: int
    task_id: str
    role: str  # "gold" | "trainee"
    ev: EmbeddedVideo  # RAW embeddings (before any adapter)
    # (C,) gold step per clip from a completed score against the task's current gold, through
    # `trusted_labels`; -1 = no step. None: not scored yet (the temporal term uses the video).
    stored_labels: np.ndarray | None = None


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 100  # optimiser steps, each over all clips (or `batch_clips` of them)
    lr: float = 3e-3
    identity_decay: float = 0.01  # weight of ||W||^2: keeps the map near the identity
    # weight of the mean squared change of clip-pair cosines from the centred raw space. Pulling a
    # step's clips together otherwise erases how a step was done (on the synthetic suite a held-out
    # wrong motion at the right station stopped being reported below ~100; at 100 it still is)
    preserve_weight: float = 100.0
    temperature: float = 0.1
    temporal_window: float = 1.0  # seconds between clip centres that count as temporal neighbours
    temporal_gap: float = 4.0  # seconds apart in one video that most likely show different steps
    temporal_weight: float = 0.3  # the temporal term is a weaker signal than real alignments
    heldout_fraction: float = 0.3
    # least fraction of a video's step-labelled clips on which its stored labels must agree with a
    # fresh alignment in the live space (~1 normally; a relabelled or forged score is near 0)
    min_label_agreement: float = 0.5
    min_improvement: float = 0.01  # absolute gain in held-out step recall@R the candidate must show
    k: int = 5  # recall@k is recorded beside recall@R (with ~k << R it saturates near 1)
    seed: int = 0
    max_clips: int = 20000  # training clips kept (evenly thinned per video beyond this)
    batch_clips: int = 2048  # clips per optimiser step (all of them when fewer)
    # torch threads; OpenMP threads spin-wait, and on a busy 2-core machine 2 threads ran the same
    # training 10-20x slower than 1 (3 s vs 30-50 s)
    threads: int = 1


@dataclass
class TrainingOutcome:
    accepted: bool
    adapter: FeatureAdapter | None  # the new adapter, only when accepted
    figures: dict
    reason: str


def _in_space(ev: EmbeddedVideo, adapter: FeatureAdapter) -> EmbeddedVideo:
    return dataclasses.replace(ev, embeddings=adapter.apply(ev.embeddings))


def gold_steps(
    gold_ev: EmbeddedVideo, adapter: FeatureAdapter, scoring_config: ScoringConfig | None = None
) -> np.ndarray:
    """(n,) the gold's own step per clip in the adapter's space, segmented exactly as score() does."""
    cfg = scoring_config or ScoringConfig()
    g = adapter.apply(gold_ev.embeddings)
    return step_of_clip(gold_step_bounds(g, gold_ev.settings.stride_seconds, cfg), len(g)).astype(np.int64)


def _deviant(result: dict, trainee_ev: EmbeddedVideo) -> np.ndarray:
    """(m,) bool: clips inside a stretch the score found performed differently from the gold."""
    centres, out = _centres(trainee_ev), np.zeros(trainee_ev.n_clips, dtype=bool)
    for d in result.get("deviations", []):
        span = d.get("trainee_time") or {}
        if d.get("type") == "execution_deviation" and span.get("start_sec") is not None:
            out |= (centres >= span["start_sec"]) & (centres <= span["end_sec"])
    return out


def trusted_labels(trainee_labels: np.ndarray, result: dict, trainee_ev: EmbeddedVideo) -> np.ndarray:
    """A score's per-clip trainee labels fit to learn from: OTHER -> -1, and -1 for the clips of a
    step the score found performed differently from the gold (execution deviations). Taught as
    the step, they would make the adapter blind to exactly the errors scoring must find."""
    labels = np.where(np.asarray(trainee_labels) == OTHER, -1, trainee_labels).astype(np.int64)
    labels[_deviant(result, trainee_ev)] = -1
    return labels


def _fresh(gold_ev, trainee_ev, adapter, scoring_config) -> tuple[np.ndarray, Counter, np.ndarray]:
    """A fresh score in the adapter's space: trusted labels, deviations (type, gold step), deviant clips."""
    outcome = score(_in_space(gold_ev, adapter), _in_space(trainee_ev, adapter), scoring_config)
    found = Counter((d["type"], d["gold_step"]) for d in outcome.result["deviations"])
    return (
        trusted_labels(outcome.trainee_labels, outcome.result, trainee_ev),
        found,
        _deviant(outcome.result, trainee_ev),
    )


def fresh_labels(
    gold_ev: EmbeddedVideo,
    trainee_ev: EmbeddedVideo,
    adapter: FeatureAdapter,
    scoring_config: ScoringConfig | None = None,
) -> np.ndarray:
    """(m,) gold step per trainee clip from a fresh score() alignment in the adapter's space, as
    `trusted_labels` (-1: no step, or a step performed differently)."""
    return _fresh(gold_ev, trainee_ev, adapter, scoring_config)[0]


def _split(trainees: list[TrainingVideo], fraction: float) -> tuple[list[TrainingVideo], list[TrainingVideo]]:
    """(train, held_out) by a hash of the video id: deterministic, spread over arrival order, and
    mostly stable as videos arrive."""
    ranked = sorted(trainees, key=lambda v: ((v.video_id * 2654435761) % 2**32, v.video_id))
    h = max(1, round(fraction * len(ranked))) if ranked else 0
    return ranked[h:], ranked[:h]


def _centres(ev: EmbeddedVideo) -> np.ndarray:
    return (np.asarray(ev.clip_starts, dtype=np.float64) + np.asarray(ev.clip_ends, dtype=np.float64)) / 2.0


# --- training ----------------------------------------------------------------------------------


@dataclass
class _Rows:
    """The training clips, stacked: raw embeddings and what is known about each."""

    x: list[np.ndarray] = field(default_factory=list)
    label: list[np.ndarray] = field(default_factory=list)  # global (task, step) id, -1 none
    video: list[np.ndarray] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)
    temporal: list[np.ndarray] = field(default_factory=list)  # clip of a video without alignment
    counts: dict = field(default_factory=lambda: {"gold": 0, "score": 0, "temporal": 0})

    def add(self, v: TrainingVideo, labels: np.ndarray | None, source: str, ids: dict) -> None:
        n = v.ev.n_clips
        if labels is None:
            lab = np.full(n, -1, dtype=np.int64)
        else:
            lab = np.array(
                [ids.setdefault((v.task_id, int(s)), len(ids)) if s >= 0 else -1 for s in labels], dtype=np.int64
            )
        self.x.append(np.asarray(v.ev.embeddings, dtype=np.float32))
        self.label.append(lab)
        self.video.append(np.full(n, v.video_id, dtype=np.int64))
        self.time.append(_centres(v.ev))
        self.temporal.append(np.full(n, labels is None))
        self.counts[source] += int((lab >= 0).sum()) if labels is not None else n


def _pairs(label, video, t, temporal, cfg: TrainingConfig):
    """Boolean (N, N) masks: (positives, candidates) of the alignment term, then of the temporal term.

    Alignment: same (task, step) in any video is positive; every other clip of an aligned video
    (other steps, other tasks, "no step") is a negative. Clips of unaligned videos are left out:
    they may well show the same step.
    Temporal (clips of unaligned videos): neighbours within `temporal_window` seconds are
    positive, clips of the same video at least `temporal_gap` away (most likely another step)
    negative; other videos are left out, as they may show the same step."""
    import torch

    not_self = ~torch.eye(len(label), dtype=torch.bool)
    same_step = (label[:, None] == label[None, :]) & (label[:, None] >= 0) & not_self
    aligned = ~temporal[:, None] & ~temporal[None, :] & not_self
    dt = (t[:, None] - t[None, :]).abs()
    same_video = (video[:, None] == video[None, :]) & temporal[:, None] & not_self
    near = same_video & (dt <= cfg.temporal_window)
    far = same_video & (dt >= cfg.temporal_gap)
    return same_step, aligned, near, near | far


def _info_nce(s, positives, candidates):
    """Mean over anchors with a positive and a negative of -mean log p(positive | candidates)."""
    import torch

    anchors = positives.any(dim=1) & (candidates & ~positives).any(dim=1)
    if not anchors.any():
        return s.new_zeros(())
    s, positives, candidates = s[anchors], positives[anchors], candidates[anchors]
    logits = s.masked_fill(~candidates, -math.inf)
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return (-torch.where(positives, logp, 0.0).sum(dim=1) / positives.sum(dim=1)).mean()


def projection_model(mean: np.ndarray):
    """The torch model behind a `projection` adapter: y = normalise((x - mean) @ (I + W) + b), with
    W and b at 0 at first, so training starts from the centred raw space."""
    import torch

    class ResidualProjection(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = len(mean)
            self.mean: torch.Tensor
            self.eye: torch.Tensor
            self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
            self.register_buffer("eye", torch.eye(d))
            self.W = torch.nn.Parameter(torch.zeros(d, d))
            self.b = torch.nn.Parameter(torch.zeros(d))

        def forward(self, x):
            return torch.nn.functional.normalize((x - self.mean) @ (self.eye + self.W) + self.b, dim=1)

        def to_adapter(self) -> FeatureAdapter:
            weight = (self.eye + self.W).detach().numpy()
            return FeatureAdapter("projection", self.mean.numpy().copy(), weight, self.b.detach().numpy().copy())

    return ResidualProjection()


def _train(rows: _Rows, cfg: TrainingConfig) -> tuple[FeatureAdapter | None, dict]:
    import torch

    x, label, video, t, temporal = (
        np.concatenate(a) for a in (rows.x, rows.label, rows.video, rows.time, rows.temporal)
    )
    if len(x) > cfg.max_clips:  # evenly thinned, so every video keeps its share and its time order
        keep = np.unique(np.linspace(0, len(x) - 1, cfg.max_clips).round().astype(int))
        x, label, video, t, temporal = (a[keep] for a in (x, label, video, t, temporal))

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(cfg.threads, os.cpu_count() or 1)))
    try:
        torch.manual_seed(cfg.seed)
        gen = np.random.default_rng(cfg.seed)
        model = projection_model(x.astype(np.float64).mean(axis=0))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        X, L, V, T, TMP = (torch.from_numpy(a) for a in (x, label, video, t, temporal))

        def raw_cos(xb):  # the centred raw space's clip-pair cosines, what the preserve term keeps
            r = torch.nn.functional.normalize(xb - model.mean, dim=1)
            return r @ r.T

        full = (_pairs(L, V, T, TMP, cfg), raw_cos(X)) if len(x) <= cfg.batch_clips else None
        losses = []
        for _ in range(cfg.epochs):
            if full is None:  # a random batch of clips, and the pairs among them
                idx = torch.from_numpy(np.sort(gen.choice(len(x), cfg.batch_clips, replace=False)))
                xb, pairs, target = X[idx], _pairs(L[idx], V[idx], T[idx], TMP[idx], cfg), raw_cos(X[idx])
            else:
                xb, (pairs, target) = X, full
            z = model(xb)
            cos = z @ z.T
            loss = _info_nce(cos / cfg.temperature, *pairs[:2]) + cfg.temporal_weight * _info_nce(
                cos / cfg.temperature, *pairs[2:]
            )
            loss = loss + cfg.preserve_weight * (cos - target).pow(2).mean() + cfg.identity_decay * model.W.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        finite = bool(np.isfinite(losses).all()) and all(bool(torch.isfinite(p).all()) for p in model.parameters())
        change = float(model.W.detach().norm())
    finally:
        torch.set_num_threads(threads)

    def num(v: float | None) -> float | None:  # figures stay strict JSON
        return round(float(v), 4) if v is not None and np.isfinite(v) else None

    stats = {
        "loss_first": num(losses[0] if losses else None),
        "loss_last": num(losses[-1] if losses else None),
        "train_clips": int(len(x)),
        "weight_change": num(change),
    }
    return (model.to_adapter() if finite else None), stats


# --- judging -----------------------------------------------------------------------------------


@dataclass
class _JudgeTask:
    gold: tuple[np.ndarray, np.ndarray]  # (raw, labels) of the task's gold
    train: list[tuple[np.ndarray, np.ndarray]]  # (raw, fresh labels) of the train trainees
    queries: list[tuple[np.ndarray, np.ndarray]]  # (raw, fresh labels) of the held-out trainees
    gold_ev: EmbeddedVideo
    trainees: list[tuple[TrainingVideo, Counter]]  # every trainee, with the live space's deviations


def _lost_deviations(candidate: FeatureAdapter, tasks: list[_JudgeTask], scoring_config) -> tuple[list[str], int, int]:
    """(deviations the live space reports and the candidate's would not, as words; how many the
    live space reports; how many the candidate's reports beyond them), over every trainee."""
    lost, live_n, new_n = [], 0, 0
    for jt in tasks:
        for v, live_found in jt.trainees:
            found = _fresh(jt.gold_ev, v.ev, candidate, scoring_config)[1]
            live_n += sum(live_found.values())
            new_n += sum((found - live_found).values())
            lost += [
                f"{kind} (gold step {step}) in video {v.video_id}" for (kind, step) in (live_found - found).elements()
            ]
    return lost, live_n, new_n


def _recall_at_r(sim: np.ndarray, q_lab: np.ndarray, g_lab: np.ndarray) -> np.ndarray:
    """Per query: of the R gallery clips of its step, the fraction among its R nearest (R-precision).
    Unlike a fixed small k it covers the whole step, its ends included, so it does not saturate."""
    rel = g_lab[np.argsort(-sim, axis=1, kind="stable")] == q_lab[:, None]
    r = rel.sum(axis=1)
    ok = r > 0
    return np.cumsum(rel, axis=1)[ok, r[ok] - 1] / r[ok]


def _judge(adapter: FeatureAdapter, tasks: list[_JudgeTask], k: int) -> dict:
    """Held-out figures of one adapter, pooled over the labelled held-out clips of all tasks."""
    recall: list[float] = []
    gold_recall: list[float] = []
    recall_k: list[float] = []
    separation: list[float] = []
    for jt in tasks:
        n_gold = len(jt.gold[0])
        g = adapter.apply(np.concatenate([jt.gold[0]] + [raw for raw, _ in jt.train]))
        g_lab = np.concatenate([jt.gold[1]] + [lab for _, lab in jt.train])
        kk = min(k, len(g))
        for raw, lab in jt.queries:
            keep = lab >= 0
            if not keep.any():
                continue
            q, q_lab = adapter.apply(raw[keep]), lab[keep]
            sim = q @ g.T
            recall.extend(_recall_at_r(sim, q_lab, g_lab))
            gold_recall.extend(_recall_at_r(sim[:, :n_gold], q_lab, g_lab[:n_gold]))
            top = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
            recall_k.extend((g_lab[top] == q_lab[:, None]).mean(axis=1))
            # d': same-step minus other-step similarity in units of their spread; unlike a raw
            # cosine margin it compares across spaces (centering alone widens cosine ranges)
            same = g_lab[None, :] == q_lab[:, None]
            other = (g_lab[None, :] >= 0) & ~same
            ok = same.any(axis=1) & other.any(axis=1)
            stats = []
            for mask in (same[ok], other[ok]):
                mu = (sim[ok] * mask).sum(1) / mask.sum(1)
                stats.append((mu, (((sim[ok] - mu[:, None]) ** 2) * mask).sum(1) / mask.sum(1)))
            (mu_s, var_s), (mu_o, var_o) = stats
            separation.extend((mu_s - mu_o) / np.sqrt(np.maximum((var_s + var_o) / 2, 1e-12)))

    def mean(xs: list) -> float | None:
        return round(float(np.mean(xs)), 4) if xs else None

    return {
        "recall": mean(recall),
        "gold_recall": mean(gold_recall),
        "recall_k": mean(recall_k),
        "separation": mean(separation),
        "clips": len(recall),
    }


@dataclass
class _Collected:
    """What training and judging read: the training rows, the held-out judging tasks, and
    what was noticed while gathering them."""

    rows: _Rows = field(default_factory=_Rows)
    judge: list[_JudgeTask] = field(default_factory=list)
    suspect: dict[int, float] = field(default_factory=dict)  # video id -> agreement with a fresh alignment
    tasks: int = 0
    n_train: int = 0
    n_held: int = 0
    ignored: int = 0  # stored labels of another clip layout or segmentation


def _collect(videos: list[TrainingVideo], live: FeatureAdapter, cfg: TrainingConfig, scoring_config) -> _Collected:
    """Training rows per task: the newest gold's steps, the stored score labels of the training
    trainees (checked against a fresh alignment in the live space), temporal neighbours where
    there are no labels; the held-out trainees become judging tasks."""
    by_task: dict[str, list[TrainingVideo]] = {}
    for v in sorted(videos, key=lambda v: v.video_id):
        by_task.setdefault(v.task_id, []).append(v)
    c = _Collected(tasks=len(by_task))
    ids: dict[tuple[str, int], int] = {}  # (task, gold step) -> global step id
    rows = c.rows
    for vids in by_task.values():
        golds = [v for v in vids if v.role == "gold"]
        if not golds:  # nothing to align to: temporal neighbours only, nothing to judge on
            for v in vids:
                rows.add(v, None, "temporal", ids)
            c.n_train += len(vids)
            continue
        gold = golds[-1]  # the newest gold defines the task's steps
        train, held = _split([v for v in vids if v.role != "gold"], cfg.heldout_fraction)
        g_lab = gold_steps(gold.ev, live, scoring_config)
        # the judge's labels: fresh alignments in the live space, never the stored ones
        fresh = {v.video_id: _fresh(gold.ev, v.ev, live, scoring_config) for v in train + held}
        rows.add(gold, g_lab, "gold", ids)
        for v in golds[:-1]:
            rows.add(v, None, "temporal", ids)
        for v in train:
            lab = v.stored_labels
            if lab is not None and (len(lab) != v.ev.n_clips or (len(lab) and int(np.max(lab)) > int(g_lab.max()))):
                c.ignored += 1  # another clip layout or another segmentation of the gold: not these steps
                lab = None
            if lab is None:
                rows.add(v, None, "temporal", ids)
                continue
            lab, (now, _, deviant) = np.asarray(lab, dtype=np.int64), fresh[v.video_id]
            both = (lab >= 0) & (now >= 0)
            if both.sum() >= 5 and (agree := float(np.mean(lab[both] == now[both]))) < cfg.min_label_agreement:
                c.suspect[v.video_id] = round(agree, 3)
            # a stretch the live space finds performed differently is not taught as the step
            rows.add(v, np.where(deviant, -1, lab), "score", ids)
        c.n_train += len(golds) + len(train)
        if held:
            train_lab, held_lab = ([(v.ev.embeddings, fresh[v.video_id][0]) for v in vs] for vs in (train, held))
            c.judge.append(
                _JudgeTask(
                    (gold.ev.embeddings, g_lab),
                    train_lab,
                    held_lab,
                    gold.ev,
                    [(v, fresh[v.video_id][1]) for v in train + held],
                )
            )
            c.n_held += len(held)
    return c


def _objections(
    cand: dict, base: dict, improvement: float, lost: list[str], suspect: dict, cfg: TrainingConfig
) -> list[str]:
    """Why a candidate must not go live (none: it may)."""
    failed = []
    if improvement < cfg.min_improvement:
        failed.append(f"step recall@R improved by {improvement:+.3f}, less than {cfg.min_improvement:+.3f}")
    # scoring compares trainee clips with the gold's: an adapter that aligns them worse to the gold
    # must not go live even if trainee-to-trainee retrieval improved
    if cand["gold_recall"] < base["gold_recall"]:
        failed.append("alignment to the gold got worse")
    # Pulling a step's clips together can erase how a step was done (a wrong motion at the right
    # place): an adapter that would hide a deviation the live space reports must not go live.
    if lost:
        failed.append(f"scoring would stop reporting {'; '.join(lost)}")
    # Stored labels that contradict a fresh alignment are corrupt or forged: whatever the figures
    # say, an adapter learnt from them must not go live (the figures show what it would do).
    if suspect:
        failed.append(
            f"the stored score labels of {len(suspect)} videos disagree with a fresh alignment in the live space "
            f"(agreement {', '.join(f'{a:.2f} for video {v}' for v, a in sorted(suspect.items()))}): the data is suspect"
        )
    return failed


def train_and_judge(
    videos: list[TrainingVideo],
    live: FeatureAdapter,
    config: TrainingConfig | None = None,
    scoring_config: ScoringConfig | None = None,
) -> TrainingOutcome:
    """Train a candidate adapter on the videos; it goes live only if it beats `live` on held-out videos."""
    cfg = config or TrainingConfig()
    t0 = time.perf_counter()
    dims = {v.ev.embeddings.shape[1] for v in videos}
    if len(dims) > 1:
        raise ValueError(f"videos have different embedding sizes {sorted(dims)}; train one adapter per embedder")
    c = _collect(videos, live, cfg, scoring_config)
    rows, judge = c.rows, c.judge
    figures: dict = {
        "metric": METRIC,
        "k": cfg.k,
        "min_improvement": cfg.min_improvement,
        "live_kind": live.kind,
        "tasks": c.tasks,
        "train_videos": c.n_train,
        "heldout_videos": c.n_held,
        "labelled_clips": dict(rows.counts),
        "ignored_stored_labels": c.ignored,
        "epochs": cfg.epochs,
        "suspect_stored_labels": {
            str(v): a for v, a in c.suspect.items()
        },  # video id -> agreement with a fresh alignment
    }

    def finish(accepted: bool, adapter: FeatureAdapter | None, reason: str) -> TrainingOutcome:
        figures.update(accepted=accepted, reason=reason, seconds=round(time.perf_counter() - t0, 3))
        if adapter is not None:
            adapter.info = dict(figures)
        return TrainingOutcome(accepted, adapter, figures, reason)

    base = _judge(live, judge, cfg.k)
    figures.update(heldout_clips=base["clips"], baseline=base["recall"], train_clips=int(sum(len(x) for x in rows.x)))
    if base["clips"] == 0:
        return finish(
            False,
            None,
            "nothing to measure on: no held-out trainee clip of a task with a gold is "
            f"aligned to a step; the live {live.kind} adapter stays",
        )

    candidate, stats = _train(rows, cfg)
    figures.update(stats)
    if candidate is None:
        return finish(False, None, f"training produced non-finite values; the live {live.kind} adapter stays")
    cand = _judge(candidate, judge, cfg.k)
    improvement = cand["recall"] - base["recall"]
    figures.update(
        candidate=cand["recall"],
        improvement=round(improvement, 4),
        secondary={
            name: {"baseline": base[key], "candidate": cand[key]}
            for name, key in (
                ("gold_step_recall", "gold_recall"),
                (f"step_recall_at_{cfg.k}", "recall_k"),
                ("step_separation_dprime", "separation"),
            )
        },
    )
    lost, live_n, new_n = _lost_deviations(candidate, judge, scoring_config)
    figures["deviations"] = {"live": live_n, "lost": lost, "new": new_n}

    def pair(key: str) -> str:
        return " vs ".join("n/a" if f[key] is None else f"{f[key]:.3f}" for f in (cand, base))

    numbers = (
        f"trained vs live on {base['clips']} held-out clips of {c.n_held} videos: step recall@R {pair('recall')} "
        f"({improvement:+.3f}, needs {cfg.min_improvement:+.3f}); against the gold alone {pair('gold_recall')}; "
        f"recall@{cfg.k} {pair('recall_k')}; step separation d' {pair('separation')}; deviations reported on "
        f"{sum(len(jt.trainees) for jt in judge)} trainees: {live_n} live, {len(lost)} of them lost, {new_n} new"
    )
    failed = _objections(cand, base, improvement, lost, c.suspect, cfg)
    if failed:
        return finish(False, None, f"rejected ({'; '.join(failed)}), the live {live.kind} adapter stays: {numbers}")
    return finish(True, candidate, f"accepted: {numbers}")


__all__ = [
    "TrainingConfig",
    "TrainingOutcome",
    "TrainingVideo",
    "fresh_labels",
    "gold_steps",
    "projection_model",
    "train_and_judge",
    "trusted_labels",
]

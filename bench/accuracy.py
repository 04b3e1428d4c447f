"""Cross-style accuracy benchmark: the instrument engine changes are judged by.

    .venv/bin/python bench/accuracy.py                      # every style, steps given and found
    .venv/bin/python bench/accuracy.py --styles slides,photo --embedder deep --modes found

Each style is drawn by its own generator (`bench/styles/<style>.py`); the real hand-washing
recordings of `../shared/data/handwash-dev/` are read in place. Figures follow
`../shared/ACCURACY.md`: deviation F1 (type + gold time), false alarms on correct variants,
ranking, gold vs itself, gold boundary F1 (+-1 s). Rendered videos and embeddings are cached
under bench/out/ (keyed by the generator's source and the embedder).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.styles import plans

STYLES = ("bench", "fixture", "slides", "shapes", "photo", "handwash")
TUNED = ("bench", "shapes")  # the protocol: rules are tuned on these two; the rest are held out
OUT = ROOT / "bench" / "out"
CRITICAL_ALARMS = ("step_missing", "order_swap", "execution_deviation", "extra_step")
EXTRA_SLACK_SEC = 1.0  # an extra step's expected gold span is the gap between two steps, widened by this


def style_module(name: str):
    return importlib.import_module(f"bench.styles.{name}")


def _source_key(mod) -> str:
    h = hashlib.sha256(Path(mod.__file__).read_bytes())
    h.update(Path(plans.__file__).read_bytes())
    return h.hexdigest()[:10]


def load_task(style: str, seed: int, variants: tuple[str, ...], out_root: Path = OUT) -> plans.Task:
    """Render (or reuse the cached render of) one task of a style."""
    mod = style_module(style)
    if style == "handwash":
        return mod.render_task(out_root, seed)
    out = out_root / "videos" / style / f"seed{seed}-{_source_key(mod)}"
    manifest = out / "task.json"
    if manifest.exists():
        task = _task_from_json(json.loads(manifest.read_text()))
        if set(variants) <= set(task.trainees):
            return task
    task = mod.render_task(out, seed, variants)
    manifest.write_text(json.dumps(_task_to_json(task)))
    return task


def _video_json(v: plans.Video) -> dict:
    return {
        "path": str(v.path),
        "variant": v.variant,
        "duration": v.timeline.duration_sec,
        "segments": [
            [s.activity.kind, s.activity.step, s.activity.duration, s.activity.wrong, s.start_sec, s.end_sec]
            for s in v.timeline.segments
        ],
        "expected": [[e.type, e.gold_step, e.swapped_with] for e in v.expected],
    }


def _video_from(d: dict) -> plans.Video:
    segs = [plans.Segment(plans.Activity(k, st, du, w), a, b) for k, st, du, w, a, b in d["segments"]]
    return plans.Video(
        Path(d["path"]), d["variant"], plans.Timeline(segs, d["duration"]), [plans.Expected(*e) for e in d["expected"]]
    )


def _task_to_json(t: plans.Task) -> dict:
    return {
        "style": t.style,
        "task_id": t.task_id,
        "gold": _video_json(t.gold),
        "trainees": {k: _video_json(v) for k, v in t.trainees.items()},
    }


def _task_from_json(d: dict) -> plans.Task:
    return plans.Task(
        d["style"], d["task_id"], _video_from(d["gold"]), {k: _video_from(v) for k, v in d["trainees"].items()}
    )


def embed_cached(path: Path, embedder_name: str, out_root: Path = OUT):
    """The video's clips embedded by `embedder_name`, cached by file content and embedder."""
    from sopilot_pipelines.core.embedders import get_embedder
    from sopilot_pipelines.core.embedding import EmbeddedVideo, embed_video
    from sopilot_pipelines.core.video import ClipSettings

    settings = ClipSettings()
    st = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{embedder_name}|{settings}".encode()
    ).hexdigest()[:16]
    npy, js = out_root / "emb" / f"{key}.npy", out_root / "emb" / f"{key}.json"
    if npy.exists() and js.exists():
        return EmbeddedVideo.load(npy, js)
    v = embed_video(path, settings, get_embedder(embedder_name))
    npy.parent.mkdir(parents=True, exist_ok=True)
    v.save(npy, js)
    return v


# --- judging one result (ACCURACY.md) ------------------------------------------------------------


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def time_matches(reported: dict, span: tuple[float, float]) -> bool:
    g = reported.get("gold_time") or {}
    if g.get("start_sec") is None:
        return False
    r = (float(g["start_sec"]), float(g["end_sec"]))
    length = span[1] - span[0]
    if length > 0 and _overlap(r, span) >= 0.4 * length:
        return True
    if span[0] <= (r[0] + r[1]) / 2 <= span[1]:
        return True
    return r[1] > r[0] and _overlap(r, span) >= 0.6 * (r[1] - r[0])


def expected_spans(task: plans.Task, video: plans.Video, e: plans.Expected) -> list[tuple[float, float]]:
    steps = task.gold_steps()
    if e.type == "extra_step":
        lo, hi = task.extra_gold_span(video)
        return [(max(0.0, lo - EXTRA_SLACK_SEC), hi + EXTRA_SLACK_SEC)]
    if e.gold_step is None:  # reversed: any step
        return [(0.0, task.gold.timeline.duration_sec)]
    spans = [steps[e.gold_step]]
    if e.swapped_with is not None:
        spans.append(steps[e.swapped_with])
    return spans


@dataclass
class Judged:
    variant: str
    correct: bool
    score: float
    decision: str
    tp: int
    fp: int
    fn: int
    false_alarm: bool
    reported: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)


def judge(task: plans.Task, video: plans.Video, result: dict) -> Judged:
    devs = [d for d in result["deviations"] if d["type"] != "optional_step_skipped"]
    if video.variant == "reversed":  # every pair is out of order: one order_swap found is the hit,
        swaps = [d for d in devs if d["type"] == "order_swap"]  # more of them are no false report
        devs = [d for d in devs if d["type"] != "order_swap"] + swaps[:1]
        video = plans.Video(video.path, video.variant, video.timeline, [plans.Expected("order_swap", None)])
    used: set[int] = set()
    tp, missed = 0, []
    for e in video.expected:
        spans = expected_spans(task, video, e)
        hit = next(
            (
                i
                for i, d in enumerate(devs)
                if i not in used and d["type"] == e.type and any(time_matches(d, s) for s in spans)
            ),
            None,
        )
        if hit is None:
            missed.append(f"{e.type}@{e.gold_step}")
        else:
            used.add(hit)
            tp += 1
    alarm = False
    if video.correct:
        alarm = any(d["type"] in CRITICAL_ALARMS for d in devs) or (
            video.variant == "correct_slower" and any(d["type"] == "over_time" for d in devs)
        )
    return Judged(
        video.variant,
        video.correct,
        float(result["score"]),
        result["decision"],
        tp,
        len(devs) - tp,
        len(video.expected) - tp,
        alarm,
        [f"{d['type']}@{d.get('gold_step')}" for d in devs],
        missed,
    )


def boundary_f1(task: plans.Task, result: dict, tol: float = 1.0) -> tuple[int, int, int]:
    """(tp, n_found, n_true) of internal gold boundaries, one to one within tol seconds."""
    true_steps = task.gold_steps()
    truth = [(a[1] + b[0]) / 2 for a, b in zip(true_steps, true_steps[1:])]
    found_steps = [(s["start_sec"], s["end_sec"]) for s in result["gold_steps"]]
    found = [(a[1] + b[0]) / 2 for a, b in zip(found_steps, found_steps[1:])]
    used, tp = set(), 0
    for t in truth:
        best = min((j for j in range(len(found)) if j not in used), key=lambda j: abs(found[j] - t), default=None)
        if best is not None and abs(found[best] - t) <= tol:
            used.add(best)
            tp += 1
    return tp, len(found), len(truth)


# --- running ------------------------------------------------------------------------------------


def run_task(task: plans.Task, embedder: str, mode: str, cfg, out_root: Path = OUT) -> dict:
    from sopilot_pipelines.core.scoring import score
    from sopilot_pipelines.core.sop import StepSpec

    gold = embed_cached(task.gold.path, embedder, out_root)
    steps = None
    if mode == "given":
        steps = [StepSpec(f"step {k}", a, b) for k, (a, b) in enumerate(task.gold_steps())]
    judged, bounds, nearest = [], (0, 0, 0), [0, 0]
    for variant, video in task.trainees.items():
        trainee = gold if video is task.gold else embed_cached(video.path, embedder, out_root)
        result = score(gold, trainee, cfg, steps=steps).result
        judged.append(judge(task, video, result))
        if variant == "gold" or video is task.gold:
            bounds = boundary_f1(task, result)
        elif mode == "given" and video.correct:
            nearest = [a + b for a, b in zip(nearest, nearest_step_hits(task, video, gold, trainee, steps))]
    return {"judged": judged, "bounds": bounds, "nearest": nearest}


def nearest_step_hits(task, video, gold, trainee, steps) -> tuple[int, int]:
    """(right, clips): trainee clips inside a true step whose most similar gold step (mean of the
    top-3 clip cosines, embeddings centred per video as the engine does) is that step."""
    import numpy as np

    from sopilot_pipelines.core.scoring import _Video, centred, labels_from_steps
    from sopilot_pipelines.core.steps import step_similarity

    sim = centred(trainee.embeddings) @ centred(gold.embeddings).T
    best = step_similarity(sim, labels_from_steps(steps, _Video.of(gold)), len(steps)).argmax(axis=1)
    centres = (trainee.clip_starts + trainee.clip_ends) / 2
    truth = np.full(len(centres), -1)
    for s in video.timeline.segments:
        if s.activity.kind == "step":
            truth[(centres >= s.start_sec) & (centres < s.end_sec)] = s.activity.step
    inside = truth >= 0
    return int((best[inside] == truth[inside]).sum()), int(inside.sum())


def summarise(runs: list[dict]) -> dict:
    j = [x for r in runs for x in r["judged"]]
    tp, fp, fn = sum(x.tp for x in j), sum(x.fp for x in j), sum(x.fn for x in j)
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    pairs = ok_pairs = 0
    task_ok = 0
    for r in runs:
        c = [x for x in r["judged"] if x.correct]
        f = [x for x in r["judged"] if not x.correct]
        pairs += len(c) * len(f)
        ok_pairs += sum(a.score > b.score for a in c for b in f)
        good = (
            all(a.score >= 80 and a.decision == "pass" for a in c)
            and not any(b.decision == "pass" for b in f)
            and all(a.score > b.score for a in c for b in f)
        )
        task_ok += good
    btp, bfound, btrue = (sum(r["bounds"][i] for r in runs) for i in range(3))
    hits, clips = (sum(r["nearest"][i] for r in runs) for i in range(2))
    gold_self = [x for x in j if x.variant == "gold"]
    return {
        "deviation_f1": round(f1, 3),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "false_alarms": sum(x.false_alarm for x in j),
        "correct_variants": sum(x.correct for x in j),
        "ranking_pairs": round(ok_pairs / pairs, 3) if pairs else 1.0,
        "tasks_ranked_ok": f"{task_ok}/{len(runs)}",
        "faulty_passed": sum((not x.correct) and x.decision == "pass" for x in j),
        "gold_self_ok": f"{sum(x.score == 100 and not x.reported for x in gold_self)}/{len(gold_self)}",
        "boundary_f1": round(2 * btp / (bfound + btrue), 3) if (bfound + btrue) else 1.0,
        "nearest_step_accuracy": round(hits / clips, 3) if clips else None,
        "variants": [vars(x) for x in j],
    }


def markdown(report: dict) -> str:
    rows = [
        f"embedder `{report['embedder']}`, tuned on {', '.join(report['tuned_on'])}",
        "",
        "| style | | steps | deviation F1 (tp/fp/fn) | false alarms | ranking pairs | tasks ranked ok | faulty pass "
        "| gold = gold | boundary F1 | nearest step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for style, modes in report["styles"].items():
        held = "tuned" if style in TUNED else ("real" if style == "handwash" else "held out")
        for mode, x in modes.items():
            rows.append(
                f"| {style} | {held} | {mode} | {x['deviation_f1']:.2f} ({x['tp']}/{x['fp']}/{x['fn']}) | "
                f"{x['false_alarms']}/{x['correct_variants']} | {x['ranking_pairs']:.2f} | {x['tasks_ranked_ok']} | "
                f"{x['faulty_passed']} | {x['gold_self_ok']} | {x['boundary_f1']:.2f} | "
                f"{'' if x['nearest_step_accuracy'] is None else format(x['nearest_step_accuracy'], '.2f')} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--styles", default=",".join(STYLES))
    ap.add_argument("--tasks", type=int, default=2, help="tasks (seeds) per generated style")
    ap.add_argument("--variants", default=",".join(plans.VARIANTS))
    ap.add_argument("--embedder", default=None, help="default: SOPILOT_EMBEDDER or the engine's default")
    ap.add_argument("--modes", default="given,found")
    ap.add_argument("--json", type=Path, default=OUT / "accuracy.json")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every variant")
    ap.add_argument("--markdown", action="store_true", help="also print the table as markdown (bench/README.md)")
    args = ap.parse_args(argv)

    from sopilot_pipelines.core.embedders import get_embedder
    from sopilot_pipelines.core.scoring import ScoringConfig
    from sopilot_pipelines.settings import settings

    embedder = get_embedder(args.embedder or settings().embedding.embedder).name
    cfg = ScoringConfig()
    variants = tuple(v for v in args.variants.split(",") if v)
    styles = [s for s in args.styles.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    report: dict = {"embedder": embedder, "tuned_on": list(TUNED), "styles": {}}
    t0 = time.perf_counter()
    for style in styles:
        if style == "handwash" and not style_module("handwash").available():
            print(f"{style:9s} skipped: no recordings at {style_module('handwash').data_dir()}")
            continue
        seeds = [0] if style == "handwash" else list(range(1, args.tasks + 1))
        tasks = [load_task(style, s, variants) for s in seeds]
        for mode in modes:
            summary = summarise([run_task(t, embedder, mode, cfg) for t in tasks])
            report["styles"].setdefault(style, {})[mode] = summary
            held = "tuned" if style in TUNED else ("real" if style == "handwash" else "held-out")
            print(
                f"{style:9s} {held:8s} steps {mode:5s}  F1 {summary['deviation_f1']:.2f} (tp {summary['tp']} fp {summary['fp']} "
                f"fn {summary['fn']})  false alarms {summary['false_alarms']}/{summary['correct_variants']}  "
                f"ranking {summary['ranking_pairs']:.2f} tasks ok {summary['tasks_ranked_ok']}  faulty pass "
                f"{summary['faulty_passed']}  gold=gold {summary['gold_self_ok']}  boundary F1 {summary['boundary_f1']:.2f}"
                + (
                    f"  nearest step {summary['nearest_step_accuracy']:.2f}"
                    if summary["nearest_step_accuracy"] is not None
                    else ""
                ),
                flush=True,
            )
            if args.verbose:
                for x in summary["variants"]:
                    print(
                        f"    {x['variant']:20s} {x['score']:5.1f} {x['decision']:12s} reported {x['reported']} missed {x['missed']}"
                    )
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.markdown:
        print(markdown(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"embedder {embedder}; {report['seconds']} s; details in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

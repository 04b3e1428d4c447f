"""`sopilot` command line: score two videos, run the demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_score(args: argparse.Namespace) -> int:
    from .core.embedders import EmbedderError
    from .core.embedding import embed_video
    from .core.scoring import score
    from .core.sop import load_steps
    from .core.video import VideoDecodeError
    from .settings import settings

    try:
        s = settings()
        embedder, clips, decode = s.embedding.build(), s.video.clips(), s.video.decode()
        gold = embed_video(args.gold, clips, embedder, decode)
        steps = load_steps(args.steps, gold.duration_sec) if args.steps else None
        trainee = embed_video(args.trainee, clips, embedder, decode)
        outcome = score(gold, trainee, s.scoring.config(), steps=steps)
    except (VideoDecodeError, EmbedderError, ValueError) as exc:
        print(f"sopilot score: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(outcome.result, sys.stdout, indent=2)
        print()
    else:
        print(format_result(outcome.result, Path(args.gold).name, Path(args.trainee).name))
    return 0


def format_result(result: dict, gold_name: str, trainee_name: str) -> str:
    """A supervisor-readable summary of one score result (steps numbered from 1, with names)."""
    from .core.sop import deviation_step, step_title

    lines = [
        f"gold:     {gold_name} ({result['clip_count']['gold']} clips)",
        f"trainee:  {trainee_name} ({result['clip_count']['trainee']} clips)",
        f"score:    {result['score']:.1f}   decision: {result['decision']}",
        "steps:    "
        + ", ".join(
            f"{step_title(st['index'], st['name'])} {st['start_sec']:.1f}-{st['end_sec']:.1f} s"
            for st in result["gold_steps"]
        ),
    ]
    devs = result["deviations"]
    if not devs:
        lines.append("deviations: none")
    else:
        lines.append("deviations:")
        width = max(4, *(len(deviation_step(d)) for d in devs))
        lines.append(f"  {'type':<20} {'step':<{width}}  {'gold time':>13}  {'trainee time':>13}  {'conf':>4}  reason")
        for d in devs:
            lines.append(
                f"  {d['type']:<20} {deviation_step(d):<{width}}  {_span(d['gold_time']):>13}  "
                f"{_span(d['trainee_time']):>13}  {d['confidence']:>4.2f}  {d['reason']}"
            )
    return "\n".join(lines)


def _span(t: dict) -> str:
    if t["start_sec"] is None:
        return "-"
    return f"{t['start_sec']:.1f}-{t['end_sec']:.1f}s"


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.data_dir), port=args.port, dagster_port=args.dagster_port, wait=not args.no_wait)


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check a signed audit export offline; say which check failed."""
    from .core.audit import verify
    from .settings import settings

    key = settings().api.audit_signing_key
    if not key:
        print(
            "sopilot audit verify: set SOPILOT_AUDIT_SIGNING_KEY to the key the export was signed with", file=sys.stderr
        )
        return 2
    try:
        document = json.loads(Path(args.file).read_text())
    except (OSError, ValueError) as exc:
        print(f"sopilot audit verify: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    ok, message = verify(document, key)
    print(f"{'OK' if ok else 'FAILED'}: {args.file}: {message}")
    return 0 if ok else 1


def _cmd_up(args: argparse.Namespace) -> int:
    from .stack import Stack, run_forever

    if args.workers:
        from .settings import settings

        try:
            executor = settings().executor
        except ValueError as exc:
            print(f"sopilot up: {exc}", file=sys.stderr)
            return 2
        if executor != "celery":
            print(
                "sopilot up: --workers needs SOPILOT_EXECUTOR=celery (with SOPILOT_CELERY_BROKER and PostgreSQL)",
                file=sys.stderr,
            )
            return 2
    return run_forever(Stack(Path(args.data_dir), port=args.port, dagster_port=args.dagster_port, workers=args.workers))


def _cmd_worker(args: argparse.Namespace) -> int:
    from .workers import run_worker

    return run_worker(args.name, args.concurrency, args.loglevel)


def _cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` (webserver + daemon) on this data dir's instance, in the foreground."""
    import os
    import signal

    from .instance import stack_env

    env = stack_env(args.data_dir)
    root = Path(__file__).resolve().parent.parent
    print(
        f"Dagster UI: http://127.0.0.1:{args.port}  (DAGSTER_HOME={env['DAGSTER_HOME']}); Ctrl-C stops it", flush=True
    )
    os.chdir(env["DAGSTER_HOME"])  # from the repo root Dagster warns that ./dagster.yaml is not the one in use
    signal.signal(
        signal.SIGINT, signal.SIG_DFL
    )  # a non-interactive parent may have ignored it; dagster copies it onto SIGTERM
    exe = str(Path(sys.executable).with_name("dagster"))
    os.execve(exe, [exe, "dev", "-w", str(root / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sopilot", description="SOPilot: score SOP trainee videos against a gold video."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("score", help="score a trainee video against a gold video (engine only)")
    p.add_argument("--gold", required=True, help="gold-standard video file")
    p.add_argument("--trainee", required=True, help="trainee video file")
    p.add_argument("--json", action="store_true", help="print the result object as JSON")
    p.add_argument(
        "--steps",
        help='the gold\'s steps: JSON {"steps": [{"name", "start_sec", "end_sec", "optional", "group"}]}'
        " in gold seconds (default: found automatically)",
    )
    p.set_defaults(func=_cmd_score)
    p = sub.add_parser(
        "demo", help="start the stack, upload generated videos through the API, score them, print a table"
    )
    p.add_argument("--data-dir", default=None, help="data dir (default: SOPILOT_DATA_DIR, ./data)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dagster-port", type=int, default=3000)
    p.add_argument("--no-wait", action="store_true", help="stop the stack when the demo is done")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("up", help="run the Dagster webserver, daemon and API on loopback until Ctrl-C")
    p.add_argument("--data-dir", default=None, help="data dir (default: SOPILOT_DATA_DIR, ./data)")
    p.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    p.add_argument("--dagster-port", type=int, default=3000, help="Dagster UI port (default 3000)")
    p.add_argument(
        "--workers", type=int, default=0, help="also start this many local Celery workers (SOPILOT_EXECUTOR=celery)"
    )
    p.set_defaults(func=_cmd_up)
    p = sub.add_parser(
        "worker", help="run one Celery worker for the jobs' steps (SOPILOT_EXECUTOR=celery), on any host"
    )
    p.add_argument("--name", default=None, help="worker name (default sopilot); the node is <name>@<host>")
    p.add_argument("--concurrency", type=int, default=1, help="steps run at once (default 1)")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=_cmd_worker)
    p = sub.add_parser("ui", help="open the Dagster UI (webserver + daemon) on the data dir's instance")
    p.add_argument("--data-dir", default=None, help="data dir (default: SOPILOT_DATA_DIR, ./data)")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=_cmd_ui)
    p = sub.add_parser("audit", help="audit export tools")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    p = audit_sub.add_parser("verify", help="verify a signed audit export offline (key from SOPILOT_AUDIT_SIGNING_KEY)")
    p.add_argument("file")
    p.set_defaults(func=_cmd_audit_verify)
    args = parser.parse_args(argv)
    if getattr(args, "data_dir", "") is None:
        from .settings import settings

        args.data_dir = str(settings().data_dir)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

"""The demo, through the REST API: start the stack (Dagster webserver + daemon + API), upload a
generated gold video and trainee variants, score each, print a table, save one PDF report, and
leave the stack up for a look at the Dagster UI until Ctrl-C (or exit at once with --no-wait)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx

DEMO_VARIANTS = ("correct_slower", "missing", "swap", "over_time", "wrong_execution", "extra_step", "repeated")


def _wait(client: httpx.Client, url: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(url).raise_for_status().json()
        if body["status"] in ("completed", "failed", "skipped", "rejected"):
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} still {body['status']} after {timeout:.0f}s")
        time.sleep(0.5)


def _train_and_search(api: httpx.Client, task: str, gold_id: int) -> None:
    """Train the adapter on what was just scored (it goes live only if it helps), then search."""
    job = api.post("/train/nightly").raise_for_status().json()["training_job_id"]
    body = _wait(api, f"/train/jobs/{job}", timeout=600)
    res = body.get("result") or {}
    print(f"\nadapter training {job}: {body['status']}" + (f" - {res['reason']}" if res.get("reason") else ""))
    figures = res.get("figures") or {}
    if figures.get("candidate") is not None:
        print(
            f"  {figures['metric']} on {figures['heldout_videos']} held-out videos: live {figures['baseline']:.3f}, trained {figures['candidate']:.3f}"
        )
    if res.get("reindex"):
        r = res["reindex"]
        print(
            f"  reindexed {r['videos_refreshed']} videos, {r['clips_indexed']} clips: index {r['old_index_version']} -> {r['new_index_version']}"
        )
    deadline = time.monotonic() + 60
    while True:  # the index sensor builds the task's index a few seconds after ingest
        items = (
            api.get("/search", params={"task_id": task, "video_id": gold_id, "clip_idx": 10, "k": 5})
            .raise_for_status()
            .json()["items"]
        )
        if items or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"\nGET /search: the 5 clips most like gold clip 10 (video {gold_id})")
    for i in items:
        print(
            f"  video {i['video_id']:>3} ({i['role']:<7}) clip {i['clip_idx']:>3}  {i['start_sec']:5.1f}-{i['end_sec']:5.1f}s  similarity {i['similarity']:.3f}"
        )


def run_demo(data_dir: Path, port: int = 8000, dagster_port: int = 3000, wait: bool = True) -> int:
    from .core import synth
    from .stack import Stack, run_forever

    data_dir = Path(data_dir).resolve()
    token = secrets.token_urlsafe(16)
    stack = Stack(
        data_dir, port=port, dagster_port=dagster_port, env_extra={"SOPILOT_API_ROLE_TOKENS": f"admin:{token}"}
    )
    t0 = time.perf_counter()
    task = f"demo_{time.strftime('%Y%m%d_%H%M%S')}"
    videos_dir = data_dir / "demo_videos" / task
    print(f"generating a gold video and {len(DEMO_VARIANTS)} trainee videos in {videos_dir} ...", flush=True)
    rendered = synth.render_suite(videos_dir, variants=DEMO_VARIANTS)
    print("starting the stack (Dagster webserver, daemon, API) ...", flush=True)
    stack.start()
    print(
        f"stack up. Dagster UI (runs, assets, lineage): {stack.dagster_url}   API docs: {stack.api_url}/docs\n"
        f"API admin token for this session: {token}",
        flush=True,
    )
    try:
        with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
            jobs = {}
            for name, r in rendered.items():
                with open(r.path, "rb") as f:
                    resp = api.post(
                        "/gold" if name == "gold" else "/videos",
                        files={"file": (r.path.name, f, "video/mp4")},
                        data={"task_id": task},
                    )
                jobs[name] = resp.raise_for_status().json()["ingest_job_id"]
            ids = {}
            for name, job in jobs.items():
                body = _wait(api, f"/videos/jobs/{job}")
                if body["status"] != "completed":
                    raise RuntimeError(f"ingest of {name} failed: {body['error_message']}")
                ids[name] = body["video_id"]
                print(f"  ingested {len(ids)}/{len(jobs)}: {name}", flush=True)
            print(f"uploaded and ingested {len(ids)} videos of task {task} via POST /gold and /videos\n")
            print(f"{'trainee variant':<18} {'score':>6}  {'decision':<13} deviations (type@gold step)")
            scores = {}
            for name in DEMO_VARIANTS:
                resp = api.post("/score", json={"gold_video_id": ids["gold"], "trainee_video_id": ids[name]})
                scores[name] = resp.raise_for_status().json()["score_job_id"]
            for name in DEMO_VARIANTS:
                body = _wait(api, f"/score/{scores[name]}")
                if body["status"] != "completed":
                    print(f"{name:<18} failed: {body['error_message']}")
                    continue
                r = body["result"]
                devs = ", ".join(
                    f"{d['type']}@{'-' if d['gold_step'] is None else d['gold_step']}" for d in r["deviations"]
                )
                print(f"{name:<18} {r['score']:>6.1f}  {r['decision']:<13} {devs or 'none'}", flush=True)
            pdf = data_dir / f"{scores['swap']}.pdf"
            pdf.write_bytes(api.get(f"/score/{scores['swap']}/report.pdf").raise_for_status().content)
            _train_and_search(api, task, ids["gold"])
        print(f"\ndone in {time.perf_counter() - t0:.1f}s. PDF report of the swap trainee: {pdf}")
        print(f"Dagster UI (runs, assets, lineage): {stack.dagster_url}   API docs: {stack.api_url}/docs")
        print(f"API admin token for this session: {token}")
    except BaseException:
        stack.stop()
        raise
    if not wait:
        stack.stop()
        return 0
    return run_forever(stack, already_started=True)

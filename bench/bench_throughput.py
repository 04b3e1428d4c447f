"""Score throughput through the real stack (`sopilot up`'s Stack on the embedded default:
webserver, daemon, API): the batched path (`POST /score`, the API's dispatcher hands the queued
jobs to Dagster as runs of many) side by side, in the same run, with the run-per-score path it
replaced (each job its own run, launched at request time, as `POST /score` did before).

G golds and T trainees (copies of generated videos) are uploaded and ingested; every (gold,
trainee) pair is a distinct score job. Measured for each path: a lone score, submit -> completed
(the median of 5, one at a time); a burst of every pair submitted at once, first submit -> last
completed, jobs/s, how long a submit took to answer, and `/health`'s latency during the burst.
Every pair's result must be the same on both paths (score, decision, deviations).

    .venv/bin/python bench/bench_throughput.py [--golds 10] [--trainees 10] [--peer-pairs 100]

The figures and how to read them: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopilot_api.runs import Dagster
from sopilot_pipelines.catalog import Catalog
from sopilot_pipelines.core import synth
from sopilot_pipelines.ids import TAG_JOB_ID, new_job_id
from sopilot_pipelines.stack import Stack

TASK = "throughput"
TOKEN = "bench-admin-token"
TRAINEE_VARIANTS = ("correct_slower", "missing", "swap", "over_time", "extra_step")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class Bench:
    def __init__(self, stack: Stack, cat: Catalog):
        self.stack, self.cat = stack, cat
        self.http = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        self.door = Dagster(stack.dagster_url, timeout=300)

    def upload(self, path: Path, gold: bool) -> int:
        with open(path, "rb") as f:
            r = self.http.post(
                "/gold" if gold else "/videos",
                files={"file": (path.name, f, "video/mp4")},
                data={"task_id": TASK},
            )
        r.raise_for_status()
        job = r.json()["ingest_job_id"]
        for _ in range(600):  # the ingest run records the video id once it has registered it
            video_id = self.http.get(f"/videos/jobs/{job}").json().get("video_id")
            if video_id:
                return int(video_id)
            time.sleep(0.2)
        raise TimeoutError(f"ingest job {job} names no video after 120 s")

    def wait_jobs(self, job_ids: list[str], timeout: float = 1800) -> dict[str, dict]:
        """Poll the catalog (not the API, so the polling does not load the stack it measures)."""
        deadline, pending, done = time.monotonic() + timeout, set(job_ids), {}
        while pending:
            for j in list(pending):
                row = self.cat.get_score(j)
                if row and row["status"] in ("completed", "failed"):
                    done[j] = row
                    pending.discard(j)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} score jobs not finished after {timeout:.0f} s")
            time.sleep(0.05)
        return done

    # -- the two paths

    def submit_batched(self, gold: int, trainee: int) -> tuple[str, float]:
        t = time.perf_counter()
        r = self.http.post("/score", json={"gold_video_id": gold, "trainee_video_id": trainee})
        r.raise_for_status()
        return r.json()["score_job_id"], time.perf_counter() - t

    def submit_run_per_score(self, gold: int, trainee: int) -> tuple[str, float]:
        """What POST /score did before the dispatcher: record, add the partition, launch its run."""
        t = time.perf_counter()
        job_id = new_job_id("score")
        # the run id names the launcher until the run writes its own, so the dispatcher leaves it
        self.cat.record_score(job_id, task_id=TASK, gold_video_id=gold, trainee_video_id=trainee, run_id="bench:peer")
        self.door.add_partition("score_jobs", job_id)
        run_id = self.door.launch("score_job", partition_key=job_id, tags={TAG_JOB_ID: job_id})
        self.cat.update_score(job_id, run_id=run_id)
        return job_id, time.perf_counter() - t

    def lone(self, submit, pairs, n: int = 5) -> tuple[list[float], list[dict]]:
        out, phases = [], []
        for gold, trainee in pairs[:n]:
            t, wall = time.perf_counter(), time.time()
            job_id, _ = submit(gold, trainee)
            row = self.wait_jobs([job_id])[job_id]
            out.append(time.perf_counter() - t)
            phases.append(self.phases(wall, row["run_id"]))
        return out, phases

    def phases(self, submitted: float, run_id: str) -> dict:
        """Where a lone score's time went, from its run's event log: submit -> run created
        (hand-over), -> run started (queue and run process start), -> step started (code and
        resources loaded), -> step ended (the score and the report), -> run ended."""
        data = self.door._query(
            """query($id: ID!) { logsForRun(runId: $id, limit: 500) { ... on EventConnection {
                 events { __typename ... on MessageEvent { timestamp } } } } }""",
            {"id": run_id},
        )["logsForRun"]["events"]
        at: dict[str, float] = {}
        for e in data:
            at.setdefault(e["__typename"], float(e["timestamp"]) / 1000)
        marks = [
            ("hand-over", at.get("RunEnqueuedEvent")),
            ("queue + process start", at.get("RunStartEvent")),
            ("code load", at.get("ExecutionStepStartEvent")),
            ("score + report", at.get("ExecutionStepSuccessEvent") or at.get("ExecutionStepFailureEvent")),
            ("run end", at.get("RunSuccessEvent") or at.get("RunFailureEvent")),
        ]
        out, last = {}, submitted
        for name, t in marks:
            if t is not None:
                out[name], last = t - last, t
        return out

    def burst(self, submit, pairs, clients: int) -> dict:
        health: list[float] = []
        stop = threading.Event()

        def probe():
            with httpx.Client(base_url=self.stack.api_url, timeout=60) as c:
                while not stop.is_set():
                    t = time.perf_counter()
                    try:
                        c.get("/health")
                    except httpx.HTTPError:
                        pass  # counted at its time: a probe that times out is the slowest answer
                    health.append(time.perf_counter() - t)
                    time.sleep(0.1)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(len(pairs), clients)) as pool:
            submitted = list(pool.map(lambda p: submit(*p), pairs))
        job_ids = [j for j, _ in submitted]
        rows = self.wait_jobs(job_ids)
        wall = time.perf_counter() - t0
        stop.set()
        prober.join()
        runs = {rows[j]["run_id"] for j in job_ids}
        return {
            "jobs": job_ids,
            "rows": rows,
            "wall": wall,
            "failed": sum(r["status"] == "failed" for r in rows.values()),
            "runs": len(runs),
            "submit_p50": _pct([s for _, s in submitted], 0.5),
            "submit_p95": _pct([s for _, s in submitted], 0.95),
            "health_p95": _pct(health, 0.95) if health else float("nan"),
        }


def report(name: str, lone: list[float], r: dict) -> None:
    n = len(r["jobs"])
    print(
        f"| {name} | {statistics.median(lone):.2f} s | {n} | {r['wall']:.1f} s | {n / r['wall']:.2f} |"
        f" {r['runs']} | {r['failed']} | {r['submit_p50'] * 1000:.0f} / {r['submit_p95'] * 1000:.0f} ms |"
        f" {r['health_p95'] * 1000:.0f} ms |",
        flush=True,
    )


def outcome(row: dict) -> tuple:
    result = json.loads(Path(row["result_path"]).read_text())
    return (
        result["score"],
        result["decision"],
        tuple((d["type"], d.get("gold_step"), d.get("trainee_step")) for d in result["deviations"]),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golds", type=int, default=10)
    ap.add_argument("--trainees", type=int, default=10)
    ap.add_argument("--peer-pairs", type=int, default=100, help="pairs of the run-per-score burst (0: skip it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_throughput_") as d:
        tmp = Path(d)
        suite = synth.render_suite(tmp / "suite", variants=TRAINEE_VARIANTS)
        data = tmp / "data"
        env = {"SOPILOT_API_TOKEN": TOKEN, "SOPILOT_API_TOKEN_ROLE": "admin", "SOPILOT_AUTO_SCORE": "false"}
        stack = Stack(data, port=_port(), dagster_port=_port(), env_extra=env)
        stack.start(timeout=240)
        cat = Catalog.open(data_dir=data)
        try:
            b = Bench(stack, cat)
            t = time.perf_counter()
            golds = [b.upload(suite["gold"].path, gold=True) for _ in range(args.golds)]
            trainees = []
            for i in range(args.trainees):
                src = suite[TRAINEE_VARIANTS[i % len(TRAINEE_VARIANTS)]].path
                copy = tmp / f"trainee_{i:03d}{src.suffix}"
                shutil.copyfile(src, copy)
                trainees.append(b.upload(copy, gold=False))
            while any(cat.get_video(v)["status"] == "pending" for v in golds + trainees):
                time.sleep(0.5)
            bad = [v for v in golds + trainees if cat.get_video(v)["status"] != "ready"]
            assert not bad, f"videos {bad} failed to ingest"
            print(f"ingested {len(golds) + len(trainees)} videos in {time.perf_counter() - t:.0f} s")
            pairs = [(g, tr) for g in golds for tr in trainees]
            print(f"\n{len(pairs)} distinct pairs ({args.golds} golds x {args.trainees} trainees), embedder default")
            print(
                "| path | lone submit -> completed, median of 5 | burst: pairs | wall | jobs/s | runs | failed |"
                " submit p50 / p95 | /health p95 |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

            lone_batched, phases = b.lone(b.submit_batched, pairs)
            lone_peer, _ = b.lone(b.submit_run_per_score, pairs)
            batched = b.burst(b.submit_batched, pairs, clients=len(pairs))  # every request at once
            report("batched (POST /score)", lone_batched, batched)
            # the old POST /score ran in the API's thread pool: 40 at a time (anyio's default)
            peer = b.burst(b.submit_run_per_score, pairs[: args.peer_pairs], clients=40) if args.peer_pairs else None
            if peer:
                report("run per score", lone_peer, peer)
        finally:
            stack.stop()
        pair_of = {}
        for path in (batched, peer):
            for job_id in path["jobs"] if path else []:
                row = path["rows"][job_id]
                pair_of.setdefault((row["gold_video_id"], row["trainee_video_id"]), []).append(
                    outcome(row) if row["status"] == "completed" else ("failed",)
                )
        differing = [p for p, outs in pair_of.items() if len(set(outs)) > 1]
        by_content = {}  # a gold's copies give one result per trainee video
        for (_gold, tr), outs in pair_of.items():
            by_content.setdefault(tr, set()).update(outs)
        cat.close()

    names = list(phases[0])
    print(
        "\na lone batched score, median seconds per phase: "
        + ", ".join(f"{n} {statistics.median(p.get(n, 0.0) for p in phases):.2f}" for n in names)
    )
    print(
        f"\npairs scored on both paths with differing results: {len(differing)};"
        f" trainee videos whose result differs between gold copies: {sum(len(v) > 1 for v in by_content.values())}"
    )
    return 1 if differing or batched["failed"] or (peer and peer["failed"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())

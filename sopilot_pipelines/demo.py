"""The demo: a generated gold video and trainee variants, ingested and scored by the Dagster jobs
on the embedded default instance (<data dir>/dagster), printed as a table. Afterwards
`sopilot ui` shows the same runs, assets and lineage in the Dagster UI."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DEMO_VARIANTS = ("correct_slower", "missing", "swap", "over_time", "wrong_execution", "extra_step", "repeated")


def run_demo(data_dir: Path) -> int:
    from .instance import prepare_home

    data_dir = Path(data_dir).resolve()
    os.environ["SOPILOT_DATA_DIR"] = str(data_dir)
    os.environ["DAGSTER_HOME"] = str(prepare_home(data_dir, "sqlite"))

    import dagster as dg

    from .core import synth
    from .defs.ingest.partitions import video_key
    from .definitions import build_defs
    from .ids import TAG_JOB_ID, TAG_REQUESTED_BY, new_job_id
    from .resources import CatalogResource, StorageResource

    t0 = time.perf_counter()
    resources = {"storage": StorageResource(data_dir=str(data_dir)), "catalog": CatalogResource(data_dir=str(data_dir))}
    defs, cat, store = build_defs(resources), resources["catalog"].catalog, resources["storage"].store
    instance = dg.DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the table is the output here
    task = f"demo_{time.strftime('%Y%m%d_%H%M%S')}"
    videos_dir = data_dir / "demo_videos" / task
    print(f"generating a gold video and {len(DEMO_VARIANTS)} trainee videos in {videos_dir} ...", flush=True)
    rendered = synth.render_suite(videos_dir, variants=DEMO_VARIANTS)

    ingest = defs.resolve_job_def("ingest_job")
    ids = {}
    for name, r in rendered.items():
        vid = cat.add_video(task, "gold" if name == "gold" else "trainee", original_filename=r.path.name, requested_by="demo")
        dest = store.raw_video(vid, r.path.suffix)
        dest.write_bytes(r.path.read_bytes())
        cat.set_video_paths(vid, raw_path=str(dest))
        key = video_key(task, vid)
        instance.add_dynamic_partitions("videos", [key])
        ingest.execute_in_process(partition_key=key, instance=instance, tags={TAG_REQUESTED_BY: "demo"}, run_config=quiet)
        ids[name] = vid
    print(f"ingested {len(ids)} videos of task {task} (Dagster job ingest_job)\n")

    score_job = defs.resolve_job_def("score_job")
    print(f"{'trainee variant':<18} {'score':>6}  {'decision':<13} deviations (type@gold step)")
    for name in DEMO_VARIANTS:
        job_id = new_job_id("score")
        cat.record_score(job_id, task_id=task, gold_video_id=ids["gold"], trainee_video_id=ids[name], requested_by="demo")
        instance.add_dynamic_partitions("score_jobs", [job_id])
        score_job.execute_in_process(partition_key=job_id, instance=instance, run_config=quiet,
                                     tags={TAG_JOB_ID: job_id, TAG_REQUESTED_BY: "demo"})  # fmt: skip
        result = json.loads(Path(cat.get_score(job_id)["result_path"]).read_text())
        devs = ", ".join(f"{d['type']}@{'-' if d['gold_step'] is None else d['gold_step']}" for d in result["deviations"])
        print(f"{name:<18} {result['score']:>6.1f}  {result['decision']:<13} {devs or 'none'}", flush=True)
        last_report = cat.get_score(job_id)["report_path"]

    instance.add_dynamic_partitions("tasks", [task])
    defs.resolve_job_def("index_job").execute_in_process(partition_key=task, instance=instance, run_config=quiet)
    print(f"\ndone in {time.perf_counter() - t0:.1f}s. A PDF report: {last_report}")
    print(f"See the runs, assets and lineage in the Dagster UI: .venv/bin/sopilot ui --data-dir {data_dir}")
    print(f"Score any two files with the engine alone: .venv/bin/sopilot score --gold {rendered['gold'].path} "
          f"--trainee {rendered['swap'].path}")  # fmt: skip
    return 0

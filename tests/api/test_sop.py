"""The task's SOP through the real stack (API, Dagster webserver and daemon in real processes):
steps given at the gold's upload, PUT/GET round trip and every refusal, named deviations and
the SOP version in each result, any-order groups and optional steps, re-scores in one run
carrying `previous`, a second gold with carried boundaries, over_time against the duration
envelope, step names and file names in the PDF. In process: version 0 computed for a gold whose
automatic steps were never recorded, and a re-score's runs covering exactly its own jobs."""

import json
import shutil
import subprocess

import pytest

from tests.helpers import TASK as ENV_TASK
from tests.helpers import client, upload, wait

TASK = "sop_task"
NAMES = ["Fit the gear", "Press the cover", "Slide the rail", "Tap the pin", "Turn the knob"]


def _steps(suite, video="gold", **marks):
    truth = suite[video].step_times()
    return [
        {
            "name": NAMES[k],
            "start_sec": round(truth[k][0][0], 2),
            "end_sec": round(truth[k][0][1], 2),
            "optional": k in marks.get("optional", ()),
            "group": marks.get("groups", {}).get(k),
        }
        for k in sorted(truth)
    ]


@pytest.fixture(scope="module")
def catalog(stack):
    from sopilot_pipelines.catalog import Catalog

    with Catalog.open(data_dir=stack.data_dir) as cat:
        yield cat


@pytest.fixture(scope="module")
def videos(stack, suite):
    """The gold, uploaded with its steps, and four trainees, ingested."""
    with client(stack, "operator") as c:
        r = upload(c, suite["gold"].path, task=TASK, gold=True, steps=json.dumps(_steps(suite)))
        assert r.status_code == 200, r.text
        jobs = {"gold": r.json()["ingest_job_id"]}
        for name in ("swap", "missing", "over_time"):
            r = upload(c, suite[name].path, task=TASK)
            assert r.status_code == 200, r.text
            jobs[name] = r.json()["ingest_job_id"]
        out = {}
        for name, job in jobs.items():
            body = wait(c, f"/videos/jobs/{job}")
            assert body["status"] == "completed", body
            out[name] = body["video_id"]
    return out


def _score(c, gold_id: int, trainee_id: int) -> dict:
    r = c.post("/score", json={"gold_video_id": gold_id, "trainee_video_id": trainee_id})
    assert r.status_code == 200, r.text
    job = wait(c, f"/score/{r.json()['score_job_id']}")
    assert job["status"] == "completed", job
    return job


def test_steps_given_at_upload_become_the_sop_and_bad_json_is_refused(stack, suite, videos):
    with client(stack, "viewer") as c:
        sop = c.get(f"/tasks/{TASK}/sop").json()
        assert (sop["version"], sop["source"], sop["gold_video_id"]) == (1, "user", videos["gold"])
        assert [s["name"] for s in sop["steps"]] == NAMES and [s["index"] for s in sop["steps"]] == list(range(5))
        assert sop["updated_by"] == "token:operator"
        assert c.get("/tasks/no_such_task/sop").status_code == 404
        v = c.get(f"/videos/{videos['swap']}").json()
        assert v["original_filename"] == "trainee_swap.mp4"
        task = next(t for t in c.get("/tasks").json()["items"] if t["task_id"] == TASK)
        assert task["gold_video_ids"] == [videos["gold"]] and (task["sop_version"], task["sop_source"]) == (1, "user")
        assert task["video_count"] == 4
    with client(stack, "operator") as c:
        r = upload(c, suite["gold"].path, task=TASK, gold=True, steps="[{not json")
        assert r.status_code == 400 and "steps: not valid JSON" in r.json()["detail"]
        r = upload(c, suite["swap"].path, task=TASK, steps=json.dumps(_steps(suite)))
        assert r.status_code == 400 and "only a gold" in r.json()["detail"]


def test_a_task_without_a_stored_sop_serves_the_automatic_one(stack, suite, catalog):
    with client(stack, "operator") as c:
        r = upload(c, suite["gold"].path, task="auto_task", gold=True)
        gold = wait(c, f"/videos/jobs/{r.json()['ingest_job_id']}")
        sop = c.get("/tasks/auto_task/sop").json()
    assert (sop["version"], sop["source"], sop["gold_video_id"]) == (0, "auto", gold["video_id"])
    assert len(sop["steps"]) >= 2 and sop["steps"][0]["name"] == "Step 1" and sop["steps"][1]["name"] == "Step 2"
    assert all(a["end_sec"] <= b["start_sec"] + 1e-6 for a, b in zip(sop["steps"], sop["steps"][1:]))
    # a gold ingested before its automatic steps were recorded: computed from its stored embeddings
    catalog.set_auto_steps(gold["video_id"], [])
    with client(stack, "viewer") as c:
        again = c.get("/tasks/auto_task/sop").json()
    assert again["steps"] == sop["steps"] and catalog.get_video(gold["video_id"])["auto_steps"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": []}, "empty"),
        ({"steps": [{"name": "a", "start_sec": 0, "end_sec": 999}]}, "after the end of the gold"),
        (
            {"steps": [{"name": "a", "start_sec": 0, "end_sec": 3}, {"name": "b", "start_sec": 2, "end_sec": 5}]},
            "overlap",
        ),
        ({"steps": [{"name": "a", "start_sec": 4, "end_sec": 3}]}, "must be after"),
        ({"steps": [{"name": " ", "start_sec": 0, "end_sec": 3}]}, "non-empty"),
        ({"steps": [{"name": "x" * 201, "start_sec": 0, "end_sec": 3}]}, "longer than 200"),
        (
            {"steps": [{"name": "a", "start_sec": 0, "end_sec": 3}, {"name": "a", "start_sec": 4, "end_sec": 5}]},
            "two steps are named",
        ),
        ({"gold_video_id": "trainee"}, "is not a gold video of task"),
        ({"gold_video_id": 999999}, "is not a gold video of task"),
        ({"gold_video_id": "pending"}, "not ingested yet"),
    ],
)
def test_every_refused_put_says_why_and_changes_nothing(stack, suite, catalog, videos, change, message):
    body = {"steps": _steps(suite), **change}
    if body.get("gold_video_id") == "trainee":
        body["gold_video_id"] = videos["swap"]
    if body.get("gold_video_id") == "pending":  # a gold of this task whose ingest has not completed
        body["gold_video_id"] = catalog.add_video(TASK, "gold", original_filename="later.mp4")
    with client(stack, "admin") as c:
        before = c.get(f"/tasks/{TASK}/sop").json()
        r = c.put(f"/tasks/{TASK}/sop", json=body)
        assert r.status_code == 400 and message in r.json()["detail"], r.text
        assert c.get(f"/tasks/{TASK}/sop").json() == before
    if change.get("gold_video_id") == "pending":
        catalog.delete_video(body["gold_video_id"])


def test_put_needs_admin(stack, suite, videos):
    with client(stack, "operator") as c:
        assert c.put(f"/tasks/{TASK}/sop", json={"steps": _steps(suite)}).status_code == 403


def test_a_new_sop_rescores_in_one_run_with_previous_groups_optional_and_envelope(stack, suite, catalog, videos):
    with client(stack, "operator") as c:
        before = {name: _score(c, videos["gold"], videos[name]) for name in ("swap", "missing", "over_time")}
    swap, missing, slow = (before[n]["result"] for n in ("swap", "missing", "over_time"))
    assert [(d["type"], d["step_name"]) for d in swap["deviations"]] == [("order_swap", "Press the cover")]
    assert [(d["type"], d["step_name"]) for d in missing["deviations"]] == [("step_missing", "Slide the rail")]
    assert swap["provenance"] == {
        "gold_video_id": videos["gold"],
        "sop_version": 1,
        "embedding_model": "builtin:v1",
        "adapter_version": "identity",
    }
    over = [d for d in slow["deviations"] if d["type"] == "over_time"]
    assert [d["step_name"] for d in over] == ["Tap the pin"] and "usual pace" in over[0]["reason"]  # too few passes yet

    new = _steps(suite, optional=(2,), groups={1: "fixings", 2: "fixings"})
    with client(stack, "admin") as c:
        r = c.put(f"/tasks/{TASK}/sop", json={"steps": new})
        assert r.status_code == 200, r.text
        stored = r.json()
        assert stored["version"] == 2 and stored["updated_by"] == "token:admin" and len(stored["rescore_job_ids"]) == 3
        got = c.get(f"/tasks/{TASK}/sop").json()
        assert {k: got[k] for k in ("version", "steps", "gold_video_id")} == {
            k: stored[k] for k in ("version", "steps", "gold_video_id")
        }
        assert got["steps"][2]["optional"] and got["steps"][1]["group"] == got["steps"][2]["group"] == "fixings"
        after = {wait(c, f"/score/{j}")["trainee_video_id"]: wait(c, f"/score/{j}") for j in stored["rescore_job_ids"]}
    runs = {catalog.get_score(j)["run_id"] for j in stored["rescore_job_ids"]}
    assert len(runs) == 1 and all(catalog.get_score(j)["trigger"] == "sop_change" for j in stored["rescore_job_ids"])
    for name in ("swap", "missing", "over_time"):
        job = after[videos[name]]
        assert job["status"] == "completed", job
        assert job["result"]["previous"] == {
            "score_job_id": before[name]["score_job_id"],
            "score": before[name]["score"],
            "decision": before[name]["result"]["decision"],
        }
        assert job["result"]["provenance"]["sop_version"] == 2
    swap2, missing2, slow2 = (after[videos[n]]["result"] for n in ("swap", "missing", "over_time"))
    assert swap2["deviations"] == [] and swap2["decision"] == "pass"  # an any-order group swapped: no order_swap
    assert [(d["type"], d["step_name"]) for d in missing2["deviations"]] == [
        ("optional_step_skipped", "Slide the rail")
    ]
    assert missing2["score"] == 100 and missing2["decision"] == "pass"
    # swap and missing now pass: with the gold, 3 recordings of 'Tap the pin' make its envelope
    over = [d for d in slow2["deviations"] if d["type"] == "over_time"]
    assert [d["step_name"] for d in over] == ["Tap the pin"], slow2["deviations"]
    env = over[0]["envelope"]
    assert over[0]["judged_against"] == "envelope" and (env["golds"], env["trainees"]) == (1, 2)
    durations = [new[3]["end_sec"] - new[3]["start_sec"]] + [
        s["end_sec"] - s["start_sec"]
        for r in (swap2, missing2)
        for s in r["trainee_steps"]
        if s["name"] == "Tap the pin"
    ]
    assert (
        env["median"] == pytest.approx(sorted(durations)[1], abs=0.01)
        and "envelope from 3 recordings" in over[0]["reason"]
    )


def test_a_second_gold_adds_and_gets_the_boundaries_carried(stack, suite, videos):
    with client(stack, "operator") as c:
        r = upload(c, suite["correct_slower"].path, task=TASK, gold=True)
        second = wait(c, f"/videos/jobs/{r.json()['ingest_job_id']}")["video_id"]
        sop = c.get(f"/tasks/{TASK}/sop").json()
        task = next(t for t in c.get("/tasks").json()["items"] if t["task_id"] == TASK)
    assert task["gold_video_ids"] == [videos["gold"], second] and sop["gold_video_id"] == videos["gold"]
    spans = sop["per_gold"][str(second)]
    truth = suite["correct_slower"].step_times()
    assert (
        len(spans) == 5 and all(a < b for a, b in spans) and all(p[1] <= q[0] + 1e-6 for p, q in zip(spans, spans[1:]))
    )
    for k, (a, b) in enumerate(spans):  # within a clip stride or two of where the slower recording does each step
        assert a == pytest.approx(truth[k][0][0], abs=1.2) and b == pytest.approx(truth[k][0][1], abs=1.2), (
            k,
            spans,
            truth,
        )
    with client(stack, "operator") as c:  # a score against the second gold uses the carried steps
        job = _score(c, second, videos["swap"])
    assert job["result"]["provenance"]["gold_video_id"] == second
    assert [s["name"] for s in job["result"]["gold_steps"]] == NAMES
    assert [s["start_sec"] for s in job["result"]["gold_steps"]] == pytest.approx([a for a, _ in spans], abs=0.01)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) not installed")
def test_the_pdf_names_steps_from_1_files_and_requester(stack, suite, videos, tmp_path):
    with client(stack, "operator") as c:
        job = _score(c, videos["gold"], videos["over_time"])
        pdf = c.get(f"/score/{job['score_job_id']}/report.pdf")
    assert pdf.status_code == 200
    (tmp_path / "r.pdf").write_bytes(pdf.content)
    text = " ".join(
        subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout.split()
    )
    assert "4. Tap the pin" in text and "1. Fit the gear" in text
    assert "gold.mp4" in text and "trainee_over_time.mp4" in text and "token:operator" in text


def test_version_0_of_a_gold_without_recorded_steps_is_its_automatic_segmentation(env, suite):
    from sopilot_pipelines.sop_view import sop_in_force

    gold, key = env.register(suite["gold"].path, "gold")
    assert env.ingest(key).success
    recorded = env.cat.get_video(gold)["auto_steps"]
    env.cat.set_auto_steps(gold, [])  # as a gold ingested before the automatic steps were recorded
    assert env.cat.sop_view(ENV_TASK)["steps"] == []
    computed = sop_in_force(env.cat, env.store, ENV_TASK)["steps"]
    assert [s["name"] for s in computed] == [s["name"] for s in recorded] and len(recorded) >= 2
    bounds = [[s["start_sec"], s["end_sec"]] for s in recorded]
    assert [b for s in computed for b in (s["start_sec"], s["end_sec"])] == pytest.approx(
        [b for pair in bounds for b in pair]
    )
    assert env.cat.get_video(gold)["auto_steps"] == computed  # recorded, so computed once


def test_the_dispatcher_batches_cover_exactly_their_own_jobs():
    from sopilot_api.score_queue import adjacent_blocks, split

    ours = ["s1", "s2", "s3"]
    # a score requested meanwhile whose key landed between ours: two runs, none covering it
    assert adjacent_blocks(["old", "s1", "other", "s2", "s3"], ours) == [["s1"], ["s2", "s3"]]
    assert adjacent_blocks(["old", "s1", "s2", "s3", "later"], ours) == [ours]  # one run
    assert adjacent_blocks(["s2", "s3"], ours) == [["s2", "s3"], ["s1"]]  # a key older than the read
    # a large block in near-equal runs, adjacent keys together, none over the limit
    keys = [f"k{i:03d}" for i in range(101)]
    runs = split(keys, 50)
    assert [len(r) for r in runs] == [34, 34, 33] and [k for r in runs for k in r] == keys
    assert split(keys[:3], 50) == [keys[:3]] and split(keys[:1], 1) == [keys[:1]]


def test_a_score_job_is_claimed_once_and_a_dead_claim_goes_back(tmp_path):
    from sopilot_pipelines.catalog import Catalog

    with Catalog.open(data_dir=tmp_path) as cat:
        gold = cat.add_video("t", "gold", original_filename="gold.mp4")
        trainee = cat.add_video("t", "trainee", original_filename="trainee.mp4")
        for k in range(5):
            cat.record_score(f"score_new_{k}", task_id="t", gold_video_id=gold, trainee_video_id=trainee)
        cat.record_score(
            "score_sensed", task_id="t", gold_video_id=gold, trainee_video_id=trainee, run_id="sensor:auto_score"
        )
        first = cat.claim_pending_scores("dispatch:1:a", limit=3)
        second = cat.claim_pending_scores("dispatch:2:b", limit=10)
        assert [j["job_id"] for j in first] == [f"score_new_{k}" for k in range(3)]  # oldest first
        assert [j["job_id"] for j in second] == ["score_new_3", "score_new_4"]  # the rest, not the sensor's
        assert cat.claim_pending_scores("dispatch:3:c", limit=10) == []
        assert cat.score_claims("dispatch:") == {"dispatch:1:a", "dispatch:2:b"}
        assert cat.release_score_claim("dispatch:1:a") == 3
        again = cat.claim_pending_scores("dispatch:4:d", limit=10)
        assert [j["job_id"] for j in again] == [f"score_new_{k}" for k in range(3)]


def test_a_score_job_past_its_time_out_is_failed_and_never_scored_after(env, suite):
    from datetime import datetime, timedelta, timezone

    from sopilot_api.score_queue import ScoreQueue

    gold, kg = env.register(suite["gold"].path, "gold")
    trainee, kt = env.register(suite["swap"].path, "trainee")
    assert env.ingest(kg).success and env.ingest(kt).success
    old = datetime.now(timezone.utc) - timedelta(seconds=700)
    for job_id, created in (("score_old_1", old), ("score_new_1", None)):
        env.cat.record_score(job_id, task_id=ENV_TASK, gold_video_id=gold, trainee_video_id=trainee, created_at=created)
    queue = ScoreQueue(env.cat, "http://127.0.0.1:9", batch_max=50, timeout_s=600)  # no Dagster needed here
    assert queue.fail_jobs_of_ended_runs() == ["score_old_1"]
    timed_out = env.cat.get_score("score_old_1")
    assert timed_out["status"] == "failed" and "not finished within 600 s" in timed_out["error_message"]
    assert env.cat.get_score("score_new_1")["status"] == "queued"
    # its run, come late, leaves it failed (status only forward) and scores the other
    env.instance.add_dynamic_partitions("score_jobs", ["score_old_1", "score_new_1"])
    run = env.defs.resolve_job_def("score_job").execute_in_process(
        instance=env.instance,
        tags={"dagster/asset_partition_range_start": "score_old_1", "dagster/asset_partition_range_end": "score_new_1"},
    )
    assert run.success
    assert env.cat.get_score("score_old_1")["status"] == "failed" and env.cat.get_score("score_old_1")["score"] is None
    assert env.cat.get_score("score_new_1")["status"] == "completed"

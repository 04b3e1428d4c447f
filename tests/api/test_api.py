"""The REST contract end to end: API, Dagster webserver and daemon in real processes."""

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from sopilot_api.runs import Dagster
from sopilot_pipelines.settings import settings
from tests.helpers import TOKENS, assert_range, client, container_and_video, mpeg4_avi, upload, wait

TASK = "api_task"


@pytest.fixture(scope="module")
def ingested(stack, suite):
    """A gold and a swapped trainee uploaded through the API and ingested."""
    with client(stack, "operator") as c:
        g = upload(c, suite["gold"].path, TASK, gold=True, site_id="factory_a", camera_id="cam_01")
        t = upload(c, suite["swap"].path, TASK, operator_id_hash="abc123")
        assert g.status_code == 200 and t.status_code == 200, g.text + t.text
        assert g.json()["status"] == "queued"
        jobs = {
            "gold": wait(c, f"/videos/jobs/{g.json()['ingest_job_id']}"),
            "swap": wait(c, f"/videos/jobs/{t.json()['ingest_job_id']}"),
        }
    return jobs


def test_ingest_jobs_report_the_contract_fields(ingested):
    gold = ingested["gold"]
    assert gold["status"] == "completed" and gold["role"] == "gold" and gold["task_id"] == TASK
    assert gold["requested_by"] == "token:operator" and gold["embedding_model"] == "builtin:v1"
    assert gold["num_clips"] > 20 and gold["source_fps"] == pytest.approx(24.0) and gold["sampled_fps"] == 8.0
    assert gold["queued_at"] <= gold["started_at"] <= gold["finished_at"] and gold["error_message"] is None


def test_score_flow_matches_the_engine(stack, suite, ingested):
    from sopilot_pipelines.core.embedding import embed_video
    from sopilot_pipelines.core.scoring import score

    gold_id, trainee_id = ingested["gold"]["video_id"], ingested["swap"]["video_id"]
    with client(stack, "operator") as c:
        r = c.post("/score", json={"gold_video_id": gold_id, "trainee_video_id": trainee_id})
        assert r.status_code == 200, r.text
        assert (
            r.json()["status"] == "queued"
            and r.json()["score"] is None
            and r.json()["score_job_id"].startswith("score_")
        )
        job = wait(c, f"/score/{r.json()['score_job_id']}")
        assert job["status"] == "completed" and job["requested_by"] == "token:operator"
        assert (job["gold_video_id"], job["trainee_video_id"]) == (gold_id, trainee_id)
        embedder = settings().embedding.build()  # what the stack embeds with (tests: builtin)
        expected = score(
            embed_video(suite["gold"].path, embedder=embedder), embed_video(suite["swap"].path, embedder=embedder)
        ).result
        assert job["score"] == expected["score"] == job["result"]["score"]
        assert job["result"]["deviations"] == expected["deviations"]
        assert [(d["type"], d["gold_step"], d["swapped_with"]) for d in job["result"]["deviations"]] == [
            ("order_swap", 1, 2)
        ]
        pdf = c.get(f"/score/{job['score_job_id']}/report.pdf")
        assert (
            pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content[:4] == b"%PDF"
        )


def test_a_burst_of_score_requests_is_scored_in_batches_with_identical_results(stack, ingested):
    """100 requests for one ready pair at once (the throughput figures are bench_throughput's):
    every one is accepted, every job completes with the same result, and the jobs share runs."""
    from concurrent.futures import ThreadPoolExecutor

    from sopilot_pipelines.catalog import Catalog

    body = {"gold_video_id": ingested["gold"]["video_id"], "trainee_video_id": ingested["swap"]["video_id"]}
    with client(stack, "operator") as c:
        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(lambda _: c.post("/score", json=body), range(100)))
        assert [r.status_code for r in answers] == [200] * 100, {r.status_code: r.text for r in answers}
        job_ids = [r.json()["score_job_id"] for r in answers]
        assert len(set(job_ids)) == 100
        jobs = [wait(c, f"/score/{j}", timeout=600) for j in job_ids]
    assert {j["status"] for j in jobs} == {"completed"}
    assert len({json.dumps({k: j["result"][k] for k in ("score", "decision", "deviations")}) for j in jobs}) == 1
    with Catalog.open(data_dir=stack.data_dir) as cat:
        runs = {cat.get_score(j)["run_id"] for j in job_ids}
    assert 1 < len(runs) <= 10, f"{len(runs)} runs for 100 jobs"  # batched, and shared between run slots


def _record_score(cat, ingested, **fields) -> str:
    """A score job of the ingested pair, recorded straight in the stack's catalog."""
    from sopilot_pipelines.ids import new_job_id

    job_id = new_job_id("score")
    gold, trainee = ingested["gold"]["video_id"], ingested["swap"]["video_id"]
    cat.record_score(job_id, task_id=TASK, gold_video_id=gold, trainee_video_id=trainee, **fields)
    return job_id


def test_a_score_job_recorded_but_never_handed_over_is_scored(stack, ingested):
    """As when the API stopped between recording a job and handing it to Dagster: the dispatcher
    finds it queued without a run and hands it over, no request needed."""
    from sopilot_pipelines.catalog import Catalog

    with Catalog.open(data_dir=stack.data_dir) as cat:
        job_id = _record_score(cat, ingested, requested_by="test:orphan")
    with client(stack, "viewer") as c:
        job = wait(c, f"/score/{job_id}")
    assert job["status"] == "completed" and job["requested_by"] == "test:orphan" and job["score"] is not None


def test_a_score_job_whose_run_ended_without_it_is_failed_with_the_reason(stack, ingested):
    """A run canceled before it scored its job (as a run whose process died and that Dagster
    will not retry): the job reads failed, and the catalog, which /ops/queue counts, says so."""
    import sqlite3

    from sopilot_pipelines.catalog import Catalog, catalog_url

    door = Dagster(stack.dagster_url)
    with Catalog.open(data_dir=stack.data_dir) as cat:
        # its run id names who launches it, so the dispatcher does not hand it over
        job_id = _record_score(cat, ingested, requested_by="test:canceled", run_id="test:launched-by-hand")
        door.add_partition("score_jobs", job_id)
        # the catalog's write lock held until the cancel is asked for: a warm run worker scores a
        # job in well under a second, so without it the run could finish before it is canceled
        lock = sqlite3.connect(catalog_url(data_dir=stack.data_dir).removeprefix("sqlite:///"), isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            run_id = door.launch("score_job", partition_key=job_id, tags={"sopilot/job_id": job_id})
            out = door._query("mutation($id: String!) { terminateRun(runId: $id) { __typename } }", {"id": run_id})[
                "terminateRun"
            ]
            assert out["__typename"] == "TerminateRunSuccess", out
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        cat.update_score(job_id, run_id=run_id)
        deadline = time.monotonic() + 60
        while cat.get_score(job_id)["status"] != "failed":  # the dispatcher checks every few seconds
            assert time.monotonic() < deadline, cat.get_score(job_id)
            time.sleep(0.5)
        with client(stack, "operator") as c:
            job = c.get(f"/score/{job_id}").json()
            assert job["status"] == "failed" and "without finishing this job" in job["error_message"], job
            assert c.get("/ops/queue").json()["jobs"]["score"]["failed"] >= 1
    door.close()


def test_videos_listing_file_and_search(stack, suite, ingested):
    gold_id = ingested["gold"]["video_id"]
    with client(stack, "viewer") as c:
        items = c.get("/videos", params={"task_id": TASK}).json()["items"]
        assert {v["video_id"] for v in items} >= {gold_id, ingested["swap"]["video_id"]}
        v = c.get(f"/videos/{gold_id}").json()
        assert (v["site_id"], v["camera_id"], v["role"]) == ("factory_a", "cam_01", "gold")
        assert c.get(f"/videos/{gold_id}/file").content == suite["gold"].path.read_bytes()
        assert c.get("/videos/999999").status_code == 404
        assert c.get("/videos", params={"limit": 501}).status_code == 422
        deadline = time.monotonic() + 60
        while True:  # the index sensor builds the task's index after ingest
            r = c.get("/search", params={"task_id": TASK, "video_id": gold_id, "clip_idx": 4, "k": 5})
            assert r.status_code == 200, r.text
            if len(r.json()["items"]) == 5 or time.monotonic() > deadline:
                break
            time.sleep(1)
        found = r.json()["items"]
        assert len(found) == 5
        assert all((i["video_id"], i["clip_idx"]) != (gold_id, 4) for i in found)
        assert [i["similarity"] for i in found] == sorted((i["similarity"] for i in found), reverse=True)
        assert c.get("/search", params={"task_id": "other", "video_id": gold_id, "clip_idx": 0}).status_code == 400
        assert c.get("/search", params={"task_id": TASK, "video_id": gold_id, "clip_idx": 10**6}).status_code == 400
        assert c.get("/search", params={"task_id": TASK, "video_id": 999999, "clip_idx": 0}).status_code == 404


@pytest.mark.slow
def test_an_mpeg4_avi_upload_gets_a_browser_proxy_and_both_bytes_routes_seek(stack, suite, tmp_path):
    """An original Chromium cannot play (MPEG-4 Part 2 in AVI, 1024 wide): the ingest writes its
    H.264-in-MP4 proxy at most 960 wide; /stream serves the proxy, /file the original as
    video/x-msvideo (though its sender named it .mp4), both with HTTP Range; a proxy gone (a video ingested before proxies) is
    written again by the first /stream request."""
    # named .mp4 by its sender: the stored original is named, and served, by its probed container
    avi = mpeg4_avi(suite["gold"].path, tmp_path / "old_camera.avi", width=1024, seconds=6)
    avi = avi.rename(tmp_path / "old_camera.mp4")
    fmt, codec, src_w, src_h = container_and_video(avi)
    assert (fmt, codec, src_w) == ("avi", "mpeg4", 1024) and avi.stat().st_size < 3 * 2**20  # under the upload cap
    with client(stack, "operator") as c:
        job = wait(c, f"/videos/jobs/{upload(c, avi, 'proxy_task').json()['ingest_job_id']}")  # a trainee
    assert job["status"] == "completed", job["error_message"]
    vid = job["video_id"]
    proxy = stack.data_dir / "proxies" / f"video_{vid}.mp4"
    container, codec, width, height = container_and_video(proxy)  # written by the ingest
    assert "mp4" in container.split(",") and codec == "h264", (container, codec)
    assert (width, height) == (960, round(960 * src_h / src_w / 2) * 2)  # scaled down, aspect kept, even
    body = proxy.read_bytes()
    assert body[4:8] == b"ftyp" and body.index(b"moov") < body.index(b"mdat")  # +faststart
    raw = avi.read_bytes()
    with client(stack, "viewer") as c:
        r = c.get(f"/videos/{vid}/file")
        assert r.status_code == 200 and r.content == raw and r.headers["content-type"] == "video/x-msvideo"
        assert 'filename="old_camera.mp4"' in r.headers["content-disposition"]  # the sender's name, kept as a label
        assert_range(c, f"/videos/{vid}/file", raw, "video/x-msvideo")
        r = c.get(f"/videos/{vid}/stream")
        assert r.status_code == 200 and r.content == body and r.headers["content-type"] == "video/mp4"
        assert_range(c, f"/videos/{vid}/stream", body, "video/mp4")
        proxy.unlink()  # as if ingested before proxies existed
        r = c.get(f"/videos/{vid}/stream", headers={"Range": "bytes=0-99"})
        assert r.status_code == 206 and r.headers["content-type"] == "video/mp4" and len(r.content) == 100
        assert proxy.is_file() and r.content == proxy.read_bytes()[:100]
        assert container_and_video(proxy)[1:3] == ("h264", 960)
        assert not list(proxy.parent.glob(".*.tmp"))  # written atomically, nothing left beside it
        assert c.get("/videos/999999/stream").status_code == 404


def test_upload_errors(stack, suite, tmp_path):
    with client(stack, "operator") as c:
        big = tmp_path / "big.mp4"
        big.write_bytes(b"\0" * (4 * 1024 * 1024))
        assert upload(c, big, TASK).status_code == 413
        empty = tmp_path / "empty.mp4"
        empty.write_bytes(b"")
        assert upload(c, empty, TASK).status_code == 400
        r = upload(c, suite["swap"].path, TASK, role="supervisor")
        assert r.status_code == 400 and "role" in r.json()["detail"]
        r = upload(c, suite["swap"].path, task="../../etc")
        assert r.status_code == 400 and "task_id" in r.json()["detail"]
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video at all")
        r = upload(c, notes, TASK)
        assert r.status_code == 400 and "not a readable video" in r.json()["detail"]
        assert c.post("/videos", data={"task_id": TASK}).status_code == 400
        assert not list((stack.data_dir / "uploads").glob("*"))  # nothing left half-written
        assert c.get("/videos/jobs/not-a-run").status_code == 404


def test_score_errors(stack, suite, ingested):
    gold_id, trainee_id = ingested["gold"]["video_id"], ingested["swap"]["video_id"]
    with client(stack, "operator") as c:
        assert c.post("/score", json={"gold_video_id": 999999, "trainee_video_id": trainee_id}).status_code == 404
        assert c.post("/score", json={"gold_video_id": trainee_id, "trainee_video_id": gold_id}).status_code == 400
        other = upload(c, suite["swap"].path, task="other_task").json()["ingest_job_id"]
        pending = c.post(
            "/score",
            json={"gold_video_id": gold_id, "trainee_video_id": c.get(f"/videos/jobs/{other}").json()["video_id"]},
        )
        assert pending.status_code in (400, 409)  # a different task; or still ingesting
        other_id = wait(c, f"/videos/jobs/{other}")["video_id"]
        r = c.post("/score", json={"gold_video_id": gold_id, "trainee_video_id": other_id})
        assert r.status_code == 400 and "different tasks" in r.json()["detail"]
        assert c.post("/score", json={"gold_video_id": "x"}).status_code == 422
        assert c.get("/score/score_20990101_000000_ffffff").status_code == 404
        assert c.get("/score/score_20990101_000000_ffffff/report.pdf").status_code == 404


def test_training_and_nightly_status(stack, ingested):
    with client(stack, "admin") as c:
        r = c.post("/train/nightly")
        assert r.status_code == 200 and r.json()["trigger"] == "manual", r.text
        job = wait(c, f"/train/jobs/{r.json()['training_job_id']}")
        assert job["requested_by"] == "token:admin" and job["status"] in ("completed", "rejected"), job
        res = job["result"]
        assert res["status"] == job["status"] and res["mode"] == "builtin_feature_adapter"
        assert res["videos_used"] >= 2 and res["clips_used"] > 40 and res["embedding_dim"] == 685
        figures = res["figures"]  # what the candidate was judged on, whichever way it went
        assert (
            figures["heldout_videos"] >= 1
            and figures["baseline"] is not None
            and figures["accepted"] == (job["status"] == "completed")
        )
        if job["status"] == "completed":
            assert Path(res["adapter_path"]).exists() and TASK in res["reindex"]["tasks_touched"]
            assert res["reindex"]["new_index_version"] != res["reindex"]["old_index_version"]
        else:
            assert res["adapter_path"] is None and res["reindex"] is None and "recall" in res["reason"]
        # one training at a time: the API refuses a second while one is queued or running...
        first = c.post("/train/nightly")
        assert first.status_code == 200 and c.post("/train/nightly").status_code == 409
        wait(c, f"/train/jobs/{first.json()['training_job_id']}")
        # ...and the run queue never runs two train_job runs together, whoever launches them
        door = Dagster(stack.dagster_url)
        runs = [
            door.launch("train_job", tags={"sopilot/trigger": "manual", "sopilot/job_id": f"train_queue_{i}"})
            for i in range(2)
        ]
        deadline = time.monotonic() + 180
        while any(door.run(r).status in ("queued", "running") for r in runs):
            assert time.monotonic() < deadline, [door.run(r) for r in runs]
            time.sleep(0.5)
        a, b = sorted((door.run(r) for r in runs), key=lambda r: r.started_at)
        assert a.status == b.status == "completed" and c.get("/train/jobs/train_queue_1").json()["status"] in (
            "completed",
            "rejected",
        )
        assert a.finished_at <= b.started_at, (a, b)
        status = c.get("/train/nightly/status").json()
        assert status["hour_local"] == 2 and status["min_new_videos"] == 10 and status["enabled"] is True
        assert c.get("/train/jobs/train_nope").status_code == 404


def test_audit_trail_and_signed_export(stack, ingested):
    from sopilot_pipelines.core.audit import verify

    with client(stack, "admin") as c:
        items = c.get("/audit/trail", params={"limit": 50}).json()["items"]
        assert {"ingest"} <= {i["job_type"] for i in items}
        first = c.post("/audit/export").json()
        second = c.post("/audit/export").json()
        assert first["export_id"] != second["export_id"] and first["signature"]["key_id"] == "test"
        doc = c.get(f"/audit/export/{first['export_id']}/file").json()
        assert verify(doc, "audit-key")[0] and not verify(doc, "wrong-key")[0]
        assert c.get("/audit/export/nope/file").status_code == 404


def test_ops_health_and_metrics(stack, ingested):
    with client(stack, "admin") as c:  # a training run, for the trigger label
        wait(c, f"/train/jobs/{c.post('/train/nightly').json()['training_job_id']}")
    with client(stack) as c:
        assert c.get("/health").json() == {"status": "ok", "db": True, "down": {}}
        text = c.get("/metrics").text
        for name in ("sopilot_ingest_jobs_total", "sopilot_score_jobs_total", "sopilot_queue_depth"):
            assert name in text
        assert 'sopilot_ingest_jobs_total{status="completed"}' in text
        # observed inside the Dagster run processes, merged across processes at scrape time
        assert 'sopilot_embedding_generation_seconds_count{embedder="builtin:v1"}' in text
        assert 'sopilot_dtw_execution_seconds_count{gpu="false"}' in text
        assert 'sopilot_job_duration_seconds_count{job_type="score"}' in text
        assert 'sopilot_training_jobs_total{status="completed",trigger="manual"}' in text
    with client(stack, "operator") as c:
        q = c.get("/ops/queue").json()
        assert q["queue"]["backend"] == "dagster" and q["jobs"]["ingest"]["completed"] >= 2
        assert q["queue"]["daemon_ok"] is True and q["queue"]["redis_ok"] is None  # each under its own name


# (method, path, minimum role); None: public
ENDPOINTS = [
    ("GET", "/health", None),
    ("GET", "/metrics", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
    ("GET", "/videos", "viewer"),
    ("GET", "/videos/1", "viewer"),
    ("GET", "/videos/jobs/x", "viewer"),
    ("GET", "/score/score_x", "viewer"),
    ("GET", "/search?task_id=t&video_id=1&clip_idx=0", "viewer"),
    ("GET", "/train/nightly/status", "viewer"),
    ("GET", "/audit/trail", "viewer"),
    ("GET", "/ops/queue", "operator"),
    ("POST", "/videos", "operator"),
    ("POST", "/gold", "operator"),
    ("POST", "/score", "operator"),
    ("DELETE", "/videos/999999", "admin"),
    ("POST", "/train/nightly", "admin"),
    ("POST", "/audit/export", "admin"),
    ("GET", "/audit/export/x/file", "admin"),
]
RANK = {None: -1, "viewer": 0, "operator": 1, "admin": 2}


def test_role_matrix(stack):
    basic = "Basic " + base64.b64encode(b"alice:wonder-land").decode()
    wrong_basic = "Basic " + base64.b64encode(b"alice:nope").decode()
    with httpx.Client(base_url=stack.api_url, timeout=30) as c:
        for method, path, need in ENDPOINTS:
            if need is None:
                assert c.request(method, path).status_code == 200, path
                continue
            anon = c.request(method, path)
            assert anon.status_code == 401 and "www-authenticate" in anon.headers, (method, path)
            assert c.request(method, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.request(method, path, headers={"Authorization": wrong_basic}).status_code == 401
            for role, token in TOKENS.items():
                code = c.request(method, path, headers={"Authorization": f"Bearer {token}"}).status_code
                if RANK[role] < RANK[need]:
                    assert code == 403, (method, path, role, code)
                else:
                    assert code not in (401, 403), (method, path, role, code)
            code = c.request(method, path, headers={"Authorization": basic}).status_code  # alice is an operator
            assert (code == 403) == (RANK["operator"] < RANK[need]), (method, path, code)


def test_delete_video_removes_files_and_reindexes(stack, suite):
    with client(stack, "operator") as c:
        vid = wait(
            c, f"/videos/jobs/{upload(c, suite['gold'].path, task='delete_me', gold=True).json()['ingest_job_id']}"
        )["video_id"]
        gone = wait(c, f"/videos/jobs/{upload(c, suite['swap'].path, task='delete_me').json()['ingest_job_id']}")[
            "video_id"
        ]
        raw = c.get(f"/videos/{vid}").json()
        query = {"task_id": "delete_me", "video_id": vid, "clip_idx": 3, "k": 50}
        deadline = time.monotonic() + 60
        while gone not in {i["video_id"] for i in c.get("/search", params=query).json()["items"]}:
            assert time.monotonic() < deadline, "the trainee never reached the task index"
            time.sleep(1)
    with client(stack, "admin") as c:
        r = c.delete(f"/videos/{gone}")
        assert r.status_code == 200 and r.json()["reindexed_clips"] == raw["num_clips"], r.text
        found = c.get("/search", params=query).json()["items"]
        assert found and gone not in {i["video_id"] for i in found}  # at once, before the rebuild lands
        r = c.delete(f"/videos/{vid}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["video_id"] == vid and body["task_id"] == "delete_me" and body["reindexed_clips"] == 0
        assert len(body["removed_files"]) == 5 and not any(Path(p).exists() for p in body["removed_files"])
        assert any(p.endswith(f"proxies/video_{vid}.mp4") for p in body["removed_files"])  # its browser proxy too
        assert c.get(f"/videos/{vid}").status_code == 404 and c.delete(f"/videos/{vid}").status_code == 404
    assert raw["num_clips"] > 0


def test_openapi_documents_routes_models_and_security(stack):
    with client(stack) as c:
        spec = c.get("/openapi.json").json()
    assert {"bearer", "basic"} <= {v["scheme"] for v in spec["components"]["securitySchemes"].values() if "scheme" in v}
    for path in (
        "/videos",
        "/gold",
        "/score",
        "/score/{score_job_id}",
        "/search",
        "/train/nightly",
        "/audit/export",
        "/ops/queue",
    ):
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/videos"]["post"]["requestBody"]["content"]
    assert json.dumps(spec["paths"]["/score/{score_job_id}"]["get"]["responses"]["200"]).count("ScoreJob") == 1

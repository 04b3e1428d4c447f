"""Catalog tests on two real backends: SQLite in tmp_path and a PostgreSQL server.

PostgreSQL: 127.0.0.1:5432, user postgres, trust auth (override with
SOPILOT_TEST_POSTGRES_URL). A fresh database is created for the test session and dropped at its
end; each test gets its own empty schema in it. An unreachable server FAILS the PostgreSQL tests
unless SOPILOT_SKIP_POSTGRES=1.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from sopilot_pipelines.catalog import VERSION_TABLE, Catalog, IngestSuperseded, NotFoundError, head_revisions
from sopilot_pipelines.catalog.engine import catalog_url, normalize_url
from sopilot_pipelines.catalog.migrations import upgrade
from tests.helpers import fresh_postgres_databases

TABLES = {"videos", "clips", "score_results", "training_results", "index_versions", "audit_exports", "task_sops"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def pg_database():
    """URL of a fresh PostgreSQL database for this session, dropped at the end."""
    with fresh_postgres_databases("sopilot_test") as (url,):
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty catalog database on each backend (PostgreSQL: a fresh schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'catalog.db'}"
    db_url = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return db_url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture
def cat(url):
    catalog = Catalog(url)
    yield catalog
    catalog.close()


def _ready(cat, video_id, n=3, model="builtin:v1", **overrides):
    kwargs = dict(
        embedding_model=model,
        num_clips=n,
        source_fps=30.0,
        sampled_fps=4.0,
        duration_sec=4.0 * n,
        embeddings_path=f"/e/{video_id}.npy",
        raw_embeddings_path=f"/e/{video_id}.raw.npy",
        meta_path=f"/e/{video_id}.json",
        clips=[{"clip_idx": i, "start_sec": 4.0 * i, "end_sec": 4.0 * (i + 1)} for i in range(n)],
    )
    kwargs.update(overrides)
    return cat.mark_video_ready(video_id, **kwargs)


def _versions_rows(url):
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]
    finally:
        engine.dispose()


def _in_processes(target, args_list):
    """Run target(*args) in forked processes released together; return their results."""
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(len(args_list)), ctx.Queue()
    procs = [ctx.Process(target=_proc_main, args=(target, barrier, queue, a)) for a in args_list]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    errors = [r for ok, r in results if not ok]
    assert not errors, errors
    return [r for _, r in results]


def _proc_main(target, barrier, queue, args):
    try:
        barrier.wait(timeout=30)
        queue.put((True, target(*args)))
    except BaseException as exc:  # report, do not hang the parent
        queue.put((False, f"{type(exc).__name__}: {exc}"))


def _open_catalog(url):
    with Catalog(url) as catalog:
        return catalog.ping()


def _add_index_versions(url, task_id, n):
    with Catalog(url) as catalog:
        return [catalog.add_index_version(task_id, f"/idx/{task_id}", 10, 2) for _ in range(n)]


# --------------------------------------------------------------------------- migrations


def test_migrations_apply_on_empty_db_and_are_idempotent(url):
    assert upgrade(url) is True  # empty database: migrations ran
    assert upgrade(url) is False  # already at head: quick no-op
    with Catalog(url) as first, Catalog(url) as second:
        assert first.ping() and second.ping()
    engine = create_engine(normalize_url(url))
    try:
        names = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert TABLES | {VERSION_TABLE} <= names
    assert _versions_rows(url) == list(head_revisions())


def test_migrations_from_four_processes_at_once(url):
    assert _in_processes(_open_catalog, [(url,)] * 4) == [True] * 4
    assert _versions_rows(url) == list(head_revisions())  # single head row, no duplicates
    with Catalog(url) as catalog:
        assert catalog.add_video("t", "trainee") == 1


def test_upgrade_from_the_previous_release_keeps_everything(url):
    """A catalog as the release before task SOPs (revision 0002) wrote it, with a row in every
    table, upgraded to head: every row is still there and reads back through the catalog; the new
    columns take their defaults (a score was asked for, its SOP version unknown)."""
    from sqlalchemy import MetaData, insert

    assert upgrade(url, "0002") is True
    engine = create_engine(normalize_url(url))
    old = MetaData()
    old.reflect(engine)
    assert "task_sops" not in old.tables and "trigger" not in old.tables["score_results"].c
    at = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        for vid, role in ((1, "gold"), (2, "trainee")):
            conn.execute(
                insert(old.tables["videos"]).values(
                    id=vid,
                    task_id="line_1",
                    role=role,
                    original_filename=f"v{vid}.mp4",
                    status="ready",
                    num_clips=2,
                    embedding_model="builtin:v1",
                    duration_sec=8.0,
                    gold_version=1 if role == "gold" else None,
                    created_at=at,
                    updated_at=at,
                )
            )
            conn.execute(
                insert(old.tables["clips"]),
                [{"video_id": vid, "clip_idx": i, "start_sec": 4.0 * i, "end_sec": 4.0 * i + 4} for i in range(2)],
            )
        conn.execute(
            insert(old.tables["score_results"]).values(
                job_id="score_old",
                task_id="line_1",
                gold_video_id=1,
                trainee_video_id=2,
                status="completed",
                score=91.5,
                decision="pass",
                result_path="/s/score_old.json",
                requested_by="token:operator",
                created_at=at,
                finished_at=at,
            )
        )
        conn.execute(
            insert(old.tables["training_results"]).values(
                job_id="train_old", trigger="nightly", status="rejected", figures={"recall": 0.9}, created_at=at
            )
        )
        conn.execute(
            insert(old.tables["index_versions"]).values(
                task_id="line_1",
                version=1,
                path="/i/1",
                clips_indexed=4,
                videos=2,
                fingerprint="f",
                adapter="identity",
                created_at=at,
            )
        )
        conn.execute(
            insert(old.tables["audit_exports"]).values(
                export_id="exp_1",
                file_path="/a/1.json",
                item_count=1,
                generated_at=at,
                key_id="k",
                payload_sha256="a" * 64,
                signature_hex="b" * 64,
            )
        )
    engine.dispose()

    assert upgrade(url) is True
    with Catalog(url) as cat:
        gold, trainee = cat.get_video(1), cat.get_video(2)
        assert (gold["original_filename"], gold["gold_version"], gold["upload_steps"], gold["auto_steps"]) == (
            "v1.mp4",
            1,
            None,
            None,
        )
        assert trainee["created_at"] == at and len(cat.clips_of(2)) == 2
        score = cat.get_score("score_old")
        assert (score["score"], score["decision"], score["requested_by"]) == (91.5, "pass", "token:operator")
        assert (score["trigger"], score["previous_job_id"], score["sop_version"]) == ("request", None, None)
        assert score["attempts"] == 1  # a finished job was attempted once (revision 0004)
        assert cat.get_training("train_old")["figures"] == {"recall": 0.9}
        assert cat.get_training("train_old")["attempts"] == 1
        assert cat.current_index_version("line_1")["fingerprint"] == "f"
        assert cat.get_export("exp_1")["payload_sha256"] == "a" * 64
        assert cat.list_tasks() == [
            {
                "task_id": "line_1",
                "gold_video_ids": [1],
                "sop_version": 0,
                "sop_source": "auto",
                "video_count": 2,
                "score_count": 1,
                "last_scored_at": at,
            }
        ]
        assert cat.sop_view("line_1")["version"] == 0
        # and the new tables work on the upgraded catalog
        sop = cat.add_sop("line_1", gold_video_id=1, steps=[{"name": "A", "start_sec": 0.0, "end_sec": 4.0}])
        assert sop["version"] == 1 and cat.list_tasks()[0]["sop_source"] == "user"
    assert _versions_rows(url) == list(head_revisions())


def test_sop_versions_per_gold_and_latest_scores(cat):
    gold = cat.add_video("t", "gold")
    _ready(cat, gold)
    steps = [
        {"name": "A", "start_sec": 0.0, "end_sec": 4.0},
        {"name": "B", "start_sec": 4.0, "end_sec": 8.0, "optional": True},
    ]
    assert cat.current_sop("t") is None and cat.sop_view("t")["source"] == "auto"
    first = cat.add_sop("t", gold_video_id=gold, steps=steps, requested_by="token:admin")
    second = cat.add_sop("t", gold_video_id=gold, steps=steps[:1])
    assert (first["version"], second["version"]) == (1, 2) and cat.current_sop("t")["steps"] == second["steps"]
    assert cat.get_sop("t", 1)["steps"][1]["optional"] is True and cat.get_sop("t", 1)["requested_by"] == "token:admin"
    assert cat.set_sop_per_gold("t", 2, {7: [[0.5, 3.0]]})["per_gold"] == {"7": [[0.5, 3.0]]}
    with pytest.raises(ValueError):
        cat.add_sop("t", gold_video_id=gold, steps=[])
    with pytest.raises(NotFoundError):
        cat.set_sop_per_gold("t", 9, {})
    t0 = datetime(2027, 1, 1, tzinfo=timezone.utc)
    for i, (trainee, status) in enumerate([(5, "completed"), (5, "completed"), (6, "completed"), (6, "failed")]):
        cat.record_score(
            f"score_{i}",
            task_id="t",
            gold_video_id=gold,
            trainee_video_id=trainee,
            status=status,
            created_at=t0 + timedelta(minutes=i),
        )
    assert [j["job_id"] for j in cat.latest_scores_by_trainee("t")] == ["score_1", "score_2"]
    again = cat.record_score(
        "score_9", task_id="t", gold_video_id=gold, trainee_video_id=5, trigger="sop_change", previous_job_id="score_1"
    )
    assert (again["trigger"], again["previous_job_id"]) == ("sop_change", "score_1")
    with pytest.raises(ValueError, match="trigger"):
        cat.record_score("score_10", task_id="t", gold_video_id=gold, trainee_video_id=5, trigger="whim")


def test_tables_match_migrations(cat):
    """tables.py and the alembic revisions describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sopilot_pipelines.catalog.tables import metadata

    with cat.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []


def test_default_location_and_catalog_url(tmp_path):
    with Catalog.open("", tmp_path / "nested" / "data") as catalog:
        assert catalog.backend == "sqlite" and catalog.ping()
    assert (tmp_path / "nested" / "data" / "catalog.db").is_file()

    other = tmp_path / "elsewhere.db"
    assert catalog_url(f"sqlite:///{other}", tmp_path) == f"sqlite:///{other}"
    with Catalog.open(f"sqlite:///{other}", tmp_path) as catalog:
        catalog.add_video("t", "gold")
    assert other.is_file()

    assert catalog_url() == f"sqlite:///{(os.path.abspath('data'))}/catalog.db"
    pg = normalize_url("postgresql://u:p@db:5432/sopilot")
    assert pg.drivername == "postgresql+psycopg2"
    assert normalize_url("postgresql+psycopg2://db/x").drivername == "postgresql+psycopg2"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://db/x")


def test_sqlite_pragmas(tmp_path):
    with Catalog(f"sqlite:///{tmp_path / 'c.db'}") as catalog:
        with catalog.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


# --------------------------------------------------------------------------- videos


def test_video_lifecycle_clips_and_gold_versions(cat):
    before = datetime.now(timezone.utc)
    g1 = cat.add_video(
        "assembly_line_1",
        "gold",
        site_id="factory_a",
        camera_id="cam_01",
        operator_id_hash="abc123",
        original_filename="gold.mp4",
        raw_path="/raw/1.mp4",
        requested_by="token:operator",
    )
    v = cat.get_video(g1)
    assert isinstance(g1, int)
    assert v["video_id"] == g1 and v["status"] == "pending" and v["gold_version"] is None
    labels = (v["site_id"], v["camera_id"], v["operator_id_hash"])
    assert labels == ("factory_a", "cam_01", "abc123")
    assert v["created_at"].tzinfo is not None and v["created_at"].utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= v["created_at"] <= datetime.now(timezone.utc)

    cat.set_ingest_run(g1, "550e8400-e29b-41d4-a716-446655440000")
    assert cat.get_video(g1)["ingest_run_id"] == "550e8400-e29b-41d4-a716-446655440000"
    cat.set_video_paths(g1, raw_path="/raw/g1.mp4", meta_path="/m/g1.json")
    assert cat.get_video(g1)["raw_path"] == "/raw/g1.mp4"

    ready = _ready(cat, g1, n=3)
    assert ready["status"] == "ready" and ready["gold_version"] == 1
    assert (ready["num_clips"], ready["source_fps"], ready["sampled_fps"]) == (3, 30.0, 4.0)
    assert ready["embedding_model"] == "builtin:v1" and ready["meta_path"] == "/e/1.json"
    assert [c["clip_idx"] for c in cat.clips_of(g1)] == [0, 1, 2]
    assert cat.clips_of(g1)[1] == {"video_id": g1, "clip_idx": 1, "start_sec": 4.0, "end_sec": 8.0, "quality": None}

    # Re-run: clips replaced, gold_version kept.
    again = _ready(
        cat,
        g1,
        n=2,
        clips=[
            {"clip_idx": 0, "start_sec": 0.0, "end_sec": 5.0, "quality": "ok"},
            {"clip_idx": 1, "start_sec": 5.0, "end_sec": 9.5, "quality": "blurry"},
        ],
    )
    assert again["gold_version"] == 1 and again["num_clips"] == 2
    assert [(c["clip_idx"], c["quality"]) for c in cat.clips_of(g1)] == [(0, "ok"), (1, "blurry")]

    g2 = cat.add_video("assembly_line_1", "gold")
    other = cat.add_video("packaging_2", "gold")
    trainee = cat.add_video("assembly_line_1", "trainee")
    assert g1 < g2 < other < trainee
    assert cat.current_gold("assembly_line_1")["video_id"] == g1  # g2 not ready yet
    assert _ready(cat, g2)["gold_version"] == 2
    assert _ready(cat, other)["gold_version"] == 1
    assert _ready(cat, trainee)["gold_version"] is None
    assert cat.current_gold("assembly_line_1")["video_id"] == g2
    assert cat.current_gold("packaging_2")["video_id"] == other
    assert cat.current_gold("unknown_task") is None

    failed = cat.mark_video_failed(g2, RuntimeError("decoder exploded"))
    assert failed["status"] == "failed" and failed["error_message"] == "decoder exploded"
    assert cat.current_gold("assembly_line_1")["video_id"] == g1


def test_a_video_failed_while_its_run_ingests_it_stays_failed(cat):
    vid = cat.add_video("t", "trainee")
    cat.set_ingest_run(vid, "run-1")
    assert cat.begin_ingest(vid, "run-1")["status"] == "pending"
    assert cat.fail_pending_video(vid, "not ingested within 60 s of its upload")  # the time-out, mid-run
    with pytest.raises(IngestSuperseded, match="not ingested within 60 s"):
        _ready(cat, vid)  # the late run's result is not recorded
    with pytest.raises(IngestSuperseded):
        cat.begin_ingest(vid, "run-1")  # nor does a retry of that run take it on again
    row = cat.get_video(vid)
    assert row["status"] == "failed" and row["num_clips"] is None and cat.clips_of(vid) == []
    # a new run (a data engineer re-materializing it) takes it on, and may make it ready
    again = cat.begin_ingest(vid, "run-2")
    assert again["status"] == "pending" and again["error_message"] is None and again["ingest_run_id"] == "run-2"
    assert _ready(cat, vid)["status"] == "ready"
    assert cat.begin_ingest(vid, "run-3")["ingest_run_id"] == "run-2"  # a re-run of a ready video changes nothing
    fresh = cat.add_video("t", "trainee")  # an inbox video: the run that first takes it on is its ingest run
    assert cat.begin_ingest(fresh, "run-4")["ingest_run_id"] == "run-4"
    assert cat.begin_ingest(10_000, "run-5") is None


def test_list_filters_order_limit_and_since(cat):
    ids = [
        cat.add_video(task, role)
        for task, role in [
            ("a", "gold"),
            ("a", "trainee"),
            ("b", "trainee"),
            ("a", "trainee"),
            ("b", "gold"),
        ]
    ]
    _ready(cat, ids[1])
    assert [v["video_id"] for v in cat.list_videos()] == ids[::-1]
    assert [v["video_id"] for v in cat.list_videos(limit=2)] == ids[:2:-1]
    assert [v["video_id"] for v in cat.list_videos("a")] == [ids[3], ids[1], ids[0]]
    assert [v["video_id"] for v in cat.list_videos("a", role="trainee")] == [ids[3], ids[1]]
    assert [v["video_id"] for v in cat.list_videos(status="ready")] == [ids[1]]
    assert [v["video_id"] for v in cat.list_videos(role="gold", limit=None)] == [ids[4], ids[0]]
    assert cat.list_videos("nothing_here") == []

    created = cat.get_video(ids[2])["created_at"]
    assert cat.videos_since(created - timedelta(hours=1)) == 5
    assert cat.videos_since(created) >= 3
    assert cat.videos_since(datetime.now(timezone.utc) + timedelta(hours=1)) == 0
    assert cat.videos_since(created - timedelta(hours=1), status="ready") == 1
    # Another offset is the same instant.
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).astimezone(timezone(timedelta(hours=9)))
    assert cat.videos_since(later) == 0


def test_delete_cascades_clips_and_ids_keep_increasing(cat):
    first = cat.add_video("t", "trainee")
    last = cat.add_video("t", "trainee")
    _ready(cat, last, n=4)
    deleted = cat.delete_video(last)
    assert deleted["video_id"] == last and deleted["embeddings_path"] == f"/e/{last}.npy"
    assert cat.get_video(last) is None and cat.clips_of(last) == []
    with cat.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM clips")).scalar() == 0
    assert cat.delete_video(last) is None
    assert cat.add_video("t", "trainee") > last > first  # the deleted id is not reused
    with pytest.raises(NotFoundError):
        cat.mark_video_failed(last, "gone")
    with pytest.raises(NotFoundError):
        _ready(cat, last)


def test_validation_errors(cat):
    with pytest.raises(ValueError, match="role"):
        cat.add_video("t", "supervisor")
    with pytest.raises(ValueError, match="task_id"):
        cat.add_video("", "gold")
    for bad in ("a/b", "has space", "x" * 65, "ünïcode", None, 7):
        with pytest.raises(ValueError, match="task_id"):
            cat.add_video(bad, "trainee")
    longest = "A-z_0.9" + "x" * 57  # 64 characters, every allowed kind
    assert cat.get_video(cat.add_video(longest, "trainee"))["task_id"] == longest
    with pytest.raises(ValueError, match="site_id"):
        cat.add_video("t", "gold", site_id="s" * 200)
    with pytest.raises(ValueError, match="video_id"):
        cat.get_video("1")
    with pytest.raises(ValueError, match="timezone info"):
        cat.videos_since(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="limit"):
        cat.list_videos(limit=0)

    vid = cat.add_video("t", "trainee")
    with pytest.raises(ValueError, match="num_clips=2 but 1 clips"):
        _ready(cat, vid, n=2, clips=[{"clip_idx": 0, "start_sec": 0, "end_sec": 1}])
    with pytest.raises(ValueError, match=r"clips\[0\]\.end_sec: Field required"):
        _ready(cat, vid, n=1, clips=[{"clip_idx": 0, "start_sec": 0}])
    with pytest.raises(ValueError, match="source_fps"):
        _ready(cat, vid, source_fps=0)
    with pytest.raises(ValueError, match="embedding_model"):
        _ready(cat, vid, model="")
    with pytest.raises(ValueError, match="run_id"):
        cat.set_ingest_run(vid, "")
    assert cat.get_video(vid)["status"] == "pending"  # nothing written by any of the above


def test_failed_transaction_leaves_previous_state(cat):
    vid = cat.add_video("t", "trainee")
    _ready(cat, vid, n=2)
    before, clips_before = cat.get_video(vid), cat.clips_of(vid)

    duplicate = [{"clip_idx": 0, "start_sec": 0.0, "end_sec": 1.0}] * 2
    with pytest.raises(IntegrityError):  # the video UPDATE ran, then the clip INSERT failed
        _ready(cat, vid, n=2, model="other:v2", clips=duplicate)
    backwards = [{"clip_idx": 0, "start_sec": 5.0, "end_sec": 1.0}]
    with pytest.raises(IntegrityError):
        _ready(cat, vid, n=1, model="other:v2", clips=backwards)
    assert cat.get_video(vid) == before and cat.clips_of(vid) == clips_before

    gold = cat.add_video("t", "gold")
    with pytest.raises(IntegrityError):
        _ready(cat, gold, n=2, clips=duplicate)
    g = cat.get_video(gold)
    assert g["status"] == "pending" and g["gold_version"] is None and cat.clips_of(gold) == []
    assert _ready(cat, gold)["gold_version"] == 1


# --------------------------------------------------------------------------- results


def test_score_round_trip(cat):
    job = "score_20260208_120000_abc123"
    rec = cat.record_score(
        job,
        task_id="assembly_line_1",
        gold_video_id=1,
        trainee_video_id=42,
        requested_by="token:operator",
        run_id="run-1",
    )
    assert rec["status"] == "queued" and rec["score"] is None and rec["started_at"] is None
    with pytest.raises(ValueError, match="already recorded"):
        cat.record_score(job, task_id="assembly_line_1", gold_video_id=1, trainee_video_id=42)
    assert cat.record_score(job, task_id="assembly_line_1", gold_video_id=1, trainee_video_id=42, exist_ok=True) == rec

    running = cat.update_score(job, status="running")
    assert running["started_at"] is not None and running["finished_at"] is None
    done = cat.update_score(
        job,
        status="completed",
        score=87.5,
        decision="needs_review",
        result_path="/data/scores/x.json",
        report_path="/data/scores/x.pdf",
    )
    assert done["score"] == 87.5 and done["decision"] == "needs_review"
    assert done["finished_at"] >= done["started_at"] >= done["created_at"]
    assert done["finished_at"].utcoffset() == timedelta(0)
    assert cat.get_score(job) == done
    assert done["run_id"] == "run-1"
    assert cat.get_score("missing") is None and cat.get_score("../etc/passwd") is None

    older = datetime.now(timezone.utc) - timedelta(days=1)
    cat.record_score("score_old", task_id="t", gold_video_id=1, trainee_video_id=2, created_at=older)
    cat.record_score("score_new", task_id="t", gold_video_id=1, trainee_video_id=3)
    assert [s["job_id"] for s in cat.list_scores()] == ["score_new", job, "score_old"]
    assert [s["job_id"] for s in cat.list_scores(1)] == ["score_new"]
    assert [s["job_id"] for s in cat.list_scores(task_id="t")] == ["score_new", "score_old"]
    assert [s["job_id"] for s in cat.list_scores(status="completed")] == [job]

    with pytest.raises(ValueError, match="unknown score field"):
        cat.update_score(job, gold_video_id=3)
    with pytest.raises(ValueError, match="score 101: Input should be less than or equal to 100"):
        cat.update_score(job, score=101)
    with pytest.raises(ValueError, match="decision"):
        cat.update_score(job, decision="maybe")
    with pytest.raises(ValueError, match="status"):
        cat.update_score(job, status="done")
    with pytest.raises(NotFoundError):
        cat.update_score("score_missing", status="failed")
    assert cat.get_score(job) == done


def test_a_jobs_status_only_moves_forward_and_counts_its_attempts(cat):
    """queued -> running -> completed|failed, never back; each run that takes the job on (its
    first, a retry carrying it on) is an attempt; a late run leaves a finished job as it is."""
    job = "score_20260208_120000_fwd001"
    created = cat.record_score(job, task_id="t", gold_video_id=1, trainee_video_id=2)
    assert created["attempts"] == 0
    cat.update_score(job, run_id="run-1")  # handed over: not yet taken on
    first = cat.update_score(job, status="running", run_id="run-1")
    assert (first["status"], first["attempts"]) == ("running", 1)
    assert cat.update_score(job, status="running", run_id="run-1")["attempts"] == 1  # the same run again
    assert cat.update_score(job, status="queued")["status"] == "running"  # never back to queued
    retry = cat.update_score(job, status="running", run_id="run-2")  # the retry of a run whose process died
    assert (retry["status"], retry["attempts"], retry["run_id"]) == ("running", 2, "run-2")
    assert retry["started_at"] == first["started_at"] and retry["created_at"] == created["created_at"]
    done = cat.update_score(job, status="completed", score=80.0)
    assert done["status"] == "completed" and done["attempts"] == 2
    # a late or repeated run: the status and its run id are not written, the other fields are
    late = cat.update_score(job, status="running", run_id="run-3")
    assert (late["status"], late["attempts"], late["run_id"]) == ("completed", 2, "run-2")
    assert cat.update_score(job, status="failed", error_message="late")["status"] == "completed"
    assert cat.update_score(job, status="queued")["status"] == "completed"
    assert cat.get_score(job)["finished_at"] == done["finished_at"]

    timed_out = "score_20260208_120000_fwd002"
    cat.record_score(timed_out, task_id="t", gold_video_id=1, trainee_video_id=3, run_id="run-4")
    assert cat.fail_unfinished_scores("run-4", "timed out") == [timed_out]
    assert cat.update_score(timed_out, status="running", run_id="run-4")["status"] == "failed"
    assert cat.update_score(timed_out, status="completed", score=90.0)["status"] == "failed"
    assert cat.get_score(timed_out)["attempts"] == 0

    train = cat.record_training("train_20260208_120000_fwd003", trigger="manual")
    cat.update_training(train["job_id"], status="running", run_id="run-5")
    rejected = cat.update_training(train["job_id"], status="rejected", skip_reason="no better")
    assert rejected["finished_at"] is not None and rejected["attempts"] == 1
    assert cat.update_training(train["job_id"], status="completed")["status"] == "rejected"


def test_training_round_trip_with_json(cat):
    figures = {"loss": [0.9, 0.5, 0.25], "epochs": 3, "notes": {"lr": 1e-3, "ok": True}}
    reindex = {
        "old_index_version": "v1",
        "new_index_version": "v2",
        "videos_refreshed": 50,
        "clips_indexed": 3750,
        "tasks_touched": ["assembly_line_1", "packaging_station_2"],
    }
    cat.record_training("train_20260208_020000_a", trigger="nightly")
    cat.record_training("train_20260208_120000_xyz789", trigger="manual", requested_by="token:admin", run_id="r-2")
    done = cat.update_training(
        "train_20260208_120000_xyz789",
        status="completed",
        mode="builtin_feature_adapter",
        adapter_path="/data/models/a.npz",
        videos_used=50,
        clips_used=3750,
        embedding_dim=768,
        figures=figures,
        reindex=reindex,
    )
    got = cat.get_training("train_20260208_120000_xyz789")
    assert got == done and got["figures"] == figures and got["reindex"] == reindex
    assert got["trigger"] == "manual" and got["finished_at"] is not None
    assert got["run_id"] == "r-2" and got["requested_by"] == "token:admin"

    skipped = cat.update_training("train_20260208_020000_a", status="skipped", skip_reason="only 3 new videos (< 10)")
    assert skipped["figures"] is None and skipped["skip_reason"].startswith("only 3")
    assert cat.latest_training()["job_id"] == "train_20260208_120000_xyz789"  # newest
    assert cat.latest_training(status="completed")["job_id"] == "train_20260208_120000_xyz789"
    assert cat.latest_training(trigger="nightly")["job_id"] == "train_20260208_020000_a"
    assert cat.latest_training(status="failed") is None

    with pytest.raises(ValueError, match="trigger"):
        cat.record_training("train_x", trigger="hourly")
    with pytest.raises(ValueError, match="JSON"):
        cat.update_training("train_20260208_020000_a", figures={"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        cat.update_training("train_20260208_020000_a", figures={"x": float("nan")})


def test_exports_and_audit_trail(cat):
    sha, sig = "ab" * 32, "cd" * 32
    gen = datetime(2026, 2, 8, 12, 0, tzinfo=timezone.utc)
    rec = cat.record_export(
        "20260208_120000",
        file_path="/data/reports/audit_export_20260208_120000.json",
        item_count=150,
        key_id="prod",
        payload_sha256=sha,
        signature_hex=sig,
        generated_at=gen,
        requested_by="token:admin",
    )
    assert rec["algorithm"] == "hmac-sha256" and rec["generated_at"] == gen
    assert cat.get_export("20260208_120000") == rec and cat.get_export("nope") is None
    with pytest.raises(ValueError, match="already recorded"):
        cat.record_export(
            "20260208_120000", file_path="/x", item_count=1, key_id="k", payload_sha256=sha, signature_hex=sig
        )
    with pytest.raises(ValueError, match="payload_sha256"):
        cat.record_export("e2", file_path="/x", item_count=1, key_id="k", payload_sha256="zz", signature_hex=sig)

    vid = cat.add_video("assembly_line_1", "trainee", requested_by="token:operator")
    cat.set_ingest_run(vid, "run-ingest")
    _ready(cat, vid)
    cat.record_score(
        "score_1", task_id="assembly_line_1", gold_video_id=1, trainee_video_id=vid, requested_by="token:operator"
    )
    cat.update_score("score_1", status="completed", score=87.5)
    cat.record_training("train_1", trigger="manual", requested_by="token:admin")
    trail = cat.audit_trail()
    assert [i["job_type"] for i in trail] == ["training", "score", "ingest"]
    by_type = {i["job_type"]: i for i in trail}
    assert by_type["score"]["subject"] == f"1\u2192{vid}" and by_type["score"]["score"] == 87.5
    assert by_type["ingest"]["job_id"] == "run-ingest"
    assert by_type["ingest"]["status"] == "completed"
    assert by_type["ingest"]["model_name"] == "builtin:v1"
    assert len(cat.audit_trail(limit=2)) == 2


# --------------------------------------------------------------------------- concurrency


def test_index_versions_concurrent_threads_and_processes(cat, url):
    assert cat.current_index_version("a") is None
    assert cat.add_index_version("a", "/idx/a/v1", clips=10, videos=2) == 1
    assert cat.add_index_version("b", "/idx/b/v1", clips=5, videos=1) == 1

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: cat.add_index_version("a", f"/a/{i}", 1, 1), range(8)))
    assert sorted(got) == list(range(2, 10))

    per_proc = _in_processes(_add_index_versions, [(url, "a", 3)] * 3)
    flat = sorted(v for vs in per_proc for v in vs)
    assert flat == list(range(10, 19))
    current = cat.current_index_version("a")
    assert current["version"] == 18 and current["created_at"].utcoffset() == timedelta(0)
    assert [r["version"] for r in cat.list_index_versions("a", limit=3)] == [18, 17, 16]
    assert cat.current_index_version("b")["version"] == 1


def test_concurrent_gold_versions(cat):
    golds = [cat.add_video("task_g", "gold") for _ in range(4)]
    start = threading.Barrier(len(golds))

    def ready(video_id):
        start.wait(timeout=30)
        return _ready(cat, video_id)["gold_version"]

    with ThreadPoolExecutor(len(golds)) as pool:
        versions = list(pool.map(ready, golds))
    assert sorted(versions) == [1, 2, 3, 4]
    assert cat.current_gold("task_g")["gold_version"] == 4


def test_live_adapter_is_the_newest_completed_training_with_an_adapter(cat):
    assert cat.live_adapter() is None
    for job, status, path in (
        ("train_a", "completed", "/m/a.npz"),
        ("train_b", "completed", "/m/b.npz"),
        ("train_c", "rejected", None),
        ("train_d", "skipped", None),
        ("train_e", "running", None),
    ):
        cat.record_training(job, trigger="manual")
        cat.update_training(job, status=status, adapter_path=path)
    assert cat.live_adapter()["job_id"] == "train_b"  # rejected, skipped and running ones never replace it
    assert cat.get_training("train_c")["status"] == "rejected"
    with pytest.raises(ValueError, match="status"):
        cat.update_training("train_e", status="accepted")


def test_input_models_take_numpy_numbers_and_paths_and_refuse_lookalikes(cat):
    """The boundary models: numpy integers (array sizes) and os.PathLike are what callers pass;
    a bool is not an int, a naive time not a UTC one, an unserialisable figure not JSON."""
    from pathlib import Path

    import numpy as np

    vid = cat.add_video("t", "gold", site_id="  ", camera_id=" cam_01 ")
    assert (cat.get_video(vid)["site_id"], cat.get_video(vid)["camera_id"]) == (None, "cam_01")
    clips = ({"clip_idx": np.int64(i), "start_sec": 4.0 * i, "end_sec": 4.0 * i + 4} for i in range(2))  # any iterable
    ready = _ready(
        cat, np.int64(vid), n=np.int64(2), source_fps=np.float64(29.97), embeddings_path=Path("/e/x.npy"), clips=clips
    )
    assert (ready["num_clips"], ready["embeddings_path"], len(cat.clips_of(vid))) == (2, "/e/x.npy", 2)

    cat.record_training("train_t", trigger="manual")
    with pytest.raises(ValueError, match="videos_used True: Input should be a valid integer"):
        cat.update_training("train_t", videos_used=True)
    with pytest.raises(ValueError, match="status None"):
        cat.update_training("train_t", status=None)  # a job always has a status
    with pytest.raises(ValueError, match="created_at .*timezone info"):
        cat.record_training("train_u", trigger="manual", created_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="must be JSON-serialisable") as err:
        cat.update_training("train_t", reindex={"when": datetime.now(timezone.utc)})
    assert "\n" not in str(err.value)  # one line, fit for a log or an API answer
    done = cat.update_training("train_t", error_message=RuntimeError("boom"), adapter_path=None)
    assert done["error_message"] == "boom" and done["adapter_path"] is None
    with pytest.raises(ValueError, match=r"site_id 'a\\x00b': must not contain NUL"):
        cat.add_video("t", "gold", site_id="a\x00b")  # PostgreSQL text cannot hold it: refused on both backends
    assert cat.mark_video_failed(vid, "bad\x00 frame")["error_message"] == "bad frame"  # an error is always recordable
    rec = cat.record_export(
        "e1",
        file_path=Path("/x.json"),
        item_count=np.int64(1),
        key_id="k",
        payload_sha256="AB" * 32,
        signature_hex="CD",
    )
    assert (rec["payload_sha256"], rec["signature_hex"], rec["file_path"]) == ("ab" * 32, "cd", "/x.json")

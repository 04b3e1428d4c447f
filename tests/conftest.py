import os

import pytest

# The pipeline, API, daemon and training tests exercise orchestration, not features: they embed
# with the fast builtin embedder unless SOPILOT_EMBEDDER says otherwise. The engine's default
# (DEFAULT_EMBEDDER) is what the accuracy smoke slice and the any-video tests run.
os.environ.setdefault("SOPILOT_EMBEDDER", "builtin")

from sopilot_pipelines import definitions  # at collection: defs/__init__ filters a Dagster beta warning at import
from sopilot_pipelines.core import synth
from tests.helpers import TASK, TOKENS, free_port


@pytest.fixture(scope="session")
def suite(tmp_path_factory, worker_id):
    """The gold and every trainee variant (with nuisance), rendered once per test run: under
    pytest-xdist the first worker to need it renders it into the run's shared temp dir, the
    others wait on the lock and read it (the videos are only read)."""
    if worker_id == "master":
        return synth.render_suite(tmp_path_factory.mktemp("suite"))
    import pickle

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / "suite"
    done = root / "suite.pickle"
    with FileLock(f"{root}.lock"):
        if not done.exists():
            rendered = synth.render_suite(root)
            tmp = done.with_suffix(".part")
            tmp.write_bytes(pickle.dumps(rendered))
            tmp.replace(done)
        return pickle.loads(done.read_bytes())


@pytest.fixture(scope="session")
def embedded(suite):
    """Builtin embeddings of every video in the suite, computed lazily and cached."""
    from sopilot_pipelines.core.embedders import get_embedder
    from sopilot_pipelines.core.embedding import embed_video
    from sopilot_pipelines.core.video import ClipSettings

    embedder, settings, cache = get_embedder("builtin"), ClipSettings(), {}

    def get(name):
        if name not in cache:
            cache[name] = embed_video(suite[name].path, settings, embedder)
        return cache[name]

    return get


# The live stack of the REST tests (test_api, test_sop, test_api_fuzz, test_ui): the API, the Dagster
# webserver and daemon in real processes, one stack per test module (tests/helpers.py: how they talk to it).
# Per module on purpose: a module's tests build on its state (videos, jobs, SOPs), the fuzzer's
# arbitrary writes must not reach another module's assertions, and `make test` runs the modules
# on separate xdist workers (--dist loadfile), which could not share one stack anyway.
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from sopilot_pipelines.stack import Stack

    data = tmp_path_factory.mktemp("api") / "data"
    env = {
        "SOPILOT_API_ROLE_TOKENS": ",".join(f"{r}:{t}" for r, t in TOKENS.items()),
        "SOPILOT_BASIC_USER": "alice",
        "SOPILOT_BASIC_PASSWORD": "wonder-land",
        "SOPILOT_BASIC_ROLE": "operator",
        "SOPILOT_UPLOAD_MAX_MB": "3",
        "SOPILOT_AUDIT_SIGNING_KEY": "audit-key",
        "SOPILOT_AUDIT_SIGNING_KEY_ID": "test",
        "SOPILOT_AUTO_SCORE": "false",
    }
    s = Stack(data, port=free_port(), dagster_port=free_port(), env_extra=env)
    s.start(timeout=180)
    try:
        yield s
    finally:
        s.stop()


class PipelineEnv:
    """A real (SQLite, on-disk) Dagster instance, the code location's definitions, and a catalog
    and data dir of the test's own; helpers run the jobs the way the daemon would."""

    def __init__(self, data, instance):
        from sopilot_pipelines.resources import CatalogResource, StorageResource

        self.data, self.instance = data, instance
        self.resources = {
            "storage": StorageResource(data_dir=str(data)),
            "catalog": CatalogResource(data_dir=str(data)),
        }
        self.defs = definitions.build_defs(self.resources)
        self.cat, self.store = self.resources["catalog"].catalog, self.resources["storage"].store

    def register(self, path, role: str, task: str = TASK) -> tuple[int, str]:
        import shutil

        from sopilot_pipelines.ids import video_key

        video_id = self.cat.add_video(task, role, original_filename=path.name)
        dest = self.store.raw_video(video_id, path.suffix)
        shutil.copyfile(path, dest)
        self.cat.set_video_paths(video_id, raw_path=str(dest))
        key = video_key(task, video_id)
        self.instance.add_dynamic_partitions("videos", [key])
        return video_id, key

    def ingest(self, key: str, raise_on_error: bool = True):
        job = self.defs.resolve_job_def("ingest_job")
        return job.execute_in_process(partition_key=key, instance=self.instance, raise_on_error=raise_on_error)

    def score(self, gold_id: int, trainee_id: int, task: str = TASK):
        from sopilot_pipelines.ids import new_job_id

        job_id = new_job_id("score")
        self.cat.record_score(
            job_id, task_id=task, gold_video_id=gold_id, trainee_video_id=trainee_id, requested_by="test"
        )
        self.instance.add_dynamic_partitions("score_jobs", [job_id])
        result = self.defs.resolve_job_def("score_job").execute_in_process(partition_key=job_id, instance=self.instance)
        return job_id, result

    def index(self, task: str = TASK):
        if not self.instance.has_dynamic_partition("tasks", task):
            self.instance.add_dynamic_partitions("tasks", [task])
        return self.defs.resolve_job_def("index_job").execute_in_process(partition_key=task, instance=self.instance)

    def train(self, job_id: str, trigger: str = "manual"):
        from sopilot_pipelines.ids import TAG_JOB_ID, TAG_TRIGGER

        job = self.defs.resolve_job_def("train_job")
        return job.execute_in_process(instance=self.instance, tags={TAG_JOB_ID: job_id, TAG_TRIGGER: trigger})


@pytest.fixture()
def env(tmp_path, monkeypatch):
    import dagster as dg

    from sopilot_pipelines.settings import settings

    data = tmp_path / "data"
    monkeypatch.setenv("SOPILOT_DATA_DIR", str(data))
    monkeypatch.delenv("SOPILOT_DATABASE_URL", raising=False)
    settings.cache_clear()
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield PipelineEnv(data, instance)
    settings.cache_clear()


# Modules whose tests start real servers (the stack, Dagster's daemon, Celery workers, a browser):
# marked `integration`, so `make test-fast` can leave them out. PostgreSQL tests are marked by name.
INTEGRATION_MODULES = {
    "test_api",
    "test_api_fuzz",
    "test_backfills",
    "test_celery",
    "test_daemon",
    "test_resilience",
    "test_sop",
    "test_stack",
    "test_ui",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in INTEGRATION_MODULES or "postgres" in item.nodeid.lower():
            item.add_marker(pytest.mark.integration)

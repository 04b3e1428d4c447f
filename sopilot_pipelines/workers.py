"""Steps on Celery workers (SOPILOT_EXECUTOR=celery): Dagster's own `dagster-celery` executor,
configured from the settings, and `sopilot worker`, one worker process on any host.

The run's process (launched by the daemon) submits each step as a Celery task to the broker; a
worker runs it with the same code location, writing events to Dagster's PostgreSQL storage, the
catalog to its PostgreSQL database and the artifacts to the shared data directory. The executor
and the workers build their Celery app from the same `executor_config()`, so they agree.

Faults (`config_source` below, read from dagster_celery's CELERY_CONFIG and Celery's settings):

* `task_acks_late` + `task_reject_on_worker_lost`: a task is acknowledged when it has finished,
  so a worker that dies mid-step (even by SIGKILL: its pool children die with it, prefork sets
  PR_SET_PDEATHSIG) leaves it unacknowledged and the broker delivers it to another worker;
  RabbitMQ at once (the connection closes), Redis after SOPILOT_CELERY_VISIBILITY_TIMEOUT.
  `worker_prefetch_multiplier` 1: a worker holds only the task it runs.
* Results in PostgreSQL by default (`db+` SOPILOT_DAGSTER_PG_URL), not `rpc://`: a result sent
  while the broker restarts is not lost; queued messages are persistent on a durable queue.
* Publishing retries for about a minute while the broker is down. RabbitMQ: with publisher
  confirms (`confirm_publish`), a task is sent once the broker has it on disk; without them a
  task published just before the broker was killed was lost (a persistent message on a durable
  queue, not yet written).
* RabbitMQ: a task still running when the worker's connection drops is cancelled
  (`worker_cancel_long_running_tasks_on_connection_loss`): the broker re-delivers it anyway, so
  it would otherwise run twice.
* Celery cancels with a SIGTERM to the pool process, which Dagster's step execution turns into
  its own interrupt (`dagster._utils.interrupts`): the process survived it, with whatever the
  signal cut short (once, a half-imported numba that failed the next task's retry). Our task's
  Request cancels with SIGKILL instead; the pool forks a fresh process, from a worker that has
  already imported and compiled what steps use (`sopilot_pipelines.warm`). (One task per pool
  process would also do, but a fresh process per task cost ~1.9 s a task: 20 videos on one
  worker in 97 s instead of 60 s, bench_scaleout.)
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .settings import Settings, settings

QUEUE = "dagster"  # dagster_celery's only queue (make_app)


def result_backend(s: Settings) -> str:
    return s.celery_backend or f"db+{s.dagster_pg_url}"


def executor_config(s: Settings | None = None) -> dict:
    """The `celery` executor's config (dagster_celery.executor.CELERY_CONFIG)."""
    s = s or settings()
    # dagster_celery's default (max_retries 3, 0.5 s apart) gives up before a broker has restarted
    transport: dict[str, int | bool] = {
        "max_retries": 30,
        "interval_start": 0,
        "interval_step": 1,
        "interval_max": 2,
        "visibility_timeout": s.celery_visibility_timeout,
        # kombu's reconnect before a publish otherwise gives up after broker_connection_timeout
        # (4 s) in all: runs failed while a RabbitMQ node restarted (~12 s)
        "connect_retries_timeout": 60,
    }
    amqp = s.celery_broker.startswith(("amqp", "pyamqp"))
    if amqp:  # publisher confirms (module docstring)
        transport["confirm_publish"] = True
    config_source = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a worker waits for a restarting broker
        "task_publish_retry_policy": {"max_retries": 30, "interval_start": 0, "interval_step": 1, "interval_max": 2},
        "broker_transport_options": transport,
        "result_backend_always_retry": True,
        "result_expires": 7 * 24 * 3600,
    }
    if amqp:
        config_source["worker_cancel_long_running_tasks_on_connection_loss"] = True
    return {"broker": s.celery_broker, "backend": result_backend(s), "include": [], "config_source": config_source}


def make_celery_app(s: Settings | None = None):
    """The Celery app the workers run: dagster_celery's app and task, with our config."""
    from celery.worker.request import Request
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    class KillOnCancel(Request):
        """A cancel (on connection loss) kills the pool process: no process outlives a cancel
        (module docstring). A run's termination (revoke) still asks the step to stop."""

        def cancel(self, pool, signal=None, emit_retry=True):
            super().cancel(pool, signal or "SIGKILL", emit_retry)

    app = make_app(CeleryExecutor.for_cli(**executor_config(s)).app_args())
    create_task(app, Request=KillOnCancel)
    return app


def where() -> dict[str, str | int]:
    """Which worker, host and process ran this step (for a materialization's metadata)."""
    worker = "in-process"
    try:
        from celery import current_task

        if current_task and current_task.request.hostname:  # a proxy: falsy outside a Celery task
            worker = current_task.request.hostname
    except ImportError:
        pass
    return {"worker": worker, "host": socket.gethostname(), "pid": os.getpid()}


# --- `sopilot worker`: what a worker needs, checked at start ------------------------------------


def check_worker(s: Settings, timeout: float = 5.0) -> list[str]:
    """What is missing or unreachable for a worker on this host, in words; empty when ready."""
    problems = []
    if s.executor != "celery":
        problems.append("SOPILOT_EXECUTOR is not celery: the runs would not send steps to workers")
    if not s.celery_broker:
        problems.append("SOPILOT_CELERY_BROKER is not set (amqp://... or redis://...)")
    else:
        problem = _broker_problem(s.celery_broker, timeout)
        if problem:
            problems.append(f"broker {_safe(s.celery_broker)} is not reachable: {problem}")
    for name in ("dagster_pg_url", "database_url"):
        url = getattr(s, name)
        var = f"SOPILOT_{name.upper()}"
        if not url:
            problems.append(f"{var} is not set (postgresql+psycopg2://...)")
        elif not url.startswith("postgresql"):
            problems.append(f"{var} is not a PostgreSQL URL: workers cannot share SQLite")
        else:
            problem = _postgres_problem(url, timeout)
            if problem:
                problems.append(f"{var} ({_safe(url)}) is not reachable: {problem}")
    problems += _data_dir_problems(s.data_path)
    return problems


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"


def _broker_problem(url: str, timeout: float) -> str | None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def _postgres_problem(url: str, timeout: float) -> str | None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": int(timeout)})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return str(exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def _data_dir_problems(data: Path) -> list[str]:
    if not data.is_dir():
        return [
            f"the shared data directory {data} (SOPILOT_DATA_DIR) does not exist; mount it (every host the same path)"
        ]
    probe = data / f".worker-probe-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return [f"the shared data directory {data} is not writable: {exc}"]
    if not (data / "dagster").is_dir():
        return [
            f"{data} is not a SOPilot data directory yet (no dagster/ in it): is it the shared one `sopilot up` uses?"
        ]
    return []


def worker_argv(name: str | None, concurrency: int, loglevel: str = "INFO") -> list[str]:
    """`celery worker` arguments for one SOPilot worker."""
    node = f"{name or 'sopilot'}@%h"
    return [
        "worker",
        "-n",
        node,
        "-Q",
        QUEUE,
        "-c",
        str(concurrency),
        "-P",
        "prefork",
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
    ]


def run_worker(name: str | None = None, concurrency: int = 1, loglevel: str = "INFO") -> int:
    """Check, then run one worker in this process until SIGTERM (warm shutdown) or SIGKILL."""
    import sys

    try:
        s = settings()
    except ValueError as exc:
        print(f"sopilot worker: {exc}", file=sys.stderr)
        return 2
    problems = check_worker(s)
    if problems:
        print("sopilot worker: cannot start:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 2
    print(
        f"sopilot worker: broker {_safe(s.celery_broker)}, results {_safe(result_backend(s))}, data dir {s.data_path}",
        flush=True,
    )
    app = make_celery_app(s)
    import sopilot_pipelines.warm  # noqa: F401  (the preload: pool processes fork from it)

    app.worker_main(worker_argv(name, concurrency, loglevel))
    return 0

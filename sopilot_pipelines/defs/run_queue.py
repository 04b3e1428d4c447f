"""The instance's run coordinator (dagster.yaml `run_coordinator`): Dagster's queued one, plus
two things Dagster 1.13 does not offer as settings.

1. Run tags from the assets. A run launched from the UI or a backfill goes through the implicit
   `__ASSET_JOB`, which carries none of the named jobs' tags; so an asset's tags under
   `sopilot/queue` are copied onto every run that materializes it, before it is queued, and the
   `tag_concurrency_limits` hold however the run was launched (one training at a time).
2. `backfill_interval_seconds`: the backfill daemon's loop sleeps a hard-coded
   `dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS` (30 s) between passes, which
   sets both how long a new backfill waits to start and how long a finished one waits to be
   marked complete. The daemon builds this coordinator before its threads start and the loop
   reads the constant when it starts, so setting it here reaches it. Dagster is pinned (1.13.27);
   an upgrade that moves the constant is refused here (tests/defs/test_run_queue.py), and
   tests/defs/test_backfills.py prints the pace it gives.
"""

from __future__ import annotations

from dagster import Field, IntSource
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext

from .policy import QUEUE_TAG

COPIED_TAG_KEYS = (QUEUE_TAG,)
# QueuedRunCoordinator's own settings, as its from_config_value passes them
_BASE_KEYS = (
    "max_concurrent_runs",
    "tag_concurrency_limits",
    "dequeue_interval_seconds",
    "dequeue_use_threads",
    "dequeue_num_workers",
    "max_user_code_failure_retries",
    "user_code_failure_retry_delay",
    "block_op_concurrency_limited_runs",
)


class SopilotRunCoordinator(QueuedRunCoordinator):
    def __init__(self, backfill_interval_seconds: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self._backfill_interval_seconds = backfill_interval_seconds
        if backfill_interval_seconds:
            from dagster._daemon import controller

            if not hasattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS"):  # setting it would do nothing
                raise RuntimeError(
                    "backfill_interval_seconds needs dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS,"
                    " which this Dagster version does not have"
                )
            controller.DEFAULT_DAEMON_INTERVAL_SECONDS = backfill_interval_seconds

    @classmethod
    def config_type(cls):
        return {
            **QueuedRunCoordinator.config_type(),
            "backfill_interval_seconds": Field(
                IntSource, is_required=False, description="Seconds between the backfill daemon's passes (Dagster: 30)"
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        config = dict(config_value)
        interval = config.pop("backfill_interval_seconds", None)
        return cls(inst_data=inst_data, backfill_interval_seconds=interval, **{k: config.get(k) for k in _BASE_KEYS})

    def submit_run(self, context: SubmitRunContext):
        run = context.dagster_run
        extra = self._tags_from_assets(context)
        if extra:
            self._instance.add_run_tags(run.run_id, extra)
            run = self._instance.get_run_by_id(run.run_id) or run
            context = context._replace(dagster_run=run)
        return super().submit_run(context)

    def _tags_from_assets(self, context: SubmitRunContext) -> dict[str, str]:
        run = context.dagster_run
        keys = run.asset_selection
        if not keys:
            return {}
        try:
            graph = context.workspace.asset_graph
        except Exception:
            return {}
        tags: dict[str, str] = {}
        for key in keys:
            if not graph.has(key):
                continue
            for k in COPIED_TAG_KEYS:
                value = (graph.get(key).tags or {}).get(k)
                if value and k not in run.tags:
                    tags[k] = value
        return tags

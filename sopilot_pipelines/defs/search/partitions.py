import dagster as dg

from ...ids import TASKS

# one key per task_id: each task has its own clip index
tasks = dg.DynamicPartitionsDefinition(name=TASKS)

import dagster as dg

# one key per task_id: each task has its own clip index
TASKS = "tasks"
tasks = dg.DynamicPartitionsDefinition(name=TASKS)

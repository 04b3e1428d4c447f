import dagster as dg

# one key per task_id: each task has its own clip index
tasks = dg.DynamicPartitionsDefinition(name="tasks")

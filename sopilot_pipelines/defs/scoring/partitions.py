import dagster as dg

# one key per score job (the job id, e.g. score_20260208_120000_abc123)
score_jobs = dg.DynamicPartitionsDefinition(name="score_jobs")

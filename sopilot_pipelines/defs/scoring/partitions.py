import dagster as dg

from ...ids import SCORE_JOBS

# one key per score job (the job id, e.g. score_20260208_120000_abc123)
score_jobs = dg.DynamicPartitionsDefinition(name=SCORE_JOBS)

"""Dagster definitions by domain: ingest/, scoring/, search/, training/."""

import warnings

import dagster as dg

# BackfillPolicy.single_run is what makes re-embedding a task one run instead of one per video;
# Dagster marks the parameter beta. We pin Dagster (1.13.27), so its behaviour cannot shift under us.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

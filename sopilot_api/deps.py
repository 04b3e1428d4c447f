"""Shared dependencies: the catalog, the data store and the door to Dagster, from app state."""

from fastapi import Request

from sopilot_pipelines.catalog import Catalog
from sopilot_pipelines.storage import DataStore

from .runs import Dagster


def catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def store(request: Request) -> DataStore:
    return request.app.state.store


def dagster(request: Request) -> Dagster:
    return request.app.state.dagster

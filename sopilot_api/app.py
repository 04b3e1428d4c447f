"""FastAPI app factory: the REST contract in front of the Dagster pipelines."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sopilot_pipelines.catalog import Catalog
from sopilot_pipelines.logs import configure
from sopilot_pipelines.settings import settings as all_settings
from sopilot_pipelines.storage import DataStore

from . import ui
from .routes import audit, ops, score, search, tasks, train, videos
from .runs import Dagster, DagsterUnavailable
from .score_queue import ScoreQueue
from .settings import ApiSettings, get_settings


class RequestLog:
    """One log line per request (method, path, status, duration). Plain ASGI, not
    ``@app.middleware("http")``, whose per-request streams and task group cost more than a
    POST /score's own work."""

    def __init__(self, app: ASGIApp, log: logging.Logger):
        self.app, self.log = app, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            duration_ms = round((time.perf_counter() - start) * 1000, 1)
            fields = {"method": scope["method"], "path": scope["path"], "status": status, "duration_ms": duration_ms}
            self.log.info("request", extra={"fields": fields})


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.score_queue.start()
        try:
            yield
        finally:
            app.state.score_queue.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="SOPilot API",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,  # served offline by ui.install
        description="Scores trainee videos of a Standard Operating Procedure against a gold video.",
    )
    app.state.settings = settings
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    app.state.store = DataStore(data_dir)
    app.state.catalog = Catalog.open(all_settings().database_url, data_dir)
    app.state.dagster = Dagster(settings.dagster_url)
    app.state.score_queue = ScoreQueue(
        app.state.catalog,
        settings.dagster_url,
        settings.score_batch_max,
        settings.score_job_timeout_s,
        ingest_timeout_s=settings.ingest_job_timeout_s,
        training_timeout_s=settings.training_job_timeout_s,
    )

    @app.exception_handler(DagsterUnavailable)
    async def _dagster_down(request: Request, exc: DagsterUnavailable):
        return JSONResponse({"detail": f"the pipeline service is unavailable: {exc}"}, status_code=503)

    log = configure(settings.log_format)

    app.add_middleware(RequestLog, log=log)

    for module in (ops, videos, score, search, train, audit, tasks):
        app.include_router(module.router)
    ui.install(app)
    return app

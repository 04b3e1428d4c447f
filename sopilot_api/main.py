"""ASGI entry point: `uvicorn sopilot_api.main:app` (settings from SOPILOT_ environment)."""

from .app import create_app

app = create_app()

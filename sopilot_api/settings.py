"""The API's settings: the `api` group of the one settings object (sopilot_pipelines.settings).

The app factory takes an explicit `ApiSettings` (``create_app(ApiSettings(...))``) and stores it
on ``app.state.settings``, which the auth dependency prefers; otherwise `get_settings()` is the
process's (``sopilot_pipelines.settings.settings.cache_clear()`` re-reads the environment).
"""

from __future__ import annotations

from sopilot_pipelines.settings import ROLES, ApiSettings, parse_role_tokens, settings

__all__ = ["ROLES", "ApiSettings", "get_settings", "parse_role_tokens"]


def get_settings() -> ApiSettings:
    return settings().api

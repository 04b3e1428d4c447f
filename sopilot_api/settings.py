"""API settings from the environment (prefix SOPILOT_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = ("viewer", "operator", "admin")


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOPILOT_", extra="ignore")

    api_token: str = ""
    api_token_role: str = "admin"
    api_role_tokens: str = ""  # "admin:secret1,operator:secret2,viewer:secret3"
    basic_user: str = ""
    basic_password: str = ""
    basic_role: str = "viewer"  # least privilege unless configured
    auth_required: bool = True
    auth_default_role: str = "viewer"
    upload_max_mb: int = 500
    data_dir: Path = Path("data")
    dagster_url: str = "http://127.0.0.1:3000"
    log_format: str = "text"

    @field_validator("api_token_role", "basic_role", "auth_default_role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v not in ROLES:
            raise ValueError(f"unknown role {v!r}; roles are {', '.join(ROLES)}")
        return v

    @field_validator("log_format")
    @classmethod
    def _fmt(cls, v: str) -> str:
        if v not in ("text", "json"):
            raise ValueError("SOPILOT_LOG_FORMAT must be 'text' or 'json'")
        return v

    @model_validator(mode="after")
    def _tokens(self) -> "ApiSettings":
        self.role_tokens()  # fail at start, not on the first request
        if bool(self.basic_user) != bool(self.basic_password):
            raise ValueError("set both SOPILOT_BASIC_USER and SOPILOT_BASIC_PASSWORD, or neither")
        if self.upload_max_mb < 1:
            raise ValueError("SOPILOT_UPLOAD_MAX_MB must be at least 1")
        return self

    def role_tokens(self) -> list[tuple[str, str]]:
        """(role, token) pairs from SOPILOT_API_ROLE_TOKENS."""
        pairs = []
        for entry in filter(None, (e.strip() for e in self.api_role_tokens.split(","))):
            role, sep, token = entry.partition(":")
            if not sep or not token or role.strip() not in ROLES:
                raise ValueError(f"SOPILOT_API_ROLE_TOKENS entry {entry.split(':')[0]!r}... is not 'role:token' with a role of {', '.join(ROLES)}")
            pairs.append((role.strip(), token.strip()))
        return pairs

    @property
    def any_credentials(self) -> bool:
        return bool(self.api_token or self.api_role_tokens.strip() or self.basic_user)


@lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    return ApiSettings()

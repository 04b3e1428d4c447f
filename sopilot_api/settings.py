"""API settings from the environment (prefix SOPILOT_).

Credentials (any combination; with none configured and SOPILOT_AUTH_REQUIRED=true, the default,
protected endpoints answer 503):

- SOPILOT_API_TOKEN: one bearer token, with the role SOPILOT_API_TOKEN_ROLE (default admin);
  callers using it are recorded as ``token:api``.
- SOPILOT_API_ROLE_TOKENS: "role:token" entries, comma separated, e.g.
  "admin:secret123,operator:secret456,viewer:secret789"; recorded as ``token:<role>``.
- SOPILOT_BASIC_USER / SOPILOT_BASIC_PASSWORD: one basic-auth account, with the role
  SOPILOT_BASIC_ROLE (default viewer: least privilege unless configured); recorded as
  ``basic:<user>``.

With SOPILOT_AUTH_REQUIRED=false a caller who sends no credentials gets SOPILOT_AUTH_DEFAULT_ROLE
(default viewer).

Settings are read once per process (`get_settings`, cached). The app factory takes an explicit
`ApiSettings` (``create_app(ApiSettings(...))``) and stores it on ``app.state.settings``, which the
auth dependency prefers; `get_settings.cache_clear()` makes the next call re-read the environment.
Invalid values fail at start with a message naming the variable (and the entry, for the token list)
without echoing any secret.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = ("viewer", "operator", "admin")  # lowest to highest


def _check_role(value: str, variable: str) -> str:
    role = value.strip().lower()
    if role not in ROLES:
        raise ValueError(f"{variable}: unknown role {value!r}; roles are {', '.join(ROLES)}")
    return role


@lru_cache(maxsize=32)
def parse_role_tokens(value: str) -> tuple[tuple[str, str], ...]:
    """(role, token) pairs from a SOPILOT_API_ROLE_TOKENS value; a bad entry is named by its position
    and role, never by its token."""
    pairs: list[tuple[str, str]] = []
    entries = value.split(",")
    for n, raw in enumerate(entries, start=1):
        entry = raw.strip()
        if not entry:
            if len(entries) > 1 and n < len(entries):  # a trailing comma is harmless; ",," is a typo
                raise ValueError(f"SOPILOT_API_ROLE_TOKENS entry {n} is empty (two commas in a row?)")
            continue
        role, sep, token = entry.partition(":")
        role, token = role.strip(), token.strip()
        where = f"SOPILOT_API_ROLE_TOKENS entry {n}"
        if not sep:
            raise ValueError(f"{where} has no ':'; each entry is 'role:token', e.g. 'viewer:s3cret'")
        if role.lower() not in ROLES:
            raise ValueError(f"{where} ('{role}:…') has unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not token:
            raise ValueError(f"{where} ('{role}:') has an empty token")
        pairs.append((role.lower(), token))
    tokens = [t for _, t in pairs]
    for n, (role, token) in enumerate(pairs, start=1):
        if tokens.index(token) != n - 1:
            raise ValueError(f"SOPILOT_API_ROLE_TOKENS: the token of entry {n} ({role}) repeats an earlier entry's; "
                             "every token must be distinct")  # fmt: skip
    return tuple(pairs)


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOPILOT_", extra="ignore", hide_input_in_errors=True)  # no secrets in errors

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
    dagster_url: str = "http://127.0.0.1:3000"  # the Dagster webserver; GraphQL at <url>/graphql
    log_format: str = "text"  # or "json"

    @field_validator("api_token_role", "basic_role", "auth_default_role")
    @classmethod
    def _role(cls, v: str, info) -> str:
        return _check_role(v, f"SOPILOT_{info.field_name.upper()}")

    @field_validator("api_token", "basic_user", "basic_password")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @field_validator("log_format")
    @classmethod
    def _fmt(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in ("text", "json"):
            raise ValueError("SOPILOT_LOG_FORMAT must be 'text' or 'json'")
        return v

    @field_validator("dagster_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"SOPILOT_DAGSTER_URL must be an http(s) URL of the Dagster webserver, not {v!r}")
        return v

    @field_validator("upload_max_mb")
    @classmethod
    def _upload(cls, v: int) -> int:
        if v < 1:
            raise ValueError("SOPILOT_UPLOAD_MAX_MB must be at least 1")
        return v

    @model_validator(mode="after")
    def _credentials(self) -> ApiSettings:
        role_tokens = self.role_tokens()  # fail at start, not on the first request
        if bool(self.basic_user) != bool(self.basic_password):
            raise ValueError("set both SOPILOT_BASIC_USER and SOPILOT_BASIC_PASSWORD, or neither")
        if ":" in self.basic_user:
            raise ValueError("SOPILOT_BASIC_USER must not contain ':' (basic auth splits user and password there)")
        if self.api_token and any(self.api_token == t for _, t in role_tokens):
            raise ValueError("SOPILOT_API_TOKEN is also listed in SOPILOT_API_ROLE_TOKENS; use distinct tokens")
        return self

    def role_tokens(self) -> tuple[tuple[str, str], ...]:
        """(role, token) pairs from SOPILOT_API_ROLE_TOKENS (parsing is cached per value)."""
        return parse_role_tokens(self.api_role_tokens)

    @property
    def basic_enabled(self) -> bool:
        return bool(self.basic_user)

    @property
    def any_credentials(self) -> bool:
        return bool(self.api_token or self.role_tokens() or self.basic_user)


@lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    """Settings from the environment, read once per process (`get_settings.cache_clear()` re-reads)."""
    return ApiSettings()

"""Every pipeline setting, from the environment (prefix SOPILOT_): one object, `settings()`.

Groups are pydantic-settings models reading the same flat SOPILOT_* names, so a variable's name
does not depend on its group: `settings().video` (decoding and clips), `.embedding`, `.scoring`, `.api`
(the scoring rules), and at the top the data directory, storage, sensors, schedule and index.
The core never reads the environment: it takes the plain config objects these build
(`ClipSettings`, `DecodeSettings`, `EmbedderOptions`, `ScoringConfig`).

`python -m sopilot_pipelines.settings` prints the README's settings table (generated from the
fields; a test keeps the README in step).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .core.embedders import DEFAULT_EMBEDDER, EmbedderOptions  # no torch: embedders load lazily
from .core.index import APPROX_MIN_CLIPS  # numpy only; faiss is imported when an index is built
from .core.scoring_config import ScoringConfig
from .core.video import ClipSettings, DecodeSettings

CELERY_BROKER_SCHEMES = ("amqp://", "pyamqp://", "amqps://", "redis://", "rediss://")
_CONFIG = SettingsConfigDict(env_prefix="SOPILOT_", extra="ignore", hide_input_in_errors=True)


class VideoSettings(BaseSettings):
    model_config = _CONFIG

    sample_fps: float = Field(8.0, gt=0, description="frames per second ffmpeg samples")
    clip_seconds: float = Field(
        2.0, gt=0, description="clip length; with the stride below a 3 s step spans 3 whole clips"
    )
    clip_stride_seconds: float = Field(0.5, gt=0, description="hop between clip starts")
    ffmpeg_threads: int = Field(
        0, ge=0, description="decoder threads; 0: ffmpeg picks (one per core, as a plain `ffmpeg -i`)"
    )
    frame_buffer_mb: float = Field(
        1024.0,
        ge=0,
        description="a video whose sampled frames fit in this is decoded whole; a longer one streams through "
        "the embedder chunk by chunk (memory holds per-frame features, not frames; `vjepa2` cannot stream)",
    )

    @model_validator(mode="after")
    def _stride(self) -> VideoSettings:
        if self.clip_stride_seconds > self.clip_seconds:
            raise ValueError(
                f"SOPILOT_CLIP_STRIDE_SECONDS ({self.clip_stride_seconds}) must not exceed SOPILOT_CLIP_SECONDS "
                f"({self.clip_seconds}): clips would leave gaps between them"
            )
        return self

    def clips(self) -> ClipSettings:
        return ClipSettings(self.sample_fps, self.clip_seconds, self.clip_stride_seconds)

    def decode(self) -> DecodeSettings:
        return DecodeSettings(threads=self.ffmpeg_threads, frame_buffer_mb=self.frame_buffer_mb)


class EmbedderSettings(BaseSettings):
    model_config = _CONFIG

    embedder: str = Field(
        DEFAULT_EMBEDDER,
        description="`deep+builtin`, `builtin`, `deep`, `hands` (`pip install .[hands]` "
        "and `pip install --no-deps mediapipe==0.10.14`; `make` does both), `vjepa2` (`pip install "
        ".[vjepa2]`), or any fusion `a+b`",
    )
    vjepa2_checkpoint: str = Field("", description="local directory of a V-JEPA 2 checkpoint (never downloaded)")
    vjepa2_frames: int | None = Field(
        None, ge=1, description="frames per clip for vjepa2 (default: the checkpoint's, else 16)"
    )
    torch_threads: int | None = Field(
        None, ge=1, description="intra-op threads of the torch models (default: half the CPUs, 1 to 8)"
    )

    def options(self) -> EmbedderOptions:
        return EmbedderOptions(self.vjepa2_checkpoint, self.vjepa2_frames, self.torch_threads)

    def build(self):
        """The configured embedder (loaded once per process)."""
        from .core.embedders import get_embedder

        return get_embedder(self.embedder, self.options())


# (Group fields are named so that no SOPILOT_<GROUP> variable exists: pydantic-settings would
# read one as the group's JSON.)

# One field per ScoringConfig field (SOPILOT_PASS_SCORE, ...): the rules stay defined once, in the core.
_SCORING_FIELDS: dict[str, Any] = {
    f.name: (float, Field(f.default, description=f.metadata.get("doc", ""))) for f in dataclasses.fields(ScoringConfig)
}
_ScoringFields: Any = create_model("_ScoringFields", __base__=BaseSettings, **_SCORING_FIELDS)


class ScoringSettings(_ScoringFields):
    model_config = _CONFIG

    @model_validator(mode="after")
    def _valid(self) -> ScoringSettings:
        self.config()  # the core's own checks (decision thresholds in order), at start
        return self

    def config(self) -> ScoringConfig:
        return ScoringConfig(**self.model_dump())


# --- the API: credentials, uploads, the Dagster webserver ---------------------------------------
# Credentials (any combination; with none configured and SOPILOT_AUTH_REQUIRED=true, the default,
# protected endpoints answer 503): SOPILOT_API_TOKEN (role SOPILOT_API_TOKEN_ROLE, default admin;
# recorded as ``token:api``); SOPILOT_API_ROLE_TOKENS, "role:token" entries, comma separated
# (``token:<role>``); SOPILOT_BASIC_USER / SOPILOT_BASIC_PASSWORD with SOPILOT_BASIC_ROLE (default
# viewer; ``basic:<user>``). With SOPILOT_AUTH_REQUIRED=false a caller who sends no credentials gets
# SOPILOT_AUTH_DEFAULT_ROLE (viewer). Invalid values fail at start with a message naming the
# variable (and the entry, for the token list) without echoing any secret.

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
            raise ValueError(
                f"SOPILOT_API_ROLE_TOKENS: the token of entry {n} ({role}) repeats an earlier entry's; "
                "every token must be distinct"
            )
    return tuple(pairs)


class ApiSettings(BaseSettings):
    model_config = _CONFIG  # hide_input_in_errors: no secrets in errors

    api_token: str = Field("", description="one bearer token; `requested_by` is `token:api`")
    api_token_role: str = Field("admin", description="the role of SOPILOT_API_TOKEN")
    api_role_tokens: str = Field(
        "", description="`admin:secret1,operator:secret2,viewer:secret3`; `requested_by` is `token:<role>`"
    )
    basic_user: str = Field(
        "", description="basic auth user (with SOPILOT_BASIC_PASSWORD); `requested_by` is `basic:<user>`"
    )
    basic_password: str = Field("", description="basic auth password")
    basic_role: str = Field("viewer", description="the basic auth user's role (least privilege unless configured)")
    auth_required: bool = Field(
        True,
        description="with nothing configured and auth required, protected paths answer 503; "
        "with it false, callers get SOPILOT_AUTH_DEFAULT_ROLE",
    )
    auth_default_role: str = Field(
        "viewer", description="the role of callers without credentials when auth is not required"
    )
    upload_max_mb: int = Field(
        500, ge=1, description="uploads stream to disk and stop at this size with 413, without reading the rest"
    )
    audit_signing_key: str = Field(
        "", description="HMAC key for `POST /audit/export` (503 without one) and `sopilot audit verify`"
    )
    audit_signing_key_id: str = Field("default", description="the key id recorded in signed exports")
    data_dir: Path = Path("data")
    dagster_url: str = Field(
        "http://127.0.0.1:3000", description="the Dagster webserver the API talks to (GraphQL at <url>/graphql)"
    )
    log_format: str = "text"  # or "json"
    score_batch_max: int = Field(
        50, ge=1, description="the most score jobs one Dagster run takes; a larger batch is split between runs"
    )
    score_job_timeout_s: int = Field(
        3600, ge=60, description="a score job not finished this long after its request is failed, saying so"
    )
    ingest_job_timeout_s: int = Field(
        7200,
        ge=60,
        description="an ingest job not finished this long after its upload is failed, saying so, and its run stopped",
    )
    training_job_timeout_s: int = Field(
        21600,
        ge=60,
        description="a training job not finished this long after its request is failed, saying so, and its run stopped",
    )

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


class Settings(BaseSettings):
    model_config = _CONFIG

    data_dir: Path = Field(
        Path("data"),
        description="everything the stack stores: catalog, Dagster storage, videos, embeddings, indexes, reports",
    )
    database_url: str = Field(
        "", description="the catalog's database (`postgresql+psycopg2://...`); empty: SQLite under the data dir"
    )
    dagster_pg_url: str = Field(
        "",
        description="Dagster's storage on PostgreSQL (`postgresql+psycopg2://...`); empty: SQLite under the data dir",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON line per API request and per job transition, on stderr"
    )
    auto_score: bool = Field(False, description="score each newly ingested trainee video against its task's gold")
    nightly_enabled: bool = Field(True, description="the nightly training schedule")
    nightly_hour_local: int = Field(2, ge=0, le=23, description="hour of the nightly training, in SOPILOT_TIMEZONE")
    timezone: str = Field("UTC", description="IANA time zone of the nightly schedule")
    nightly_min_new_videos: int = Field(10, ge=0, description="videos that must have arrived since the last training")
    inbox_settle_seconds: float = Field(
        2.0, ge=0, description="a file dropped in the inbox must be unchanged this long"
    )
    index_approx_min_clips: int = Field(
        APPROX_MIN_CLIPS,
        ge=1,
        description="a task index with at least this many clips is approximate (IVF), measured in bench_search.py",
    )
    index_versions_kept: int = Field(3, ge=1, description="older index version directories are deleted")
    executor: Literal["in_process", "celery"] = Field(
        "in_process",
        description="where the jobs' steps run: `in_process` (in "
        "the run's process) or `celery` (on `sopilot worker` processes, any host; "
        "needs SOPILOT_CELERY_BROKER and PostgreSQL for both databases)",
    )
    celery_broker: str = Field(
        "",
        description="the Celery broker: RabbitMQ `amqp://guest:guest@127.0.0.1:5672//` or Redis "
        "`redis://127.0.0.1:6379/0`",
    )
    celery_backend: str = Field(
        "",
        description="where Celery keeps step results; empty: `db+` SOPILOT_DAGSTER_PG_URL "
        "(PostgreSQL: results survive a broker restart)",
    )
    celery_visibility_timeout: int = Field(
        3600,
        ge=10,
        description="Redis broker: a task not acknowledged this long (its "
        "worker died) is delivered again; must exceed the longest step",
    )
    video: VideoSettings = Field(default_factory=VideoSettings)
    embedding: EmbedderSettings = Field(default_factory=EmbedderSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v

    @model_validator(mode="after")
    def _celery_needs_shared_services(self) -> Settings:
        if self.executor != "celery":
            return self
        if not self.celery_broker.startswith(CELERY_BROKER_SCHEMES):
            raise ValueError(
                "SOPILOT_EXECUTOR=celery needs SOPILOT_CELERY_BROKER, a RabbitMQ (amqp://) or Redis (redis://) "
                "URL; it is " + (f"a {self.celery_broker.partition(':')[0]}: URL" if self.celery_broker else "not set")
            )
        sqlite = [
            name for name in ("database_url", "dagster_pg_url") if not getattr(self, name).startswith("postgresql")
        ]
        if sqlite:
            raise ValueError(
                "SOPILOT_EXECUTOR=celery needs PostgreSQL for "
                + " and ".join(f"SOPILOT_{n.upper()}" for n in sqlite)
                + " (postgresql+psycopg2://...): workers on several hosts cannot share SQLite"
            )
        return self

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()


@lru_cache(maxsize=1)
def settings() -> Settings:
    """Read once per process (`settings.cache_clear()` re-reads the environment). A bad value
    is a ValueError naming its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [(f"SOPILOT_{str(e['loc'][-1]).upper()}: " if e["loc"] else "") + e["msg"] for e in exc.errors()]
        raise ValueError("invalid settings: " + "; ".join(problems)) from None


def _groups() -> list[tuple[str, type[BaseSettings]]]:
    return [
        ("", Settings),
        ("video", VideoSettings),
        ("embedding", EmbedderSettings),
        ("scoring", ScoringSettings),
        ("api", ApiSettings),
    ]


def markdown_table() -> str:
    """The README's table of every pipeline setting: variable, default, what it does."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for _, model in _groups():
        for name, f in model.model_fields.items():
            if f.default_factory is not None or (model is ApiSettings and name in ("data_dir", "log_format")):
                continue  # a group, or the API's copy of a setting listed above
            default = f.default
            shown = (
                "" if default in ("", None) else (str(default).lower() if isinstance(default, bool) else str(default))
            )
            rows.append(f"| `SOPILOT_{name.upper()}` | {shown} | {f.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())

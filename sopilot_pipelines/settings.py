"""Pipeline settings from the environment (prefix SOPILOT_), shared by assets, sensors and schedules."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .core.index import APPROX_MIN_CLIPS  # numpy only; faiss is imported when an index is built


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOPILOT_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite under data_dir
    auto_score: bool = False  # score each newly ingested trainee video against its task's gold
    nightly_enabled: bool = True
    nightly_hour_local: int = Field(2, ge=0, le=23)
    timezone: str = "UTC"
    nightly_min_new_videos: int = Field(10, ge=0)
    inbox_settle_seconds: float = Field(2.0, ge=0)  # a dropped file must be unchanged this long
    # a task index with at least this many clips is approximate (IVF), measured in bench_search.py
    index_approx_min_clips: int = Field(APPROX_MIN_CLIPS, ge=1)
    index_versions_kept: int = Field(3, ge=1)  # older version directories are deleted

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()

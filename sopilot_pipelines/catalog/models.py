"""The catalog's input at its boundary: pydantic types and models that every public write and
filter goes through before anything touches the database.

Strict mode throughout: a string is never read as a number, nor a bool as an int (so a path
segment "1" is not a video id). Failures surface as one-line ``ValueError``s naming the field
(``check``), the catalog's documented error for bad input.
"""

from __future__ import annotations

import json
import numbers
import os
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict, is_typeddict  # pydantic needs this one, not typing's, before Python 3.12

from sopilot_pipelines.catalog import tables as t

ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"  # task, job and export ids (they become file names)
MAX_ERROR_CHARS = 10_000
STRICT = ConfigDict(strict=True, extra="forbid")


def _integral(value: Any) -> Any:
    # numpy integers (array sizes, counts) are ints here; bools are not
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _error_text(value: Any) -> Any:
    # an error must always be recordable: PostgreSQL text cannot hold NUL
    return None if value is None else str(value).replace("\x00", "")[:MAX_ERROR_CHARS]


def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold it (psycopg2 would raise mid-transaction)
        raise ValueError("must not contain NUL characters")
    return value


def _json_document(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:  # TypeError would escape pydantic as itself
        raise ValueError(f"must be JSON-serialisable: {exc}") from None
    return value


Int = Annotated[int, BeforeValidator(_integral)]
Count = Annotated[Int, Field(ge=0)]
VideoId = Annotated[Int, Field(ge=1)]
Limit = Annotated[Int, Field(ge=1)]
Seconds = Annotated[FiniteFloat, Field(ge=0.0)]
Rate = Annotated[FiniteFloat, Field(gt=0.0)]

TaskId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
JobId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
PathText = Annotated[str, StringConstraints(min_length=1), BeforeValidator(_fspath)]  # str or os.PathLike


NO_NUL = AfterValidator(_no_nul)


def _short(max_len: int) -> Any:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_len)


# Optional short text: None or blank is None, otherwise stripped and within the column's length.
Label = Annotated[Annotated[str, _short(t.LABEL_LEN), NO_NUL] | None, BeforeValidator(_blank_is_none)]
FileName = Annotated[Annotated[str, _short(512), NO_NUL] | None, BeforeValidator(_blank_is_none)]
RunId = Annotated[Annotated[str, _short(t.RUN_ID_LEN), NO_NUL] | None, BeforeValidator(_blank_is_none)]
Reason = Annotated[Annotated[str, _short(MAX_ERROR_CHARS), NO_NUL] | None, BeforeValidator(_blank_is_none)]
RequiredLabel = Annotated[str, _short(t.LABEL_LEN), NO_NUL]
ErrorText = Annotated[str | None, BeforeValidator(_error_text)]
JsonDocument = Annotated[Any, AfterValidator(_json_document)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]
SignatureHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{1,256}$"), AfterValidator(str.lower)]


# --------------------------------------------------------------------------- videos


class NewVideo(BaseModel):
    model_config = STRICT
    task_id: TaskId
    role: t.Role
    site_id: Label = None
    camera_id: Label = None
    operator_id_hash: Label = None
    original_filename: FileName = None
    raw_path: PathText | None = None
    requested_by: Label = None
    upload_steps: list[SopStep] | None = None


class VideoPaths(BaseModel):
    model_config = STRICT
    raw_path: PathText | None = None
    raw_embeddings_path: PathText | None = None
    embeddings_path: PathText | None = None
    meta_path: PathText | None = None
    original_filename: FileName = None


class Clip(BaseModel):
    # extra keys of a clip dict are not the catalog's; ranges and uniqueness are the tables' constraints
    model_config = ConfigDict(strict=True, extra="ignore")
    clip_idx: Annotated[Int, Field(ge=-(2**31))]
    start_sec: FiniteFloat
    end_sec: FiniteFloat
    quality: str | None = None


def _clip_list(value: Any) -> Any:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return value  # strict list validation says what is wrong
    return [dict(c) if hasattr(c, "keys") else c for c in value]


class VideoReady(BaseModel):
    model_config = STRICT
    embedding_model: RequiredLabel
    num_clips: Count
    source_fps: Rate
    sampled_fps: Rate
    duration_sec: Seconds
    embeddings_path: PathText | None
    raw_embeddings_path: PathText | None
    meta_path: PathText | None
    clips: Annotated[list[Clip], BeforeValidator(_clip_list)]


class VideoFilter(TypedDict, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    task_id: TaskId
    role: t.Role
    status: t.VideoStatus


# --------------------------------------------------------------------------- jobs


class _NewJob(BaseModel):
    model_config = STRICT
    job_id: JobId
    requested_by: Label
    run_id: RunId
    created_at: AwareDatetime


class NewScore(_NewJob):
    task_id: TaskId
    gold_video_id: VideoId
    trainee_video_id: VideoId
    status: t.JobStatus
    trigger: t.ScoreTrigger = "request"
    previous_job_id: JobId | None = None


class NewTraining(_NewJob):
    trigger: t.TrainingTrigger
    status: t.TrainingStatus


# Updates are partial: only the keys given are validated and written (TypedDicts, total=False).
class _JobUpdate(TypedDict, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    run_id: RunId
    error_message: ErrorText
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None


class ScoreUpdate(_JobUpdate, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]  # not inherited
    status: t.JobStatus
    score: Annotated[FiniteFloat, Field(ge=0.0, le=100.0)] | None
    decision: t.Decision | None
    result_path: PathText | None
    report_path: PathText | None
    sop_version: Count | None


class TrainingUpdate(_JobUpdate, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]  # not inherited
    status: t.TrainingStatus
    mode: Label
    adapter_path: PathText | None
    videos_used: Count | None
    clips_used: Count | None
    embedding_dim: Count | None
    figures: JsonDocument
    reindex: JsonDocument
    skip_reason: Reason


class ScoreFilter(TypedDict, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    task_id: TaskId
    status: t.JobStatus
    trainee_video_id: VideoId
    trigger: t.ScoreTrigger


class TrainingFilter(TypedDict, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    status: t.TrainingStatus
    trigger: t.TrainingTrigger


# --------------------------------------------------------------------------- task SOPs


class SopStep(BaseModel):
    """One stored step (core.sop.parse_steps has checked the list as a whole: order, overlaps,
    names, the gold's duration)."""

    model_config = STRICT
    name: Annotated[str, StringConstraints(min_length=1, max_length=200), NO_NUL]
    start_sec: Seconds
    end_sec: Seconds
    optional: bool = False
    group: Annotated[str, StringConstraints(max_length=t.LABEL_LEN), NO_NUL] | None = None


class NewSop(BaseModel):
    model_config = STRICT
    task_id: TaskId
    source: t.SopSource
    gold_video_id: VideoId
    steps: Annotated[list[SopStep], Field(min_length=1)]
    requested_by: Label = None


# {gold video id (as text: JSON keys): [[start_sec, end_sec], ...]}
PerGold = dict[
    Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")],
    list[Annotated[list[Seconds], Field(min_length=2, max_length=2)]],
]


# --------------------------------------------------------------------------- index versions, exports


class NewIndexVersion(BaseModel):
    model_config = STRICT
    task_id: TaskId
    path: PathText
    clips_indexed: Count
    videos: Count
    fingerprint: Annotated[Annotated[str, _short(64)] | None, BeforeValidator(_blank_is_none)] = None
    adapter: Label = None


class NewExport(BaseModel):
    model_config = STRICT
    export_id: JobId
    file_path: PathText
    item_count: Count
    key_id: RequiredLabel
    payload_sha256: Sha256Hex
    signature_hex: SignatureHex
    generated_at: AwareDatetime
    algorithm: Annotated[str, _short(32)]
    requested_by: Label


# --------------------------------------------------------------------------- checking

M = TypeVar("M", bound=BaseModel)


def check(model: type[M], /, **values: Any) -> M:
    """``model`` from ``values``, or a ValueError that names each bad field (positional-only
    ``model``: a value may be called "model" too)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


def check_value(kind: Any, value: Any, name: str = "") -> Any:
    """One value of a type, or a partial dict of a TypedDict, validated with the same errors."""
    try:
        return _adapter(kind).validate_python(value)
    except ValidationError as exc:
        raise ValueError(describe(exc, name)) from None


@cache
def _adapter(kind: Any) -> TypeAdapter:
    # a TypedDict above carries its own (strict) config; a bare type gets it here
    return TypeAdapter(kind) if is_typeddict(kind) else TypeAdapter(kind, config=STRICT)


def describe(exc: ValidationError, name: str = "") -> str:
    """One line per error: 'clips[0].end_sec: Field required', 'task_id 'a/b': String should ...'."""
    parts = []
    for err in exc.errors(include_url=False):
        where = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        where = where.lstrip(".")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("missing", "extra_forbidden") and not isinstance(err["input"], (dict, list)):
            where = f"{where} {_short_repr(err['input'])}"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

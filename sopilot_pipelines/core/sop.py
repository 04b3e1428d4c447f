"""Steps given by the user: a task's SOP as named stretches of the gold video.

A steps file is ``{"steps": [{"name", "start_sec", "end_sec", "optional", "group"}, ...]}`` in gold
seconds. Gaps between steps are transitions. Steps that share a non-null ``group`` may be done in
any order among themselves; a skipped ``optional`` step is reported without a penalty.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

MAX_NAME = 200


class StepsError(ValueError):
    """A steps list that cannot be used: says which step and what is wrong."""


@dataclass(frozen=True)
class StepSpec:
    name: str
    start_sec: float
    end_sec: float
    optional: bool = False
    group: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def parse_steps(obj, gold_duration: float | None = None, source: str = "steps") -> list[StepSpec]:
    """Validated steps from a parsed JSON object (a dict with "steps", or the list itself),
    sorted by start. ``gold_duration`` (seconds) bounds the times when given."""
    items = obj.get("steps") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        raise StepsError(f'{source}: expected {{"steps": [...]}} or a list of steps')
    if not items:
        raise StepsError(f"{source}: the steps list is empty")
    out: list[StepSpec] = []
    for i, it in enumerate(items):
        where = f"{source}: step {i}"
        if not isinstance(it, dict):
            raise StepsError(f"{where} is not an object")
        name = it.get("name")
        if not isinstance(name, str) or not name.strip():
            raise StepsError(f"{where}: name must be a non-empty string")
        if len(name) > MAX_NAME:
            raise StepsError(f"{where} ({name[:40]}...): name is longer than {MAX_NAME} characters")
        try:
            a, b = float(it["start_sec"]), float(it["end_sec"])
        except (KeyError, TypeError, ValueError):
            raise StepsError(f"{where} ({name!r}): start_sec and end_sec must be numbers") from None
        if not (a == a and b == b) or a < 0:  # NaN or negative
            raise StepsError(f"{where} ({name!r}): times must be finite and >= 0, got {a}..{b}")
        if b <= a:
            raise StepsError(f"{where} ({name!r}): end_sec {b} must be after start_sec {a}")
        if gold_duration is not None and b > gold_duration + 0.05:
            raise StepsError(f"{where} ({name!r}): ends at {b} s, after the end of the gold ({gold_duration:.2f} s)")
        optional = it.get("optional", False)
        if not isinstance(optional, bool):
            raise StepsError(f"{where} ({name!r}): optional must be true or false")
        group = it.get("group")
        if group is not None and not isinstance(group, (str, int)):
            raise StepsError(f"{where} ({name!r}): group must be a string, a number or null")
        out.append(
            StepSpec(
                name.strip(),
                a,
                min(b, gold_duration) if gold_duration else b,
                optional,
                None if group is None else str(group),
            )
        )
    names = [s.name for s in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise StepsError(f"{source}: two steps are named {dup!r}")
    out.sort(key=lambda s: s.start_sec)
    for p, q in zip(out, out[1:]):
        if q.start_sec < p.end_sec - 1e-6:
            raise StepsError(
                f"{source}: steps {p.name!r} ({p.start_sec}-{p.end_sec} s) and {q.name!r} "
                f"({q.start_sec}-{q.end_sec} s) overlap"
            )
    return out


def load_steps(path: str | Path, gold_duration: float | None = None) -> list[StepSpec]:
    """Steps from a JSON file; StepsError names the file and the problem."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise StepsError(f"{path}: no such steps file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StepsError(f"{path}: not valid JSON ({exc})") from None
    return parse_steps(obj, gold_duration, source=str(path))


def step_title(index: int, name: str | None) -> str:
    """A step as a person reads it: numbered from 1 ("2. Torque the bolts"); JSON keeps 0-based."""
    return f"{index + 1}. {name}" if name else f"{index + 1}"


def deviation_step(d: dict) -> str:
    """A deviation's step for a person: numbered from 1 with its name, "-" when it has none."""
    return "-" if d.get("gold_step") is None else step_title(d["gold_step"], d.get("step_name"))


def steps_from_rows(rows) -> list[StepSpec]:
    """StepSpecs from stored step dicts (already validated when they were stored)."""
    return [
        StepSpec(r["name"], float(r["start_sec"]), float(r["end_sec"]), bool(r.get("optional", False)), r.get("group"))
        for r in rows
    ]


def transfer_steps(steps: list[StepSpec], src, dst) -> list[StepSpec]:
    """The steps marked on gold ``src`` carried to gold ``dst`` (both ``EmbeddedVideo``) by
    aligning the two (DTW over the centred clip embeddings): each boundary goes to the time of
    ``dst`` its moment of ``src`` aligns with. Order is kept (the path is monotone); a step
    never shrinks below one clip stride."""
    import numpy as np

    from .align import cost_matrix, dtw
    from .scoring import centred

    _, path = dtw(cost_matrix(centred(src.embeddings), centred(dst.embeddings)))
    s_mid = (src.clip_starts + src.clip_ends)[path[:, 0]] / 2.0
    d_mid = (dst.clip_starts + dst.clip_ends)[path[:, 1]] / 2.0
    s_end, d_end = float(max(src.duration_sec, src.clip_ends[-1])), float(max(dst.duration_sec, dst.clip_ends[-1]))
    xs, inverse = np.unique(s_mid, return_inverse=True)
    ys = np.bincount(inverse, weights=d_mid) / np.bincount(inverse)  # where each src moment lands, on average
    xs, ys = np.concatenate([[0.0], xs, [s_end]]), np.maximum.accumulate(np.concatenate([[0.0], ys, [d_end]]))
    stride = float(dst.settings.stride_seconds)
    out: list[StepSpec] = []
    for st in steps:
        a, b = (round(float(np.interp(t, xs, ys)), 2) for t in (st.start_sec, st.end_sec))
        a = max(a, out[-1].end_sec if out else 0.0)
        b = min(max(b, a + stride), d_end)
        out.append(StepSpec(st.name, a, b, st.optional, st.group))
    return out


MIN_ENVELOPE_RECORDINGS = 3  # below this many recordings of a step, over_time uses the trainee's own pace


@dataclass(frozen=True)
class Envelope:
    """How long a step takes: from every gold and every trainee scored ``pass``."""

    median: float
    p90: float
    golds: int
    trainees: int

    @property
    def count(self) -> int:
        return self.golds + self.trainees

    @classmethod
    def of(cls, gold_seconds: list[float], trainee_seconds: list[float]) -> "Envelope":
        import numpy as np

        values = np.asarray([*gold_seconds, *trainee_seconds], dtype=float)
        if not len(values):
            return cls(0.0, 0.0, 0, 0)
        return cls(
            round(float(np.median(values)), 2),
            round(float(np.percentile(values, 90)), 2),
            len(gold_seconds),
            len(trainee_seconds),
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "count": self.count}

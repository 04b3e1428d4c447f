"""The preload of processes that are forked to run steps: imported once by the forkserver every warm
run worker is forked from (defs/run_launcher.py), and by `sopilot worker` before its Celery pool
forks (workers.py). A run or a task then starts with the code location loaded, numba's kernels in
memory and the report's modules imported, instead of paying ~4 s for them itself. (Not torch:
a 100-score burst took 33.2 s with it imported here, 24.6 s without; one bench_throughput run each.)

Importing this module does the work. A warm-up that fails costs only speed: the workers then
load what they need themselves."""

import logging
import tempfile
from pathlib import Path

log = logging.getLogger("sopilot.warm")


def _tiny_pair():
    import numpy as np

    from .core.embedding import EmbeddedVideo

    rng = np.random.default_rng(0)
    steps = rng.normal(size=(3, 16))
    rows = np.repeat(steps, 6, axis=0) + 0.05 * rng.normal(size=(18, 16))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    starts = np.arange(18, dtype=float)

    def video(emb):
        return EmbeddedVideo("builtin:v1", emb.astype(np.float32), starts, starts + 2.0, [()] * 18, 30.0, 8.0, 20.0)

    return video(rows), video(rows[::-1].copy())


def warm_up() -> None:
    from sopilot_pipelines import definitions

    definitions.defs.get_repository_def()  # the code location, resolved as a run loads it
    from .core.report import render_report
    from .core.scoring import score

    gold, trainee = _tiny_pair()
    result = score(gold, trainee).result  # every numba kernel the score path calls
    with tempfile.TemporaryDirectory() as tmp:  # reportlab's modules and fonts
        render_report(Path(tmp) / "warm.pdf", "score_warm", result, {}, {})


try:
    warm_up()
except Exception as exc:  # any failure here only makes runs start cold
    log.warning("run worker warm-up failed; runs load their code themselves: %s", exc)

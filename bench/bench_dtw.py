"""DTW with path on a precomputed cost matrix: sopilot's ``dtw`` vs tslearn, same run.

Usage: python bench/bench_dtw.py [--sizes 2000 5000] [--repeats 7] [--dim 256]

Cost matrices are realistic: a random-walk embedding sequence (gold) and a time-warped, noisy
copy of it (trainee), L2-normalised and turned into cosine distances by ``cost_matrix``.  Both
implementations are warmed up (numba compiles), then timed interleaved (ours, tslearn, ours,
...) so that load from other processes hits both alike; the table shows medians and the
median of the per-pair ratios.  Totals must be equal (tslearn 0.10 returns the accumulated
cost for metric="precomputed"; an older tslearn that returns its square root is accepted
too) and the paths are compared.

"ours 1st" is the first call at that size in the process: it allocates the direction table
(n*m bytes) and pays its page faults; later calls take the table from align's pool.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopilot_pipelines.core.align import cost_matrix, dtw


def random_walk(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = np.cumsum(rng.standard_normal((n, d)), axis=0)
    return x


def realistic_cost(n: int, m: int, d: int, seed: int = 0) -> np.ndarray:
    """Gold = random walk (n, d); trainee = gold resampled along a random monotone warp to
    length m plus noise; both L2-normalised; cosine distance via cost_matrix."""
    rng = np.random.default_rng(seed)
    gold = random_walk(rng, n, d)
    speed = np.exp(rng.normal(0.0, 0.5, size=m))  # varying trainee pace
    pos = np.cumsum(speed)
    pos = (pos - pos[0]) / (pos[-1] - pos[0]) * (n - 1)
    trainee = gold[np.clip(np.round(pos).astype(int), 0, n - 1)]
    trainee = trainee + rng.normal(0.0, 2.0, size=trainee.shape)
    gold /= np.linalg.norm(gold, axis=1, keepdims=True)
    trainee /= np.linalg.norm(trainee, axis=1, keepdims=True)
    return cost_matrix(gold.astype(np.float32), trainee.astype(np.float32))


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def timed_both(fn, *args):
    """(wall, CPU time of this thread): both run single-threaded, so CPU time is less
    disturbed by other processes than wall time."""
    w0, c0 = time.perf_counter(), time.thread_time()
    fn(*args)
    return time.perf_counter() - w0, time.thread_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dim", type=int, default=256)
    args = ap.parse_args()

    from tslearn.metrics import dtw_path_from_metric

    def tslearn_dtw(cost):
        return dtw_path_from_metric(cost, metric="precomputed")

    warm = realistic_cost(20, 25, 8)
    dtw(warm)
    tslearn_dtw(warm)

    rows = []
    for n in args.sizes:
        cost = realistic_cost(n, n, args.dim, seed=n)
        cold, _ = timed(dtw, cost)  # first call at this size: allocates the table
        ours_t, theirs_t, ours_c, theirs_c = [], [], [], []
        (total, path) = dtw(cost)
        (ts_path, ts_value) = tslearn_dtw(cost)
        ts_value = float(ts_value)
        if np.isclose(ts_value, total, rtol=1e-12, atol=0.0):
            convention = "accumulated"
        elif np.isclose(ts_value**2, total, rtol=1e-9, atol=0.0):
            convention = "sqrt(accumulated)"
        else:
            raise AssertionError(f"n={n}: totals differ: ours {total!r}, tslearn {ts_value!r}")
        same_path = np.array_equal(path, np.asarray(ts_path, dtype=np.int64))
        for _ in range(args.repeats):
            w, c = timed_both(dtw, cost)
            ours_t.append(w)
            ours_c.append(c)
            w, c = timed_both(tslearn_dtw, cost)
            theirs_t.append(w)
            theirs_c.append(c)
        med = statistics.median
        ours = med(ours_t)
        theirs = med(theirs_t)
        pair = med(b / a for a, b in zip(ours_t, theirs_t))
        cpu_ratio = med(theirs_c) / med(ours_c)
        rows.append(
            (
                n,
                cold,
                ours,
                min(ours_t),
                theirs,
                min(theirs_t),
                theirs / ours,
                pair,
                cpu_ratio,
                convention,
                same_path,
                len(path),
            )
        )

    print(
        f"{'size':>11} {'ours 1st':>10} {'ours med':>9} {'ours min':>9} "
        f"{'tslearn med':>12} {'tslearn min':>12} {'ratio':>6} {'pair-ratio':>10} "
        f"{'cpu-ratio':>9}  tslearn value       same path  path len"
    )
    for n, cold, ours, omin, theirs, tmin, ratio, pair, cpu, conv, same, plen in rows:
        print(
            f"{n:>5}x{n:<5} {cold * 1e3:>8.1f}ms {ours * 1e3:>7.1f}ms {omin * 1e3:>7.1f}ms "
            f"{theirs * 1e3:>10.1f}ms {tmin * 1e3:>10.1f}ms {ratio:>5.1f}x {pair:>9.1f}x "
            f"{cpu:>8.1f}x  {conv:<19} {str(same):<10} {plen}"
        )
    print(
        "ratio = tslearn median / ours median, wall (throughput ratio); pair-ratio = median "
        "over interleaved pairs; cpu-ratio = the same with thread CPU time"
    )


if __name__ == "__main__":
    main()

"""Whole alignment (cost_matrix + dtw with path) vs the cost-matrix GEMM alone.

Usage: python bench/bench_alignment.py [--n 2000] [--m 2000] [--dim 768] [--repeats 15]
                                       [--threads 1 2]

Gold and trainee are L2-normalised random-walk embedding sequences (float32).  For each BLAS
thread count (set with threadpoolctl when it is installed) the two are timed interleaved
(GEMM, alignment, GEMM, ...) and the table shows medians of wall time and of process CPU time
(CPU time of all threads: less disturbed by other processes on a shared machine, but for a
multi-threaded GEMM it measures work, not latency).  "GEMM" is ``gold @ trainee.T`` (float32,
output allocated, as a caller would write it); "alignment" is ``dtw(cost_matrix(gold,
trainee))``, its parts are timed inside the same call.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopilot_pipelines.core.align import cost_matrix, dtw


def embeddings(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = np.cumsum(rng.standard_normal((n, d)), axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def blas_threads(k: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=k, user_api="blas")


def clock():
    return time.perf_counter(), time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--m", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    gold = embeddings(rng, args.n, args.dim)
    trainee = embeddings(rng, args.m, args.dim)

    def gemm():
        return gold @ trainee.T

    def alignment():
        w0, c0 = clock()
        cost = cost_matrix(gold, trainee)
        w1, c1 = clock()
        total, path = dtw(cost)
        w2, c2 = clock()
        return (w1 - w0, w2 - w1), (c1 - c0, c2 - c1)

    dtw(cost_matrix(gold[:8], trainee[:9]))  # compile / load the numba cache
    rows = []
    for k in args.threads:
        with blas_threads(k):
            gemm()
            alignment()
            g_wall, g_cpu, a_wall, a_cpu, cm_wall, dtw_wall = [], [], [], [], [], []
            for _ in range(args.repeats):
                w0, c0 = clock()
                gemm()
                w1, c1 = clock()
                g_wall.append(w1 - w0)
                g_cpu.append(c1 - c0)
                w0, c0 = clock()
                (cmw, dw), _ = alignment()
                w1, c1 = clock()
                a_wall.append(w1 - w0)
                a_cpu.append(c1 - c0)
                cm_wall.append(cmw)
                dtw_wall.append(dw)
        med = statistics.median
        rows.append(
            (
                k,
                med(g_wall),
                med(cm_wall),
                med(dtw_wall),
                med(a_wall),
                med(a / g for a, g in zip(a_wall, g_wall)),
                med(g_cpu),
                med(a_cpu),
            )
        )

    print(f"alignment {args.n}x{args.m} clips, d={args.dim}, {args.repeats} interleaved repeats, medians")
    print(
        f"{'BLAS thr':>8} {'GEMM':>9} {'cost_mat':>9} {'dtw+path':>9} {'alignment':>10} "
        f"{'align/GEMM':>10} {'pair-ratio':>10} {'GEMM cpu':>9} {'align cpu':>10} "
        f"{'cpu ratio':>9}"
    )
    for k, g, cm, d, a, pair, gc, ac in rows:
        print(
            f"{k:>8} {g * 1e3:>7.1f}ms {cm * 1e3:>7.1f}ms {d * 1e3:>7.1f}ms {a * 1e3:>8.1f}ms "
            f"{a / g:>9.2f}x {pair:>9.2f}x {gc * 1e3:>7.1f}ms {ac * 1e3:>8.1f}ms {ac / gc:>8.2f}x"
        )
    print("align/GEMM = median alignment / median GEMM (wall); pair-ratio = median over interleaved pairs")


if __name__ == "__main__":
    main()

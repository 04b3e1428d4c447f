"""Clip search: exact (IndexFlatIP) vs approximate (IVF, nprobe self-calibrated by build_index).

At 10k, 100k and 1M clips of 768-d clip-like vectors (see `clip_like`): build time, single-query
latency (k=5, one query at a time, p50/p99; flat and approximate interleaved so load from other
processes hits both alike), recall@5 against the exact result, and the speedup approx vs flat
in the same run.  HNSW (M=32) is measured at 10k/100k only: a 1M build takes minutes here.
No timed assertions: the numbers go to bench/README.md ("Search").
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sopilot_pipelines.core.index import build_index

DIM = 768
K = 5


def _unit(rng, n, d, scale=1.0):
    v = rng.standard_normal((n, d), dtype=np.float32)
    v *= scale / np.linalg.norm(v, axis=1, keepdims=True)
    return v


def clip_like(n, d=DIM, *, tasks=10, steps=30, seed=0, videos_seed=None):
    """n rows of synthetic clip embeddings (float32, unit rows) and each row's video number.

    Each video performs one task's steps in order; a step lasts 4-20 clips.  A clip is
        task direction (0.5) + step direction (1.0) + video offset (0.35, camera/person/light)
        + a random walk inside the step (smooth motion; ~0.1 per clip) + iid noise (0.25)
    (numbers: vector norms), then L2-normalised.  This gives cosine ~0.9 between consecutive
    clips (builtin embeddings of the synthetic test videos: 0.90), ~0.8 between the same step in two videos, ~0.15 between steps of a task, ~0 across
    tasks: clustered like real embeddings (many near-duplicates, a few hundred step clusters),
    which random uniform vectors are not.  Same seed, other videos_seed: new videos of the same
    tasks (held-out queries).  Still synthetic: build_index calibrates nprobe on
    whatever data it is given."""
    rng = np.random.default_rng(seed)  # the tasks and steps
    task_dir = _unit(rng, tasks, d, 0.5)
    step_dir = _unit(rng, tasks * steps, d, 1.0).reshape(tasks, steps, d)
    rng = np.random.default_rng([seed, 1 if videos_seed is None else videos_seed + 2])  # the videos
    x, video = np.empty((n, d), np.float32), np.empty(n, np.int64)
    pos = 0
    while pos < n:
        t = rng.integers(tasks)
        lens = rng.integers(4, 21, steps)
        m = int(lens.sum())
        v = np.repeat(step_dir[t], lens, axis=0)
        v += task_dir[t] + _unit(rng, 1, d, 0.35)
        walk = np.cumsum(_unit(rng, m, d, 0.1), axis=0)
        starts = np.repeat(np.cumsum(lens) - lens, lens)  # restart the walk at each step
        walk -= walk[starts] - np.repeat(_unit(rng, steps, d, 0.1), lens, axis=0)
        v += walk
        v += _unit(rng, m, d, 0.25)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        take = min(m, n - pos)
        x[pos : pos + take] = v[:take]
        video[pos : pos + take] = video[pos - 1] + 1 if pos else 0
        pos += take
    return x, video


def recall_at_k(approx, exact, k=K):
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx, exact)]))


def ms(values, q):
    return float(np.percentile(values, q)) * 1000


def run_size(n, n_queries, hnsw, query_threads, seed=0):
    import faiss

    t = time.perf_counter()
    x, video = clip_like(n, seed=seed)
    # queries: clips of videos that are not indexed (same tasks, a new seed), so no query finds
    # itself and none was among build_index's calibration queries
    queries = clip_like(n_queries * 10, seed=seed, videos_seed=seed)[0][::10]
    gen_s = time.perf_counter() - t

    indexes = {}
    t = time.perf_counter()
    flat, _ = build_index(x, approx_min_clips=n + 1)
    indexes["flat"] = (flat, time.perf_counter() - t, "exact")
    t = time.perf_counter()
    ivf, info = build_index(x, approx_min_clips=1, seed=seed, groups=video)  # as write_version does
    indexes["ivf"] = (
        ivf,
        time.perf_counter() - t,
        f"nlist {info['nlist']}, nprobe {info['nprobe']}, calibrated recall@5 {info['recall_at_5']}",
    )
    if hnsw:
        t = time.perf_counter()
        h = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        h.add(x)
        h.hnsw.efSearch = 64
        indexes["hnsw"] = (h, time.perf_counter() - t, "M 32, efConstruction 40, efSearch 64")
    del x, video
    gc.collect()

    _, exact = flat.search(queries, K)
    lat = {name: [] for name in indexes}
    for idx, _, _ in indexes.values():  # warm-up
        idx.search(queries[:5], K)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(query_threads)  # OpenIndex.search: 1 thread for a single query
    for q in queries:  # interleaved, one query at a time as /search does
        for name, (idx, _, _) in indexes.items():
            qq = q[None]
            t = time.perf_counter()
            idx.search(qq, K)
            lat[name].append(time.perf_counter() - t)
    faiss.omp_set_num_threads(threads)
    rows = []
    for name, (idx, build_s, note) in indexes.items():
        _, got = idx.search(queries, K)
        rows.append((name, build_s, ms(lat[name], 50), ms(lat[name], 99), recall_at_k(got, exact), note))
    flat_p50 = rows[0][2]
    print(
        f"\n{n:,} clips x {DIM}-d (generated in {gen_s:.1f}s), {n_queries} single queries, k={K}, "
        f"{query_threads} thread(s) per query"
    )
    print("| index | build | p50 | p99 | recall@5 vs exact | flat p50 / this p50 | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, build_s, p50, p99, rec, note in rows:
        print(
            f"| {name} | {build_s:.1f} s | {p50:.2f} ms | {p99:.2f} ms | {rec:.3f} | {flat_p50 / p50:.1f}x | {note} |",
            flush=True,
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated clip counts")
    ap.add_argument("--quick", action="store_true", help="only 10k and 100k")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="skip HNSW above this many clips")
    ap.add_argument(
        "--query-threads",
        type=int,
        default=1,
        help="OpenMP threads for the single queries (OpenIndex.search uses 1; builds use all)",
    )
    args = ap.parse_args()
    sizes = [10_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    import faiss

    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads for builds, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for n in sizes:
        run_size(n, args.queries, hnsw=n <= args.hnsw_max, query_threads=args.query_threads)
        gc.collect()
        print(
            f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

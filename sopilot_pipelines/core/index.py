"""Per-task clip index (FAISS, inner product on L2-normalised vectors) and its files.

A version is written to a temporary directory and renamed into place whole; which version is
current is recorded in the catalog only after the rename, so a reader never sees a half-built
index and the previous version stays readable until the switch.

Small tasks get an exact flat index; from APPROX_MIN_CLIPS clips on, an IVF index whose nprobe
is calibrated at build time on the task's own vectors to reach a target recall@5.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# From bench/bench_search.py (bench/README.md "Search"), one query on one thread, 2 shared cores:
# flat p50 2.9 ms at 10k clips, 5.6 ms at 20k, 14 ms at 50k, 27 ms at 100k (6.6 / 9.5 / 26 / 71 ms
# in a busier run); IVF 0.13-0.24 ms at all of these sizes with recall@5 >= 0.997.  Up to 20k the
# exact answer stays under ~10 ms even on busy cores and needs no training or calibration.
APPROX_MIN_CLIPS = 20_000

CALIBRATION_QUERIES = 500
_TRAIN_POINTS_PER_LIST = 64  # k-means sample per list: enough for good lists, keeps 1M builds short
_MIN_POINTS_PER_LIST = 39  # faiss warns (and clusters poorly) below this many training points per list


def _faiss():
    import faiss

    faiss.cvar.distance_compute_blas_threshold = 20  # the wheel's default skips BLAS for batches
    return faiss


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.size == 0:  # an empty task, e.g. np.zeros((0, 1)): keep its width, faiss needs d >= 1
        return np.zeros((0, v.shape[1] if v.ndim == 2 and v.shape[1] else 1), np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors must be (n, d), got shape {v.shape}")
    return np.ascontiguousarray(v)


def _exact_top_other(
    x: np.ndarray, queries: np.ndarray, own: np.ndarray, groups: np.ndarray, k: int = 5, chunk: int = 65536
) -> list[set]:
    """Exact top-k rows per query among the rows outside the query's group (chunked brute force:
    a group can be far larger than k, so a plain top-k search could miss every other row)."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_r = np.full((len(queries), k), -1, np.int64)
    for i0 in range(0, len(x), chunk):
        sims = queries @ x[i0 : i0 + chunk].T
        sims[groups[i0 : i0 + chunk][None, :] == own[:, None]] = -np.inf
        cand_s = np.concatenate([best_s, sims], axis=1)
        cand_r = np.concatenate([best_r, np.broadcast_to(np.arange(i0, i0 + sims.shape[1]), sims.shape)], axis=1)
        top = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s, best_r = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_r, top, 1)
    return [set(r[np.isfinite(s_)].tolist()) for r, s_ in zip(best_r, best_s)]


def build_index(
    vectors: np.ndarray,
    *,
    approx_min_clips: int = APPROX_MIN_CLIPS,
    target_recall: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
):
    """Exact IndexFlatIP below approx_min_clips vectors, else IVF with a self-calibrated nprobe.

    groups (e.g. the video id of each row) makes the calibration count only neighbours from
    other groups: a clip's nearest neighbours are mostly its own video's adjacent clips, which
    sit in the same list and would make nprobe look better than it is for the clips of other
    videos (and for new videos).  Without groups, only the query row itself is left out.
    Returns (index, info); info is what meta.json records under "index"."""
    faiss = _faiss()
    t0 = time.perf_counter()
    x = _as_matrix(vectors)
    n, dim = x.shape
    info = {
        "kind": "flat",
        "ntotal": n,
        "dim": dim,
        "nlist": None,
        "nprobe": None,
        "recall_at_5": 1.0,
        "calibration_queries": 0,
        "target_recall": target_recall,
    }
    nlist = min(round(math.sqrt(n)), n // _MIN_POINTS_PER_LIST)
    if n < approx_min_clips or nlist < 2:  # too few vectors for lists to pay off: exact
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        info["build_sec"] = round(time.perf_counter() - t0, 3)
        return index, info

    rng = np.random.default_rng(seed)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed  # spherical k-means is already on for inner product
    n_train = min(n, _TRAIN_POINTS_PER_LIST * nlist)
    train = x if n_train == n else x[np.sort(rng.choice(n, n_train, replace=False))]
    index.train(train)
    del train
    index.add(x)

    # Calibrate: indexed clips as queries, their exact top-5 outside their own group (video), and
    # the smallest nprobe whose IVF top-5 (own group filtered out by a selector) reaches the target
    # with a little margin (the estimate has ~0.005 noise at 500 queries).
    groups = np.arange(n) if groups is None else np.asarray(groups).reshape(-1)
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} vectors")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        groups, n_groups = np.arange(n), n  # a single video: nothing outside it, leave out the query row only
    nq = min(CALIBRATION_QUERIES, n)
    q_rows = np.sort(rng.choice(n, nq, replace=False))
    queries, own = x[q_rows], groups[q_rows]
    exact = _exact_top_other(x, queries, own, groups)
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    batches = []  # (query positions, selector "not in this group") per group among the queries
    for g in np.unique(own):
        lo, hi = np.searchsorted(sorted_groups, g, "left"), np.searchsorted(sorted_groups, g, "right")
        batches.append((np.flatnonzero(own == g), faiss.IDSelectorNot(faiss.IDSelectorBatch(order[lo:hi]))))
    aim = min(target_recall + 0.01, 1.0)
    nprobe = 1
    while True:
        hits = []
        for pos, sel in batches:
            _, approx = index.search(queries[pos], 5, params=faiss.SearchParametersIVF(sel=sel, nprobe=nprobe))
            hits += [len(set(a[a >= 0].tolist()) & exact[p]) / len(exact[p]) for a, p in zip(approx, pos) if exact[p]]
        recall = float(np.mean(hits)) if hits else 1.0
        if recall >= aim or nprobe >= nlist:
            break
        nprobe = min(nprobe * 2, nlist)
    index.nprobe = nprobe
    info.update(
        kind="ivf",
        nlist=nlist,
        nprobe=nprobe,
        recall_at_5=round(recall, 4),
        calibration_queries=nq,
        calibration="query's own group excluded" if n_groups < n else "query row excluded",
        train_points=n_train,
        build_sec=round(time.perf_counter() - t0, 3),
    )
    return index, info


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sweep_dead_temps(final_dir: Path) -> None:
    """Remove temp dirs of this version left by writers on this host that died (crash, kill)."""
    host = socket.gethostname()
    for p in final_dir.parent.glob(f".{final_dir.name}.{host}.*.tmp"):
        try:
            os.kill(int(p.name[: -len(".tmp")].rsplit(".", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, PermissionError):
            pass  # not ours to judge


def write_version(
    final_dir: Path, vectors: np.ndarray, ids: np.ndarray, meta: dict, *, approx_min_clips: int = APPROX_MIN_CLIPS
) -> Path:
    """Write index.faiss + ids.npy (video_id, clip_idx) + meta.json into final_dir atomically.

    meta.json is the caller's meta plus the index description under "index"."""
    faiss = _faiss()
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dead_temps(final_dir)
    tmp = final_dir.with_name(f".{final_dir.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, 2)
        groups = ids[:, 0] if len(ids) == len(vectors) else None  # calibrate on other videos' clips
        index, info = build_index(vectors, approx_min_clips=approx_min_clips, groups=groups)
        faiss.write_index(index, str(tmp / "index.faiss"))
        del index
        np.save(tmp / "ids.npy", ids)
        (tmp / "meta.json").write_text(json.dumps({**meta, "index": info}, indent=1, sort_keys=True))
        for f in ("index.faiss", "ids.npy", "meta.json"):
            _fsync(tmp / f)  # the rename must not outlive the contents after a power loss
        shutil.rmtree(final_dir, ignore_errors=True)  # a leftover of a crashed earlier attempt of this build
        os.replace(tmp, final_dir)
        try:
            _fsync(final_dir.parent)
        except OSError:
            pass  # some file systems cannot fsync a directory
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final_dir


def gpu_available() -> bool:
    """True when faiss was built with GPU support and sees a GPU (never with faiss-cpu)."""
    try:
        faiss = _faiss()
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:
        return False


@dataclass
class OpenIndex:
    index: Any  # faiss.Index, on the GPU when device == "gpu" (faiss ships no type stubs)
    ids: np.ndarray  # (n, 2) int64: row -> (video_id, clip_idx)
    meta: dict
    device: str = "cpu"
    _cpu: Any = field(default=None, repr=False)  # CPU index for reconstruct (a GPU index keeps one)
    _gpu_res: object = field(default=None, repr=False)  # must outlive the GPU index
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _keys: tuple | None = field(default=None, repr=False)  # (row order, ids in that order) for row_of

    def __post_init__(self):
        if self._cpu is None:
            self._cpu = self.index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (similarities, rows) per query; rows -1 (similarity -inf) where fewer than k exist."""
        faiss = _faiss()
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.index.d:
            raise ValueError(f"query dim {q.shape[1]} != index dim {self.index.d}")
        sims = np.full((len(q), k), -np.inf, np.float32)
        rows = np.full((len(q), k), -1, np.int64)
        kk = min(k, self.ntotal)  # faiss needs k >= 1; GPU indexes also cap k
        if kk == 0 or not len(q):
            return sims, rows
        # A few queries run on this thread alone: with other processes on the cores, waiting for
        # an OpenMP worker cost 5-20x in single-query latency (bench/README.md "Search").  The
        # setting is per calling thread (libgomp), so concurrent requests do not interfere.
        threads = faiss.omp_get_max_threads()
        if len(q) < 20:
            faiss.omp_set_num_threads(1)
        try:
            if self.device == "gpu":
                with self._lock:  # GPU resources are not safe for concurrent use
                    s, r = self.index.search(q, kk)
            else:
                s, r = self.index.search(q, kk)
        finally:
            faiss.omp_set_num_threads(threads)
        sims[:, :kk], rows[:, :kk] = np.where(r >= 0, s, -np.inf), r
        return sims, rows

    def row_of(self, video_id: int, clip_idx: int) -> int | None:
        """The index row of a clip, or None when this version does not hold it."""
        if self._keys is None:  # sorted once; a benign race if two threads get here together
            order = np.lexsort((self.ids[:, 1], self.ids[:, 0]))
            self._keys = (order, self.ids[order])
        order, keys = self._keys
        lo, hi = np.searchsorted(keys[:, 0], video_id, "left"), np.searchsorted(keys[:, 0], video_id, "right")
        j = lo + np.searchsorted(keys[lo:hi, 1], clip_idx)
        return int(order[j]) if j < hi and keys[j, 1] == clip_idx else None

    def vector_of(self, video_id: int, clip_idx: int) -> np.ndarray | None:
        """The stored vector of that clip, or None when the clip is not in this version."""
        row = self.row_of(video_id, clip_idx)
        return None if row is None else self._cpu.reconstruct(row)


def open_version(path) -> OpenIndex:
    """Load a version written by write_version; on the GPU when faiss can use one."""
    faiss = _faiss()
    path = Path(path)
    cpu = faiss.read_index(str(path / "index.faiss"))
    ids = np.load(path / "ids.npy")
    meta = json.loads((path / "meta.json").read_text())
    ivf = faiss.try_extract_index_ivf(cpu)
    if ivf is not None:
        nprobe = (meta.get("index") or {}).get("nprobe")
        if nprobe:
            ivf.nprobe = int(nprobe)
        ivf.make_direct_map()  # reconstruct(row) for vector_of
    opened = OpenIndex(cpu, ids, meta, "cpu", _cpu=cpu)
    if gpu_available() and cpu.ntotal:
        try:  # untested here (no GPU): per the faiss GPU wiki; the cloner copies nprobe
            res = faiss.StandardGpuResources()
            opened = OpenIndex(faiss.index_cpu_to_gpu(res, 0, cpu), ids, meta, "gpu", _cpu=cpu, _gpu_res=res)
        except Exception:  # an index type or size the GPU cannot take: stay on the CPU
            pass
    return opened

"""Alignment kernels: cosine cost matrix and dynamic time warping (DTW).

SOPilot aligns the clip-embedding sequence of a gold video (rows) with the one of a trainee
video (columns).  Everything here works on a precomputed cost matrix ``cost[i, j]``, the cosine
distance between gold clip ``i`` and trainee clip ``j``.

Recurrence (classic symmetric step pattern, the same as tslearn's
``dtw_path_from_metric(cost, metric="precomputed")``)::

    D[0, 0] = cost[0, 0]
    D[i, j] = cost[i, j] + min(D[i-1, j-1], D[i-1, j], D[i, j-1])    (out-of-range terms = +inf)

``dtw`` returns ``D[n-1, m-1]`` -- the accumulated cost itself, not its square root -- and the
optimal path from ``(0, 0)`` to ``(n-1, m-1)``.  Accumulation is float64 (float32 changes paths
at a few thousand clips).

Tie-breaking, identical in every implementation here (and in tslearn): when predecessors have
equal accumulated cost the first of **diagonal, up (i-1, j), left (i, j-1)** wins.  Because of
this, and because every implementation does the same float64 operations per cell
(``float64(cost) + min``), the implementations return bit-identical costs and equal paths.

Implementations:

* :func:`dtw` -- numba.  Four rows are swept together on a skewed wavefront (row ``r`` is one
  column behind row ``r-1``) so four independent dependency chains keep the core busy; two
  rolling float64 rows plus one direction byte per cell, the direction table taken from a small
  pool (shared by threads) so large alignments do not pay page faults every call.  The path is
  backtracked from the direction bytes.  Non-finite costs are detected inside the same pass.
* :func:`dtw_reference` -- plain Python DP over a full table, backtracked from the accumulated
  values; obviously correct and slow; for tests.
* :func:`dtw_torch` -- anti-diagonal wavefront in torch (every cell of an anti-diagonal is
  independent), so it runs on CUDA; torch is imported lazily.
* :func:`subsequence_dtw` / :func:`subsequence_dtw_reference` -- open-begin/open-end DTW: a
  query (a gold step's clips, rows) matched to any contiguous part of the reference (the trainee,
  columns).

This module has no Dagster or torch import on its import path.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

__all__ = [
    "cost_matrix",
    "dtw",
    "dtw_reference",
    "dtw_torch",
    "subsequence_dtw",
    "subsequence_dtw_reference",
]

_INF = np.inf

# Direction codes stored per cell (one byte each).
_DIAG = 0
_UP = 1
_LEFT = 2
_START = 3  # path start: (0, 0) for dtw, any cell of row 0 for subsequence_dtw

# Direction tables (one byte per cell) are pooled across calls and threads, so repeated
# alignments do not pay page faults for a fresh n*m table each call (a 5000 x 5000 table is
# 25 MB).  At most _POOL_SIZE tables of at most _KEEP_TABLE_BYTES each are kept.
_KEEP_TABLE_BYTES = 64 * 1024 * 1024
_POOL_SIZE = 2
_pool: list[np.ndarray] = []
_pool_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# cost matrix
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def _one_minus_clip_inplace(c):  # pragma: no cover - compiled
    flat = c.reshape(-1)
    for k in range(flat.size):
        v = np.float32(1.0) - flat[k]
        # Clip negatives only: a NaN (from a NaN embedding) must survive so dtw rejects it.
        flat[k] = np.float32(0.0) if v < np.float32(0.0) else v


def _as_embeddings(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (clips, dim) array, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def cost_matrix(gold: np.ndarray, trainee: np.ndarray) -> np.ndarray:
    """Cosine distance ``1 - gold @ trainee.T`` as an ``(n, m)`` float32 matrix.

    ``gold`` is ``(n, d)``, ``trainee`` is ``(m, d)``; rows are expected to be L2-normalised
    (this is not checked: it is the embedders' contract).  One BLAS GEMM writes the product into
    the output, then one compiled pass turns it into ``1 - x`` clipped at 0 (rounding makes
    tiny negatives for identical clips).  Inputs that are not float32 are converted.
    """
    g = _as_embeddings("gold", gold)
    t = _as_embeddings("trainee", trainee)
    if g.shape[1] != t.shape[1]:
        raise ValueError(
            f"embedding dimension mismatch: gold has dim {g.shape[1]}, trainee has dim {t.shape[1]}"
        )
    out = np.empty((g.shape[0], t.shape[0]), dtype=np.float32)
    np.matmul(g, t.T, out=out)
    _one_minus_clip_inplace(out)
    return out


# --------------------------------------------------------------------------------------------
# numba DTW
# --------------------------------------------------------------------------------------------


@nb.njit(nogil=True, cache=True)
def _cell(c, diag, up, left):  # pragma: no cover - compiled
    """``c + min(diag, up, left)`` and the direction; first minimum of (diag, up, left) wins.

    Written so that LLVM emits compares, ``minsd`` and ``cmov`` -- no branches."""
    m1 = diag
    d = np.uint8(0)
    if up < diag:
        m1 = up
        d = np.uint8(1)
    if left < m1:
        m1 = left
        d = np.uint8(2)
    return c + m1, d


@nb.njit(fastmath={"reassoc"}, cache=True, nogil=True)
def _nonfinite_probe(row):  # pragma: no cover - compiled
    """0.0 if every value of ``row`` is finite, else NaN: ``x - x`` is NaN exactly for NaN and
    +-inf and the sum keeps it.  Only reassociation is allowed (so the loop vectorises); no
    nnan/ninf flag, which would let LLVM fold ``x - x`` to 0."""
    acc = row.dtype.type(0.0)
    for k in range(row.size):
        acc += row[k] - row[k]
    return np.float64(acc)


@nb.njit(fastmath={"contract"}, cache=True, nogil=True)
def _fill(cost, dirs, P, open_begin):  # pragma: no cover - compiled
    """Forward DP.  Writes one direction byte per cell into ``dirs`` (n, m) and leaves the last
    row of the accumulated cost in ``P[1:]`` (``P`` has length m + 1; ``P[0]`` is the +inf
    column to the left of column 0).  Returns 0.0 if every cost is finite, else NaN, so
    validation needs no separate pass over the matrix: the 4-row blocks accumulate
    ``q += c * 0.0`` (one FMA per cell with "contract"; NaN for NaN or +-inf ``c``), the other
    rows go through :func:`_nonfinite_probe`.  ("contract" only fuses multiply-adds; the DP
    itself has no multiplication, so its results are unchanged.)"""
    n, m = cost.shape
    # Row 0.
    chk = _nonfinite_probe(cost[0])
    P[0] = _INF
    if open_begin:
        for j in range(m):
            c = np.float64(cost[0, j])
            P[j + 1] = c
            dirs[0, j] = 3
    else:
        acc = 0.0
        for j in range(m):
            c = np.float64(cost[0, j])
            acc += c
            P[j + 1] = acc
            dirs[0, j] = 2
        dirs[0, 0] = 3
    i0 = 1
    if m >= 4:
        T = np.empty((4, m + 1))
        # Blocks of 4 rows i0..i0+3.  At step s row r handles column s - r.  Rows are handled
        # last-to-first within a step, so row r reads row r-1's values from the previous
        # step(s) from registers: a_r = row r's latest value, b_r = the one before.
        while i0 + 4 <= n:
            T[:, 0] = _INF
            # Prologue: the triangle of cells (r, j) with r + j <= 2.
            for r in range(3):
                for j in range(3 - r):
                    if r == 0:
                        up = P[j + 1]
                        dg = P[j]
                    else:
                        up = T[r - 1, j + 1]
                        dg = T[r - 1, j]
                    c = np.float64(cost[i0 + r, j])
                    chk += c * 0.0
                    v, d = _cell(c, dg, up, T[r, j])
                    T[r, j + 1] = v
                    dirs[i0 + r, j] = d
            a0 = T[0, 3]
            b0 = T[0, 2]
            a1 = T[1, 2]
            b1 = T[1, 1]
            a2 = T[2, 1]
            b2 = T[2, 0]
            a3 = _INF
            pd = P[3]
            # Views shifted by the skew so that one loop index j = s - 3 >= 0 addresses them
            # all: numba then needs no negative-index wraparound code in the loop.
            r0 = cost[i0, 3:]
            r1 = cost[i0 + 1, 2:]
            r2 = cost[i0 + 2, 1:]
            r3 = cost[i0 + 3]
            q0 = 0.0
            q1 = 0.0
            q2 = 0.0
            q3 = 0.0
            d0 = dirs[i0, 3:]
            d1 = dirs[i0 + 1, 2:]
            d2 = dirs[i0 + 2, 1:]
            d3 = dirs[i0 + 3]
            # p_out[j] = P[j+1]: row 0 of the block reads row i0-1 at column s = j + 3 from it,
            # and row 3 writes its column j = s - 3 into it (P becomes the block's last row).
            p_out = P[1:]
            # Steady state (step s = j + 3): no branches, every row in range.
            for j in range(m - 3):
                c3 = np.float64(r3[j])
                c2 = np.float64(r2[j])
                c1 = np.float64(r1[j])
                c0 = np.float64(r0[j])
                pu = p_out[j + 3]
                q3 += c3 * 0.0
                q2 += c2 * 0.0
                q1 += c1 * 0.0
                q0 += c0 * 0.0
                v3, e3 = _cell(c3, b2, a2, a3)
                v2, e2 = _cell(c2, b1, a1, a2)
                v1, e1 = _cell(c1, b0, a0, a1)
                v0, e0 = _cell(c0, pd, pu, a0)
                p_out[j] = v3
                pd = pu
                b2 = a2
                b1 = a1
                b0 = a0
                a3 = v3
                a2 = v2
                a1 = v1
                a0 = v0
                d3[j] = e3
                d2[j] = e2
                d1[j] = e1
                d0[j] = e0
            chk += (q0 + q1) + (q2 + q3)
            # Epilogue: rows 1..3 finish their last r columns.
            T[0, m] = a0
            T[0, m - 1] = b0
            T[1, m - 1] = a1
            T[1, m - 2] = b1
            T[2, m - 2] = a2
            T[2, m - 3] = b2
            T[3, m - 3] = a3
            for r in range(1, 4):
                for j in range(m - r, m):
                    c = np.float64(cost[i0 + r, j])
                    chk += c * 0.0
                    v, d = _cell(c, T[r - 1, j], T[r - 1, j + 1], T[r, j])
                    T[r, j + 1] = v
                    dirs[i0 + r, j] = d
            P[m - 2] = T[3, m - 2]
            P[m - 1] = T[3, m - 1]
            P[m] = T[3, m]
            i0 += 4
    # Remaining rows (and narrow matrices), one at a time.
    for i in range(i0, n):
        chk += _nonfinite_probe(cost[i])
        left = _INF
        for j in range(m):
            c = np.float64(cost[i, j])
            v, d = _cell(c, P[j], P[j + 1], left)
            P[j] = left
            left = v
            dirs[i, j] = d
        P[m] = left
        P[0] = _INF
    return chk


@nb.njit(cache=True, nogil=True)
def _backtrack(dirs, i, j):  # pragma: no cover - compiled
    """Follow direction bytes from (i, j) back to a start cell; returns the (L, 2) path."""
    path = np.empty((i + j + 1, 2), np.int64)
    k = i + j
    path[k, 0] = i
    path[k, 1] = j
    d = dirs[i, j]
    while d != 3:
        if d == 0:
            i -= 1
            j -= 1
        elif d == 1:
            i -= 1
        else:
            j -= 1
        if i < 0 or j < 0:  # cannot happen with a table written by _fill (k >= i + j >= 0)
            raise RuntimeError("corrupt DTW direction table")
        k -= 1
        path[k, 0] = i
        path[k, 1] = j
        d = dirs[i, j]
    return path[k:].copy()


def _as_cost(cost) -> np.ndarray:
    c = np.asarray(cost)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D array, got shape {c.shape}")
    if c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"cost must be non-empty, got shape {c.shape}")
    if c.dtype == np.float32 or c.dtype == np.float64:
        return np.ascontiguousarray(c)
    if c.dtype.kind not in "biuf":
        raise ValueError(f"cost must be a real numeric array, got dtype {c.dtype}")
    return np.ascontiguousarray(c, dtype=np.float64)


def _take_table(size: int) -> np.ndarray:
    with _pool_lock:
        fits = [k for k, buf in enumerate(_pool) if buf.size >= size]
        if fits:
            return _pool.pop(min(fits, key=lambda k: _pool[k].size))
    return np.empty(size, dtype=np.uint8)


def _give_table(buf: np.ndarray) -> None:
    if buf.size > _KEEP_TABLE_BYTES:
        return
    with _pool_lock:
        _pool.append(buf)
        _pool.sort(key=lambda b: b.size, reverse=True)
        del _pool[_POOL_SIZE:]  # keep the largest


def _dp(c: np.ndarray, open_begin: bool, end_col=None):
    """Forward DP then backtrack.  Returns (last accumulated row, path); the path ends in the
    last row at ``end_col(last_row)`` (default: the last column)."""
    n, m = c.shape
    table = _take_table(n * m)
    try:
        dirs = table[: n * m].reshape(n, m)
        last = np.empty(m + 1, dtype=np.float64)
        chk = _fill(c, dirs, last, open_begin)
        if not np.isfinite(chk):
            raise ValueError("cost contains NaN or infinite values")
        end = m - 1 if end_col is None else end_col(last[1:])
        path = _backtrack(dirs, n - 1, end)
    finally:
        _give_table(table)
    return last[1:], path


def dtw(cost: np.ndarray) -> tuple[float, np.ndarray]:
    """DTW over a precomputed ``(n, m)`` cost matrix.

    Returns ``(total, path)``: the accumulated cost ``D[n-1, m-1]`` (a float accumulated in
    float64; tslearn 0.10's ``dtw_path_from_metric(cost, metric="precomputed")`` returns the
    same number) and the optimal path as an ``(L, 2)`` int64 array of ``(i, j)`` from
    ``(0, 0)`` to ``(n-1, m-1)``.  Raises ValueError unless ``cost`` is 2-D, non-empty and
    finite.  Releases the GIL while it runs.  The direction table (n*m bytes) comes from a
    small pool shared by all threads, so repeated calls avoid its page faults.
    """
    last, path = _dp(_as_cost(cost), open_begin=False)
    return float(last[-1]), path


def subsequence_dtw(query_cost: np.ndarray) -> tuple[float, int, int, np.ndarray]:
    """Open-begin/open-end DTW of a query (rows) inside a reference (columns).

    ``query_cost[i, j]`` is the cost of query element ``i`` (a gold step's clip) against
    reference element ``j`` (a trainee clip).  The path starts at any cell of row 0, ends at any
    cell of the last row and uses the same steps and tie-breaking as :func:`dtw`::

        D[0, j] = cost[0, j]
        D[i, j] = cost[i, j] + min(D[i-1, j-1], D[i-1, j], D[i, j-1])

    The end is the first column with the smallest ``D[n-1, j]``.  Returns
    ``(total, ref_start, ref_end, path)`` with ``ref_end`` inclusive and ``path`` an ``(L, 2)``
    int64 array of ``(query_index, reference_index)``.
    """
    # np.argmin returns the first minimum.
    last, path = _dp(_as_cost(query_cost), open_begin=True, end_col=lambda row: int(np.argmin(row)))
    end = int(path[-1, 1])
    return float(last[end]), int(path[0, 1]), end, path


# --------------------------------------------------------------------------------------------
# references (plain Python; for tests)
# --------------------------------------------------------------------------------------------


def _check_reference_input(cost) -> np.ndarray:
    c = _as_cost(cost).astype(np.float64)
    if not np.isfinite(c).all():
        raise ValueError("cost contains NaN or infinite values")
    return c


def _reference_table(c: np.ndarray, open_begin: bool) -> np.ndarray:
    n, m = c.shape
    D = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            if i == 0:
                if open_begin:
                    D[0, j] = c[0, j]
                else:
                    D[0, j] = c[0, j] + (D[0, j - 1] if j > 0 else 0.0)
                continue
            best = np.inf
            for val in (
                D[i - 1, j - 1] if j > 0 else np.inf,  # diagonal
                D[i - 1, j],  # up
                D[i, j - 1] if j > 0 else np.inf,  # left
            ):
                if val < best:
                    best = val
            D[i, j] = c[i, j] + best
    return D


def _reference_backtrack(D: np.ndarray, i: int, j: int, open_begin: bool) -> np.ndarray:
    path = [(i, j)]
    while i > 0 or (j > 0 and not open_begin):
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            options = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]  # diagonal, up, left
            values = [D[p] for p in options]
            i, j = options[values.index(min(values))]  # first minimum wins
        path.append((i, j))
    return np.array(path[::-1], dtype=np.int64).reshape(-1, 2)


def dtw_reference(cost) -> tuple[float, np.ndarray]:
    """Plain Python DTW (full table, backtracked from accumulated values); same contract and
    results as :func:`dtw`.  O(n*m) Python steps: small inputs only."""
    c = _check_reference_input(cost)
    n, m = c.shape
    D = _reference_table(c, open_begin=False)
    return float(D[n - 1, m - 1]), _reference_backtrack(D, n - 1, m - 1, open_begin=False)


def subsequence_dtw_reference(query_cost) -> tuple[float, int, int, np.ndarray]:
    """Plain Python version of :func:`subsequence_dtw`; small inputs only."""
    c = _check_reference_input(query_cost)
    n, m = c.shape
    D = _reference_table(c, open_begin=True)
    last = list(D[n - 1])
    end = last.index(min(last))
    path = _reference_backtrack(D, n - 1, end, open_begin=True)
    return float(D[n - 1, end]), int(path[0, 1]), end, path


# --------------------------------------------------------------------------------------------
# torch (anti-diagonal wavefront)
# --------------------------------------------------------------------------------------------


def dtw_torch(cost, device=None) -> tuple[float, np.ndarray]:
    """DTW computed by torch on ``device`` (None: "cuda" when available, else "cpu").

    Cells on one anti-diagonal ``i + j = t`` depend only on the two previous anti-diagonals, so
    each anti-diagonal is one batch of vector operations (n + m - 1 of them).  The accumulated
    values are float64 and the operations per cell are those of :func:`dtw`, so the total and
    the path are identical.  The direction bytes are copied back and backtracked on the CPU.
    """
    import torch  # lazy: torch costs ~2 s to import

    c_np = _as_cost(cost)
    n, m = c_np.shape
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    c = torch.as_tensor(c_np, device=dev).reshape(-1)
    if not bool(torch.isfinite(c).all()):
        raise ValueError("cost contains NaN or infinite values")

    # Diagonal vectors are indexed by the padded row p = i + 1 in [0, n]; padded column
    # q = j + 1 = t - p; the border row/column 0 is +inf except D[0, 0] = 0.  Diagonal t has
    # cells p in [lo, hi] = [max(1, t - m), min(n, t - 1)] and reads diagonals t-1 and t-2 at
    # [lo - 1, hi]; everything else it reads is a border cell, +inf.
    f64 = torch.float64
    bufs = [torch.full((n + 1,), float("inf"), dtype=f64, device=dev) for _ in range(3)]
    bufs[0][0] = 0.0  # diagonal t = 0 is D[0, 0] = 0; diagonal t = 1 is all border
    dirs = torch.empty(n * m, dtype=torch.uint8, device=dev)
    p_all = torch.arange(n + 1, device=dev)
    base = (p_all - 1) * m - p_all - 1  # flat index of cost[p-1, t-p-1] is base[p] + t
    one = torch.ones((), dtype=torch.uint8, device=dev)
    two = torch.full((), 2, dtype=torch.uint8, device=dev)
    zero = torch.zeros((), dtype=torch.uint8, device=dev)
    for t in range(2, n + m + 1):
        # Three buffers rotate (t-2, t-1, t).  The one reused for diagonal t keeps stale values
        # of diagonal t-3 only below lo (lo and hi never decrease), and no later diagonal
        # reads those cells, so it needs no reset.
        prev2, prev1, cur = bufs[(t - 2) % 3], bufs[(t - 1) % 3], bufs[t % 3]
        if t == 3:
            cur[0] = float("inf")  # this buffer held diagonal 0, whose cell 0 was D[0, 0] = 0
        lo = max(1, t - m)
        hi = min(n, t - 1)
        idx = base[lo : hi + 1] + t
        cc = c[idx].to(f64)
        diag = prev2[lo - 1 : hi]
        up = prev1[lo - 1 : hi]
        left = prev1[lo : hi + 1]
        up_lt = up < diag
        m1 = torch.where(up_lt, up, diag)
        d = torch.where(up_lt, one, zero)
        left_lt = left < m1
        m1 = torch.where(left_lt, left, m1)
        d = torch.where(left_lt, two, d)
        cur[lo : hi + 1] = cc + m1
        dirs[idx] = d
    prev1 = bufs[(n + m) % 3]
    total = float(prev1[n].item())
    dirs_np = dirs.cpu().numpy().reshape(n, m)
    dirs_np[0, 0] = _START
    return total, _backtrack(dirs_np, n - 1, m - 1)

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

* :func:`dtw` -- numba.  Four rows are swept together on a skewed wavefront (row ``r`` is one
  column behind row ``r-1``) so four independent dependency chains keep the core busy; two
  rolling float64 rows plus one direction byte per cell, the direction table taken from a small
  pool (shared by threads) so large alignments do not pay page faults every call.  The path is
  backtracked from the direction bytes.  Non-finite costs are detected inside the same pass.

The tests hold a plain Python DP over a full table (obviously correct, slow) that it must equal.

This module has no Dagster or torch import on its import path.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

__all__ = ["cost_matrix", "dtw"]

_INF = np.inf

# Direction bytes stored per cell: 0 diagonal, 1 up (i-1, j), 2 left (i, j-1), 3 the path's
# start (0, 0).

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
        raise ValueError(f"embedding dimension mismatch: gold has dim {g.shape[1]}, trainee has dim {t.shape[1]}")
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
def _fill(cost, dirs, P):  # pragma: no cover - compiled
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


def _dp(c: np.ndarray):
    """Forward DP then backtrack.  Returns (last accumulated row, path to the last cell)."""
    n, m = c.shape
    table = _take_table(n * m)
    try:
        dirs = table[: n * m].reshape(n, m)
        last = np.empty(m + 1, dtype=np.float64)
        chk = _fill(c, dirs, last)
        if not np.isfinite(chk):
            raise ValueError("cost contains NaN or infinite values")
        path = _backtrack(dirs, n - 1, m - 1)
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
    last, path = _dp(_as_cost(cost))
    return float(last[-1]), path

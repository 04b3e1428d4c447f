"""Tests for sopilot_pipelines.core.align: cost matrix and DTW, against a plain Python DP."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sopilot_pipelines.core import align
from sopilot_pipelines.core.align import cost_matrix, dtw


def dtw_reference(cost) -> tuple[float, np.ndarray]:
    """Plain Python DTW over a full table, backtracked from the accumulated values: obviously
    correct, slow. Same contract (errors included) as align.dtw."""
    c = np.asarray(cost)
    if c.ndim != 2 or 0 in c.shape:
        raise ValueError(f"cost must be a non-empty 2-D array, got shape {c.shape}")
    c = c.astype(np.float64)
    if not np.isfinite(c).all():
        raise ValueError("cost contains NaN or infinite values")
    n, m = c.shape
    D = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            if i == 0:
                D[0, j] = c[0, j] + (D[0, j - 1] if j > 0 else 0.0)
                continue
            best = np.inf
            for val in (D[i - 1, j - 1] if j > 0 else np.inf, D[i - 1, j], D[i, j - 1] if j > 0 else np.inf):
                if val < best:  # diagonal, up, left: the first minimum wins
                    best = val
            D[i, j] = c[i, j] + best
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            options = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
            values = [D[q] for q in options]
            i, j = options[values.index(min(values))]
        path.append((i, j))
    return float(D[n - 1, m - 1]), np.array(path[::-1], dtype=np.int64).reshape(-1, 2)


# Row counts around the 4-row blocks of the numba kernel (row 0 alone, then blocks of 4, then
# leftovers) and column counts around its 4-column minimum and prologue/epilogue.
ROWS = [1, 2, 3, 4, 5, 6, 8, 9, 12, 13]
COLS = [1, 2, 3, 4, 5, 6, 7, 11, 16]


def random_costs(rng: np.random.Generator, n: int, m: int, kind: str) -> np.ndarray:
    if kind == "float":
        return rng.random((n, m), dtype=np.float32)
    # Small integers: ties everywhere, so tie-breaking decides the path.
    return rng.integers(0, 3, size=(n, m)).astype(np.float32)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def assert_valid_path(path: np.ndarray, n: int, m: int) -> None:
    assert path.dtype == np.int64
    assert path.ndim == 2 and path.shape[1] == 2
    assert tuple(path[0]) == (0, 0)
    assert tuple(path[-1]) == (n - 1, m - 1)
    steps = np.diff(path, axis=0)
    assert ((steps == 0) | (steps == 1)).all(), "steps of at most 1, never backwards"
    assert (steps.sum(axis=1) >= 1).all(), "every step moves"
    assert (path[:, 0] >= 0).all() and (path[:, 0] < n).all()
    assert (path[:, 1] >= 0).all() and (path[:, 1] < m).all()


def path_cost(cost: np.ndarray, path: np.ndarray) -> float:
    # Same order of float64 additions as the DP, so the result is exact.
    total = 0.0
    for i, j in path:
        total += float(cost[i, j])
    return total


# ------------------------------------------------------------------------------------------
# dtw
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["float", "ties"])
def test_dtw_equals_reference_on_many_shapes(kind):
    rng = np.random.default_rng(1 if kind == "float" else 2)
    for n in ROWS:
        for m in COLS:
            cost = random_costs(rng, n, m, kind)
            total, path = dtw(cost)
            ref_total, ref_path = dtw_reference(cost)
            assert isinstance(total, float)
            assert total == ref_total, (n, m)
            np.testing.assert_array_equal(path, ref_path, err_msg=f"{n}x{m}")
            assert_valid_path(path, n, m)
            assert path_cost(cost, path) == total


def test_dtw_equals_reference_on_larger_random_shapes():
    rng = np.random.default_rng(3)
    for _ in range(12):
        n, m = (int(v) for v in rng.integers(1, 40, size=2))
        cost = random_costs(rng, n, m, "ties" if rng.random() < 0.5 else "float")
        total, path = dtw(cost)
        ref_total, ref_path = dtw_reference(cost)
        assert total == ref_total
        np.testing.assert_array_equal(path, ref_path)


def test_dtw_trivial_shapes():
    total, path = dtw(np.array([[0.25]], dtype=np.float32))
    assert total == 0.25
    np.testing.assert_array_equal(path, [[0, 0]])

    row = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    total, path = dtw(row)
    assert total == 6.0
    np.testing.assert_array_equal(path, [[0, 0], [0, 1], [0, 2]])

    total, path = dtw(row.T.copy())
    assert total == 6.0
    np.testing.assert_array_equal(path, [[0, 0], [1, 0], [2, 0]])


def test_dtw_tie_break_order_diagonal_then_up_then_left():
    # All-zero costs: every predecessor ties.  Read from the end, each cell's predecessor is
    # the diagonal one whenever it exists, so the extra rows/columns are absorbed at the start,
    # along the border.
    total, path = dtw(np.zeros((4, 2), dtype=np.float32))
    assert total == 0.0
    np.testing.assert_array_equal(path, [[0, 0], [1, 0], [2, 0], [3, 1]])
    _, path = dtw(np.zeros((2, 4), dtype=np.float32))
    np.testing.assert_array_equal(path, [[0, 0], [0, 1], [0, 2], [1, 3]])
    # Up before left: cell (2, 2) of this matrix has D[1, 1] = 1 (diagonal) and
    # D[1, 2] = D[2, 1] = 0 (up and left tie), so the path comes from above.
    cost = np.array([[0, 0, 5], [0, 1, 0], [5, 0, 0]], dtype=np.float32)
    total, path = dtw(cost)
    assert total == 0.0
    np.testing.assert_array_equal(path, [[0, 0], [0, 1], [1, 2], [2, 2]])
    np.testing.assert_array_equal(dtw_reference(cost)[1], path)


@pytest.mark.slow
def test_dtw_accepts_float64_int_and_non_contiguous_input():
    rng = np.random.default_rng(4)
    cost32 = rng.random((9, 14), dtype=np.float32)
    total, path = dtw(cost32)
    total64, path64 = dtw(cost32.astype(np.float64))
    assert total64 == total
    np.testing.assert_array_equal(path64, path)
    total_t, path_t = dtw(cost32.T.copy().T)  # Fortran-ordered view of the same values
    assert total_t == total
    np.testing.assert_array_equal(path_t, path)
    ints = rng.integers(0, 5, size=(6, 7))
    assert dtw(ints)[0] == dtw_reference(ints)[0]


@pytest.mark.slow
def test_dtw_matches_tslearn():
    from tslearn import metrics

    rng = np.random.default_rng(5)
    for n, m, kind in [
        (1, 1, "float"),
        (1, 7, "float"),
        (7, 1, "ties"),
        (17, 23, "float"),
        (30, 19, "ties"),
        (64, 64, "float"),
    ]:
        cost = random_costs(rng, n, m, kind)
        ts_path, ts_value = metrics.dtw_path_from_metric(cost, metric="precomputed")
        total, path = dtw(cost)
        # tslearn (0.10, pinned in the dev extra) returns the accumulated cost for
        # metric="precomputed", no square root: the convention align.dtw documents.
        assert float(ts_value) == pytest.approx(total, rel=1e-12)
        np.testing.assert_array_equal(path, np.asarray(ts_path, dtype=np.int64))


def test_dtw_reuses_workspace_across_sizes_and_threads():
    rng = np.random.default_rng(6)
    costs = [random_costs(rng, n, m, "float") for n, m in [(300, 280), (7, 5), (120, 333), (1, 9)]]
    expected = [dtw(c) for c in costs]
    # Big then small then big again in this thread ...
    for c, (total, path) in zip(costs + costs[::-1], expected + expected[::-1]):
        got_total, got_path = dtw(c)
        assert got_total == total
        np.testing.assert_array_equal(got_path, path)
    # ... and concurrently (the kernel releases the GIL; tables come from a shared pool).
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(dtw, costs * 4))
    for (total, path), (got_total, got_path) in zip(expected * 4, results):
        assert got_total == total
        np.testing.assert_array_equal(got_path, path)


def test_dtw_on_aligned_embeddings_follows_the_warp():
    # The trainee repeats some gold clips; the path must map every trainee clip to its source.
    rng = np.random.default_rng(7)
    gold = unit_rows(np.cumsum(rng.standard_normal((40, 32)), axis=0))
    source = np.sort(np.concatenate([np.arange(40), rng.choice(40, size=15)]))
    trainee = gold[source]
    total, path = dtw(cost_matrix(gold, trainee))
    for i, j in path:
        assert i == source[j]
    assert total < 1e-3


# ------------------------------------------------------------------------------------------
# invalid input
# ------------------------------------------------------------------------------------------

BAD_SHAPES = [
    np.zeros(5, dtype=np.float32),
    np.zeros((2, 3, 4), dtype=np.float32),
    np.zeros((0, 4), dtype=np.float32),
    np.zeros((4, 0), dtype=np.float32),
    np.float32(1.0),
]
ALL_DTW = [dtw, dtw_reference]


@pytest.mark.parametrize("fn", ALL_DTW, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", BAD_SHAPES, ids=["1d", "3d", "no-rows", "no-cols", "scalar"])
def test_invalid_shapes_raise(fn, bad):
    with pytest.raises(ValueError):
        fn(bad)


@pytest.mark.parametrize("fn", ALL_DTW, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_costs_raise_wherever_they_are(fn, value):
    # 10 x 9: row 0 alone, rows 1-8 in two blocks of four, row 9 left over; every row probed.
    cells = [(0, 0), (0, 8), (1, 0), (2, 5), (4, 8), (5, 3), (8, 8), (9, 0), (9, 8)]
    for i, j in cells:
        cost = np.ones((10, 9), dtype=np.float32)
        cost[i, j] = value
        with pytest.raises(ValueError, match="NaN or infinite"):
            fn(cost)
    # Narrow matrix (fewer than 4 columns: the row-at-a-time path).
    cost = np.ones((6, 2), dtype=np.float64)
    cost[3, 1] = value
    with pytest.raises(ValueError):
        fn(cost)


def test_huge_finite_costs_are_accepted():
    # The finiteness probe must not overflow on large finite values.
    big = np.finfo(np.float32).max
    cost = np.full((9, 7), big, dtype=np.float32)
    total, path = dtw(cost)
    assert total == dtw_reference(cost)[0]
    assert np.isfinite(total)
    huge = np.full((9, 7), 1e300)
    assert dtw(huge)[0] == dtw_reference(huge)[0]


def test_non_numeric_cost_raises():
    with pytest.raises(ValueError):
        dtw(np.array([["a", "b"], ["c", "d"]]))


def test_valid_call_after_invalid_one_still_works():
    cost = np.ones((6, 6), dtype=np.float32)
    cost[2, 2] = np.nan
    with pytest.raises(ValueError):
        dtw(cost)
    cost[2, 2] = 1.0
    assert dtw(cost)[0] == 6.0


# ------------------------------------------------------------------------------------------
# cost matrix
# ------------------------------------------------------------------------------------------


def test_cost_matrix_matches_naive_computation():
    rng = np.random.default_rng(13)
    gold = unit_rows(rng.standard_normal((17, 48)))
    trainee = unit_rows(rng.standard_normal((23, 48)))
    cost = cost_matrix(gold, trainee)
    assert cost.dtype == np.float32 and cost.shape == (17, 23)
    naive = np.empty((17, 23))
    for i in range(17):
        for j in range(23):
            naive[i, j] = 1.0 - sum(float(a) * float(b) for a, b in zip(gold[i], trainee[j]))
    np.testing.assert_allclose(cost, naive, atol=1e-5)


def test_cost_matrix_clips_negatives_and_converts_dtype():
    rng = np.random.default_rng(14)
    x = unit_rows(rng.standard_normal((50, 384)))
    cost = cost_matrix(x, x)  # identical clips: 1 - (1 +- eps)
    assert (cost >= 0).all()
    assert np.abs(np.diag(cost)).max() < 1e-5
    cost64 = cost_matrix(x.astype(np.float64), x.astype(np.float64))
    assert cost64.dtype == np.float32
    np.testing.assert_allclose(cost64, cost, atol=1e-6)
    # Opposite vectors give distance 2.
    assert cost_matrix(x[:1], -x[:1])[0, 0] == pytest.approx(2.0, abs=1e-5)


def test_cost_matrix_keeps_nan_so_dtw_rejects_it():
    rng = np.random.default_rng(15)
    gold = unit_rows(rng.standard_normal((6, 16)))
    trainee = unit_rows(rng.standard_normal((7, 16)))
    gold[2, 3] = np.nan
    cost = cost_matrix(gold, trainee)
    assert np.isnan(cost[2]).all() and np.isfinite(np.delete(cost, 2, axis=0)).all()
    with pytest.raises(ValueError, match="NaN or infinite"):
        dtw(cost)


def test_cost_matrix_rejects_bad_shapes():
    g = np.ones((4, 8), dtype=np.float32)
    with pytest.raises(ValueError, match=r"dimension mismatch.*8.*6"):
        cost_matrix(g, np.ones((5, 6), dtype=np.float32))
    with pytest.raises(ValueError):
        cost_matrix(np.ones(8, dtype=np.float32), g)
    with pytest.raises(ValueError):
        cost_matrix(g, np.ones((2, 4, 8), dtype=np.float32))
    with pytest.raises(ValueError):
        cost_matrix(np.ones((0, 8), dtype=np.float32), g)
    with pytest.raises(ValueError):
        cost_matrix(g, np.ones((3, 0), dtype=np.float32))


# ------------------------------------------------------------------------------------------
# module hygiene
# ------------------------------------------------------------------------------------------


def test_module_imports_neither_torch_nor_dagster():
    # Load align.py on its own (not through the package __init__, which other modules share).
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("align_alone", {str(Path(align.__file__))!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        heavy = sorted(m for m in ("torch", "dagster", "tslearn") if m in sys.modules)
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

"""The clip index: exact and approximate search, versions on disk, opening them."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from sopilot_pipelines.core import synth
from sopilot_pipelines.core.index import (
    APPROX_MIN_CLIPS,
    OpenIndex,
    build_index,
    gpu_available,
    open_version,
    write_version,
)


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n_videos, d, seed, steps=20):
    """Clip-like rows: step centroids + a per-video offset + a smooth walk inside each step + noise.
    Returns (vectors, video number of each row)."""
    rng = np.random.default_rng(seed)
    centroids = unit(np.random.default_rng(99).standard_normal((steps, d)))  # same steps for every seed
    rows, video = [], []
    for v in range(n_videos):
        offset = 0.35 * unit(rng.standard_normal((1, d)))
        for s in range(steps):
            length = int(rng.integers(4, 16))
            walk = np.cumsum(0.1 * unit(rng.standard_normal((length, d))), axis=0)
            rows.append(centroids[s] + offset + walk + 0.25 * unit(rng.standard_normal((length, d))))
            video += [v] * length
    return unit(np.concatenate(rows)), np.array(video)


def exact_top(x, queries, k=5):
    return np.argsort(-(queries @ x.T), axis=1)[:, :k]


def recall(approx, exact):
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def test_flat_matches_brute_force():
    rng = np.random.default_rng(0)
    x, q = unit(rng.standard_normal((3000, 64))), unit(rng.standard_normal((25, 64)))
    index, info = build_index(x)
    assert info["kind"] == "flat" and info["nprobe"] is None and info["recall_at_5"] == 1.0
    assert info["ntotal"] == 3000 and info["dim"] == 64
    sims, rows = index.search(q, 5)
    assert np.array_equal(rows, exact_top(x, q))
    assert np.allclose(sims, np.take_along_axis(q @ x.T, rows, axis=1), atol=1e-5)


@pytest.mark.slow
def test_ivf_recall_on_embeddings(embedded):
    """Real builtin embeddings of the synthetic videos (one variant held out as queries), plus a
    larger clip-like synthetic set (the real ones are only a few hundred clips)."""
    held_out = "two_errors"
    real = [embedded(name).embeddings for name in synth.VARIANTS if name != held_out]
    real_q = embedded(held_out).embeddings
    d = real_q.shape[1]
    syn, syn_video = clustered(40, d, seed=1)
    syn_q = clustered(3, d, seed=2)[0]  # new videos of the same steps
    x = np.concatenate(real + [syn])
    groups = np.concatenate([np.full(len(e), -1 - i) for i, e in enumerate(real)] + [syn_video])

    index, info = build_index(x, approx_min_clips=1000, groups=groups)
    assert info["kind"] == "ivf" and info["ntotal"] == len(x) and info["dim"] == d
    assert info["nlist"] >= 2 and 1 <= info["nprobe"] <= info["nlist"]
    assert info["recall_at_5"] >= 0.95 and info["calibration_queries"] == 500
    for queries in (real_q, syn_q):  # checked independently of the calibration
        _, rows = index.search(queries, 5)
        assert recall(rows, exact_top(x, queries)) >= 0.95

    # the real embeddings alone are enough for a small IVF too
    x = np.concatenate(real)
    index, info = build_index(x, approx_min_clips=100, groups=groups[groups < 0])
    assert info["kind"] == "ivf" and info["recall_at_5"] >= 0.95
    _, rows = index.search(real_q, 5)
    assert recall(rows, exact_top(x, real_q)) >= 0.95


def test_small_and_empty_inputs():
    index, info = build_index(np.zeros((0, 1), np.float32))
    assert info["kind"] == "flat" and info["ntotal"] == 0 and info["dim"] == 1
    assert build_index(np.zeros((0, 685), np.float32))[1]["dim"] == 685
    # asked for IVF but too few vectors for two lists: exact
    x = unit(np.random.default_rng(0).standard_normal((50, 16)))
    index, info = build_index(x, approx_min_clips=1)
    assert info["kind"] == "flat" and index.ntotal == 50


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("approx_min_clips", [APPROX_MIN_CLIPS, 500])
def test_version_round_trip(tmp_path, approx_min_clips):
    x, video = clustered(8, 48, seed=3)
    ids = np.stack([video + 10, np.concatenate([np.arange(c) for c in np.bincount(video)])], axis=1)
    final = tmp_path / "task" / "v1"
    final.parent.mkdir()
    host = socket.gethostname()
    stale = [
        final.with_name(f".v1.{host}.{_dead_pid()}.tmp"),
        final.with_name(f".v1.{host}.{os.getpid()}.tmp"),
        final,
    ]  # crashed writers' temp dirs, and a half-moved leftover of this same build
    for s in stale:
        s.mkdir()
        (s / "index.faiss").write_bytes(b"junk")

    assert write_version(final, x, ids, {"task_id": "t", "videos": 8}, approx_min_clips=approx_min_clips) == final
    assert sorted(p.name for p in final.parent.iterdir()) == ["v1"]
    assert sorted(p.name for p in final.iterdir()) == ["ids.npy", "index.faiss", "meta.json"]
    meta = json.loads((final / "meta.json").read_text())
    assert meta["task_id"] == "t" and meta["index"]["kind"] == ("ivf" if approx_min_clips == 500 else "flat")

    opened = open_version(final)
    assert isinstance(opened, OpenIndex) and opened.device == "cpu" and opened.ntotal == len(x)
    assert np.array_equal(opened.ids, ids) and opened.meta == meta
    if meta["index"]["kind"] == "ivf":
        assert opened.index.nprobe == meta["index"]["nprobe"]
    for row in (0, 7, len(x) - 1):
        assert np.allclose(opened.vector_of(*ids[row]), x[row], atol=1e-6)
        sims, rows = opened.search(x[row], 3)
        assert rows[0, 0] == row and sims[0, 0] == pytest.approx(1.0, abs=1e-4)
    assert opened.vector_of(10, 10_000) is None and opened.vector_of(99, 0) is None

    # a new version next to it leaves the old one readable, both open and reopened
    x2 = unit(np.random.default_rng(5).standard_normal((40, 48)))
    ids2 = np.stack([np.full(40, 77), np.arange(40)], axis=1)
    write_version(final.with_name("v2"), x2, ids2, {"task_id": "t"})
    for old in (opened, open_version(final)):
        assert np.allclose(old.vector_of(*ids[5]), x[5], atol=1e-6) and old.vector_of(77, 0) is None
    new = open_version(final.with_name("v2"))
    assert new.ntotal == 40 and np.allclose(new.vector_of(77, 3), x2[3], atol=1e-6)


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    from sopilot_pipelines.core import index as index_mod

    def boom(*a, **kw):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(index_mod, "build_index", boom)
    with pytest.raises(RuntimeError):
        write_version(tmp_path / "v1", np.ones((3, 4), np.float32), np.zeros((3, 2)), {})
    assert list(tmp_path.iterdir()) == []


def test_empty_version_and_search_padding(tmp_path):
    path = write_version(tmp_path / "v1", np.zeros((0, 1), np.float32), np.zeros((0, 2), np.int64), {"videos": 0})
    opened = open_version(path)
    assert opened.ntotal == 0 and opened.ids.shape == (0, 2) and opened.meta["index"]["ntotal"] == 0
    sims, rows = opened.search(np.ones((1, 1), np.float32), 5)
    assert rows.tolist() == [[-1] * 5] and np.all(np.isneginf(sims))
    assert opened.vector_of(1, 0) is None

    x = unit(np.random.default_rng(0).standard_normal((3, 8)))
    opened = open_version(write_version(tmp_path / "v2", x, np.array([[1, 0], [1, 1], [2, 0]]), {}))
    sims, rows = opened.search(x[:2], 5)  # more asked than stored: padded
    assert rows.shape == (2, 5) and (rows[:, 3:] == -1).all() and set(rows[0, :3]) == {0, 1, 2}
    with pytest.raises(ValueError):
        opened.search(np.ones((1, 4), np.float32), 1)


def test_an_index_opens_on_the_device_faiss_can_use_and_finds_the_same_neighbours(tmp_path):
    import faiss

    # a GPU build of faiss that sees a GPU: the index goes there; faiss-cpu (CI): never
    assert gpu_available() == (hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0)
    x = unit(np.random.default_rng(0).standard_normal((50, 8)))
    opened = open_version(write_version(tmp_path / "v", x, np.stack([np.ones(50), np.arange(50)], 1), {}))
    assert opened.device == ("gpu" if gpu_available() else "cpu")
    sims, rows = opened.search(x[:5], 4)
    np.testing.assert_array_equal(rows, np.argsort(-(x[:5] @ x.T), axis=1, kind="stable")[:, :4])

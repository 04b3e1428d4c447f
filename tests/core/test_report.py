"""The PDF report: rendered to PNG with poppler (pdftoppm) and read back as text (pdftotext)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sopilot_pipelines.core import synth
from sopilot_pipelines.core.embedders import get_embedder
from sopilot_pipelines.core.embedding import embed_video
from sopilot_pipelines.core.report import MAX_FRAME_ROWS, render_report
from sopilot_pipelines.core.scoring import score

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("pdftoppm", "pdftotext", "pdfinfo")), reason="needs poppler-utils"
)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    suite = synth.render_suite(tmp_path_factory.mktemp("report_suite"), variants=("two_errors",))
    builtin = get_embedder("builtin")
    result = score(
        embed_video(suite["gold"].path, embedder=builtin), embed_video(suite["two_errors"].path, embedder=builtin)
    ).result
    return suite, result


def _video(video_id: int, rendered, raw_path=None) -> dict:
    return {
        "video_id": video_id,
        "task_id": "t",
        "operator_id_hash": "abc",
        "embedding_model": "builtin:v1",
        "duration_sec": rendered.duration_sec,
        "raw_path": str(raw_path or rendered.path),
    }


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def _page_images(pdf: Path, tmp: Path) -> list[np.ndarray]:
    """Every page as an (H, W, 3) uint8 array, at 50 dpi."""
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp / "page")], check=True, capture_output=True)
    files = sorted(tmp.glob("page*.png"))
    assert files
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def _warm_fraction(img: np.ndarray) -> float:
    """Share of pixels clearly redder than blue: the synthetic bench and the hand's skin."""
    rgb = img.astype(int)
    return float(np.mean(rgb[..., 0] - rgb[..., 2] > 40))


def _render(tmp_path, job, gold_path=None, trainee_path=None, result=None) -> Path:
    suite, base = job
    return render_report(
        tmp_path / "report.pdf",
        "score_20990101_000000_abcdef",
        result or base,
        _video(1, suite["gold"], gold_path),
        _video(2, suite["two_errors"], trainee_path),
    )


@pytest.mark.slow
def test_report_content_pages_and_pixels(tmp_path, job):
    _, result = job
    assert 1 <= len(result["deviations"]) <= 3
    pdf = _render(tmp_path, job)
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert _pages(pdf) <= 2

    text = _text(pdf)
    assert "task t" in text and "score_20990101_000000_abcdef" in text
    assert "gold.mp4" in text and "trainee_two_errors.mp4" in text and "abc" in text and "builtin:v1" in text
    assert f"{result['score']:.1f}" in text
    assert result["decision"].replace("_", " ").upper() in text
    for d in result["deviations"]:
        assert d["type"] in text
    assert "Alignment" in text and "Frames at each deviation" in text
    if any(d["trainee_time"]["start_sec"] is None for d in result["deviations"]):
        assert "not performed" in text
    assert "not available" not in text

    pages = _page_images(pdf, tmp_path)
    first = pages[0]
    grey = first.mean(axis=2)
    assert grey.std() > 20  # not a blank page
    assert np.mean(grey < 240) > 0.05  # a meaningful share of it is drawn on
    # the deviation frames (last page): the scene's bench and skin are strongly red-over-blue
    assert _warm_fraction(pages[-1]) > 0.03


@pytest.mark.slow
def test_report_with_missing_videos_still_renders(tmp_path, job):
    ok = _render(tmp_path / "ok", job)
    missing = _render(
        tmp_path / "missing", job, gold_path=tmp_path / "gone.mp4", trainee_path=tmp_path / "also_gone.mp4"
    )
    assert missing.read_bytes()[:4] == b"%PDF" and _pages(missing) <= 2
    text = _text(missing)
    assert "video not available" in text
    assert "gold video not available: file not found (gone.mp4)" in text
    assert "trainee video not available: file not found (also_gone.mp4)" in text
    (tmp_path / "ok_png").mkdir()
    (tmp_path / "missing_png").mkdir()
    warm_ok = sum(_warm_fraction(p) for p in _page_images(ok, tmp_path / "ok_png"))
    warm_missing = sum(_warm_fraction(p) for p in _page_images(missing, tmp_path / "missing_png"))
    assert warm_missing < warm_ok / 2  # the frames are gone, placeholders instead


@pytest.mark.slow
def test_report_with_unreadable_video_and_many_deviations(tmp_path, job):
    _, result = job
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    many = dict(result, deviations=result["deviations"] * (MAX_FRAME_ROWS // len(result["deviations"]) + 2))
    extra = len(many["deviations"]) - MAX_FRAME_ROWS
    pdf = _render(tmp_path, job, trainee_path=junk, result=many)
    text = _text(pdf)
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert f"and {extra} more deviations" in text
    assert "no frame at" in text  # ffmpeg could not read the trainee file: placeholders, not a crash


def test_report_module_imports_no_matplotlib():
    code = "import sys, sopilot_pipelines.core.report; assert 'matplotlib' not in sys.modules; assert 'reportlab' not in sys.modules"
    subprocess.run([__import__("sys").executable, "-c", code], check=True)

"""The supervisor's PDF report of one score job (reportlab pages and vector drawings).

Page 1: header, score and decision, the gold-vs-trainee step timeline, the deviations table and
the alignment path plot. Then, for each deviation (at most ``MAX_FRAME_ROWS``), a gold frame beside
the trainee frame at the matching times, cut from the raw videos with the ffmpeg binary. A video
file that is missing or unreadable only costs its frames (a grey placeholder and a note).
"""

from __future__ import annotations

import io
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from .files import atomic_write_bytes
from .sop import deviation_step, step_title

_DECISION_COLOURS = {"pass": "#1b7f3b", "needs_review": "#b8860b", "retrain": "#c05000", "fail": "#b00020"}
MAX_FRAME_ROWS = 6
FRAME_WIDTH_PX = 240


# one colour per step (matplotlib's tab10 palette)
STEP_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
DEVIATION_RED = "#b00020"


def _timeline(result: dict, gold_duration: float, trainee_duration: float, width: float, height: float):
    """Both step timelines as a vector drawing: gold on top (its steps, numbered from 1), the
    trainee below (each clip in the colour of the gold step it matched; grey: none), deviations red."""
    from reportlab.graphics.shapes import Drawing, Line, Rect, String
    from reportlab.lib import colors

    d = Drawing(width, height)
    left, right, bottom = 38.0, 6.0, 22.0
    lane = (height - bottom - 10) / 2.6
    span = max(gold_duration, trainee_duration, 1e-6)
    x_of = lambda t: left + (width - left - right) * min(max(t, 0.0), span) / span  # noqa: E731
    y_gold, y_trainee = bottom + lane * 1.4, bottom + lane * 0.2
    n = result["clip_count"]
    bounds = result["step_boundaries"]["gold"]
    scale = gold_duration / max(n["gold"], 1)
    for k in range(len(bounds) - 1):
        a, b = x_of(bounds[k] * scale), x_of(bounds[k + 1] * scale)
        d.add(Rect(a, y_gold, b - a, lane, fillColor=colors.HexColor(STEP_COLOURS[k % 10]), strokeColor=colors.white))
        d.add(
            String(
                (a + b) / 2, y_gold + lane / 2 - 3, str(k + 1), fontSize=7, fillColor=colors.white, textAnchor="middle"
            )
        )
    labels = result["step_map_preview"]["trainee"]
    dt = trainee_duration / max(len(labels), 1)
    for i, lbl in enumerate(labels):
        colour = STEP_COLOURS[lbl % 10] if lbl >= 0 else "#cccccc"
        a, b = x_of(i * dt), x_of((i + 1) * dt)
        d.add(Rect(a, y_trainee, b - a, lane, fillColor=colors.HexColor(colour), strokeColor=None))
    red = colors.HexColor(DEVIATION_RED)
    for dev in result["deviations"]:
        t, g = dev["trainee_time"], dev["gold_time"]
        if t["start_sec"] is not None:
            d.add(
                Line(
                    x_of(t["start_sec"]),
                    y_trainee - 4,
                    x_of(t["end_sec"]),
                    y_trainee - 4,
                    strokeColor=red,
                    strokeWidth=3,
                )
            )
        if g["start_sec"] is not None:
            end = max(g["end_sec"], g["start_sec"] + 0.3)
            d.add(
                Line(
                    x_of(g["start_sec"]),
                    y_gold + lane + 4,
                    x_of(end),
                    y_gold + lane + 4,
                    strokeColor=red,
                    strokeWidth=3,
                )
            )
    for y, name in ((y_gold, "gold"), (y_trainee, "trainee")):
        d.add(String(left - 4, y + lane / 2 - 3, name, fontSize=7, textAnchor="end"))
    _time_axis(d, x_of, span, bottom - 2)
    d.add(String(left, 2, "seconds (grey: matches no gold step; red: deviation)", fontSize=7, fillColor=colors.grey))
    return d


def _time_axis(d, x_of, span: float, y: float, label=lambda v: f"{v:g}") -> None:
    from reportlab.graphics.shapes import Line, String
    from reportlab.lib import colors

    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1e9) if span / s <= 10)
    d.add(Line(x_of(0), y, x_of(span), y, strokeColor=colors.grey, strokeWidth=0.5))
    v = 0.0
    while v <= span + 1e-9:
        d.add(Line(x_of(v), y, x_of(v), y - 2, strokeColor=colors.grey, strokeWidth=0.5))
        d.add(String(x_of(v), y - 9, label(v), fontSize=6, textAnchor="middle"))
        v += step


def _alignment(result: dict, width: float, height: float):
    """The (sampled) global alignment path as a vector drawing: gold clip over trainee clip, its
    points coloured by similarity (red low, green high), the gold step boundaries dashed."""
    from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, String
    from reportlab.lib import colors

    d = Drawing(width, height)
    left, bottom, top, right = 30.0, 26.0, 8.0, 8.0
    n = result["clip_count"]
    tx, gy = max(n["trainee"] - 1, 1), max(n["gold"] - 1, 1)
    x_of = lambda c: left + (width - left - right) * c / tx  # noqa: E731
    y_of = lambda c: bottom + (height - bottom - top) * c / gy  # noqa: E731
    d.add(
        Rect(
            left,
            bottom,
            width - left - right,
            height - bottom - top,
            fillColor=None,
            strokeColor=colors.grey,
            strokeWidth=0.5,
        )
    )
    for b in result["step_boundaries"]["gold"][1:-1]:
        d.add(
            Line(
                left,
                y_of(b),
                width - right,
                y_of(b),
                strokeColor=colors.HexColor("#999999"),
                strokeWidth=0.6,
                strokeDashArray=[3, 2],
            )
        )
    d.add(Line(x_of(0), y_of(0), x_of(tx), y_of(gy), strokeColor=colors.HexColor("#dddddd"), strokeWidth=0.8))
    pts = result.get("alignment_preview") or []
    if pts:
        xy = [v for p in pts for v in (x_of(p["trainee_clip"]), y_of(p["gold_clip"]))]
        d.add(PolyLine(xy, strokeColor=colors.HexColor("#1f4e9c"), strokeWidth=1.2))
        for p in pts:
            s = min(max(float(p["similarity"]), 0.0), 1.0)
            fill = colors.Color(min(1.0, 2 * (1 - s)), min(1.0, 2 * s) * 0.8, 0.15)
            d.add(Circle(x_of(p["trainee_clip"]), y_of(p["gold_clip"]), 1.6, fillColor=fill, strokeColor=None))
    _time_axis(d, x_of, tx, bottom, label=lambda v: f"{v:.0f}")
    d.add(String(left, 4, "trainee clip; up: gold clip (dashed: step boundaries; grey: uniform pace;", fontSize=6))
    d.add(String(left, -3, "points: similarity, red low to green high)", fontSize=6))
    return d


def _video_problem(video: dict) -> str | None:
    """Why frames cannot be cut from this video, or None."""
    p = video.get("raw_path")
    if not p:
        return "no file recorded"
    if not os.path.isfile(p):
        return f"file not found ({os.path.basename(str(p))})"
    if os.path.getsize(p) == 0:
        return f"file is empty ({os.path.basename(str(p))})"
    return None


def _frame_jpeg(path: str, t: float, width: int = FRAME_WIDTH_PX) -> bytes | None:
    """One frame at t seconds, scaled to `width` pixels wide, as JPEG (the PDF embeds it as it is,
    where a PNG is decoded and compressed again); None when ffmpeg gives none."""
    from .video import _ffmpeg, _ffmpeg_url

    cmd = [
        _ffmpeg(),
        "-nostdin",
        "-v",
        "error",
        "-ss",
        f"{max(t, 0.0):.3f}",
        "-i",
        _ffmpeg_url(path),
        "-frames:v",
        "1",
        "-vf",
        f"scale={width}:-2",
        "-q:v",
        "3",
        "-f",
        "image2pipe",
        "-vcodec",
        "mjpeg",
        "-",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    data = out.stdout
    return data if out.returncode == 0 and data.startswith(b"\xff\xd8") else None


def _mid(t: dict, duration: float | None) -> float | None:
    if t["start_sec"] is None:
        return None
    mid = (t["start_sec"] + t["end_sec"]) / 2
    if duration:
        mid = min(mid, max(float(duration) - 0.1, 0.0))  # the last instant of a video has no frame
    return mid


def _grid_table(rows: list, col_widths: list[float]):
    """A table of 8 pt text in a thin grey grid, its first row a bold, shaded header repeated on each page."""
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=col_widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
            ]
        )
    )
    return table


def _frames_section(result: dict, gold: dict, trainee: dict, styles) -> list:
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image, Paragraph, Table, TableStyle

    devs = result["deviations"]
    if not devs:
        return []
    cell_w, cell_h = 62 * mm, 42 * mm
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    centred = small.clone("centred", alignment=1)

    def placeholder(text: str):
        box = Table(
            [[Paragraph(f"<font color='#555555'>{text}</font>", centred)]],
            colWidths=[cell_w],
            rowHeights=[cell_h * 0.75],
        )
        box.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#d9d9d9")),
                    ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ]
            )
        )
        return box

    problems = {"gold": _video_problem(gold), "trainee": _video_problem(trainee)}

    def frame(side: str, video: dict, t: dict):
        at = _mid(t, video.get("duration_sec"))
        if at is None:
            return placeholder("not performed" if side == "trainee" else "no gold step")
        if problems[side]:
            return placeholder("video not available")
        jpeg = _frame_jpeg(str(video["raw_path"]), at)
        if jpeg is None:
            return placeholder(f"no frame at {at:.1f} s")
        iw, ih = ImageReader(io.BytesIO(jpeg)).getSize()
        w = cell_w
        h = w * ih / max(iw, 1)
        if h > cell_h:
            h, w = cell_h, cell_h * iw / max(ih, 1)
        return [Image(io.BytesIO(jpeg), width=w, height=h), Paragraph(f"at {at:.1f} s", small)]

    shown = devs[:MAX_FRAME_ROWS]
    # each frame is its own ffmpeg process: cut them side by side, not one after another
    with ThreadPoolExecutor(max_workers=4) as pool:
        cells = list(
            pool.map(
                lambda job: frame(*job),
                [(side, v, d[f"{side}_time"]) for d in shown for side, v in (("gold", gold), ("trainee", trainee))],
            )
        )
    rows = [["deviation", "gold", "trainee"]]
    for k, d in enumerate(shown):
        step = escape(deviation_step(d))
        rows.append(
            [
                Paragraph(
                    f"<b>{d['type']}</b><br/>step {step}<br/>gold {_span(d['gold_time'])}<br/>trainee {_span(d['trainee_time'])}",
                    small,
                ),
                cells[2 * k],
                cells[2 * k + 1],
            ]
        )
    table = _grid_table(rows, [44 * mm, cell_w + 4 * mm, cell_w + 4 * mm])
    out = [Paragraph("Frames at each deviation (middle of its time in each video)", styles["Heading3"]), table]
    notes = []
    if len(devs) > MAX_FRAME_ROWS:
        notes.append(f"and {len(devs) - MAX_FRAME_ROWS} more deviations (see the table above)")
    for side in ("gold", "trainee"):
        if problems[side]:
            notes.append(f"{side} video not available: {problems[side]}; its frames are not shown")
    out += [Paragraph(n, small) for n in notes]
    return out


def render_report(
    path: str | Path, job_id: str, result: dict, gold: dict, trainee: dict, requested_by: str | None = None
) -> Path:
    """Write the report atomically and return its path. ``gold`` / ``trainee``: catalog rows
    (their uploaded file names are shown); ``requested_by``: who asked for the score."""
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import CondPageBreak, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"SOPilot report {job_id}",
    )
    decision = result.get("decision", "")

    def name(v: dict) -> str:
        p = v.get("original_filename") or (os.path.basename(str(v["raw_path"])) if v.get("raw_path") else None)
        return f" ({escape(str(p))})" if p else ""

    provenance = result.get("provenance") or {}

    story = [
        Paragraph(f"SOPilot score report &mdash; task {escape(str(gold.get('task_id', '?')))}", styles["Title"]),
        Paragraph(
            f"Job {escape(job_id)} &middot; gold video {gold.get('video_id')}{name(gold)} vs trainee video "
            f"{trainee.get('video_id')}{name(trainee)} &middot; operator {escape(str(trainee.get('operator_id_hash') or '-'))} "
            f"&middot; embedder {escape(str(trainee.get('embedding_model') or '-'))} "
            f"&middot; requested by {escape(str(requested_by or '-'))} "
            + (f"&middot; SOP version {provenance['sop_version']} " if "sop_version" in provenance else "")
            + f"&middot; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            styles["Normal"],
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            f"<font size=28>{result['score']:.1f}</font>&nbsp;&nbsp;"
            f"<font size=18 color='{_DECISION_COLOURS.get(decision, '#000000')}'>{decision.replace('_', ' ').upper()}</font>",
            styles["Normal"],
        ),
        Spacer(1, 7 * mm),
        Paragraph("Steps: gold (top) and what the trainee did (bottom)", styles["Heading3"]),
        _timeline(
            result, float(gold.get("duration_sec") or 1), float(trainee.get("duration_sec") or 1), 180 * mm, 45 * mm
        ),
        Paragraph(
            "Gold steps: "
            + escape(
                "; ".join(
                    f"{step_title(st['index'], st['name'])} {st['start_sec']:.1f}-{st['end_sec']:.1f} s"
                    + (" (optional)" if st.get("optional") else "")
                    + (f" (any order: {st['group']})" if st.get("group") else "")
                    for st in result.get("gold_steps", [])
                )
            ),
            styles["BodyText"],
        ),
        Paragraph("Deviations", styles["Heading3"]),
    ]
    cell = styles["BodyText"].clone("cell", fontSize=8, leading=10)
    rows = [["type", "step", "gold time", "trainee time", "conf.", "reason"]]
    for d in result["deviations"]:
        rows.append(
            [
                d["type"],
                Paragraph(escape(deviation_step(d)), cell),
                _span(d["gold_time"]),
                _span(d["trainee_time"]),
                f"{d['confidence']:.2f}",
                Paragraph(escape(d["reason"]), styles["BodyText"]),
            ]
        )
    if len(rows) == 1:
        story.append(Paragraph("None: the trainee followed the procedure.", styles["Normal"]))
    else:
        table = _grid_table(rows, [32 * mm, 28 * mm, 22 * mm, 22 * mm, 12 * mm, 64 * mm])
        story.append(table)
    story += [
        CondPageBreak(70 * mm),
        Paragraph("Alignment path", styles["Heading3"]),
        _alignment(result, 110 * mm, 68 * mm),
    ]
    frames = _frames_section(result, gold, trainee, styles)
    if frames:
        story += [CondPageBreak(60 * mm), *frames]
    doc.build(story)
    return atomic_write_bytes(path, buf.getvalue())


def _span(t: dict) -> str:
    return "-" if t["start_sec"] is None else f"{t['start_sec']:.1f}-{t['end_sec']:.1f} s"

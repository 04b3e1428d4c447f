"""The supervisor's PDF report of one score job (reportlab pages, matplotlib figures).

Page 1: header, score and decision, the gold-vs-trainee step timeline, the deviations table and
the alignment path plot. Then, for each deviation (at most ``MAX_FRAME_ROWS``), a gold frame beside
the trainee frame at the matching times, cut from the raw videos with the ffmpeg binary. A video
file that is missing or unreadable only costs its frames (a grey placeholder and a note).
"""

from __future__ import annotations

import io
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from .files import atomic_write_bytes
from .sop import deviation_step, step_title

_DECISION_COLOURS = {"pass": "#1b7f3b", "needs_review": "#b8860b", "retrain": "#c05000", "fail": "#b00020"}
MAX_FRAME_ROWS = 6
FRAME_WIDTH_PX = 240


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _timeline_png(result: dict, gold_duration: float, trainee_duration: float) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 1.8), dpi=150)
    colours = plt.get_cmap("tab10")
    n = result["clip_count"]
    bounds = result["step_boundaries"]["gold"]
    scale_g = gold_duration / max(n["gold"], 1)
    for k in range(len(bounds) - 1):
        ax.barh(
            1, (bounds[k + 1] - bounds[k]) * scale_g, left=bounds[k] * scale_g, color=colours(k % 10), edgecolor="white"
        )
        ax.text(
            (bounds[k] + bounds[k + 1]) / 2 * scale_g, 1, str(k), ha="center", va="center", fontsize=7, color="white"
        )
    labels = result["step_map_preview"]["trainee"]
    dt = trainee_duration / max(len(labels), 1)
    for i, lbl in enumerate(labels):
        ax.barh(0, dt, left=i * dt, color=colours(lbl % 10) if lbl >= 0 else "#cccccc", edgecolor="none")
    for d in result["deviations"]:
        t = d["trainee_time"]
        if t["start_sec"] is not None:
            ax.plot([t["start_sec"], t["end_sec"]], [-0.5, -0.5], color="#b00020", lw=3)
        g = d["gold_time"]
        if g["start_sec"] is not None:
            ax.plot([g["start_sec"], max(g["end_sec"], g["start_sec"] + 0.3)], [1.5, 1.5], color="#b00020", lw=3)
    ax.set_yticks([0, 1], ["trainee", "gold"])
    ax.set_xlabel("seconds (grey: matches no gold step; red: deviation)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_ylim(-0.9, 1.9)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _alignment_png(result: dict) -> bytes:
    """The (sampled) global alignment path: gold clip over trainee clip, coloured by similarity,
    with the gold step boundaries as horizontal lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=150)
    pts = result.get("alignment_preview") or []
    n = result["clip_count"]
    for b in result["step_boundaries"]["gold"][1:-1]:
        ax.axhline(b, color="#999999", lw=0.6, ls="--")
    ax.plot([0, n["trainee"] - 1], [0, n["gold"] - 1], color="#dddddd", lw=0.8, label="uniform pace")
    if pts:
        x = [p["trainee_clip"] for p in pts]
        y = [p["gold_clip"] for p in pts]
        ax.plot(x, y, color="#1f4e9c", lw=1.2, label="alignment path")
        sc = ax.scatter(x, y, c=[p["similarity"] for p in pts], cmap="RdYlGn", vmin=0.0, vmax=1.0, s=9, zorder=3)
        cb = fig.colorbar(sc, ax=ax, pad=0.02)
        cb.set_label("similarity", fontsize=7)
        cb.ax.tick_params(labelsize=6)
    ax.set_xlim(0, max(n["trainee"] - 1, 1))
    ax.set_ylim(0, max(n["gold"] - 1, 1))
    ax.set_xlabel("trainee clip", fontsize=8)
    ax.set_ylabel("gold clip (dashed: step boundaries)", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper left", frameon=False)
    return _png(fig)


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


def _frame_png(path: str, t: float, width: int = FRAME_WIDTH_PX) -> bytes | None:
    """One frame at t seconds, scaled to `width` pixels wide, as PNG; None when ffmpeg gives none."""
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
        "-f",
        "image2pipe",
        "-vcodec",
        "png",
        "-",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    data = out.stdout
    return data if out.returncode == 0 and data.startswith(b"\x89PNG") else None


def _mid(t: dict, duration: float | None) -> float | None:
    if t["start_sec"] is None:
        return None
    mid = (t["start_sec"] + t["end_sec"]) / 2
    if duration:
        mid = min(mid, max(float(duration) - 0.1, 0.0))  # the last instant of a video has no frame
    return mid


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
        png = _frame_png(str(video["raw_path"]), at)
        if png is None:
            return placeholder(f"no frame at {at:.1f} s")
        iw, ih = ImageReader(io.BytesIO(png)).getSize()
        w = cell_w
        h = w * ih / max(iw, 1)
        if h > cell_h:
            h, w = cell_h, cell_h * iw / max(ih, 1)
        return [Image(io.BytesIO(png), width=w, height=h), Paragraph(f"at {at:.1f} s", small)]

    rows = [["deviation", "gold", "trainee"]]
    for d in devs[:MAX_FRAME_ROWS]:
        step = escape(deviation_step(d))
        rows.append(
            [
                Paragraph(
                    f"<b>{d['type']}</b><br/>step {step}<br/>gold {_span(d['gold_time'])}<br/>trainee {_span(d['trainee_time'])}",
                    small,
                ),
                frame("gold", gold, d["gold_time"]),
                frame("trainee", trainee, d["trainee_time"]),
            ]
        )
    table = Table(rows, colWidths=[44 * mm, cell_w + 4 * mm, cell_w + 4 * mm], repeatRows=1)
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

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import CondPageBreak, Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

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
        Image(
            io.BytesIO(
                _timeline_png(result, float(gold.get("duration_sec") or 1), float(trainee.get("duration_sec") or 1))
            ),
            width=180 * mm,
            height=45 * mm,
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
        table = Table(rows, colWidths=[32 * mm, 28 * mm, 22 * mm, 22 * mm, 12 * mm, 64 * mm], repeatRows=1)
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
        story.append(table)
    story += [
        CondPageBreak(70 * mm),
        Paragraph("Alignment path", styles["Heading3"]),
        Image(io.BytesIO(_alignment_png(result)), width=110 * mm, height=68 * mm, hAlign="LEFT"),
    ]
    frames = _frames_section(result, gold, trainee, styles)
    if frames:
        story += [CondPageBreak(60 * mm), *frames]
    doc.build(story)
    return atomic_write_bytes(path, buf.getvalue())


def _span(t: dict) -> str:
    return "-" if t["start_sec"] is None else f"{t['start_sec']:.1f}-{t['end_sec']:.1f} s"

"""The supervisor's PDF report of one score job (reportlab page, matplotlib figure)."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

from .files import atomic_write_bytes

_DECISION_COLOURS = {"pass": "#1b7f3b", "needs_review": "#b8860b", "retrain": "#c05000", "fail": "#b00020"}


def _timeline_png(result: dict, gold_duration: float, trainee_duration: float) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 2.1), dpi=150)
    colours = plt.get_cmap("tab10")
    n = result["clip_count"]
    bounds = result["step_boundaries"]["gold"]
    scale_g = gold_duration / max(n["gold"], 1)
    for k in range(len(bounds) - 1):
        ax.barh(1, (bounds[k + 1] - bounds[k]) * scale_g, left=bounds[k] * scale_g, color=colours(k % 10), edgecolor="white")
        ax.text((bounds[k] + bounds[k + 1]) / 2 * scale_g, 1, str(k), ha="center", va="center", fontsize=7, color="white")
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
    ax.set_xlabel("seconds (grey: matches no gold step; red: deviation)")
    ax.set_ylim(-0.9, 1.9)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def render_report(path: str | Path, job_id: str, result: dict, gold: dict, trainee: dict) -> Path:
    """Write the report atomically and return its path."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"SOPilot report {job_id}")  # fmt: skip
    decision = result.get("decision", "")
    story = [
        Paragraph(f"SOPilot score report &mdash; task {gold.get('task_id', '?')}", styles["Title"]),
        Paragraph(
            f"Job {job_id} &middot; gold video {gold.get('video_id')} vs trainee video {trainee.get('video_id')} "
            f"&middot; operator {trainee.get('operator_id_hash') or '-'} &middot; embedder {trainee.get('embedding_model') or '-'} "
            f"&middot; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            styles["Normal"],
        ),
        Spacer(1, 4 * mm),
        Paragraph(
            f"<font size=28>{result['score']:.1f}</font>&nbsp;&nbsp;"
            f"<font size=18 color='{_DECISION_COLOURS.get(decision, '#000000')}'>{decision.replace('_', ' ').upper()}</font>",
            styles["Normal"],
        ),
        Spacer(1, 8 * mm),
        Paragraph("Steps: gold (top) and what the trainee did (bottom)", styles["Heading3"]),
        Image(io.BytesIO(_timeline_png(result, float(gold.get("duration_sec") or 1), float(trainee.get("duration_sec") or 1))),
              width=180 * mm, height=52 * mm),  # fmt: skip
        Paragraph("Deviations", styles["Heading3"]),
    ]
    rows = [["type", "step", "gold time", "trainee time", "conf.", "reason"]]
    for d in result["deviations"]:
        rows.append([
            d["type"], "-" if d["gold_step"] is None else str(d["gold_step"]), _span(d["gold_time"]),
            _span(d["trainee_time"]), f"{d['confidence']:.2f}", Paragraph(d["reason"], styles["BodyText"]),
        ])  # fmt: skip
    if len(rows) == 1:
        story.append(Paragraph("None: the trainee followed the procedure.", styles["Normal"]))
    else:
        table = Table(rows, colWidths=[32 * mm, 10 * mm, 24 * mm, 24 * mm, 12 * mm, 78 * mm], repeatRows=1)
        table.setStyle(TableStyle([
            ("FONT", (0, 0), (-1, 0), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("GRID", (0, 0), (-1, -1), 0.3, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ]))  # fmt: skip
        story.append(table)
    doc.build(story)
    return atomic_write_bytes(path, buf.getvalue())


def _span(t: dict) -> str:
    return "-" if t["start_sec"] is None else f"{t['start_sec']:.1f}-{t['end_sec']:.1f} s"

"""Writing detected events: a DCASE-style table (CSV or TSV), JSON, Audacity label tracks and a
timeline PNG. Every file is written atomically (:mod:`tfaudio.io.atomic`)."""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence

import matplotlib
import numpy as np

from tfaudio.io.atomic import atomic_write_text
from tfaudio.io.strong_labels import COLUMNS, Event, format_strong_labels
from tfaudio.tasks.report_figures import display_labels, figure, save_png

__all__ = ["events_csv", "audacity_labels", "write_detections", "timeline_figure"]


def events_csv(events: Sequence[Event]) -> str:
    """``filename,onset,offset,event_label,score`` rows (comma-separated, quoted where needed)."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(list(COLUMNS) + ["score"])
    for e in events:
        w.writerow([e.file, f"{e.onset:.3f}", f"{e.offset:.3f}", e.label, f"{e.score:.4f}"])
    return out.getvalue()


def audacity_labels(events: Sequence[Event]) -> str:
    """An Audacity label track (File → Import → Labels): ``onset<TAB>offset<TAB>label (score)``."""
    return "".join(f"{e.onset:.6f}\t{e.offset:.6f}\t{e.label} ({e.score:.2f})\n" for e in events)


def timeline_figure(detection, path: str | os.PathLike, *, max_labels: int = 20) -> pathlib.Path:
    """A PNG of one recording's events: one row per class that has events (the most active first,
    at most ``max_labels``), bars from onset to offset shaded by score, over the class's highest score
    per time bin."""
    labels = list(detection.labels)
    totals = {label: 0.0 for label in labels}
    for e in detection.events:
        totals[e.label] += e.duration
    rows = [label for label in sorted(labels, key=lambda x: -totals[x]) if totals[label] > 0][:max_labels]
    rows = rows or labels[: min(len(labels), max_labels)]
    shown, _ = display_labels(rows)
    fig = figure(min(16, 6 + detection.duration / 60), 1 + 0.45 * len(rows))
    ax = fig.subplots()
    activity = detection.activity
    for y, label in enumerate(rows):
        if activity is not None and len(activity):
            c = labels.index(label)
            t = np.arange(len(activity)) * detection.activity_seconds
            ax.fill_between(t, y - 0.4, y - 0.4 + 0.8 * np.clip(activity[:, c], 0, 1), color="0.85", step="post",
                            linewidth=0)
        bars = [(e.onset, max(e.duration, 1e-3)) for e in detection.events if e.label == label]
        colours = [matplotlib.colormaps["viridis"](min(1.0, max(0.0, e.score))) for e in detection.events if e.label == label]
        if bars:
            ax.broken_barh(bars, (y - 0.3, 0.6), facecolors=colours)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(shown)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0, detection.duration)
    ax.set_xlabel("time (s); bars: events, coloured by score; grey: the class's score over time", fontsize=8)
    ax.set_title(f"{os.path.basename(detection.file)}: {len(detection.events)} events", fontsize=9)
    return save_png(fig, path)


def write_detections(detections: Sequence, output: str | os.PathLike, *, figures: bool = True) -> dict[str, list[str]]:
    """Writes ``events.csv``, ``events.tsv`` (DCASE form), ``events.json`` for all recordings, and per
    recording ``<name>.labels.txt`` (Audacity) and ``<name>.timeline.png`` into the folder ``output``.

    Returns:
        ``{"tables": [...], "labels": [...], "figures": [...]}`` (the paths written).
    """
    out = pathlib.Path(output)
    out.mkdir(parents=True, exist_ok=True)
    events = [e for d in detections for e in d.events]
    atomic_write_text(out / "events.csv", events_csv(events))
    atomic_write_text(out / "events.tsv", format_strong_labels(events, files=[d.file for d in detections]))
    atomic_write_text(out / "events.json", json.dumps([d.as_dict() for d in detections], indent=1, ensure_ascii=False))
    written = {"tables": [str(out / n) for n in ("events.csv", "events.tsv", "events.json")], "labels": [], "figures": []}
    seen: dict[str, int] = {}
    for d in detections:
        stem = pathlib.Path(d.file).stem
        seen[stem] = seen.get(stem, 0) + 1
        if seen[stem] > 1:  # two recordings with one name in different folders
            stem = f"{stem}-{seen[stem]}"
        labels = out / f"{stem}.labels.txt"
        atomic_write_text(labels, audacity_labels(d.events))
        written["labels"].append(str(labels))
        if figures:
            written["figures"].append(str(timeline_figure(d, out / f"{stem}.timeline.png")))
    return written


def event_report_figure(report: dict, path: pathlib.Path) -> None:
    """Per-class event-based and segment-based F1 as a PNG."""
    labels = report["labels"]
    shown, _ = display_labels(labels)
    ev = [report["event_based"]["class_wise"][x]["f1"] for x in labels]
    seg = [report["segment_based"]["class_wise"][x]["f1"] for x in labels]
    y = np.arange(len(labels))
    fig = figure(7, 1.2 + 0.35 * len(labels))
    ax = fig.subplots()
    ax.barh(y - 0.2, ev, 0.4, label="event-based F1 (collar 200 ms)")
    ax.barh(y + 0.2, seg, 0.4, label="segment-based F1 (1 s)")
    ax.set_yticks(y)
    ax.set_yticklabels(shown)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"event F1 {report['event_based']['overall']['f1']:.3f}, segment F1 "
                 f"{report['segment_based']['overall']['f1']:.3f}, ER {report['segment_based']['overall']['error_rate']:.3f}",
                 fontsize=9)
    save_png(fig, path)

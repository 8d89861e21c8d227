"""The figures of a report (matplotlib ``Figure`` objects, no pyplot: no global state, no GUI backend).

Class names in any script: the tick labels use every installed font that has their glyphs (matplotlib's
per-glyph font fallback); a name with glyphs no installed font has is drawn as ``#i`` and a warning
names the font package to install (the JSON keeps the real names).
"""
from __future__ import annotations

import functools
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure

from tfaudio.io.atomic import atomic_write
from tfaudio.log import warn
from tfaudio.tasks.metrics import _METRIC_NAMES, THRESHOLD


@functools.lru_cache(maxsize=1)
def _font_coverage() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family, code points) of every installed font matplotlib knows, read once."""
    from fontTools.ttLib import TTFont

    out, seen = [], set()
    for entry in font_manager.fontManager.ttflist:
        # "Last Resort" fonts map every code point to a placeholder box: that is not a glyph
        if entry.name in seen or "last resort" in entry.name.lower():
            continue
        try:
            with TTFont(entry.fname, fontNumber=0, lazy=True) as font:
                points = frozenset(font.getBestCmap() or ())
        except Exception:  # noqa: BLE001 - an unreadable font file is simply not used
            continue
        seen.add(entry.name)
        out.append((entry.name, points))
    return tuple(out)


def display_labels(labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """Class names as the figures can draw them, and the font families to draw them with.

    Each character is drawn by the first installed font that has it (DejaVu Sans first). A name with a
    character no installed font has is shown as ``#i`` (its index), with one warning naming the fix.
    """

    families = ["DejaVu Sans"]
    coverage = _font_coverage()
    base = dict(coverage).get("DejaVu Sans", frozenset())
    shown, missing = [], set()
    for i, label in enumerate(labels):
        need = {ord(ch) for ch in label if not ch.isspace()} - base
        ok = True
        for point in need:
            font = next((name for name, points in coverage if point in points), None)
            if font is None:
                ok = False
                missing.add(chr(point))
            elif font not in families:
                families.append(font)
        shown.append(label if ok else f"#{i}")
    if missing:
        warn(f"class names with characters no installed font has ({''.join(sorted(missing))[:20]}): drawn as #index "
             "in the report PNGs (the JSON keeps the names). Fix: install a font that has them, e.g. Debian's "
             "fonts-noto-cjk (Chinese, Japanese, Korean) or fonts-noto (other scripts).")
    return shown, families


def figure(width: float, height: float):
    """A matplotlib ``Figure`` (not pyplot: no global state or backend, safe in server threads)."""
    return Figure(figsize=(width, height), layout="constrained")


def save_png(fig: Any, path: str | os.PathLike) -> pathlib.Path:
    """Writes ``fig`` as a PNG at ``path`` atomically, then clears it (figures made by :func:`figure`
    are not registered with pyplot, so clearing is enough)."""
    path = pathlib.Path(path)
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        fig.clear()
    return path


def _confusion_figure(report: Mapping[str, Any]):
    labels = list(report["labels"])
    names, families = display_labels(labels)
    cm = np.asarray(report["confusion_matrix"], np.float64)
    c = len(labels)
    support = np.array([report["per_class"][x]["support"] for x in labels], np.float64)
    # colour = fraction of the true class's examples (row-normalised; support-normalised for multi-label)
    frac = np.divide(cm, support[:, None], out=np.zeros_like(cm), where=support[:, None] > 0)
    side = float(np.clip(2.5 + 0.45 * c, 5.0, 22.0))
    fig = figure(side + 1.2, side)
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    fontsize = float(np.clip(14 - 0.3 * c, 6, 12))
    tick_size = float(np.clip(14 - 0.2 * c, 8, 12))
    ax.set_xticks(range(c), names, rotation=45 if c > 3 else 0, ha="right" if c > 3 else "center",
                  rotation_mode="anchor", fontsize=tick_size, fontfamily=families)
    ax.set_yticks(range(c), names, fontsize=tick_size, fontfamily=families)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if c <= 30:  # beyond that the numbers are unreadable; the colours still tell the story
        for i in range(c):
            for j in range(c):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=fontsize,
                        color="white" if frac[i, j] > 0.5 else "black")
    acc = "subset accuracy" if report.get("multi_label") else "accuracy"
    title = f"{report.get('level', '')} confusion matrix — {acc} {report['accuracy']:.3f}, n={report['num_examples']}"
    if report.get("multi_label"):
        title += (f"\nmulti-label, threshold {report.get('threshold', THRESHOLD)}: diagonal = hits,"
                  "\n[row, col] = row label missed while col label wrongly predicted")
    ax.set_title(title.strip(), fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class")
    return fig


def _per_class_figure(report: Mapping[str, Any]):
    labels = list(report["labels"])
    names, families = display_labels(labels)
    c = len(labels)
    kinds = ["precision", "recall", "f1"] + (["ap"] if report.get("multi_label") else [])
    fig = figure(8.0, float(np.clip(1.6 + 0.42 * c * len(kinds) / 3, 3.5, 40.0)))
    ax = fig.subplots()
    height = 0.8 / len(kinds)
    pos = np.arange(c)
    colors = {"precision": "#4C72B0", "recall": "#DD8452", "f1": "#55A868", "ap": "#8172B3"}
    for k, kind in enumerate(kinds):
        vals = [report["per_class"][x].get(kind) for x in labels]
        vals = [np.nan if v is None else v for v in vals]
        ax.barh(pos - 0.4 + height * (k + 0.5), vals, height=height, label=kind.upper() if kind == "ap" else kind,
                color=colors[kind])
    ax.set_yticks(pos, [f"{n} (n={report['per_class'][x]['support']})" for n, x in zip(names, labels)],
                  fontsize=float(np.clip(13 - 0.1 * c, 7, 11)), fontfamily=families)
    ax.invert_yaxis()  # first class on top, like the confusion matrix
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=len(kinds), frameon=False)
    ax.set_title(f"{report.get('level', '')} per-class metrics — macro-F1 {report['macro_f1']:.3f}".strip(),
                 fontsize=11)
    return fig


def _curves_figure(history: Mapping[str, Sequence[float]], title: str):
    keys = [k for k, v in history.items() if len(v)]
    panels: list[str] = []
    for k in keys:
        base = k[4:] if k.startswith("val_") else k
        if base not in panels:
            panels.append(base)
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = figure(4.2 * cols, 3.3 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, base in zip(axes, panels, strict=False):
        for key, label, style in ((base, "train", "-o"), (f"val_{base}", "val", "-s")):
            vals = history.get(key)
            if vals is not None and len(vals):
                y = np.asarray(vals, np.float64)
                ax.plot(np.arange(1, len(y) + 1), y, style, markersize=3, label=label)
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


def _folds_figure(summary: Mapping[str, Any]):
    metrics = summary["metrics"]
    shown = [k for k in ("accuracy", "macro_f1") if k in metrics]
    folds = [str(f) for f in summary["fold_ids"]]
    fig = figure(max(5.0, 1.2 + 0.9 * len(folds) * len(shown)), 4.2)
    ax = fig.subplots()
    width = 0.8 / max(1, len(shown))
    pos = np.arange(len(folds))
    colors = ["#4C72B0", "#55A868"]
    for k, key in enumerate(shown):
        m = metrics[key]
        vals = [np.nan if v is None else v for v in m["per_fold"]]
        color = colors[k % 2]
        ax.bar(pos - 0.4 + width * (k + 0.5), vals, width=width, color=color, alpha=0.85)
        ax.axhline(m["mean"], color=color, lw=2,
                   label=f"{_METRIC_NAMES[key]} {m['mean']:.3f} ± {m['std']:.3f}")
        ax.axhspan(m["mean"] - m["std"], m["mean"] + m["std"], color=color, alpha=0.15)
    ax.set_xticks(pos, [f"fold {f}" for f in folds])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=len(shown), frameon=False)
    ax.set_title(f"{summary.get('level') or ''} cross-validation over {summary['num_folds']} folds "
                 "(mean ± population std)".strip(), fontsize=11)
    return fig


def per_class_ap_figure(report: dict[str, Any], path) -> None:
    """Per-class AP of a :func:`multilabel_report` as a PNG (sorted, mAP in the title)."""
    items = sorted(((v["ap"], k) for k, v in report["per_class"].items() if v["ap"] is not None), reverse=True)
    shown, _ = display_labels([k for _, k in items])
    fig = figure(7, 1.2 + 0.3 * len(items))
    ax = fig.subplots()
    ax.barh(range(len(items)), [a for a, _ in items], color="tab:blue")
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels(shown)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("average precision")
    m = report.get("mAP")
    ax.set_title(f"per-class AP (mAP {m:.3f}, lwlrap {report.get('lwlrap') or float('nan'):.3f})" if m is not None
                 else "per-class AP", fontsize=9)
    save_png(fig, path)

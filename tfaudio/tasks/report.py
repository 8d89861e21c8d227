"""Evaluation reports on disk: JSON + PNG figures beside it, every file written atomically.

The pieces live beside this module: :mod:`tfaudio.tasks.metrics` (what is measured),
:mod:`tfaudio.tasks.report_figures` (the PNGs) and :mod:`tfaudio.tasks.report_text` (terminal text);
their public names are importable from here too.

Example:
    >>> rep = classification_report([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], ["dog", "cat"])
    >>> paths = write_report(rep, "runs/eval")   # report.json, report_confusion.png, report_per_class.png
"""
from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfaudio.io.atomic import atomic_write
from tfaudio.tasks.metrics import THRESHOLD, TOP_K, classification_report, summarize_folds
from tfaudio.tasks.report_figures import (
    _confusion_figure,
    _curves_figure,
    _folds_figure,
    _per_class_figure,
    save_png,
)
from tfaudio.tasks.report_text import format_cv, format_report

__all__ = ["classification_report", "summarize_folds", "write_report", "write_cv_report", "format_report",
           "format_cv", "THRESHOLD", "TOP_K"]


def write_report(
    report: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    name: str = "report",
    history: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, str]:
    """Write a report as ``<name>.json`` and PNG figures beside it; every file is written atomically.

    Files: ``<name>.json``; ``<name>_confusion.png`` (counts, colour = fraction of the true class);
    ``<name>_per_class.png`` (precision / recall / F1 per class, AP too for multi-label); and, when
    ``history`` has any values, ``<name>_curves.png`` (one panel per metric, train vs val by epoch).

    Args:
        report: a :func:`classification_report` dict.
        out_dir: the folder (created when missing).
        name: the file stem.
        history: a Keras ``History.history`` dict ({"loss": [...], "val_loss": [...], ...}).

    Returns:
        {kind: path} for kinds ``json``, ``confusion``, ``per_class`` and (with history) ``curves``.

    Example:
        >>> write_report(clf.evaluate(test)["clip"], "runs/dogcat", history=clf.history_)
        {'json': 'runs/dogcat/report.json', 'confusion': ..., 'per_class': ..., 'curves': ...}
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json"}
    _write_json(report, paths["json"])
    paths["confusion"] = out / f"{name}_confusion.png"
    _save_figure(_confusion_figure(report), paths["confusion"])
    paths["per_class"] = out / f"{name}_per_class.png"
    _save_figure(_per_class_figure(report), paths["per_class"])
    if history and any(len(v) for v in history.values()):
        paths["curves"] = out / f"{name}_curves.png"
        _save_figure(_curves_figure(history, title=f"{name}: training curves"), paths["curves"])
    return {k: str(p) for k, p in paths.items()}


def write_cv_report(summary: Mapping[str, Any], out_dir: str | os.PathLike, name: str = "cv") -> dict[str, str]:
    """Write a :func:`summarize_folds` summary as ``<name>.json`` and ``<name>_folds.png``.

    The PNG shows per-fold accuracy and macro-F1 as bars with each mean (line) ± std (band).

    Returns:
        {"json": path, "folds": path}.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "folds": out / f"{name}_folds.png"}
    _write_json(summary, paths["json"])
    _save_figure(_folds_figure(summary), paths["folds"])
    return {k: str(p) for k, p in paths.items()}


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN / inf become None (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)  # a report should never fail to save at the end of a long run


def _write_json(data: Mapping[str, Any], path: pathlib.Path) -> None:
    text = json.dumps(_jsonable(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _save_figure(fig: Any, path: pathlib.Path) -> None:
    save_png(fig, path)

"""Reports as short terminal text."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfaudio.tasks.metrics import _METRIC_NAMES, _SUMMARY_METRICS


def format_report(report: Mapping[str, Any]) -> str:
    """A short text of a report for the terminal: headline metrics and a per-class table.

    Example:
        >>> print(format_report(rep))
        clip level: 40 examples, 2 classes
        accuracy 0.950  macro-F1 0.950  weighted-F1 0.950
        class  precision  recall     F1  support
        dog        0.950   0.950  0.950       20
        ...
    """
    labels = list(report["labels"])
    multi = bool(report.get("multi_label"))
    lines = [f"{report.get('level', '')} level: {report['num_examples']} examples, {len(labels)} classes"
             + (" (multi-label)" if multi else "")]
    head = [f"{'subset accuracy' if multi else 'accuracy'} {report['accuracy']:.3f}",
            f"macro-F1 {report['macro_f1']:.3f}", f"weighted-F1 {report['weighted_f1']:.3f}"]
    for k, v in (report.get("top_k_accuracy") or {}).items():
        head.append(f"top-{k} accuracy {v:.3f}")
    if multi:
        head += [f"micro-F1 {report['micro_f1']:.3f}", f"mAP {_fmt(report.get('mAP'))}",
                 f"ROC AUC {_fmt(report.get('roc_auc'))}"]
    lines.append("  ".join(head))
    width = max([5] + [len(x) for x in labels])
    cols = ["precision", "recall", "F1"] + (["AP"] if multi else [])
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{c:>9}" for c in cols) + "  support")
    for x in labels:
        pc = report["per_class"][x]
        vals = [pc["precision"], pc["recall"], pc["f1"]] + ([pc.get("ap")] if multi else [])
        lines.append(f"{x:<{width}}  " + "  ".join(f"{_fmt(v):>9}" for v in vals) + f"  {pc['support']:>7}")
    return "\n".join(lines)


def format_cv(summary: Mapping[str, Any]) -> str:
    """A short text of a cross-validation summary: mean ± std and per-fold figures.

    Example:
        >>> print(format_cv(summary))
        accuracy 0.953 ± 0.021 over 5 folds
        macro-F1 0.950 ± 0.022
        fold  accuracy  macro-F1  examples
        ...
    """
    metrics = summary["metrics"]
    k = summary["num_folds"]
    keys = [m for m in _SUMMARY_METRICS if m in metrics and m != "weighted_f1"]
    lines = []
    for i, key in enumerate(keys):
        m = metrics[key]
        line = f"{_METRIC_NAMES[key]} {m['mean']:.3f} ± {m['std']:.3f}"
        if i == 0:
            line += f" over {k} folds"
        elif m["n"] != k:
            line += f" (over the {m['n']} folds where it is defined)"
        lines.append(line)
    frame = summary.get("frame_level")
    if isinstance(frame, Mapping) and "accuracy" in frame.get("metrics", {}):
        fa = frame["metrics"]["accuracy"]
        lines.append(f"frame level: accuracy {fa['mean']:.3f} ± {fa['std']:.3f}")
    widths = [max(9, len(_METRIC_NAMES[key])) for key in keys]
    lines.append(f"{'fold':>6}  " + "  ".join(f"{_METRIC_NAMES[key]:>{w}}" for key, w in zip(keys, widths, strict=True))
                 + "  examples")
    for row in summary["per_fold"]:
        lines.append(f"{row['fold']!s:>6}  "
                     + "  ".join(f"{_fmt(row.get(key)):>{w}}" for key, w in zip(keys, widths, strict=True))
                     + f"  {row['num_examples']:>8}")
    recall = summary.get("per_class_recall") or {}
    known = [(v, x) for x, v in recall.items() if v is not None]
    if len(known) > 1:
        worst = sorted(known)[: min(5, len(known))]
        title = "pooled recall per class" if len(known) <= 5 else "lowest pooled recall"
        lines.append(f"{title}: " + ", ".join(f"{x} {v:.3f}" for v, x in worst))
    lines.append("± is the population std over folds (ddof=0)")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"

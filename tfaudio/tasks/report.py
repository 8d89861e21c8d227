"""Evaluation reports: metrics of one evaluation, a cross-validation summary, JSON + PNG writers, text.

Pure numpy / scikit-learn / matplotlib (no TensorFlow), so reports can be rebuilt, summarised and
plotted from saved scores on any machine. Every figure in a report is a plain Python ``float``,
``int``, ``str``, ``list``, ``dict`` or ``None``, so ``json.loads(json.dumps(r)) == r``.

Example:
    >>> rep = classification_report([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], ["dog", "cat"])
    >>> rep["accuracy"], rep["per_class"]["cat"]["recall"]
    (0.6666666666666666, 0.5)
    >>> paths = write_report(rep, "runs/eval")   # report.json, report_confusion.png, report_per_class.png
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import numpy as np

THRESHOLD = 0.5  # multi-label decision threshold on sigmoid scores
TOP_K = 5  # top-k accuracy is reported for k=5 when there are more than 5 classes

_SUMMARY_METRICS = ("accuracy", "macro_f1", "weighted_f1", "micro_f1", "mAP", "roc_auc", "top_5_accuracy")
_METRIC_NAMES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "weighted_f1": "weighted-F1",
    "micro_f1": "micro-F1",
    "mAP": "mAP",
    "roc_auc": "ROC AUC",
    "top_5_accuracy": "top-5 accuracy",
}


# ---- metrics ------------------------------------------------------------------------------------
def classification_report(
    y_true: Any,
    scores: Any,
    labels: Sequence[str],
    *,
    multi_label: bool = False,
    level: str = "clip",
) -> dict[str, Any]:
    """Metrics of one evaluation of a single-label (softmax) or multi-label (sigmoid) classifier.

    Single-label: the prediction is the arg-max class. Multi-label: a class is predicted when its
    score is >= 0.5; ``accuracy`` is then exact-match (subset) accuracy, and ``micro_f1``, ``mAP``
    (macro average precision over classes with positives) and ``roc_auc`` (macro, over classes
    with both positives and negatives; ``None`` when no class has both) are added.

    ``macro_f1`` averages the classes that occur in ``y_true`` or in the predictions (scikit-learn's
    default); a class absent from both has no evidence either way and is left out. Zero divisions
    (a class never predicted, or without examples) count as 0 and raise no warning.

    ``confusion_matrix`` has rows = true class, columns = predicted class, in ``labels`` order,
    including classes without examples. For multi-label data the diagonal holds each class's true
    positives and entry ``[i][j]`` (i != j) counts the examples where ``i`` was missed while ``j`` was
    wrongly predicted, so perfect predictions give a diagonal matrix; a row need not sum to the
    class's support (a missed label with no wrong label in its example is counted nowhere).

    Args:
        y_true: single-label: int class indices, shape [n]. Multi-label: 0/1 multi-hot, shape [n, C].
        scores: float class scores (probabilities), shape [n, C].
        labels: the C class names, in column order.
        multi_label: whether the data is multi-label (sigmoid scores).
        level: what an example is (``"clip"``, ``"frame"``); stored in the report.

    Returns:
        A JSON-serialisable dict: ``level``, ``multi_label``, ``num_examples``, ``num_classes``,
        ``labels``, ``accuracy``, ``macro_f1``, ``weighted_f1``, ``per_class`` {label: {precision,
        recall, f1, support}} (multi-label adds ``ap`` and ``roc_auc`` per class),
        ``confusion_matrix``; ``top_k_accuracy`` ({"5": value}) for single-label data with more
        than 5 classes; ``threshold``, ``micro_f1``, ``mAP``, ``roc_auc`` for multi-label data.

    Raises:
        ValueError: shapes that do not match, class indices out of range, non-finite scores,
            multi-hot targets that are not 0/1, no examples, duplicate labels.

    Example:
        >>> rep = classification_report([0, 2, 1], np.eye(3), ["a", "b", "c"])
        >>> rep["accuracy"], rep["confusion_matrix"][1]
        (0.3333333333333333, [0, 0, 1])
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    labels = [str(x) for x in labels]
    y, s = _validate(y_true, scores, labels, multi_label)
    n, c = s.shape
    idx = list(range(c))

    if multi_label:
        pred = (s >= THRESHOLD).astype(np.int64)
        accuracy = float(np.mean(np.all(pred == y, axis=1)))
        onehot_true, onehot_pred = y, pred
        # [C, C]: hits on the diagonal; [i, j] counts examples where i was missed and j wrongly predicted
        miss, false = y * (1 - pred), pred * (1 - y)
        cm = np.diag((y * pred).sum(0)) + miss.T @ false
    else:
        pred = np.argmax(s, axis=1)
        accuracy = float(np.mean(pred == y))
        onehot_true, onehot_pred = np.eye(c, dtype=np.int64)[y], np.eye(c, dtype=np.int64)[pred]
        cm = confusion_matrix(y, pred, labels=idx)

    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=idx, average=None, zero_division=0
    )
    active = (onehot_true.sum(0) > 0) | (onehot_pred.sum(0) > 0)
    macro_f1 = float(np.mean(f1[active])) if active.any() else 0.0
    weighted_f1 = float(np.sum(f1 * support) / support.sum()) if support.sum() > 0 else 0.0

    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(labels)
    }
    report: dict[str, Any] = {
        "level": str(level),
        "multi_label": bool(multi_label),
        "num_examples": int(n),
        "num_classes": int(c),
        "labels": labels,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "weighted_f1": weighted_f1,
    }
    if multi_label:
        from sklearn.metrics import average_precision_score, roc_auc_score

        aps, aucs = [], []
        for i, name in enumerate(labels):
            positives = int(y[:, i].sum())
            ap = float(average_precision_score(y[:, i], s[:, i])) if positives > 0 else None
            auc = float(roc_auc_score(y[:, i], s[:, i])) if 0 < positives < n else None
            per_class[name]["ap"] = ap
            per_class[name]["roc_auc"] = auc
            aps += [ap] if ap is not None else []
            aucs += [auc] if auc is not None else []
        report["threshold"] = THRESHOLD
        report["micro_f1"] = float(f1_score(y, pred, average="micro", zero_division=0))
        report["mAP"] = float(np.mean(aps)) if aps else None
        report["roc_auc"] = float(np.mean(aucs)) if aucs else None
    elif c > TOP_K:
        from sklearn.metrics import top_k_accuracy_score

        report["top_k_accuracy"] = {str(TOP_K): float(top_k_accuracy_score(y, s, k=TOP_K, labels=idx))}
    report["per_class"] = per_class
    report["confusion_matrix"] = np.asarray(cm, np.int64).tolist()
    return report


def _validate(y_true: Any, scores: Any, labels: list[str], multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    c = len(labels)
    if c == 0:
        raise ValueError("labels is empty. Fix: pass the class names, one per score column.")
    if len(set(labels)) != c:
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise ValueError(f"labels has duplicate names {dup}. Fix: give every class a unique name.")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D [examples, classes]; got shape {list(s.shape)}.")
    if s.shape[1] != c:
        raise ValueError(
            f"scores has {s.shape[1]} columns (classes) but labels has {c} names. "
            "Fix: pass one label per score column, in column order."
        )
    if s.shape[0] == 0:
        raise ValueError("no examples to report on (scores has 0 rows). Fix: evaluate on a non-empty set.")
    if not np.all(np.isfinite(s)):
        bad = int(np.sum(~np.isfinite(s)))
        raise ValueError(f"scores has {bad} NaN or infinite values. Fix: check the model's outputs.")
    y = np.asarray(y_true)
    if y.shape[:1] != s.shape[:1]:
        raise ValueError(
            f"y_true has {y.shape[0] if y.ndim else 0} examples but scores has {s.shape[0]} rows. "
            "Fix: pass one target per scored example."
        )
    if multi_label:
        if y.shape != s.shape:
            raise ValueError(
                f"multi-label y_true must be multi-hot with shape {list(s.shape)} like scores; "
                f"got {list(y.shape)}."
            )
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("multi-label y_true must hold only 0 and 1 (multi-hot).")
        return y.astype(np.int64), s
    if y.ndim != 1:
        raise ValueError(
            f"single-label y_true must be class indices with shape [{s.shape[0]}]; got shape "
            f"{list(y.shape)}. Fix: pass argmax of one-hot targets, or multi_label=True for multi-hot."
        )
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iub":
        raise ValueError(f"single-label y_true must be integer class indices; got dtype {y.dtype}.")
    y = y.astype(np.int64)
    out = (y < 0) | (y >= c)
    if out.any():
        raise ValueError(
            f"y_true has class index {int(y[out][0])} but labels has {c} names (valid: 0..{c - 1})."
        )
    return y, s


def summarize_folds(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-fold figures and their mean ± std over the folds of a cross-validation.

    ``std`` is the population standard deviation over folds (``ddof=0``), stated in the summary as
    ``std_ddof``. A metric that is ``None`` in a fold (e.g. ``roc_auc``) is left out of that
    metric's mean and std; ``n`` says how many folds were used.

    Args:
        reports: one :func:`classification_report` per fold, all with the same labels. A report's
            ``fold`` key (when present) names the fold; otherwise folds are numbered 1..k.

    Returns:
        A JSON-serialisable dict: ``num_folds``, ``fold_ids``, ``level``, ``multi_label``,
        ``labels``, ``num_examples`` (total), ``std_ddof`` (0), ``metrics`` {name: {per_fold,
        mean, std, n}} for accuracy, macro_f1, weighted_f1 (and micro_f1, mAP, roc_auc,
        top_5_accuracy when the reports have them), ``per_fold`` (one row of figures per fold),
        ``confusion_matrix`` (summed over folds) and ``per_class_recall`` (pooled over folds:
        true positives / support; ``None`` for a class without examples).

    Example:
        >>> summary = summarize_folds([rep1, rep2, rep3])
        >>> summary["metrics"]["accuracy"]["mean"], summary["metrics"]["accuracy"]["std"]
    """
    reports = list(reports)
    if not reports:
        raise ValueError("summarize_folds needs at least one report; got none.")
    labels = list(reports[0]["labels"])
    fold_ids = [r.get("fold", i + 1) for i, r in enumerate(reports)]
    for fid, r in zip(fold_ids, reports, strict=True):
        if list(r["labels"]) != labels:
            raise ValueError(
                f"fold {fid} has labels {list(r['labels'])} but the first fold has {labels}. "
                "Fix: evaluate every fold with the same classes in the same order."
            )

    def values(key: str) -> list[float | None]:
        if key == "top_5_accuracy":
            return [(r.get("top_k_accuracy") or {}).get(str(TOP_K)) for r in reports]
        return [r.get(key) for r in reports]

    metrics: dict[str, Any] = {}
    for key in _SUMMARY_METRICS:
        per_fold = values(key)
        if all(v is None for v in per_fold):
            continue
        used = np.array([v for v in per_fold if v is not None], np.float64)
        metrics[key] = {
            "per_fold": [None if v is None else float(v) for v in per_fold],
            "mean": float(used.mean()),
            "std": float(used.std(ddof=0)),
            "n": int(used.size),
        }

    cm = np.sum([np.asarray(r["confusion_matrix"], np.int64) for r in reports], axis=0)
    tp = np.diag(cm)
    support = np.sum([[r["per_class"][name]["support"] for name in labels] for r in reports], axis=0)
    per_class_recall = {
        name: (float(tp[i] / support[i]) if support[i] > 0 else None) for i, name in enumerate(labels)
    }
    per_fold_rows = []
    for i, (fid, r) in enumerate(zip(fold_ids, reports, strict=True)):
        row = {"fold": fid, "num_examples": int(r["num_examples"])}
        row.update({k: m["per_fold"][i] for k, m in metrics.items()})
        if "epochs" in r:
            row["epochs"] = r["epochs"]
        per_fold_rows.append(row)
    return {
        "level": reports[0].get("level"),
        "multi_label": bool(reports[0].get("multi_label", False)),
        "num_folds": len(reports),
        "fold_ids": fold_ids,
        "labels": labels,
        "num_examples": int(sum(r["num_examples"] for r in reports)),
        "std_ddof": 0,
        "metrics": metrics,
        "per_fold": per_fold_rows,
        "confusion_matrix": cm.tolist(),
        "per_class_recall": per_class_recall,
    }


# ---- writers ------------------------------------------------------------------------------------
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


def _atomic_write(path: pathlib.Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a hidden temp file in the same folder, then rename over ``path`` (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    # os.open with 0o666 respects the umask (mkstemp would leave the report readable by us only)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _save_figure(fig: Any, path: pathlib.Path) -> None:
    try:
        _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        fig.clear()  # Figure objects are not registered with pyplot, so clearing is enough


# ---- figures (matplotlib.figure.Figure, no pyplot: no global state, no GUI backend) -------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _confusion_figure(report: Mapping[str, Any]):
    labels = list(report["labels"])
    cm = np.asarray(report["confusion_matrix"], np.float64)
    c = len(labels)
    support = np.array([report["per_class"][x]["support"] for x in labels], np.float64)
    # colour = fraction of the true class's examples (row-normalised; support-normalised for multi-label)
    frac = np.divide(cm, support[:, None], out=np.zeros_like(cm), where=support[:, None] > 0)
    side = float(np.clip(2.5 + 0.45 * c, 5.0, 22.0))
    fig = _figure(side + 1.2, side)
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    fontsize = float(np.clip(14 - 0.3 * c, 6, 12))
    tick_size = float(np.clip(14 - 0.2 * c, 8, 12))
    ax.set_xticks(range(c), labels, rotation=45 if c > 3 else 0, ha="right" if c > 3 else "center",
                  rotation_mode="anchor", fontsize=tick_size)
    ax.set_yticks(range(c), labels, fontsize=tick_size)
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
    c = len(labels)
    kinds = ["precision", "recall", "f1"] + (["ap"] if report.get("multi_label") else [])
    fig = _figure(8.0, float(np.clip(1.6 + 0.42 * c * len(kinds) / 3, 3.5, 40.0)))
    ax = fig.subplots()
    height = 0.8 / len(kinds)
    pos = np.arange(c)
    colors = {"precision": "#4C72B0", "recall": "#DD8452", "f1": "#55A868", "ap": "#8172B3"}
    for k, kind in enumerate(kinds):
        vals = [report["per_class"][x].get(kind) for x in labels]
        vals = [np.nan if v is None else v for v in vals]
        ax.barh(pos - 0.4 + height * (k + 0.5), vals, height=height, label=kind.upper() if kind == "ap" else kind,
                color=colors[kind])
    ax.set_yticks(pos, [f"{x} (n={report['per_class'][x]['support']})" for x in labels],
                  fontsize=float(np.clip(13 - 0.1 * c, 7, 11)))
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
    fig = _figure(4.2 * cols, 3.3 * rows)
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
    fig = _figure(max(5.0, 1.2 + 0.9 * len(folds) * len(shown)), 4.2)
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


# ---- text ---------------------------------------------------------------------------------------
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

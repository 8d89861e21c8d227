"""Metrics of one evaluation and the summary of a cross-validation (pure numpy / scikit-learn).

Every figure is a plain Python ``float``, ``int``, ``str``, ``list``, ``dict`` or ``None``, so
``json.loads(json.dumps(r)) == r``.

Example:
    >>> rep = classification_report([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], ["dog", "cat"])
    >>> rep["accuracy"], rep["per_class"]["cat"]["recall"]
    (0.6666666666666666, 0.5)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
        from tfaudio.tasks.multilabel_metrics import d_prime, lwlrap

        report["d_prime"] = float(np.mean(d_prime(aucs))) if aucs else None
        report["lwlrap"] = lwlrap(y, s) if y.any() else None
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

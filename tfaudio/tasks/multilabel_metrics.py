"""Multi-label metrics and decision thresholds (several labels per clip; sigmoid scores), and the
"none of these" rejection threshold of single-label models.

* :func:`multilabel_report`: per-class average precision (AP) and ROC AUC, macro mAP (mean over the
  classes that have positives), d′ per class and its mean (AudioSet's ``√2 · Φ⁻¹(AUC)``), lwlrap
  (label-weighted label-ranking average precision, DCASE 2019 task 2 / FSD50K), and micro / macro
  F1 at per-class thresholds.
* :func:`choose_thresholds`: per-class thresholds that maximise F1 on the scores given; pass scores of
  training / validation clips only, never the test fold.
* :func:`rejection_threshold` / :func:`rejection_report`: a single-label model answers "none of these"
  when its top score is below a threshold chosen on validation clips; reported as false accepts of
  out-of-set clips against the accuracy kept on in-set clips.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfaudio.errors import TfaudioError

__all__ = ["average_precision", "lwlrap", "d_prime", "choose_thresholds", "f1_at_thresholds", "multilabel_report",
           "rejection_threshold", "rejection_report"]


def _check(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, np.float64)
    if y.shape != s.shape or y.ndim != 2:
        raise TfaudioError(f"multi-label targets and scores must both be [clips, classes]; got {y.shape} and "
                           f"{s.shape}. Fix: pass multi-hot targets (one column per class).")
    return y.astype(bool), s


def average_precision(y_true: Any, scores: Any) -> np.ndarray:
    """Per-class AP ``[C]`` (NaN for a class without positives), as sklearn's ``average_precision_score``."""
    from sklearn.metrics import average_precision_score

    y, s = _check(y_true, scores)
    return np.array([average_precision_score(y[:, c], s[:, c]) if y[:, c].any() else np.nan
                     for c in range(y.shape[1])])


def d_prime(auc: Any) -> np.ndarray:
    """AudioSet's d′ from ROC AUC: ``√2 · Φ⁻¹(AUC)`` (0 at chance)."""
    from scipy.stats import norm

    return math.sqrt(2.0) * norm.ppf(np.clip(np.asarray(auc, np.float64), 1e-12, 1 - 1e-12))


def lwlrap(y_true: Any, scores: Any) -> float:
    """Label-weighted label-ranking average precision: for every (clip, true label) pair, the fraction of
    the labels ranked at or above it that are true; the mean over all pairs (ties count against)."""
    y, s = _check(y_true, scores)
    keep = y.any(axis=1)
    y, s = y[keep], s[keep]
    if not len(y):
        return float("nan")
    total, pairs = 0.0, 0
    step = max(1, 4_000_000 // (y.shape[1] ** 2))  # rows per chunk: [rows, C, C] comparisons stay ~4 M
    for a in range(0, len(y), step):
        yb, sb = y[a : a + step], s[a : a + step]
        at_or_above = sb[:, None, :] >= sb[:, :, None]  # [rows, c, j]: label j ranks at or above label c
        precision = (at_or_above & yb[:, None, :]).sum(-1) / at_or_above.sum(-1)
        total += float(precision[yb].sum())
        pairs += int(yb.sum())
    return total / pairs


def choose_thresholds(y_true: Any, scores: Any, *, default: float = 0.5) -> np.ndarray:
    """Per-class thresholds ``[C]`` that maximise each class's F1 on these (training / validation) scores:
    midpoints between consecutive distinct scores; ``default`` for a class without positives."""
    y, s = _check(y_true, scores)
    out = np.full(y.shape[1], default, np.float64)
    for c in range(y.shape[1]):
        pos = y[:, c]
        if not pos.any():
            continue
        values = np.unique(s[:, c])
        cuts = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2]) if len(values) > 1 else values - 1e-6
        pred = s[:, c][None] > cuts[:, None]  # [cuts, clips]
        tp = (pred & pos).sum(1)
        f1 = 2 * tp / (pred.sum(1) + pos.sum())
        out[c] = cuts[int(np.argmax(f1))]  # the lowest cut among ties (argmax: first)
    return out


def f1_at_thresholds(y_true: Any, scores: Any, thresholds: Any) -> dict[str, Any]:
    """Micro and macro F1 (and per-class F1) of ``scores > thresholds``."""
    y, s = _check(y_true, scores)
    pred = s > np.asarray(thresholds, np.float64)[None]
    tp, fp, fn = (pred & y).sum(0), (pred & ~y).sum(0), (~pred & y).sum(0)
    per_class = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    micro = 2 * tp.sum() / max(1, 2 * tp.sum() + fp.sum() + fn.sum())
    has = y.any(0)
    return {"micro_f1": float(micro), "macro_f1": float(per_class[has].mean()) if has.any() else float("nan"),
            "per_class_f1": per_class.tolist()}


def multilabel_report(y_true: Any, scores: Any, labels: Sequence[str], thresholds: Any | None = None) -> dict[str, Any]:
    """Every multi-label figure as a JSON-serialisable dict (``thresholds``: chosen on other clips;
    default 0.5 for every class)."""
    from sklearn.metrics import roc_auc_score

    y, s = _check(y_true, scores)
    if len(labels) != y.shape[1]:
        raise TfaudioError(f"{len(labels)} labels for {y.shape[1]} score columns.")
    ap = average_precision(y, s)
    auc = np.array([roc_auc_score(y[:, c], s[:, c]) if 0 < y[:, c].sum() < len(y) else np.nan
                    for c in range(y.shape[1])])
    dp = d_prime(auc)
    thresholds = np.full(y.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, np.float64)
    f1 = f1_at_thresholds(y, s, thresholds)

    def clean(x):
        return None if x is None or not np.isfinite(x) else float(x)

    return {
        "multi_label": True,
        "num_examples": int(len(y)),
        "num_classes": int(y.shape[1]),
        "mAP": clean(np.nanmean(ap)) if np.isfinite(ap).any() else None,
        "lwlrap": clean(lwlrap(y, s)),
        "mean_auc": clean(np.nanmean(auc)) if np.isfinite(auc).any() else None,
        "d_prime": clean(np.nanmean(dp)) if np.isfinite(dp).any() else None,
        "micro_f1": f1["micro_f1"],
        "macro_f1": clean(f1["macro_f1"]),
        "per_class": {label: {"ap": clean(ap[i]), "auc": clean(auc[i]), "d_prime": clean(dp[i]),
                              "f1": f1["per_class_f1"][i], "threshold": float(thresholds[i]),
                              "support": int(y[:, i].sum())} for i, label in enumerate(labels)},
    }


def rejection_threshold(scores: Any, targets: Any, *, keep: float = 0.95) -> float:
    """The top-score threshold below which a single-label model answers "none of these": the highest one
    that still accepts ``keep`` of the correctly classified validation clips.

    Args:
        scores: softmax scores ``[n, C]`` of in-set validation clips (never the test fold).
        targets: their class indices ``[n]``.
        keep: fraction of the correctly classified clips to keep accepted.
    """
    s = np.asarray(scores, np.float64)
    t = np.asarray(targets)
    if not 0 < keep <= 1:
        raise TfaudioError(f"keep must be in (0, 1], got {keep}.")
    correct = s.argmax(1) == t
    if not correct.any():
        raise TfaudioError("no validation clip is classified correctly, so no rejection threshold can be chosen. "
                           "Fix: check the model and the validation data.")
    top = np.sort(s.max(1)[correct])
    return float(top[int(math.floor((1 - keep) * len(top)))])


def rejection_report(in_scores: Any, in_targets: Any, out_scores: Any, threshold: float) -> dict[str, float]:
    """What a rejection threshold does: ``accuracy_kept`` (in-set clips accepted and correct),
    ``accuracy_without`` (no rejection), ``in_set_rejected`` and ``false_accepts`` (out-of-set clips
    given a class)."""
    s_in, t_in = np.asarray(in_scores, np.float64), np.asarray(in_targets)
    s_out = np.asarray(out_scores, np.float64).reshape(-1, s_in.shape[1])
    accepted = s_in.max(1) >= threshold
    correct = s_in.argmax(1) == t_in
    return {"threshold": float(threshold),
            "accuracy_kept": float((accepted & correct).mean()) if len(s_in) else float("nan"),
            "accuracy_without": float(correct.mean()) if len(s_in) else float("nan"),
            "in_set_rejected": float((~accepted).mean()) if len(s_in) else float("nan"),
            "false_accepts": float((s_out.max(1) >= threshold).mean()) if len(s_out) else float("nan")}

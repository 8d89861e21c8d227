"""A head's scores → labels: the ``k`` best classes, best first, ties in class order (:func:`top_k`),
and the model's own decision (:func:`decide`): a multi-label model's labels above their per-class
thresholds, or a single-label model's top label unless its score is below the rejection threshold
or it is the background class (both "none of these")."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfaudio.data.manifest import BACKGROUND
from tfaudio.errors import TfaudioError

__all__ = ["top_k", "decide"]


def top_k(scores, labels: Sequence[str], k: int | None = 5) -> list[dict]:
    """``[{"label", "index", "score"}]`` of the ``k`` highest of ``scores [C]`` (all when None).

    The sort is stable: equal scores keep the order of ``labels``, so the answer does not change from
    run to run. Used by every command, the pipeline API, the demo and Beam.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if k is not None:
        order = order[: int(k)]
    return [{"label": labels[i], "index": int(i), "score": float(scores[i])} for i in order]


def decide(scores, labels: Sequence[str], *, thresholds: Sequence[float] | None = None,
           rejection_threshold: float | None = None) -> dict | None:
    """What a model with a decision rule says about one clip; None for a model without one.

    Args:
        scores: ``[C]`` clip scores (sigmoid for a multi-label model, softmax otherwise).
        labels: the ``C`` class names.
        thresholds: a multi-label model's per-class thresholds ``[C]``: every label whose score is
            above its threshold is accepted (the rule used when both are given).
        rejection_threshold: a single-label model's threshold: its top label is accepted unless the
            top score is below it ("none of these").

    A single-label model with the class :data:`~tfaudio.data.manifest.BACKGROUND` among ``labels``
    (``tfaudio train --background-dir``) also says "none of these" when that class is its top label.

    Returns:
        ``{"labels": accepted labels in class order, "none_of_these": no label accepted}``, or None
        when neither threshold is given (and there is no background class). Used by ``tfaudio predict``, the pipeline API, the demo and Beam.

    Example:
        >>> decide([0.9, 0.2, 0.7], ["a", "b", "c"], thresholds=[0.5, 0.5, 0.8])
        {'labels': ['a'], 'none_of_these': False}
        >>> decide([0.4, 0.35, 0.25], ["a", "b", "c"], rejection_threshold=0.5)
        {'labels': [], 'none_of_these': True}
        >>> decide([0.2, 0.7, 0.1], ["a", BACKGROUND, "c"])
        {'labels': [], 'none_of_these': True}
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    if thresholds is not None:
        cut = np.asarray(thresholds, np.float64).reshape(-1)
        if cut.shape != scores.shape:
            raise TfaudioError(f"{len(cut)} thresholds for {len(scores)} class scores. Fix: the model's metadata "
                               "must hold one threshold per label; save or export the model again.")
        accepted = [labels[j] for j in np.flatnonzero(scores > cut)]
    elif rejection_threshold is not None or BACKGROUND in labels:
        best = int(np.argmax(scores))
        below = rejection_threshold is not None and scores[best] < float(rejection_threshold)
        accepted = [] if below or labels[best] == BACKGROUND else [labels[best]]
    else:
        return None
    return {"labels": accepted, "none_of_these": not accepted}

"""A head's scores → labels: the ``k`` best classes, best first, ties in class order."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["top_k"]


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

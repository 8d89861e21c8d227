"""The one protocol every kind of loaded model scores through.

Whatever :func:`tfaudio.inference.load_model` recognises (a trained classifier, a fine-tuned model, a
backbone with classes of its own, an export, a transformers classifier), its ``scorer`` answers:

- ``labels`` (class names in score order), ``sample_rate`` (the rate its inputs must be at),
  ``kind`` and ``description``;
- ``scores(waves, batch_size=...) → [n, C]``: clip scores of float32 mono waveforms at ``sample_rate``;
- ``outputs(waves, batch_size=...) → [{"classifier": [C], "frame_scores": [F, C]?, "frame_weights": [F]?}]``
  per clip (frame scores where the model has them, and which frames the clip score counts);
- ``frame_hop_seconds`` / ``frame_seconds``: where frame ``f`` lies in the clip (None without frame
  scores): see :func:`frame_times`.

Consumers (commands, ``tfaudio.pipeline``, the demo page, Beam) use nothing else of a scorer.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Scorer", "frame_times"]


@runtime_checkable
class Scorer(Protocol):
    """What a loaded model's ``scorer`` implements (see the module docstring)."""

    kind: str
    labels: tuple[str, ...]
    sample_rate: int
    description: str
    frame_hop_seconds: float | None
    frame_seconds: float | None

    def scores(self, waves: Sequence[np.ndarray], *, batch_size: int = ...) -> np.ndarray: ...

    def outputs(self, waves: Sequence[np.ndarray], *, batch_size: int = ...) -> list[dict[str, Any]]: ...


def frame_times(num_frames: int, hop_seconds: float, frame_seconds: float) -> np.ndarray:
    """``[num_frames, 2]`` (start, end) in seconds of each frame of a clip: frame ``f`` covers
    ``[f · hop, f · hop + frame)``."""
    start = np.arange(int(num_frames), dtype=np.float64) * float(hop_seconds)
    return np.stack([start, start + float(frame_seconds)], axis=-1)

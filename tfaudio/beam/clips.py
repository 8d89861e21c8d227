"""Clip preparation for the Beam jobs, without Beam: the local pipeline's decode → resample → crop,
batch padding and dead-letter records."""
from __future__ import annotations

import json

import numpy as np

from tfaudio.data.pipeline import PipelineConfig


def prepare_clip(path: str, config: PipelineConfig) -> tuple[np.ndarray, int]:
    """One file as the local pipeline prepares it: decode → mono → resample to ``config.sample_rate``
    → crop or zero-pad to ``config.duration_seconds``.

    The same step as :class:`tfaudio.data.pipeline.AudioDataset` (:func:`~tfaudio.data.pipeline.decode_clip`,
    then ``pad_or_crop``), so Beam's embeddings equal the local cache's.

    Returns:
        (float32 [samples] at ``config.sample_rate``, valid samples).

    Raises:
        AudioError: the file cannot be used (naming it, the problem and the fix).
    """
    from tfaudio.data.pipeline import decode_clip
    from tfaudio.signal.framing import pad_or_crop

    audio = decode_clip(path, config)
    length = int(audio.shape[0])
    if config.duration_seconds is not None:
        audio = np.asarray(pad_or_crop(audio, config.duration_seconds, config.sample_rate, align=config.align))
        length = min(length, int(audio.shape[0]))
    return np.ascontiguousarray(audio, np.float32), length


class ClipBatchesMixin:
    """For RunInference handlers of prepared clips ``(audio, length)``: batches of exactly
    ``self.batch_size`` clips (the last one smaller), sized in bytes by their samples."""

    batch_size: int

    def get_num_bytes(self, batch) -> int:
        return int(sum(audio.nbytes for audio, _ in batch))

    def batch_elements_kwargs(self) -> dict:
        return {"min_batch_size": self.batch_size, "max_batch_size": self.batch_size}


def dead_letter(path: str, error: BaseException | str) -> str:
    """One dead-letter record: a JSON line ``{"file", "error"}``."""
    return json.dumps({"file": str(path), "error": str(error)})

"""Clip preparation for the Beam jobs, without Beam: the local pipeline's decode → resample → crop,
batch padding and dead-letter records."""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from tfaudio.data.pipeline import PipelineConfig
from tfaudio.errors import AudioError


def prepare_clip(path: str, config: PipelineConfig) -> tuple[np.ndarray, int]:
    """One file as the local pipeline prepares it: decode → mono → resample to ``config.sample_rate``
    → crop or zero-pad to ``config.duration_seconds``.

    The same functions as :class:`tfaudio.data.pipeline.AudioDataset` (``load_audio``, the supported
    rates, ``resample`` — the branch ``resample_any`` picks — and ``pad_or_crop``), so Beam's
    embeddings equal the local cache's.

    Returns:
        (float32 [samples] at ``config.sample_rate``, valid samples).

    Raises:
        AudioError: the file cannot be used (naming it, the problem and the fix).
    """
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.framing import pad_or_crop
    from tfaudio.signal.resample import SUPPORTED_RATES, resample

    target = config.sample_rate
    try:
        audio, rate = load_audio(path, backend=config.backend)
    except AudioError:
        raise
    except Exception as err:  # a decoder bug must still name the file
        raise AudioError(path, f"could not be decoded ({type(err).__name__}: {err}).", "check the file.") from None
    if rate != target and rate not in SUPPORTED_RATES:
        raise AudioError(
            path,
            f"sample rate {rate} Hz is not supported (supported: {', '.join(map(str, SUPPORTED_RATES))}).",
            f"convert the file to {target} Hz (e.g. `sox in.wav -r {target} out.wav`).",
        )
    if rate != target:
        audio = np.asarray(resample(audio, rate, target))
    length = int(audio.shape[0])
    if config.duration_seconds is not None:
        audio = np.asarray(pad_or_crop(audio, config.duration_seconds, target, align=config.align))
        length = min(length, int(audio.shape[0]))
    return np.ascontiguousarray(audio, np.float32), length


def dead_letter(path: str, error: BaseException | str) -> str:
    """One dead-letter record: a JSON line ``{"file", "error"}``."""
    return json.dumps({"file": str(path), "error": str(error)})


def pad_batch(examples: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """``[(audio, length)]`` → zero-padded float32 [batch, samples] and int32 [batch] lengths, as
    ``padded_batch`` builds them in the local pipeline."""
    lengths = np.array([n for _, n in examples], np.int32)
    width = max(max(len(a) for a, _ in examples), 1)
    batch = np.zeros([len(examples), width], np.float32)
    for i, (audio, _) in enumerate(examples):
        batch[i, : len(audio)] = audio
    return batch, lengths

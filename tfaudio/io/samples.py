"""The one owner of sample formats: integer PCM → float32, and channels → mono.

Decoders hand over samples as the file stores them (integer PCM, or float); every road (the file
decoders, the in-graph WAV decoder, arrays given to :class:`~tfaudio.data.audio_converter.AudioConverter`)
converts them here (the in-graph WAV decoder with :func:`full_scale` too), so a 24-bit WAV, an int16 array and an 8-bit FLAC are scaled the same way:
signed PCM of ``b`` bits is divided by ``2**(b-1)``, unsigned PCM is first centred on half its range.
"""
from __future__ import annotations

import numpy as np

from tfaudio.errors import AudioError

__all__ = ["full_scale", "pcm_to_float", "to_mono"]

#: Integer dtypes whose full scale is known: signed PCM, and unsigned PCM (centred on half its range).
_SIGNED = (np.int8, np.int16, np.int32, np.int64)
_UNSIGNED = (np.uint8, np.uint16, np.uint32)


def full_scale(bits: int) -> float:
    """The value that maps to 1.0 for ``bits``-bit PCM: ``2**(bits - 1)``."""
    return float(2 ** (int(bits) - 1))


def pcm_to_float(samples: np.ndarray, where: str = "<input>") -> np.ndarray:
    """Integer PCM (any shape) → float32 in [-1, 1); float samples pass through as float32.

    Raises:
        AudioError: an integer dtype whose full scale is ambiguous (e.g. uint64), naming ``where``.
    """
    a = np.asarray(samples)
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    if a.dtype.type in _SIGNED:
        return (a.astype(np.float64) / full_scale(8 * a.dtype.itemsize)).astype(np.float32)
    if a.dtype.type in _UNSIGNED:
        half = full_scale(8 * a.dtype.itemsize)
        return ((a.astype(np.float64) - half) / half).astype(np.float32)
    raise AudioError(where, f"has integer samples of dtype {a.dtype}, whose full scale is ambiguous.",
                     "convert to float32 in [-1, 1] (or to int16 PCM) first.")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """``[samples, channels]`` → float32 ``[samples]`` (the mean of the channels; one channel is taken
    as it is); ``[samples]`` passes through."""
    a = np.asarray(samples)
    if a.ndim == 1:
        return np.ascontiguousarray(a, np.float32)
    return np.ascontiguousarray(a[:, 0] if a.shape[1] == 1 else a.mean(axis=1, dtype=np.float32), np.float32)

"""Read a recording of any length block by block, at a model's rate, in bounded memory.

:func:`stream_audio` reads ``block_seconds`` of samples at a time with soundfile (never the whole
file), mixes them to mono and resamples each block with the one resampler
(:func:`tfaudio.signal.resample.clip_resampler`). Each block is resampled with ``overlap`` input
samples of real audio on both sides and the output cut at the block's exact edges: block edges sit
on multiples of ``orig_rate / gcd`` input samples, where input and output samples coincide, so the
concatenated blocks equal the whole file resampled at once (up to the filter's tails beyond the
overlap, ~-100 dB). Memory: one block plus two overlaps, whatever the file's length.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from tfaudio.errors import AudioError
from tfaudio.io.audio_info import audio_info
from tfaudio.io.samples import to_mono
from tfaudio.signal.resample import clip_resampler

__all__ = ["stream_audio"]

#: Input samples of context on each side of a block when resampling (seconds; the filters are
#: < 20 ms long).
OVERLAP_SECONDS = 0.05


def _soundfile(path: str):
    try:
        import soundfile as sf
    except ImportError as err:  # pragma: no cover - a core dependency
        raise AudioError(path, "reading long recordings needs soundfile.", "pip install soundfile") from err
    return sf


def stream_audio(path: str | os.PathLike, sample_rate: int, *, block_seconds: float = 60.0,
                 overlap_seconds: float = OVERLAP_SECONDS) -> Iterator[np.ndarray]:
    """Consecutive float32 mono blocks of ``path`` at ``sample_rate``; concatenated they are the
    whole recording resampled (see the module docstring).

    Args:
        path: an audio file soundfile reads.
        sample_rate: the rate to deliver (the model's).
        block_seconds: audio per block (input seconds, rounded to the resampler's grid).
        overlap_seconds: real-audio context on each side of a block for the resampler.

    Raises:
        AudioError: the file cannot be read, has NaN/Inf samples, or its rate cannot be resampled.

    Example:
        >>> for block in stream_audio("night.flac", 16000):  # doctest: +SKIP
        ...     scores = model(block)
    """
    info = audio_info(path)  # the header only: a clear error for a missing, empty or non-audio file
    where, rate = os.fspath(path), info.sample_rate
    sample_rate = int(sample_rate)
    g = math.gcd(rate, sample_rate)
    up, down = sample_rate // g, rate // g
    step = max(1, round(block_seconds * rate / down)) * down  # input samples per block, on the grid
    pad = 0 if rate == sample_rate else max(1, math.ceil(overlap_seconds * rate / down)) * down
    resampler = None
    if rate != sample_rate:
        try:
            resampler = clip_resampler(rate, sample_rate)
        except ValueError as err:
            raise AudioError(where, f"sample rate {rate} Hz cannot be resampled to {sample_rate} Hz ({err}).",
                             f"convert it to {sample_rate} Hz first (e.g. `sox in.wav -r {sample_rate} out.wav`).") from None
    sf = _soundfile(where)
    buf = np.zeros(0, np.float32)  # input samples from buf_start on
    buf_start = 0
    block_start = 0  # first input sample of the next block
    eof = False
    with sf.SoundFile(where) as f:
        while True:
            need = block_start + step + pad  # this block and its right context
            while not eof and buf_start + len(buf) < need:
                data = f.read(max(step, need - buf_start - len(buf)), dtype="float32", always_2d=True)
                if not len(data):
                    eof = True
                    break
                mono = to_mono(data)
                if not np.all(np.isfinite(mono)):
                    raise AudioError(where, f"has NaN/Inf samples near {(buf_start + len(buf)) / rate:.1f} s.",
                                     "repair the file (e.g. re-encode it) before detecting events.")
                buf = np.concatenate([buf, mono])
            total = buf_start + len(buf)  # input samples known so far (all of them once eof)
            block_end = min(block_start + step, total)
            if block_end <= block_start:
                return
            last = eof and block_end == total
            if resampler is None:
                out = buf[block_start - buf_start : block_end - buf_start]
            else:
                a = max(0, block_start - pad)  # on the grid: block_start and pad are multiples of down
                b = total if last else min(total, block_end + pad)
                y = resampler(tf.constant(buf[a - buf_start : b - buf_start])).numpy()
                first = (block_start - a) // down * up
                stop = len(y) if last else first + (block_end - block_start) // down * up
                out = y[first:stop]
            yield np.ascontiguousarray(out, np.float32)
            if last:
                return
            block_start = block_end
            keep = max(buf_start, block_start - pad)
            buf, buf_start = buf[keep - buf_start :], keep

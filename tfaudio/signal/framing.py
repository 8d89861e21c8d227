"""Lengths in seconds: pad, crop and frame waveforms (or feature sequences) in pure TensorFlow.

Configs speak seconds; these helpers turn them into sample counts once (:func:`seconds_to_samples`)
and then work on sample counts. All functions accept a clip ``[samples]`` or a batch
``[batch, samples]``, run in ``tf.data`` and ``tf.function`` with dynamic lengths, and convert to
TFLite with builtin ops only.
"""
from __future__ import annotations

import tensorflow as tf

_ALIGNS = ("start", "center")


class StftTiming:
    """Mixin of the frontend configs (frozen dataclasses in seconds with ``sample_rate``,
    ``window_seconds`` and ``hop_seconds``): their sample counts, derived once here."""

    sample_rate: int
    window_seconds: float
    hop_seconds: float

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))


def seconds_to_samples(seconds: float, rate: int) -> int:
    """Number of samples in ``seconds`` at ``rate`` Hz, rounded to the nearest integer.

    Rounding (not truncation) keeps e.g. ``0.96 s * 16000 Hz`` at 15360 despite float error.

    Args:
        seconds: a duration in seconds (>= 0).
        rate: a sample rate in Hz (or frames per second for feature sequences).

    Example:
        >>> seconds_to_samples(0.025, 16000)
        400
    """
    if seconds < 0 or rate <= 0:
        raise ValueError(
            f"seconds_to_samples needs seconds >= 0 and rate > 0, got seconds={seconds!r}, "
            f"rate={rate!r}. Fix: pass a non-negative duration and a positive rate in Hz."
        )
    return int(round(float(seconds) * rate))


def _length(x: tf.Tensor, axis: int = -1):
    """Static length along ``axis`` when known (keeps shapes static), else a scalar tensor."""
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def _maximum(a, b):
    return tf.maximum(a, b) if isinstance(a, tf.Tensor) else max(a, b)


def _minimum(a, b):
    return tf.minimum(a, b) if isinstance(a, tf.Tensor) else min(a, b)


def _pad_last(x: tf.Tensor, before, after) -> tf.Tensor:
    paddings = [[0, 0]] * (x.shape.rank - 1) + [[before, after]]
    return tf.pad(x, paddings)


def _check_rank(x: tf.Tensor, name: str) -> None:
    if x.shape.rank is None or x.shape.rank == 0:
        raise ValueError(
            f"{name} needs a tensor of known rank >= 1 ([samples] or [batch, samples]), got shape "
            f"{x.shape}. Fix: tf.ensure_shape(waveform, [None])."
        )


def pad_or_crop_samples(waveform, num_samples: int, *, align: str = "start") -> tf.Tensor:
    """Makes the last axis exactly ``num_samples`` long, by zero-padding or cropping.

    Args:
        waveform: ``[..., samples]`` (a clip or a batch); any dtype.
        num_samples: the wanted length (Python int >= 0).
        align: ``"start"`` keeps the beginning (crops the tail, pads zeros at the end);
            ``"center"`` keeps the middle (crops both ends equally, pads both sides equally, the odd
            sample going to the end).

    Returns:
        ``[..., num_samples]``, same dtype, static last dimension.

    Example:
        >>> pad_or_crop_samples(tf.ones([3]), 5).numpy()
        array([1., 1., 1., 0., 0.], dtype=float32)
    """
    if align not in _ALIGNS:
        raise ValueError(f"align must be one of {_ALIGNS}, got {align!r}. Fix: align='start' or 'center'.")
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}.")
    x = tf.convert_to_tensor(waveform)
    _check_rank(x, "pad_or_crop")
    length = _length(x)
    excess = _maximum(length - num_samples, 0)
    start = excess // 2 if align == "center" else 0
    x = x[..., start : start + num_samples]  # [..., min(length, num_samples)]
    missing = num_samples - _minimum(length, num_samples)
    before = missing // 2 if align == "center" else 0
    x = _pad_last(x, before, missing - before)  # [..., num_samples]
    x.set_shape(x.shape[:-1].concatenate([num_samples]))
    return x


def pad_or_crop(waveform, seconds: float, rate: int, *, align: str = "start") -> tf.Tensor:
    """Makes a waveform exactly ``seconds`` long at ``rate`` Hz, by zero-padding or cropping.

    Args:
        waveform: ``[samples]`` or ``[batch, samples]`` at ``rate`` Hz.
        seconds: the wanted duration in seconds.
        rate: the sample rate of ``waveform`` in Hz.
        align: ``"start"`` (crop the tail / pad at the end) or ``"center"`` (crop / pad both ends
            equally); see :func:`pad_or_crop_samples`.

    Returns:
        ``[..., seconds_to_samples(seconds, rate)]``.

    Example:
        >>> pad_or_crop(tf.zeros([44100 * 7]), 5.0, 44100).shape
        TensorShape([220500])
    """
    return pad_or_crop_samples(waveform, seconds_to_samples(seconds, rate), align=align)


def pad_to_min_length(waveform, min_samples: int) -> tf.Tensor:
    """Zero-pads the end of the last axis up to ``min_samples``; longer inputs are returned as is.

    Use it before framing so that a short clip still gives one frame (e.g. YAMNet's 0.975 s).

    Args:
        waveform: ``[..., samples]``.
        min_samples: the minimum length (Python int or scalar int tensor).

    Returns:
        ``[..., max(samples, min_samples)]``.

    Example:
        >>> pad_to_min_length(tf.ones([2, 3]), 4).shape
        TensorShape([2, 4])
    """
    x = tf.convert_to_tensor(waveform)
    _check_rank(x, "pad_to_min_length")
    length = _length(x)
    if isinstance(min_samples, tf.Tensor) and not isinstance(length, tf.Tensor):
        length = tf.shape(x)[-1]
    return _pad_last(x, 0, _maximum(min_samples - length, 0))


def frame_samples(signal, frame_length: int, hop_length: int, *, pad_end: bool = False, axis: int = -1):
    """Cuts overlapping frames of ``frame_length`` samples every ``hop_length`` samples along ``axis``.

    Same layout as ``tf.signal.frame`` (which it calls; that op converts to TFLite builtins): the
    framed axis is replaced by ``[num_frames, frame_length]``. With ``pad_end=False``,
    ``num_frames = 1 + (n - frame_length) // hop_length`` (0 when ``n < frame_length``); with
    ``pad_end=True`` the end is zero-padded and ``num_frames = ceil(n / hop_length)``.

    Args:
        signal: any tensor, e.g. a waveform ``[samples]``, a batch ``[batch, samples]`` or log-mel
            frames ``[frames, 64]`` (frame those with ``axis=0``).
        frame_length: samples (or feature frames) per frame.
        hop_length: step between frame starts.
        pad_end: zero-pad the end so that every sample falls into a frame.
        axis: the axis to frame.

    Returns:
        ``signal.shape[:axis] + [num_frames, frame_length] + signal.shape[axis + 1:]``.

    Example:
        >>> log_mel = tf.zeros([200, 64])                              # 2 s of 10 ms frames
        >>> frame_samples(log_mel, 96, 48, axis=0).shape               # YAMNet patches
        TensorShape([3, 96, 64])
    """
    if frame_length <= 0 or hop_length <= 0:
        raise ValueError(
            f"frame_length and hop_length must be positive, got {frame_length} and {hop_length}. "
            "Fix: check the frame and hop durations against the sample rate."
        )
    x = tf.convert_to_tensor(signal)
    _check_rank(x, "frame")
    return tf.signal.frame(x, frame_length, hop_length, pad_end=pad_end, axis=axis)


def frame(signal, frame_seconds: float, hop_seconds: float, rate: int, *, pad_end: bool = False, axis: int = -1):
    """Cuts overlapping frames given in seconds; see :func:`frame_samples` for shapes and counts.

    Args:
        signal: ``[..., samples]`` at ``rate`` (or any tensor framed along ``axis``).
        frame_seconds: frame duration in seconds.
        hop_seconds: step between frame starts in seconds.
        rate: samples per second along ``axis`` (Hz for waveforms; 100 for 10 ms log-mel frames).
        pad_end: zero-pad the end so that every sample falls into a frame.
        axis: the axis to frame.

    Returns:
        ``signal.shape[:axis] + [num_frames, frame_samples] + signal.shape[axis + 1:]``.

    Example:
        >>> frame(tf.zeros([16000]), 0.025, 0.010, 16000).shape         # 25 ms / 10 ms at 16 kHz
        TensorShape([98, 400])
    """
    return frame_samples(
        signal,
        seconds_to_samples(frame_seconds, rate),
        seconds_to_samples(hop_seconds, rate),
        pad_end=pad_end,
        axis=axis,
    )

"""Log-mel spectrogram patches in pure TensorFlow, one function per step (YAMNet's frontend).

``waveform → pad_waveform → stft_magnitude → mel → log → log_mel_patches``

The STFT has two exact implementations of the same step, chosen at trace time as YAMNet's reference
code does with its ``tflite_compatible`` parameter:

- by default, ``tf.signal.rfft`` of the windowed frames (fast: ~3x less CPU than a DFT matmul;
  it converts to TFLite builtins too, as RFFT2D and COMPLEX_ABS);
- inside ``with tflite_compatible():`` (what the TFLite exporter uses), one matmul with a real DFT
  matrix whose rows carry the periodic Hann window, so the TFLite graph is plain FullyConnected
  (XNNPACK-friendly, quantizer-friendly) with builtin ops only: Reshape, StridedSlice, GatherV2,
  Pad, FullyConnected, Mul, Add, Sqrt, Log.

The two agree to float32 rounding (tested). Every function takes a clip ``[samples]`` or a batch
``[batch, samples]``.

Inside ``with fast_kernels():`` (what the data pipeline's per-clip step uses, see
:func:`tfaudio.data.pipeline._clip_step`), the RFFT form takes two shortcuts that keep the numbers to
float32 rounding: the power is ``re² + im²`` of the RFFT's bins (TensorFlow's complex ``abs`` is a
careful ``hypot`` and took ~35 % of EfficientAT's frontend; the magnitude is then its ``sqrt``), and
the mel projection multiplies each group of :data:`MEL_BANDS_PER_GROUP` bands by the bins that group
weighs only (:func:`mel_matmul`: a mel filterbank is ~95 % exact zeros). Exports keep the plain forms.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math

import numpy as np
import tensorflow as tf

from tfaudio.signal.framing import StftTiming, frame_samples

__all__ = [
    "LogMelConfig",
    "fast_kernels",
    "mel_matmul",
    "log_mel_patches",
    "log_mel_spectrogram",
    "mel_weight_matrix",
    "num_patches",
    "pad_waveform",
    "stft_magnitude",
    "hann_window",
    "stft_power",
    "tflite_compatible",
    "windowed_dft_matrix",
]

# True while a graph for TFLite is being traced: the STFT is then a DFT matmul instead of an RFFT.
_TFLITE_COMPATIBLE = contextvars.ContextVar("tfaudio_tflite_compatible_stft", default=False)
# True while the data pipeline's per-clip step is traced: the RFFT form's power and mel take shortcuts.
_FAST_KERNELS = contextvars.ContextVar("tfaudio_fast_frontend_kernels", default=False)
#: Mel bands per matmul in :func:`mel_matmul`'s banded form. Measured on EfficientAT's 480 x 128
#: filterbank (one thread, 500 frames): 8, 16 and 32 bands per group read 532, 502 and 487 bins in
#: all and ran the projection in ~0.10, ~0.05 and ~0.07 ms against ~0.24 ms for the dense matmul.
MEL_BANDS_PER_GROUP = 16


@contextlib.contextmanager
def tflite_compatible(enabled: bool = True):
    """Within this block, frontends traced compute the STFT as one DFT matmul (TFLite's choice).

    Like YAMNet's ``params.tflite_compatible``: the numbers are the same to float32 rounding, but
    the graph holds FullyConnected instead of RFFT2D/ComplexAbs, which XNNPACK accelerates and the
    int8 quantizer understands. It acts when a function is *traced*: build the model (or trace the
    ``tf.function``) to convert inside the block.

    Example:
        >>> with tflite_compatible():                                   # doctest: +SKIP
        ...     tflite_bytes = tf.lite.TFLiteConverter.from_keras_model(build_model()).convert()
    """
    token = _TFLITE_COMPATIBLE.set(bool(enabled))
    try:
        yield
    finally:
        _TFLITE_COMPATIBLE.reset(token)


@contextlib.contextmanager
def fast_kernels(enabled: bool = True):
    """Within this block, frontends traced for TensorFlow take the faster forms of two steps (see the
    module doc): the RFFT's power as ``re² + im²`` and the banded mel projection (:func:`mel_matmul`).

    The numbers agree with the plain forms to float32 rounding (~1e-7 relative; tested). It acts when
    a function is *traced*, as :func:`tflite_compatible`, which it leaves alone: the DFT-matmul form
    (and every export) stays as it is.

    Example:
        >>> with fast_kernels():                                        # doctest: +SKIP
        ...     features = tf.function(backbone.clip_features).get_concrete_function(spec)
    """
    token = _FAST_KERNELS.set(bool(enabled))
    try:
        yield
    finally:
        _FAST_KERNELS.reset(token)


@functools.lru_cache(maxsize=16)
def _mel_bands(weights_key: bytes, shape: tuple[int, int], group: int) -> tuple[tuple[int, int, np.ndarray], ...]:
    """``(first bin, last bin + 1, weights [bins, bands])`` of each group of ``group`` bands (cached)."""
    weights = np.frombuffer(weights_key, np.float32).reshape(shape)
    out = []
    for start in range(0, shape[1], group):
        block = weights[:, start : start + group]
        rows = np.flatnonzero(block.any(axis=1))
        first, last = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 1)
        part = np.ascontiguousarray(block[first:last])
        part.setflags(write=False)
        out.append((first, last, part))
    return tuple(out)


def mel_matmul(spectrum, weights: np.ndarray) -> tf.Tensor:
    """``spectrum [..., F, K] @ weights [K, M]``: the mel projection of a power or magnitude spectrum.

    Plain, one ``tensordot``; inside :func:`fast_kernels` (and not :func:`tflite_compatible`), banded:
    each group of :data:`MEL_BANDS_PER_GROUP` bands is one matmul with only the bins it weighs (the
    terms left out are exact zeros, so the sums agree to float32 rounding).

    Args:
        spectrum: float32 ``[..., F, K]``.
        weights: float32 numpy ``[K, M]`` (a mel filterbank).

    Returns:
        float32 ``[..., F, M]``.
    """
    weights = np.asarray(weights, np.float32)
    spectrum = tf.convert_to_tensor(spectrum, tf.float32)
    bins, bands = weights.shape
    if not _FAST_KERNELS.get() or _TFLITE_COMPATIBLE.get():
        mel = tf.tensordot(spectrum, tf.constant(weights), axes=1)  # [..., F, M]
    else:
        flat = tf.reshape(spectrum, [-1, bins])  # [N, K]
        groups = _mel_bands(weights.tobytes(), (bins, bands), MEL_BANDS_PER_GROUP)
        parts = [tf.matmul(flat[:, first:last], tf.constant(part)) for first, last, part in groups]  # [N, m] each
        mel = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]  # [N, M]
        mel = tf.reshape(mel, tf.concat([tf.shape(spectrum)[:-1], [bands]], axis=0))  # [..., F, M]
    mel.set_shape(spectrum.shape[:-1].concatenate([bands]))  # a note, not an op (TFLite)
    return mel


@dataclasses.dataclass(frozen=True)
class LogMelConfig(StftTiming):
    """YAMNet's log-mel frontend in seconds; the sample and frame counts are derived properties.

    Args:
        sample_rate: input rate in Hz.
        window_seconds: STFT window (25 ms → 400 samples at 16 kHz).
        hop_seconds: STFT hop (10 ms → 160 samples).
        num_mel_bins: mel bands.
        lower_edge_hertz: lowest mel band edge in Hz.
        upper_edge_hertz: highest mel band edge in Hz.
        log_offset: added to the mel energies before the log, so silence gives log(0.001), not -inf.
        patch_seconds: span of one patch of log-mel frames (0.96 s → 96 frames).
        patch_hop_seconds: step between patches (0.48 s → 48 frames).

    Example:
        >>> cfg = LogMelConfig()
        >>> cfg.window_samples, cfg.hop_samples, cfg.fft_length, cfg.patch_frames, cfg.min_samples
        (400, 160, 512, 96, 15600)
    """

    sample_rate: int = 16000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    num_mel_bins: int = 64
    lower_edge_hertz: float = 125.0
    upper_edge_hertz: float = 7500.0
    log_offset: float = 0.001
    patch_seconds: float = 0.96
    patch_hop_seconds: float = 0.48

    @property
    def fft_length(self) -> int:
        """The next power of two >= the window (512 for 400 samples)."""
        return 2 ** int(math.ceil(math.log2(self.window_samples)))

    @property
    def num_spectrogram_bins(self) -> int:
        return self.fft_length // 2 + 1

    @property
    def patch_frames(self) -> int:
        return int(round(self.patch_seconds / self.hop_seconds))

    @property
    def patch_hop_frames(self) -> int:
        return int(round(self.patch_hop_seconds / self.hop_seconds))

    @property
    def patch_hop_samples(self) -> int:
        return self.patch_hop_frames * self.hop_samples

    @property
    def min_samples(self) -> int:
        """Samples that give exactly one patch: (patch_frames - 1) hops + one window (15600)."""
        return (self.patch_frames - 1) * self.hop_samples + self.window_samples

    @property
    def min_seconds(self) -> float:
        return self.min_samples / self.sample_rate


@functools.lru_cache(maxsize=16)
def windowed_dft_matrix(frame_length: int, fft_length: int, first_bin: int = 0,
                        last_bin: int | None = None, periodic: bool = True) -> np.ndarray:
    """The real DFT of a Hann-windowed frame as one real matrix.

    ``frames @ M`` gives ``[re_first .. re_last-1, im_first .. im_last-1]``: the DFT bins
    ``first_bin .. last_bin - 1`` (default all ``fft_length // 2 + 1``) of each frame multiplied by the
    window and zero-padded at the end to ``fft_length`` (as ``tf.signal.stft`` does). Rows past
    ``frame_length`` would only multiply padding zeros, so they are left out.

    Args:
        frame_length: samples per frame (<= ``fft_length``).
        fft_length: DFT size.
        first_bin: first DFT bin kept.
        last_bin: one past the last bin kept (default ``fft_length // 2 + 1``).
        periodic: the periodic Hann window (YAMNet, ``tf.signal.hann_window``); False: the symmetric
            one (``torch.hann_window(periodic=False)``, EfficientAT); see :func:`hann_window`.

    Returns:
        float32 ``[frame_length, 2 * (last_bin - first_bin)]`` (read-only, cached).
    """
    if not 0 < frame_length <= fft_length:
        raise ValueError(
            f"frame_length must be in 1..fft_length, got frame_length={frame_length}, "
            f"fft_length={fft_length}. Fix: use an fft_length >= the window length."
        )
    last_bin = fft_length // 2 + 1 if last_bin is None else last_bin
    n = np.arange(frame_length, dtype=np.float64)
    window = _hann64(frame_length, periodic)
    k = np.arange(first_bin, last_bin, dtype=np.float64)
    angle = 2.0 * np.pi * np.outer(n, k) / fft_length  # [frame_length, K]
    matrix = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=16)
def hann_window(length: int, periodic: bool = True) -> np.ndarray:
    """A Hann window as a float32 numpy constant (read-only, cached).

    Args:
        length: samples.
        periodic: ``0.5 - 0.5 cos(2πn / length)`` (``tf.signal.hann_window``, YAMNet); False: the
            symmetric ``0.5 - 0.5 cos(2πn / (length - 1))`` (``torch.hann_window(periodic=False)``,
            ``np.hanning``; EfficientAT).
    """
    window = _hann64(length, periodic).astype(np.float32)
    window.setflags(write=False)
    return window


def _hann64(length: int, periodic: bool) -> np.ndarray:
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (length if periodic else max(length - 1, 1)))


def _dft_magnitude(waveform, frame_length: int, frame_step: int, fft_length: int, first_bin: int,
                   last_bin: int, *, periodic: bool = True, power: bool = False) -> tf.Tensor:
    """``|STFT|`` (or ``|STFT|²`` with ``power``) bins ``first_bin .. last_bin - 1`` of Hann-windowed
    frames (periodic or symmetric window, see :func:`hann_window`).

    An RFFT, or within :func:`tflite_compatible` one DFT matmul and ``sqrt(re² + im²)`` (``re² + im²``).
    """
    x = tf.cast(tf.convert_to_tensor(waveform), tf.float32)
    bins = last_bin - first_bin
    frames = frame_samples(x, frame_length, frame_step)  # [..., F, L]
    if not _TFLITE_COMPATIBLE.get() and _FAST_KERNELS.get():
        spec = tf.signal.rfft(frames * hann_window(frame_length, periodic), [fft_length])  # [..., F, fft/2 + 1]
        real = tf.math.real(spec)[..., first_bin:last_bin]  # [..., F, K]
        imag = tf.math.imag(spec)[..., first_bin:last_bin]
        magnitude = real * real + imag * imag
        return magnitude if power else tf.sqrt(magnitude)
    if not _TFLITE_COMPATIBLE.get():
        window = hann_window(frame_length, periodic)
        # abs before the slice: TFLite cannot slice complex tensors (RFFT2D → COMPLEX_ABS → slice)
        magnitude = tf.abs(tf.signal.rfft(frames * window, [fft_length]))[..., first_bin:last_bin]  # [..., F, K]
        return tf.square(magnitude) if power else magnitude
    dft = tf.constant(windowed_dft_matrix(frame_length, fft_length, first_bin, last_bin, periodic))  # [L, 2K]
    # One 2-D matmul over all frames of all clips: the fastest kernel and a plain FullyConnected in
    # TFLite (a rank-3 matmul would become BatchMatMul).
    flat = tf.reshape(frames, [-1, frame_length])  # [N, L]
    spec = tf.matmul(flat, dft)  # [N, 2K]
    real, imag = spec[:, :bins], spec[:, bins:]  # [N, K] each
    magnitude = real * real + imag * imag  # [N, K]
    if not power:
        magnitude = tf.sqrt(magnitude)
    out_shape = tf.concat([tf.shape(frames)[:-1], [bins]], axis=0)
    magnitude = tf.reshape(magnitude, out_shape)  # [..., F, K]
    # set_shape, not ensure_shape: a static shape note only. ensure_shape is an op, and where the
    # shape is partly known (a fixed batch, a free length) TFLite has no builtin for it.
    magnitude.set_shape(frames.shape[:-1].concatenate([bins]))
    return magnitude


def stft_magnitude(waveform, frame_length: int, frame_step: int, fft_length: int) -> tf.Tensor:
    """``|STFT|`` with a periodic Hann window, as ``tf.abs(tf.signal.stft(...))``.

    An RFFT; a DFT matmul within :func:`tflite_compatible`. Both convert to TFLite builtins.

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]``.
        frame_length: window length in samples.
        frame_step: hop in samples.
        fft_length: DFT size (>= ``frame_length``).

    Returns:
        float32 ``[..., frames, fft_length // 2 + 1]`` with
        ``frames = 1 + (samples - frame_length) // frame_step`` (no end padding).

    Example:
        >>> stft_magnitude(tf.zeros([16000]), 400, 160, 512).shape
        TensorShape([98, 257])
    """
    return _dft_magnitude(waveform, frame_length, frame_step, fft_length, 0, fft_length // 2 + 1)


def stft_power(waveform, frame_length: int, frame_step: int, fft_length: int, first_bin: int = 0,
               last_bin: int | None = None) -> tf.Tensor:
    """``|STFT|²`` with a periodic Hann window: DFT bins ``first_bin .. last_bin - 1`` only (a mel
    filterbank that ignores the others need not compute them).

    An RFFT; ``re² + im²`` of a DFT matmul within :func:`tflite_compatible`.

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]``.
        frame_length: window length in samples (frames are zero-padded at the end to ``fft_length``).
        frame_step: hop in samples.
        fft_length: DFT size (>= ``frame_length``).
        first_bin, last_bin: the DFT bins kept (default all ``fft_length // 2 + 1``).

    Returns:
        float32 ``[..., 1 + (samples - frame_length) // frame_step, last_bin - first_bin]``.
    """
    last_bin = fft_length // 2 + 1 if last_bin is None else last_bin
    return _dft_magnitude(waveform, frame_length, frame_step, fft_length, first_bin, last_bin, power=True)


@functools.lru_cache(maxsize=16)
def mel_weight_matrix(config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """``tf.signal.linear_to_mel_weight_matrix`` for ``config``, computed once as a numpy constant.

    Returns:
        float32 ``[num_spectrogram_bins, num_mel_bins]`` (read-only, cached).
    """
    with tf.init_scope():  # eager even when first called while a tf.function is being traced
        matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=config.num_mel_bins,
            num_spectrogram_bins=config.num_spectrogram_bins,
            sample_rate=config.sample_rate,
            lower_edge_hertz=config.lower_edge_hertz,
            upper_edge_hertz=config.upper_edge_hertz,
        ).numpy()
    matrix.setflags(write=False)
    return matrix


def log_mel_spectrogram(waveform, config: LogMelConfig = LogMelConfig()) -> tf.Tensor:
    """``log(mel(|STFT|) + log_offset)`` of a clip or a batch (no padding; see :func:`pad_waveform`).

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]`` at ``config.sample_rate``.
        config: the frontend settings.

    Returns:
        float32 ``[..., frames, num_mel_bins]``, ``frames = 1 + (samples - 400) // 160`` by default.

    Example:
        >>> log_mel_spectrogram(tf.zeros([15600])).shape
        TensorShape([96, 64])
    """
    weights = mel_weight_matrix(config)  # [K, mel]
    # Only the DFT bins inside the mel range (5..239 of 257 by default): the others have zero weight
    # in every band, and skipping them saves ~9 % of the frontend's work.
    used = np.flatnonzero(weights.any(axis=1))
    first, last = int(used[0]), int(used[-1]) + 1
    magnitude = _dft_magnitude(waveform, config.window_samples, config.hop_samples, config.fft_length,
                               first, last)  # [..., F, last - first]
    mel = mel_matmul(magnitude, weights[first:last])  # [..., F, mel]
    return tf.math.log(mel + config.log_offset)  # [..., F, mel]


def log_mel_patches(log_mel, config: LogMelConfig = LogMelConfig()) -> tf.Tensor:
    """Cuts log-mel frames into patches of ``patch_frames`` every ``patch_hop_frames`` (96 / 48).

    Args:
        log_mel: ``[..., frames, num_mel_bins]``.
        config: the frontend settings.

    Returns:
        ``[..., patches, patch_frames, num_mel_bins]``, ``patches = 1 + (frames - 96) // 48``.

    Example:
        >>> log_mel_patches(tf.zeros([192, 64])).shape
        TensorShape([3, 96, 64])
    """
    return frame_samples(log_mel, config.patch_frames, config.patch_hop_frames, axis=-2)


def num_patches(num_samples, config: LogMelConfig = LogMelConfig()):
    """Patches a clip of ``num_samples`` gives after :func:`pad_waveform` (at least one).

    Args:
        num_samples: a Python int, or an int tensor of any shape (e.g. the ``[batch]`` lengths).

    Returns:
        the same kind as ``num_samples``: ``1 + ceil(max(0, n - min_samples) / patch_hop_samples)``.
    """
    extra_min, hop = config.min_samples, config.patch_hop_samples
    if isinstance(num_samples, (int, np.integer)):
        return 1 + -(-max(0, int(num_samples) - extra_min) // hop)
    n = tf.cast(num_samples, tf.int32)
    return 1 + (tf.maximum(n - extra_min, 0) + hop - 1) // hop


def pad_waveform(waveform, config: LogMelConfig = LogMelConfig()) -> tf.Tensor:
    """Zero-pads the end like YAMNet: a clip shorter than ``min_samples`` (0.975 s) to one patch,
    a longer one so that its last partial 0.48 s hop fills a whole patch.

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]`` (a batch is padded as one length).
        config: the frontend settings.

    Returns:
        float32 ``[..., min_samples + (num_patches - 1) * patch_hop_samples]``.

    Example:
        >>> pad_waveform(tf.zeros([16000])).shape      # 1 s → 2 patches
        TensorShape([23280])
    """
    x = tf.cast(tf.convert_to_tensor(waveform), tf.float32)
    n = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]  # static when known: fixed shapes
    target = config.min_samples + (num_patches(n, config) - 1) * config.patch_hop_samples
    return tf.pad(x, [[0, 0]] * (x.shape.rank - 1) + [[0, target - n]])

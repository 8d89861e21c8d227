"""EfficientAT's log-mel frontend in plain TensorFlow ops (TFLite builtins), one function for tf.data,
the backbone and exported graphs.

The recipe (EfficientAT ``models/preprocess.py``, ``AugmentMelSTFT`` in eval mode; F. Schmid et al.,
ICASSP 2023), at 32 kHz mono::

    x [S]  → pre-emphasis  y[t] = x[t+1] - 0.97 x[t]                      [S - 1]
           → reflect-pad 512 samples at each end (torch.stft(center=True))  [S - 1 + 1024]
           → frames of 1024 every 320 samples, a symmetric 800-sample Hann window
             in the middle (samples 112..911)                               [T, 1024]
           → |DFT|² (power)                                                 [T, 513]
           → Kaldi mel filterbank 0–15 kHz, 128 bands (+ a zero row for the
             Nyquist bin)                                                   [T, 128]
           → log(x + 1e-5), then (x + 4.5) / 5                               [T, 128]

with ``T = 1 + (S - 1) // 320`` frames. The pre-emphasis is EfficientAT's ``conv1d`` with the kernel
``[-0.97, 1]`` and no padding: the first sample has no predecessor, so it only enters through
``y[0] = x[1] - 0.97 x[0]`` and the filtered signal is one sample shorter.

The DFT is :mod:`tfaudio.signal.melspec`'s (an RFFT, or inside ``melspec.tflite_compatible()`` a
DFT matmul): only the 800 windowed samples of each frame are transformed (zero-padded to 1024 at the
end instead of 112 zeros on each side: the shift changes the phase, not the power).

A batch with ``lengths`` gives, for every clip, what the clip gives alone: each clip is reflected at
its own end, and its frames past ``num_frames(length)`` are zero.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from tfaudio.signal import melspec
from tfaudio.signal.framing import StftTiming

__all__ = ["EfficientATFrontendConfig", "kaldi_mel_matrix", "log_mel", "num_frames"]


@dataclasses.dataclass(frozen=True)
class EfficientATFrontendConfig(StftTiming):
    """EfficientAT's frontend settings (its released AudioSet models use the defaults).

    Args:
        sample_rate: input rate in Hz.
        window_seconds: Hann window (800 samples at 32 kHz).
        hop_seconds: STFT hop (320 samples: 100 frames per second).
        fft_length: DFT size; the window sits in its middle.
        num_mel_bins: mel bands.
        lower_edge_hertz: lowest mel band edge (Kaldi ``low_freq``).
        upper_edge_hertz: highest mel band edge (Kaldi ``high_freq``).
        preemphasis: ``y[t] = x[t+1] - preemphasis * x[t]``.
        log_offset: added to the mel power before the log.
        norm_shift: ``(log_mel + norm_shift) / norm_scale`` ("fast normalization").
        norm_scale: see ``norm_shift``.

    Example:
        >>> cfg = EfficientATFrontendConfig()
        >>> cfg.window_samples, cfg.hop_samples, cfg.window_offset
        (800, 320, 112)
    """

    sample_rate: int = 32000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    fft_length: int = 1024
    num_mel_bins: int = 128
    lower_edge_hertz: float = 0.0
    upper_edge_hertz: float = 15000.0
    preemphasis: float = 0.97
    log_offset: float = 1e-5
    norm_shift: float = 4.5
    norm_scale: float = 5.0

    @property
    def center_pad(self) -> int:
        """Reflected samples at each end (``fft_length // 2``, as ``torch.stft(center=True)``)."""
        return self.fft_length // 2

    @property
    def window_offset(self) -> int:
        """Where the window starts inside a DFT frame (torch pads it equally on both sides)."""
        return (self.fft_length - self.window_samples) // 2

    @property
    def min_samples(self) -> int:
        """The shortest clip the reflect padding accepts (the filtered signal must exceed 512 samples)."""
        return self.center_pad + 2


@functools.lru_cache(maxsize=8)
def kaldi_mel_matrix(config: EfficientATFrontendConfig = EfficientATFrontendConfig()) -> np.ndarray:
    """The mel filterbank of ``torchaudio.compliance.kaldi.get_mel_banks`` (no VTLN warp), transposed
    and padded with a zero row for the Nyquist bin, as EfficientAT uses it.

    Kaldi's triangles are on the mel scale ``1127 ln(1 + f / 700)``: band ``b`` rises from mel
    ``lo + b Δ`` to ``lo + (b + 1) Δ`` and falls to ``lo + (b + 2) Δ`` (``Δ = (mel(high) - mel(low)) /
    (bands + 1)``), evaluated at the DFT bin frequencies ``k · rate / fft_length``, ``k < fft_length / 2``.
    Computed in float64 (torchaudio uses float32: the two differ by ~1e-7 relative).

    Returns:
        float32 ``[fft_length // 2 + 1, num_mel_bins]`` (513 × 128 by default; read-only, cached).
    """
    c = config
    nyquist = 0.5 * c.sample_rate
    if not (0.0 <= c.lower_edge_hertz < c.upper_edge_hertz <= nyquist):
        raise ValueError(f"mel band edges must satisfy 0 <= lower < upper <= {nyquist} Hz (Nyquist), got "
                         f"{c.lower_edge_hertz} and {c.upper_edge_hertz}.")

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)

    low, high = mel(c.lower_edge_hertz), mel(c.upper_edge_hertz)
    delta = (high - low) / (c.num_mel_bins + 1)
    band = np.arange(c.num_mel_bins, dtype=np.float64)[:, None]  # [M, 1]
    left, center, right = low + band * delta, low + (band + 1.0) * delta, low + (band + 2.0) * delta
    bin_mel = mel(c.sample_rate / c.fft_length * np.arange(c.fft_length // 2, dtype=np.float64))[None, :]  # [1, K]
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))  # [M, K]
    banks = np.pad(banks, [(0, 0), (0, 1)])  # [M, K + 1]: the Nyquist bin gets no weight
    matrix = np.ascontiguousarray(banks.T, dtype=np.float32)  # [K + 1, M]
    matrix.setflags(write=False)
    return matrix


def num_frames(num_samples, config: EfficientATFrontendConfig = EfficientATFrontendConfig()):
    """STFT frames of a clip of ``num_samples`` samples: ``1 + (num_samples - 1) // hop`` (its
    ``num_samples - 1`` pre-emphasised samples, centred).

    Args:
        num_samples: a Python int, or an int tensor (e.g. the ``[batch]`` lengths).
    """
    hop = config.hop_samples
    if isinstance(num_samples, (int, np.integer)):
        return 1 + (int(num_samples) - 1) // hop
    return 1 + (tf.cast(num_samples, tf.int32) - 1) // hop


def _reflect_pad(y: tf.Tensor, valid, pad: int) -> tf.Tensor:
    """``y [B, N]`` with each row reflected around its own ``valid [B]`` end (and its start).

    A row's samples past ``valid + pad`` are junk (no frame of that row reads them).
    """
    width = tf.shape(y)[1]
    # expand_dims, not x[None]: TFLite has no StridedSlice with new axes
    pos = tf.expand_dims(tf.range(-pad, width + pad), 0)  # [1, W]
    end = tf.expand_dims(valid, 1)  # [B, 1]
    idx = tf.abs(pos)  # left edge: y[-i] = y[i]
    idx = tf.where(idx >= end, 2 * (end - 1) - idx, idx)  # right edge: y[n - 1 + i] = y[n - 1 - i]
    idx = tf.clip_by_value(idx, 0, width - 1)  # the junk region (and too-short rows) stay in range
    # one flat gather (TFLite GATHER): row b's samples start at b * width
    offsets = tf.expand_dims(tf.range(tf.shape(y)[0]) * width, 1)  # [B, 1]
    return tf.gather(tf.reshape(y, [-1]), idx + offsets)  # [B, W]


def log_mel(waveforms, lengths=None, config: EfficientATFrontendConfig = EfficientATFrontendConfig()) -> tf.Tensor:
    """EfficientAT's normalised log-mel spectrogram of a clip or a zero-padded batch (see the module doc).

    Args:
        waveforms: float32 ``[samples]`` or ``[batch, samples]`` at ``config.sample_rate`` (at least
            ``config.min_samples`` = 514 samples per clip; the backbone pads shorter clips).
        lengths: int ``[batch]`` valid samples per clip (None: all). Each clip is then reflected at
            its own end and its frames past ``num_frames(length)`` are zero.
        config: the frontend settings.

    Returns:
        float32 ``[..., T, num_mel_bins]``, ``T = num_frames(samples)`` (time-major, like
        :func:`tfaudio.signal.melspec.log_mel_spectrogram`; EfficientAT's own tensor is its transpose).

    Example:
        >>> log_mel(tf.zeros([320000])).shape          # 10 s at 32 kHz
        TensorShape([1000, 128])
    """
    c = config
    x = tf.cast(tf.convert_to_tensor(waveforms), tf.float32)
    single = x.shape.rank == 1
    if single:
        x = tf.expand_dims(x, 0)
    width = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]  # static when known
    y = x[:, 1:] - c.preemphasis * x[:, :-1]  # [B, S - 1]
    pad = c.center_pad
    if lengths is None:
        padded = tf.pad(y, [[0, 0], [pad, pad]], mode="REFLECT")  # [B, S - 1 + 1024] (TFLite MIRROR_PAD)
    else:
        valid = tf.maximum(tf.cast(lengths, tf.int32) - 1, 1)
        padded = _reflect_pad(y, valid, pad)  # [B, S - 1 + 1024]
    frames = num_frames(width, c)
    # the frames' windowed parts: samples [t * hop + 112, t * hop + 912) of the padded signal
    start = c.window_offset
    padded = padded[:, start : start + (frames - 1) * c.hop_samples + c.window_samples]
    weights = kaldi_mel_matrix(c)  # [513, M]
    used = np.flatnonzero(weights.any(axis=1))  # bins 1..480: the others weigh zero in every band
    first, last = int(used[0]), int(used[-1]) + 1
    power = melspec._dft_magnitude(padded, c.window_samples, c.hop_samples, c.fft_length, first, last,
                                   periodic=False, power=True)  # [B, T, K]
    mel = melspec.mel_matmul(power, weights[first:last])  # [B, T, M]
    mel = tf.ensure_shape(mel, power.shape[:-1].concatenate([c.num_mel_bins]))
    out = (tf.math.log(mel + c.log_offset) + c.norm_shift) / c.norm_scale  # [B, T, M]
    if lengths is not None:
        mask = tf.sequence_mask(num_frames(lengths, c), tf.shape(out)[1])  # [B, T]
        out = tf.where(tf.expand_dims(mask, -1), out, 0.0)
    return out[0] if single else out

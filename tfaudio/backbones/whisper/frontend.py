"""Whisper's log-mel input features in pure TensorFlow (``WhisperFeatureExtractor``'s computation).

``waveform → pad / cut to 30 s → reflect-pad 200 → |STFT|² (400, hop 160, periodic Hann) → Slaney mel
→ log10(max(·, 1e-10)) → max(·, max − 8) → (· + 4) / 4``

One function, :func:`whisper_log_mel`, used by the Whisper backbone in eager extraction, ``tf.data``
and exported graphs. Its ops are TFLite builtins: Pad/MirrorPad, StridedSlice, the STFT of
:func:`~tfaudio.signal.melspec.stft_magnitude` (RFFT, or within
:func:`~tfaudio.signal.melspec.tflite_compatible` one DFT matmul: transformers' n_fft of 400 is no power
of two, which TFLite's RFFT2D needs), Mul, FullyConnected/MatMul, Maximum, Log, ReduceMax, Add.

Measured against transformers' ``WhisperFeatureExtractor`` (NumPy path, float64 inside) on seeded
noise, tones, speech-like bursts and silence: max abs difference ~1e-5 on the (x + 4) / 4 scale (values
of about -1.5..1.5), see ``tests/test_whisper.py``.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import tensorflow as tf

from tfaudio.signal.framing import StftTiming, pad_or_crop_samples
from tfaudio.signal.melspec import stft_magnitude

__all__ = ["WhisperLogMelConfig", "slaney_mel_filter_bank", "whisper_log_mel"]


@dataclasses.dataclass(frozen=True)
class WhisperLogMelConfig(StftTiming):
    """Whisper's feature extractor in seconds; sample and frame counts are derived properties.

    The defaults are ``WhisperFeatureExtractor``'s (whisper-tiny .. large-v2 use 80 mel bins,
    large-v3 128).

    Args:
        sample_rate: input rate in Hz.
        window_seconds: STFT window = FFT size (25 ms → n_fft 400 at 16 kHz; not padded to 512).
        hop_seconds: STFT hop (10 ms → 160 samples).
        num_mel_bins: mel bands (the model's ``num_mel_bins``).
        chunk_seconds: every input is cut or zero-padded to this (30 s), as Whisper was trained.
        min_hertz: lowest mel edge.
        max_hertz: highest mel edge.
        mel_floor: mel energies are clamped to at least this before the log.
        dynamic_range: log10 values below (max - dynamic_range) are raised to it (8 = 80 dB).

    Example:
        >>> cfg = WhisperLogMelConfig()
        >>> cfg.n_fft, cfg.hop_samples, cfg.chunk_samples, cfg.num_frames
        (400, 160, 480000, 3000)
    """

    sample_rate: int = 16000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    num_mel_bins: int = 80
    chunk_seconds: float = 30.0
    min_hertz: float = 0.0
    max_hertz: float = 8000.0
    mel_floor: float = 1e-10
    dynamic_range: float = 8.0

    @property
    def n_fft(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def chunk_samples(self) -> int:
        return int(round(self.chunk_seconds * self.sample_rate))

    @property
    def num_frames(self) -> int:
        """Log-mel frames of one chunk (the STFT's ``chunk / hop + 1`` minus the last, as Whisper drops it)."""
        return self.chunk_samples // self.hop_samples

    @property
    def num_spectrogram_bins(self) -> int:
        return self.n_fft // 2 + 1


def _hertz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    log_step = 27.0 / np.log(6.4)
    return np.where(hz < 1000.0, 3.0 * hz / 200.0, 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * log_step)


def _slaney_mel_to_hertz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    return np.where(mel < 15.0, 200.0 * mel / 3.0, 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0))


@functools.lru_cache(maxsize=8)
def slaney_mel_filter_bank(config: WhisperLogMelConfig = WhisperLogMelConfig()) -> np.ndarray:
    """Triangular mel filters on Slaney's scale with Slaney's area normalisation (librosa's default,
    ``transformers.audio_utils.mel_filter_bank(norm="slaney", mel_scale="slaney")``).

    Returns:
        float32 ``[num_spectrogram_bins, num_mel_bins]`` (201 x 80 by default; read-only, cached).
    """
    bins = config.num_spectrogram_bins
    fft_hz = np.linspace(0.0, config.sample_rate // 2, bins)  # [bins]
    edges_mel = np.linspace(_hertz_to_slaney_mel(config.min_hertz), _hertz_to_slaney_mel(config.max_hertz),
                            config.num_mel_bins + 2)
    edges = _slaney_mel_to_hertz(edges_mel)  # [mel + 2] Hz: lower edge, centre, upper edge of each band
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # [mel] each
    rising = (fft_hz[:, None] - lower) / (centre - lower)  # [bins, mel]
    falling = (upper - fft_hz[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))  # constant energy per band
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def whisper_log_mel(waveform, config: WhisperLogMelConfig = WhisperLogMelConfig()) -> tf.Tensor:
    """Whisper's log-mel features of a clip or a batch, as ``WhisperFeatureExtractor`` computes them.

    Each row is cut or zero-padded to ``config.chunk_samples`` (30 s) first, like the feature
    extractor (``truncation=True``, ``padding="max_length"``): pass clips zero-padded past their end
    (junk there would count as audio). The dynamic-range floor (max - 8) is taken per row, over its
    whole 30 s (the padding is at the 1e-10 floor, so only the audio sets the max).

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]`` at ``config.sample_rate``, in [-1, 1].
        config: the feature extractor's settings.

    Returns:
        float32 ``[..., num_frames, num_mel_bins]`` (3000 x 80 by default): time first, the transpose of
        the feature extractor's ``[num_mel_bins, 3000]``.

    Example:
        >>> whisper_log_mel(tf.zeros([16000])).shape
        TensorShape([3000, 80])
    """
    x = tf.cast(tf.convert_to_tensor(waveform), tf.float32)
    x = pad_or_crop_samples(x, config.chunk_samples)  # [..., chunk]
    half = config.n_fft // 2
    # centred frames: frame t is centred on sample t * hop (numpy's "reflect" = TF's REFLECT)
    x = tf.pad(x, [[0, 0]] * (x.shape.rank - 1) + [[half, half]], mode="REFLECT")  # [..., chunk + n_fft]
    # only the samples of the frames kept: Whisper drops the STFT's last frame
    x = x[..., : (config.num_frames - 1) * config.hop_samples + config.n_fft]
    power = tf.square(stft_magnitude(x, config.n_fft, config.hop_samples, config.n_fft))  # [..., F, bins]
    mel = tf.tensordot(power, tf.constant(slaney_mel_filter_bank(config)), axes=1)  # [..., F, mel]
    mel = tf.ensure_shape(mel, power.shape[:-1].concatenate([config.num_mel_bins]))
    log_mel = tf.math.log(tf.maximum(mel, config.mel_floor)) * (1.0 / math.log(10.0))  # log10
    peak = tf.reduce_max(log_mel, axis=[-2, -1], keepdims=True)  # [..., 1, 1] per clip
    log_mel = tf.maximum(log_mel, peak - config.dynamic_range)
    return (log_mel + 4.0) / 4.0

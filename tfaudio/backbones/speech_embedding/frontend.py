"""The log-mel frontend of Google's speech embedding model, in pure TensorFlow.

This is the computation of openWakeWord's ``melspectrogram.tflite`` (the frontend of TF Hub
``google/speech_embedding/1`` as openWakeWord ships it), read off that file's ops and constants:

``waveform [-1, 1] → × 32768 (int16 scale) → |STFT|² (400-sample periodic Hann window centred in
512-sample frames, hop 160, no padding) → 32 Slaney mel bands 60–3800 Hz (Slaney-normalised, as
``librosa.filters.mel``) → 10·log10(max(mel, 1e-10)) → max(x, max_over_clip(x) − 80)``

The file's STFT is two convolutions whose kernels are the windowed cosine and sine bases; here the
same power comes from :func:`tfaudio.signal.melspec.stft_power` on the 400 samples the window
covers (an RFFT, or a DFT matmul inside :func:`~tfaudio.signal.melspec.tflite_compatible`), so the
numbers agree to float32 rounding (tested against the file, constants and outputs). The one
difference is deliberate: the file takes the 80 dB floor from the maximum of its whole input tensor
(the whole batch); :func:`speech_mel_spectrogram` takes it per clip, over that clip's own frames, so
a padded batch gives what each clip gives alone (one clip: the same numbers as the file).

The same function runs in ``tf.data`` workers, in the backbone and in exported graphs (TFLite
builtins only).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import tensorflow as tf

from tfaudio.signal.framing import StftTiming
from tfaudio.signal.melspec import stft_power

__all__ = ["SpeechMelConfig", "num_mel_frames", "slaney_mel_weight_matrix", "speech_mel_spectrogram"]


@dataclasses.dataclass(frozen=True)
class SpeechMelConfig(StftTiming):
    """The speech embedding model's mel frontend, in seconds; sample counts are derived.

    Args:
        sample_rate: input rate in Hz.
        window_seconds: Hann window (25 ms → 400 samples).
        fft_seconds: frame and DFT length (32 ms → 512 samples); the window sits in its middle.
        hop_seconds: step between frames (10 ms → 160 samples).
        num_mel_bins: mel bands.
        lower_edge_hertz, upper_edge_hertz: the filterbank's edges in Hz.
        input_scale: multiplies the [-1, 1] input: the model expects int16 sample values.
        amin: power floor before the log.
        top_db: dynamic range kept below each clip's loudest mel value, in dB.

    Example:
        >>> cfg = SpeechMelConfig()
        >>> cfg.window_samples, cfg.fft_length, cfg.hop_samples, cfg.window_offset
        (400, 512, 160, 56)
    """

    sample_rate: int = 16000
    window_seconds: float = 0.025
    fft_seconds: float = 0.032
    hop_seconds: float = 0.010
    num_mel_bins: int = 32
    lower_edge_hertz: float = 60.0
    upper_edge_hertz: float = 3800.0
    input_scale: float = 32768.0
    amin: float = 1e-10
    top_db: float = 80.0

    @property
    def fft_length(self) -> int:
        return int(round(self.fft_seconds * self.sample_rate))

    @property
    def window_offset(self) -> int:
        """Samples before the window inside a frame (56): the window is centred, as torch.stft does."""
        return (self.fft_length - self.window_samples) // 2

    @property
    def num_spectrogram_bins(self) -> int:
        return self.fft_length // 2 + 1


def num_mel_frames(num_samples, config: SpeechMelConfig = SpeechMelConfig()):
    """Frames :func:`speech_mel_spectrogram` gives for ``num_samples`` (>= ``fft_length``):
    ``1 + (num_samples - 512) // 160``. An int for an int, an int32 tensor for a tensor."""
    if isinstance(num_samples, (int, np.integer)):
        return 1 + (int(num_samples) - config.fft_length) // config.hop_samples
    return 1 + (tf.cast(num_samples, tf.int32) - config.fft_length) // config.hop_samples


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    hz = np.asarray(hz, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@functools.lru_cache(maxsize=8)
def slaney_mel_weight_matrix(config: SpeechMelConfig = SpeechMelConfig()) -> np.ndarray:
    """Triangular mel filters on the Slaney scale with Slaney (area) normalisation, as
    ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax).T`` computes them.

    Returns:
        float32 ``[num_spectrogram_bins, num_mel_bins]`` (read-only, cached).
    """
    n = config.num_mel_bins
    fft_hz = np.linspace(0.0, config.sample_rate / 2, config.num_spectrogram_bins)  # [K]
    edges = _mel_to_hz(np.linspace(_hz_to_mel(config.lower_edge_hertz), _hz_to_mel(config.upper_edge_hertz), n + 2))
    widths = np.diff(edges)  # [n + 1]
    ramps = edges[:, None] - fft_hz[None, :]  # [n + 2, K]
    rising = -ramps[:n] / widths[:n, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n, K]
    weights *= (2.0 / (edges[2:] - edges[:n]))[:, None]  # equal area per band
    matrix = weights.T.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def speech_mel_spectrogram(waveform, num_frames=None, config: SpeechMelConfig = SpeechMelConfig()) -> tf.Tensor:
    """The mel spectrogram of ``melspectrogram.tflite`` (see the module docstring), per clip.

    Args:
        waveform: float ``[samples]`` or ``[batch, samples]`` at 16 kHz, values in [-1, 1],
            ``samples >= 512``.
        num_frames: int ``[batch]`` (or a scalar): the frames of each clip that count for its 80 dB
            floor (the clip's own, before the batch's padding). None: all frames.
        config: the frontend settings.

    Returns:
        float32 ``[..., 1 + (samples - 512) // 160, 32]``, in dB of int16-scale power.

    Example:
        >>> speech_mel_spectrogram(tf.zeros([16000])).shape
        TensorShape([97, 32])
    """
    x = tf.cast(tf.convert_to_tensor(waveform), tf.float32) * config.input_scale
    n = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    # The frame's window covers samples [56, 456) of each 512-sample frame: frame the 400 samples it
    # sees (the phase of the rest does not change the power), keeping the frame count of 512s.
    tail = config.fft_length - config.window_samples - config.window_offset
    x = x[..., config.window_offset : n - tail]  # [..., S - 112]
    weights = slaney_mel_weight_matrix(config)  # [K, mel]
    used = np.flatnonzero(weights.any(axis=1))  # DFT bins 2..121: the others have zero weight
    first, last = int(used[0]), int(used[-1]) + 1
    power = stft_power(x, config.window_samples, config.hop_samples, config.fft_length, first, last)  # [..., F, k]
    mel = tf.tensordot(power, tf.constant(weights[first:last]), axes=1)  # [..., F, mel]
    mel.set_shape(power.shape[:-1].concatenate([config.num_mel_bins]))  # a note, not an op (TFLite)
    db = tf.math.log(tf.maximum(mel, config.amin)) * np.float32(10.0 / math.log(10.0))  # [..., F, mel]
    if num_frames is None:
        loudest = tf.reduce_max(db, axis=[-2, -1], keepdims=True)  # [..., 1, 1]
    else:
        counts = tf.cast(tf.convert_to_tensor(num_frames), tf.int32)
        # expand_dims, not [..., None]: TFLite's strided slice cannot add an axis to a bool tensor
        valid = tf.expand_dims(tf.sequence_mask(counts, tf.shape(db)[-2]), -1)  # [..., F, 1]
        loudest = tf.reduce_max(tf.where(valid, db, np.float32(-1e30)), axis=[-2, -1], keepdims=True)
    return tf.maximum(db, loudest - config.top_db)  # [..., F, mel]

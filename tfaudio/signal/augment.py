"""Training-time augmentations of the fine-tuning road, one pure-TF function each.

Every function is stateless: its randomness comes from a ``seed`` (int32 ``[2]``, as
``tf.random.stateless_*`` take it), so a run is repeatable and a run resumed from a checkpoint draws
what the uninterrupted run drew. None of them is part of an exported model: at inference the
waveform goes to the backbone as it is.

=====================  ==========================================================================
``crop_or_pad``        one clip → a fixed-length window: a random crop of a longer clip (training)
                       or its start; a shorter clip is zero-padded (its valid length kept)
``speed_perturb``      each clip played up to ``max_change`` faster or slower (pitch and tempo
                       together, Ko et al. 2015), by the package's one resampler
``random_gain``        each clip louder or quieter by up to ``max_db`` dB
``time_shift``         each clip moved by up to ``max_samples`` later or earlier (zeros fill in)
``mixup``              each clip mixed with another of the batch, targets mixed alike (Zhang et al. 2018)
``spec_mask``          bands and frames of a log-mel set to its mean (SpecAugment, Park et al. 2019)
=====================  ==========================================================================
"""
from __future__ import annotations

import fractions
import functools

import tensorflow as tf

from tfaudio.signal.resample import resample

__all__ = ["crop_or_pad", "speed_perturb", "speed_factors", "random_gain", "time_shift", "mixup", "spec_mask", "fold_seed"]


def fold_seed(seed, *values) -> tf.Tensor:
    """A new stateless seed ``[2]`` from ``seed`` and integers (e.g. an epoch, a step, a purpose)."""
    seed = tf.cast(seed, tf.int32)
    for v in values:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(v, tf.int32))
    return seed


def crop_or_pad(waveform, length, samples: int, seed=None) -> tuple[tf.Tensor, tf.Tensor]:
    """One clip ``[S]`` with ``length`` valid samples → (``[samples]``, valid samples).

    A clip longer than ``samples`` is cropped at a uniformly random offset (``seed`` given) or at its
    start (``seed`` None); a shorter one is zero-padded at the end.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    length = tf.minimum(tf.cast(length, tf.int32), tf.shape(waveform)[0])
    extra = tf.maximum(length - samples, 0)
    if seed is None:
        start = tf.constant(0, tf.int32)
    else:
        start = tf.random.stateless_uniform([], seed, 0, extra + 1, dtype=tf.int32)
    x = waveform[start : start + tf.minimum(length, samples)]
    n = tf.shape(x)[0]
    x = tf.pad(x, [[0, samples - n]])
    return tf.ensure_shape(x, [samples]), n


@functools.lru_cache(maxsize=16)
def speed_factors(max_change: float, levels: int = 5) -> tuple[fractions.Fraction, ...]:
    """The speeds :func:`speed_perturb` draws from: ``levels`` evenly spaced in ``[1 - max_change,
    1 + max_change]`` (1 among them), each a fraction of small integers (the resampler's rate pair)."""
    if not 0 <= max_change < 0.5:
        raise ValueError(f"max_change must be in [0, 0.5), got {max_change!r}")
    if not max_change:
        return (fractions.Fraction(1),)
    half = levels // 2
    return tuple(fractions.Fraction(1 + max_change * k / half).limit_denominator(100) for k in range(-half, half + 1))


def speed_perturb(waveform, length, max_change: float, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """One clip ``[S]`` with ``length`` valid samples, played at a speed drawn uniformly from
    :func:`speed_factors` (speed perturbation, as ASR and keyword-spotting recipes use against speaker
    and pitch variation): resampled by ``1 / speed`` and read at the same rate, so speed 1.1 is 10 %
    shorter and higher. Returns (the clip's valid samples ``[ceil(length / speed)]``, that length)."""
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    length = tf.minimum(tf.cast(length, tf.int32), tf.shape(waveform)[0])
    speeds = speed_factors(float(max_change))
    x = waveform[:length]
    if len(speeds) == 1:
        return x, length
    # speed s = p / q: resampling from p to q samples per unit of time (rates in the resampler's units)
    branches = [functools.partial(resample, x, s.numerator * 1000, s.denominator * 1000) if s != 1 else (lambda: x)
                for s in speeds]
    pick = tf.random.stateless_uniform([], seed, 0, len(speeds), dtype=tf.int32)
    out = tf.switch_case(pick, branches)
    out.set_shape([None])
    return out, tf.shape(out)[0]


def random_gain(waveforms, max_db: float, seed) -> tf.Tensor:
    """Each row of ``waveforms [B, S]`` times ``10^(g / 20)``, ``g`` uniform in ``[-max_db, max_db]``."""
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    if not max_db:
        return waveforms
    db = tf.random.stateless_uniform(tf.shape(waveforms)[:1], seed, -float(max_db), float(max_db))
    return waveforms * tf.pow(10.0, db / 20.0)[:, None]


def time_shift(waveforms, lengths, max_samples: int, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """Each row of ``waveforms [B, S]`` moved by ``s`` samples, ``s`` uniform in ``[-max_samples,
    max_samples]``: later (zeros before it, its valid length grows by ``s`` up to ``S``) or earlier (its
    first ``|s|`` samples dropped; at least one sample stays). Returns (waveforms, lengths)."""
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    if not max_samples:
        return waveforms, lengths
    width = tf.shape(waveforms)[1]
    shift = tf.random.stateless_uniform(tf.shape(lengths), seed, -int(max_samples), int(max_samples) + 1,
                                        dtype=tf.int32)
    shift = tf.maximum(shift, 1 - tf.maximum(lengths, 1))  # never drop a whole clip
    source = tf.range(width)[None, :] - shift[:, None]  # [B, S] where each output sample comes from
    valid = (source >= 0) & (source < lengths[:, None])
    out = tf.where(valid, tf.gather(waveforms, tf.clip_by_value(source, 0, width - 1), batch_dims=1), 0.0)
    return out, tf.clip_by_value(lengths + shift, 0, width)


def mixup(waveforms, lengths, targets, alpha: float, seed) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Row ``b`` becomes ``lam_b * x_b + (1 - lam_b) * x_p(b)`` for a random pairing ``p`` of the batch,
    ``lam_b ~ Beta(alpha, alpha)`` taken on the larger side (each clip stays the dominant one of its
    pair); targets ``[B, C]`` are mixed the same way, valid lengths are the longer of the pair."""
    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    targets = tf.cast(targets, tf.float32)
    if not alpha:
        return waveforms, tf.cast(lengths, tf.int32), targets
    batch = tf.shape(waveforms)[0]
    s1, s2, s3 = (fold_seed(seed, i) for i in range(3))
    a = tf.random.stateless_gamma([batch], s1, alpha=float(alpha))
    b = tf.random.stateless_gamma([batch], s2, alpha=float(alpha))
    lam = a / tf.maximum(a + b, 1e-12)
    lam = tf.maximum(lam, 1.0 - lam)  # [B]
    order = tf.argsort(tf.random.stateless_uniform([batch], s3))  # a random permutation
    x = lam[:, None] * waveforms + (1.0 - lam[:, None]) * tf.gather(waveforms, order)
    y = lam[:, None] * targets + (1.0 - lam[:, None]) * tf.gather(targets, order)
    n = tf.maximum(tf.cast(lengths, tf.int32), tf.gather(tf.cast(lengths, tf.int32), order))
    return x, n, y


def _band_mask(shape_n, size, width_max, seed) -> tf.Tensor:
    """bool ``[N, size]``: one band of each row, of width uniform in ``[0, width_max]``, at a random start."""
    s1, s2 = fold_seed(seed, 0), fold_seed(seed, 1)
    width = tf.random.stateless_uniform([shape_n], s1, 0, width_max + 1, dtype=tf.int32)
    start = tf.cast(tf.random.stateless_uniform([shape_n], s2) * tf.cast(size - width + 1, tf.float32), tf.int32)
    pos = tf.range(size)[None, :]
    return (pos >= start[:, None]) & (pos < (start + width)[:, None])


def spec_mask(features, freq_fraction: float, time_fraction: float, seed, *, masks: int = 2) -> tf.Tensor:
    """SpecAugment's masking of log-mel ``features [N, T, M]`` (time-major): ``masks`` bands of up to
    ``freq_fraction * M`` mel bins and ``masks`` spans of up to ``time_fraction * T`` frames per row,
    set to the row's mean (a level the backbone has seen, whatever its log-mel's offset)."""
    features = tf.convert_to_tensor(features)
    if not (freq_fraction or time_fraction):
        return features
    n, t, m = tf.shape(features)[0], tf.shape(features)[1], tf.shape(features)[2]
    hit = tf.zeros([n, t, m], tf.bool)
    for i in range(masks):
        if freq_fraction:
            width = tf.cast(tf.cast(m, tf.float32) * float(freq_fraction), tf.int32)
            hit |= _band_mask(n, m, width, fold_seed(seed, 2 * i))[:, None, :]
        if time_fraction:
            width = tf.cast(tf.cast(t, tf.float32) * float(time_fraction), tf.int32)
            hit |= _band_mask(n, t, width, fold_seed(seed, 2 * i + 1))[:, :, None]
    mean = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
    return tf.where(hit, tf.broadcast_to(mean, tf.shape(features)), features)

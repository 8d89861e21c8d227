"""Pooling over time with a mask: the masked mean and the masked mean ‖ standard deviation.

Pure TF (TFLite builtins). Every road that pools frames calls these two: the clip score (mean of the
frame scores over the frames that count), the backbones' pooled embeddings, the clip-level heads'
statistics pooling and the embedding poolings of :mod:`tfaudio.heads.frame_pooling`.
"""
from __future__ import annotations

import tensorflow as tf

__all__ = ["masked_mean", "masked_mean_std"]


def _weights(x: tf.Tensor, weights) -> tf.Tensor:
    """``weights [B, F]`` (bool or float; None: every frame) as ``[B, F, 1]`` in ``x``'s dtype."""
    if weights is None:
        return tf.ones_like(x[..., :1])
    return tf.expand_dims(tf.cast(weights, x.dtype), -1)


def masked_mean(x, weights=None) -> tf.Tensor:
    """The weighted mean of ``x [B, F, D]`` over its frames.

    Args:
        x: float ``[B, F, D]``.
        weights: bool or float ``[B, F]`` (True / 1 for the frames that count), or None (every frame).

    Returns:
        ``[B, D]``; a clip with no frame that counts gives zeros.

    Example:
        >>> masked_mean(tf.ones([2, 3, 4]), tf.constant([[True, True, False]] * 2)).shape
        TensorShape([2, 4])
    """
    x = tf.convert_to_tensor(x)
    w = _weights(x, weights)  # [B, F, 1]
    return tf.reduce_sum(x * w, axis=1) / tf.maximum(tf.reduce_sum(w, axis=1), 1.0)


def masked_mean_std(x, weights=None, epsilon: float = 1e-6) -> tf.Tensor:
    """``[mean ‖ std]`` of ``x [B, F, D]`` over the frames that count → ``[B, 2 D]``.

    The variance is the weighted mean of squared deviations from the mean (centred, so it does not
    lose precision when the mean is large); ``std = sqrt(var + epsilon)``.
    """
    x = tf.convert_to_tensor(x)
    w = _weights(x, weights)
    n = tf.maximum(tf.reduce_sum(w, axis=1), 1.0)  # [B, 1]
    mean = tf.reduce_sum(x * w, axis=1) / n  # [B, D]
    var = tf.reduce_sum(tf.square(x - tf.expand_dims(mean, 1)) * w, axis=1) / n
    return tf.concat([mean, tf.sqrt(var + epsilon)], axis=-1)

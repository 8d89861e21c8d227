"""Small Keras heads trained on frozen backbone embeddings, and how they pool a clip's frames.

Three poolings (``HeadConfig.pooling``):

- ``"mean"``: a frame head ``[N, D] → [N, C]`` trained on frames (each with its clip's label); a clip's
  score is the mean of its frame scores (the TF Hub tutorial's recipe). The clip scorer does the mean.
- ``"attention"``: the same frame head plus a learned weight per frame; a clip's score is the
  attention-weighted mean of its frame scores (multiple-instance learning; trained on clips).
- ``"stats"``: the mean and standard deviation of a clip's frame embeddings → an MLP (trained on clips).
- ``"embedding_mean"``: the mean of a clip's frame embeddings → an MLP (trained on clips; the ``finetune``
  recipe's head, :mod:`tfaudio.tasks.finetune`, which trains the other poolings too).

The clip-level heads are Keras models ``{"frames": [B, F, D], "weights": [B, F]} → {"clip": [B, C],
"frames": [B, F, C]}``; ``weights`` is 1 for the frames that count (valid, and not silent when the
silence gate is on) and 0 for the others. The frame scores of ``"stats"`` and ``"embedding_mean"``
heads score each frame as a clip of that one frame (heads saved before they had them have none).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.signal.pooling import masked_mean, masked_mean_std

#: How a head turns a clip's frames into the clip score: ``"mean"`` and ``"attention"`` pool the
#: frame *scores* (a plain or attention-weighted mean); ``"stats"`` pools the frame *embeddings* (mean ‖
#: std, :func:`tfaudio.signal.pooling.masked_mean_std`) and ``"embedding_mean"`` (their mean) pool the frame
#: *embeddings* and score the clip once. Not to be confused with
#: :data:`tfaudio.heads.frame_pooling.EMBEDDING_POOLINGS`, which only ever pool embeddings.
CLIP_SCORE_POOLINGS = ("mean", "attention", "stats", "embedding_mean")
#: The poolings whose heads score only whole clips (no frame scores).
POOLED_EMBEDDING_POOLINGS = ("stats", "embedding_mean")
#: The variance floor of the ``"stats"`` pooling (``std = sqrt(var + STATS_EPSILON)``).
STATS_EPSILON = 1e-6


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """A head: ``hidden_units`` Dense-ReLU layers, then a Dense layer over the classes.

    ``HeadConfig()`` is the YAMNet transfer-learning tutorial's head (Dense 512 ReLU → classes);
    ``hidden_units=()`` is a linear probe. The default recipe (:mod:`tfaudio.tasks.recipe`) uses a
    regularised variant.

    Args:
        hidden_units: sizes of the hidden layers.
        dropout: dropout rate before each hidden layer after the first and before the output (0: none).
        l2: L2 weight penalty on every kernel (0: none).
        multi_label: sigmoid outputs and binary cross-entropy (several labels per clip) instead of
            softmax and categorical cross-entropy.
        input_dropout: dropout on the (standardised) embedding itself (0: none).
        standardize: a first layer that standardises embeddings by the training frames' mean and
            standard deviation (part of the head, so exports carry it).
        pooling: ``"mean"``, ``"attention"``, ``"stats"`` or ``"embedding_mean"`` (see the module docstring).
        silence_gate: leave silent frames out of training and of a clip's score
            (:mod:`tfaudio.signal.frame_energy`).
        ensemble: train this many heads with different seeds and average their scores.
    """

    hidden_units: tuple[int, ...] = (512,)
    dropout: float = 0.0
    l2: float = 0.0
    multi_label: bool = False
    input_dropout: float = 0.0
    standardize: bool = False
    pooling: str = "mean"
    silence_gate: bool = False
    ensemble: int = 1

    def __post_init__(self):
        if self.pooling not in CLIP_SCORE_POOLINGS:
            raise ValueError(f"pooling must be one of {CLIP_SCORE_POOLINGS}, got {self.pooling!r}")
        if int(self.ensemble) < 1:
            raise ValueError(f"ensemble must be >= 1, got {self.ensemble!r}")
        for name in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    @property
    def clip_level(self) -> bool:
        """Whether the head scores whole clips (trained on clips, not frames)."""
        return self.pooling != "mean"

    @classmethod
    def linear(cls, **kwargs) -> HeadConfig:
        return cls(hidden_units=(), **kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        d = dict(d)
        d["hidden_units"] = tuple(d.get("hidden_units", ()))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown head settings {unknown}; known: {sorted(known)}")
        return cls(**d)


def _standardize(x, embedding_dim: int, stats: tuple[np.ndarray, np.ndarray] | None, name: str):
    mean, var = stats if stats is not None else (np.zeros(embedding_dim), np.ones(embedding_dim))
    layer = keras.layers.Normalization(axis=-1, mean=np.asarray(mean, np.float32),
                                       variance=np.maximum(np.asarray(var, np.float32), 1e-6), name=name)
    return layer(x)


def _mlp_layers(config: HeadConfig, reg, prefix: str = "") -> list[keras.layers.Layer]:
    layers: list[keras.layers.Layer] = []
    if config.input_dropout:
        layers.append(keras.layers.Dropout(config.input_dropout, name=f"{prefix}input_dropout"))
    for i, units in enumerate(config.hidden_units):
        if config.dropout and i > 0:
            layers.append(keras.layers.Dropout(config.dropout, name=f"{prefix}dropout_{i}"))
        layers.append(keras.layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"{prefix}hidden_{i}"))
    if config.dropout:
        layers.append(keras.layers.Dropout(config.dropout, name=f"{prefix}dropout_out"))
    return layers


def _apply(layers: Sequence[keras.layers.Layer], x):
    for layer in layers:
        x = layer(x)
    return x


def _mlp(x, config: HeadConfig, reg, prefix: str = ""):
    return _apply(_mlp_layers(config, reg, prefix), x)


def build_head(embedding_dim: int, num_classes: int, config: HeadConfig = HeadConfig(), name: str = "head", *,
               stats: tuple[np.ndarray, np.ndarray] | None = None) -> keras.Model:
    """One head (see the module docstring for the two shapes a head can have).

    Args:
        embedding_dim: the backbone's embedding size.
        num_classes: output classes.
        config: the head's settings (``ensemble`` is applied by :func:`average_heads`, not here).
        name: the Keras model's name.
        stats: (mean, variance) of the training frames, for ``config.standardize``.

    Example:
        >>> head = build_head(1024, 2)              # the tutorial's MLP on frames
        >>> probe = build_head(1024, 2, HeadConfig.linear())
    """
    if num_classes < 2 and not config.multi_label:
        raise ValueError(f"a single-label head needs at least 2 classes, got {num_classes}")
    reg = keras.regularizers.l2(config.l2) if config.l2 else None
    activation = "sigmoid" if config.multi_label else "softmax"
    if not config.clip_level:
        inputs = keras.Input(shape=(embedding_dim,), dtype="float32", name="embedding")
        x = _standardize(inputs, embedding_dim, stats, "standardize") if config.standardize else inputs
        x = _mlp(x, config, reg)
        outputs = keras.layers.Dense(num_classes, activation=activation, kernel_regularizer=reg, name="scores")(x)
        return keras.Model(inputs, outputs, name=name)

    frames = keras.Input(shape=(None, embedding_dim), dtype="float32", name="frames")  # [B, F, D]
    weights = keras.Input(shape=(None,), dtype="float32", name="weights")  # [B, F]
    x = _standardize(frames, embedding_dim, stats, "standardize") if config.standardize else frames
    if config.pooling in POOLED_EMBEDDING_POOLINGS:
        pooling = _MaskedStats(name="mean_std") if config.pooling == "stats" else _MaskedMean(name="mean")
        pooled = pooling([x, weights])  # [B, 2D] or [B, D]
        layers = _mlp_layers(config, reg) + [
            keras.layers.Dense(num_classes, activation=activation, kernel_regularizer=reg, name="scores")]
        clip = _apply(layers, pooled)
        # frame scores: each frame scored as a clip of that one frame (the same layers)
        single = _OneFrameStats(name="frame_stats")(x) if config.pooling == "stats" else x  # [B, F, 2D] / [B, F, D]
        return keras.Model({"frames": frames, "weights": weights}, {"clip": clip, "frames": _apply(layers, single)},
                           name=name)
    h = _mlp(x, config, reg)  # [B, F, H]
    frame_scores = keras.layers.Dense(num_classes, activation=activation, kernel_regularizer=reg, name="scores")(h)
    attention = keras.layers.Dense(1, kernel_regularizer=reg, name="attention")(h)  # [B, F, 1]
    clip = _AttentionPool(name="attention_pool")([frame_scores, attention, weights])
    return keras.Model({"frames": frames, "weights": weights}, {"clip": clip, "frames": frame_scores}, name=name)


@keras.saving.register_keras_serializable(package="tfaudio")
class _MaskedStats(keras.layers.Layer):
    """``[frames [B, F, D], weights [B, F]]`` → ``[B, 2D]``: the weighted mean and standard deviation."""

    def call(self, inputs):
        x, w = inputs
        return masked_mean_std(x, w, STATS_EPSILON)


@keras.saving.register_keras_serializable(package="tfaudio")
class _OneFrameStats(keras.layers.Layer):
    """``frames [B, F, D]`` → ``[B, F, 2D]``: what :class:`_MaskedStats` gives for each frame alone (the
    frame ‖ the standard deviation of one value, ``sqrt(epsilon)``)."""

    def call(self, x):
        return tf.concat([x, tf.fill(tf.shape(x), tf.sqrt(tf.constant(STATS_EPSILON, x.dtype)))], axis=-1)


@keras.saving.register_keras_serializable(package="tfaudio")
class _MaskedMean(keras.layers.Layer):
    """``[frames [B, F, D], weights [B, F]]`` → ``[B, D]``: the weighted mean."""

    def call(self, inputs):
        x, w = inputs
        return masked_mean(x, w)


@keras.saving.register_keras_serializable(package="tfaudio")
class _AttentionPool(keras.layers.Layer):
    """``[frame scores [B, F, C], logits [B, F, 1], weights [B, F]]`` → ``[B, C]``: the frame scores
    weighted by a softmax of the logits over the frames that count."""

    def call(self, inputs):
        scores, logits, w = inputs
        w = tf.expand_dims(w, -1)
        logits = tf.where(w > 0, logits, tf.fill(tf.shape(logits), -1e9))
        a = tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True)) * w
        a = a / tf.maximum(tf.reduce_sum(a, axis=1, keepdims=True), 1e-12)
        return tf.reduce_sum(a * scores, axis=1)


def average_heads(members: Sequence[keras.Model], name: str = "head") -> keras.Model:
    """One Keras model whose output is the mean of ``members``' outputs (a seed ensemble); one member
    is returned as it is."""
    if len(members) == 1:
        return members[0]
    first = members[0]
    if isinstance(first.input, dict):
        inputs = {k: keras.Input(shape=v.shape[1:], dtype=v.dtype, name=k) for k, v in first.input.items()}
    else:
        inputs = keras.Input(shape=first.input.shape[1:], dtype=first.input.dtype, name="embedding")
    outs = [m(inputs) for m in members]
    if isinstance(outs[0], dict):
        merged = {k: keras.layers.Average(name=f"mean_{k}")([o[k] for o in outs]) for k in outs[0]}
    else:
        merged = keras.layers.Average(name="mean_scores")(outs)
    return keras.Model(inputs, merged, name=name)

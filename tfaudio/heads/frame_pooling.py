"""Clip embeddings pooled from a clip's frame embeddings, for heads that score a whole clip at once.

tfaudio's default classifier scores every frame and averages the scores. Short clips give few frames
(1 s of speech: 4 speech-embedding frames, 2 YAMNet frames), and a word is then spread over frames
that each see only part of it; pooling the frames into one clip embedding first lets the head see
the whole word:

- ``"mean"``: the masked mean of the frames ``[D]``;
- ``"max"``: the masked maximum ``[D]``;
- ``"mean+max"``: both, concatenated ``[2 D]``;
- ``"flatten"``: the first ``num_frames`` frames side by side ``[num_frames · D]`` (zeros for
  missing frames; frames past ``num_frames`` are dropped): keeps where in the window each part is.

:func:`pool_frames` is the one implementation (pure TF, TFLite builtins), for a padded batch with its
mask: what an exported model runs on ``graph_outputs``; :func:`pool_clips` applies it to cached
frame embeddings (one array per clip) for training.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfaudio.signal.pooling import masked_mean

__all__ = ["EMBEDDING_POOLINGS", "pool_frames", "pool_clips", "pooled_dim"]

#: Poolings of frame *embeddings* into one clip embedding (``"mean"``: the masked mean of the embeddings).
EMBEDDING_POOLINGS = ("mean", "max", "mean+max", "flatten")


def pooled_dim(method: str, embedding_dim: int, num_frames: int | None = None) -> int:
    """Size of the clip embedding :func:`pool_frames` gives."""
    _check(method, num_frames)
    return {"mean": 1, "max": 1, "mean+max": 2}.get(method, num_frames or 0) * int(embedding_dim)


def _check(method: str, num_frames: int | None) -> None:
    if method not in EMBEDDING_POOLINGS:
        raise ValueError(f"unknown pooling {method!r}; expected one of {', '.join(EMBEDDING_POOLINGS)}.")
    if method == "flatten" and (num_frames is None or int(num_frames) < 1):
        raise ValueError(f"'flatten' pooling needs num_frames >= 1 (the fixed window, e.g. the frames of "
                         f"the backbone's contract.window_samples), got {num_frames!r}.")


def pool_frames(embeddings, mask, method: str = "mean+max", num_frames: int | None = None) -> tf.Tensor:
    """A padded batch of frame embeddings → one embedding per clip (see the module docstring).

    Args:
        embeddings: float32 ``[B, F, D]``, each clip's frames first (as ``graph_outputs`` gives them).
        mask: bool ``[B, F]``, True for real frames.
        method: ``"mean"``, ``"max"``, ``"mean+max"`` or ``"flatten"``.
        num_frames: frames kept by ``"flatten"`` (its fixed window).

    Returns:
        float32 ``[B, pooled_dim(method, D, num_frames)]``; a clip without frames gives zeros.

    Example:
        >>> pool_frames(tf.ones([2, 4, 96]), tf.ones([2, 4], tf.bool)).shape
        TensorShape([2, 192])
    """
    _check(method, num_frames)
    x = tf.convert_to_tensor(embeddings, tf.float32)  # [B, F, D]
    valid = tf.expand_dims(tf.convert_to_tensor(mask, tf.bool), -1)  # [B, F, 1]
    x = tf.where(valid, x, 0.0)
    if method == "flatten":
        k = int(num_frames)
        x = x[:, :k]
        x = tf.pad(x, [[0, 0], [0, k - tf.shape(x)[1]], [0, 0]])  # [B, k, D]
        return tf.reshape(x, [-1, k * x.shape[-1]])
    parts = []
    if method in ("mean", "mean+max"):
        parts.append(masked_mean(x, valid[..., 0]))  # [B, D]
    if method in ("max", "mean+max"):
        # -1e30, not -inf, for padding: a clip without frames then gives 0, not -inf
        highest = tf.reduce_max(tf.where(valid, x, np.float32(-1e30)), axis=1)  # [B, D]
        parts.append(tf.where(tf.reduce_any(valid, axis=1), highest, 0.0))
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)


def pool_clips(clip_frames: Sequence[np.ndarray], method: str = "mean+max", num_frames: int | None = None,
               *, batch_size: int = 256) -> np.ndarray:
    """:func:`pool_frames` of per-clip frame arrays (e.g. ``ClipEmbeddings.embeddings``).

    Args:
        clip_frames: one float ``[frames_i, D]`` array per clip.
        method, num_frames: as :func:`pool_frames`.
        batch_size: clips padded together per call.

    Returns:
        float32 ``[clips, pooled_dim]``.
    """
    _check(method, num_frames)
    if not len(clip_frames):
        raise ValueError("pool_clips needs at least one clip.")
    dim = int(np.asarray(clip_frames[0]).shape[-1])
    out = []
    for start in range(0, len(clip_frames), batch_size):
        chunk = [np.asarray(c, np.float32).reshape(-1, dim) for c in clip_frames[start : start + batch_size]]
        width = max(1, max(len(c) for c in chunk))
        x = np.zeros([len(chunk), width, dim], np.float32)
        m = np.zeros([len(chunk), width], bool)
        for i, c in enumerate(chunk):
            x[i, : len(c)], m[i, : len(c)] = c, True
        out.append(pool_frames(x, m, method, num_frames).numpy())
    return np.concatenate(out)

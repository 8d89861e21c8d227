"""Clip embeddings pooled from frames: masked mean / max / mean+max / flatten, padded batches."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfaudio.heads.frame_pooling import pool_clips, pool_frames, pooled_dim


def _batch():
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(n, 5)).astype(np.float32) for n in (3, 1, 6)]
    x = np.full([3, 6, 5], 7.0, np.float32)  # padding holds junk: it must not count
    m = np.zeros([3, 6], bool)
    for i, c in enumerate(clips):
        x[i, : len(c)], m[i, : len(c)] = c, True
    return clips, x, m


@pytest.mark.parametrize("method", ["mean", "max", "mean+max", "flatten"])
def test_pooling_ignores_padding(method):
    clips, x, m = _batch()
    got = pool_frames(x, m, method, num_frames=4).numpy()
    assert got.shape == (3, pooled_dim(method, 5, 4))
    for i, c in enumerate(clips):
        want = {"mean": c.mean(0), "max": c.max(0), "mean+max": np.concatenate([c.mean(0), c.max(0)]),
                "flatten": np.concatenate([c[:4], np.zeros([max(0, 4 - len(c)), 5])]).reshape(-1)}[method]
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pool_clips(clips, method, 4), got, atol=1e-6)


def test_clip_without_frames_gives_zeros():
    out = pool_frames(tf.ones([1, 3, 4]), tf.zeros([1, 3], tf.bool), "mean+max").numpy()
    assert not out.any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_frames(tf.ones([1, 1, 2]), tf.ones([1, 1], tf.bool), "median")
    with pytest.raises(ValueError, match="num_frames"):
        pool_frames(tf.ones([1, 1, 2]), tf.ones([1, 1], tf.bool), "flatten")

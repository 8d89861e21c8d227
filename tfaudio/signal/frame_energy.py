"""Loudness of each backbone frame, and the silence gate that keeps silent frames out of a clip's score.

Frame ``i`` of a backbone (its ``contract``: ``hop_samples``, ``frame_samples``) sees the samples
``[i * hop, i * hop + frame)``; :func:`frame_energy_db` is their mean power in dB (full scale = 0 dB),
samples past a clip's length counting as zeros. The same function runs in the data pipeline (stored
with the embedding cache, for training) and in the clip scorer's graph (exports, TFLite windows), so
training, evaluation and serving gate the same frames.

Why: padded data sets (ESC-50 pads clips with digital silence) and real clips with one short event
give frames with nothing in them; trained with the clip's label they teach the head that silence is
"dog", and averaged into the clip score they dilute it (a 5 s clip with one bark scored "dog 38 %,
cat 26 %" before). The gate is deliberately conservative, so that it never hides real content: a frame
is silent when it is below :data:`FLOOR_DB` (near digital silence) or more than :data:`RELATIVE_DB`
below the clip's loudest frame. A clip with no frame above the gate keeps all of its frames.
"""
from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["frame_energy_db", "silence_gate", "FLOOR_DB", "RELATIVE_DB", "SILENT_DB"]

#: Frames quieter than this (dB full scale, mean power) are silent (16-bit dither is about -101 dB).
FLOOR_DB = -70.0
#: Frames more than this far below the clip's loudest frame are silent.
RELATIVE_DB = -60.0
#: The energy of an all-zero frame (mean power 1e-12).
SILENT_DB = -120.0


def frame_energy_db(waveforms, lengths, frame_length: int, hop_length: int, num_frames) -> tf.Tensor:
    """Mean power in dB of each frame of a zero-padded batch (plain TF, TFLite builtins).

    Each sample is squared once: with ``g = gcd(frame_length, hop_length)``, the squares are summed
    per hop (``hop_length / g`` blocks of ``g`` samples), and a frame of ``q`` whole hops and ``r``
    blocks more (``frame_length = q * hop_length + r * g``) is ``q`` consecutive hop sums plus the
    first ``r`` block sums of the next hop: reshapes, sums and ``q`` shifted adds, O(samples + q F),
    instead of squaring every overlapping copy of a framed signal (O(samples * frame / hop); YAMNet
    frames overlap 2x, the speech embedding's ~10x). The same numbers to float32 rounding.

    Args:
        waveforms: float32 ``[B, S]``.
        lengths: int32 ``[B]`` valid samples per clip (later samples count as zeros).
        frame_length: samples one frame sees (a contract's ``frame_samples``).
        hop_length: samples between frames (a contract's ``hop_samples``).
        num_frames: frames to return (an int or a scalar tensor), ``F``.

    Returns:
        float32 ``[B, F]``; a frame of zeros is :data:`SILENT_DB`.
    """
    frame_length, hop_length = int(frame_length), int(hop_length)
    if frame_length <= 0 or hop_length <= 0:
        raise ValueError(f"frame_length and hop_length must be positive, got {frame_length} and {hop_length}.")
    g = math.gcd(frame_length, hop_length)
    steps = hop_length // g  # blocks per hop
    whole, rest = divmod(frame_length // g, steps)  # a frame: `whole` hops + `rest` blocks
    x = tf.convert_to_tensor(waveforms, tf.float32)
    width = tf.shape(x)[1]
    x = tf.where(tf.sequence_mask(lengths, width), x, 0.0)
    num_frames = tf.cast(num_frames, tf.int32)
    needed = (num_frames - 1) * hop_length + frame_length  # samples the F frames cover
    hops = num_frames + whole  # hops read (the last one in part when rest > 0): hops * hop >= needed
    x = tf.pad(x, [[0, 0], [0, tf.maximum(needed - width, 0)]])[:, :needed]
    x = tf.pad(x, [[0, 0], [0, hops * hop_length - needed]])  # zeros that no frame reads
    blocks = tf.reduce_sum(tf.reshape(tf.square(x), [tf.shape(x)[0], hops, steps, g]), axis=-1)  # [B, H, s]
    per_hop = tf.reduce_sum(blocks, axis=-1)  # [B, H]
    parts = [per_hop[:, m : m + num_frames] for m in range(whole)]  # [B, F] each
    if rest:
        parts.append(tf.reduce_sum(blocks[:, whole : whole + num_frames, :rest], axis=-1))
    total = parts[0] if len(parts) == 1 else tf.add_n(parts)  # [B, F]
    power = total / float(frame_length)  # [B, F]
    return 10.0 * tf.math.log(power + 1e-12) / tf.math.log(10.0)


def silence_gate(energy_db, mask=None, *, floor_db: float = FLOOR_DB, relative_db: float = RELATIVE_DB) -> tf.Tensor:
    """Which frames count: bool ``[B, F]`` — valid (``mask``), above ``floor_db`` and within
    ``-relative_db`` of the clip's loudest valid frame; all valid frames for a clip with none above."""
    energy_db = tf.convert_to_tensor(energy_db, tf.float32)
    valid = tf.ones_like(energy_db, tf.bool) if mask is None else tf.cast(mask, tf.bool)
    loudest = tf.reduce_max(tf.where(valid, energy_db, SILENT_DB), axis=1, keepdims=True)  # [B, 1]
    threshold = tf.maximum(loudest + relative_db, floor_db)
    keep = tf.logical_and(valid, energy_db > threshold)
    any_kept = tf.reduce_any(keep, axis=1, keepdims=True)
    return tf.where(any_kept, keep, valid)

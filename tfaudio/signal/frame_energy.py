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

import tensorflow as tf

from tfaudio.signal.framing import frame_samples

__all__ = ["frame_energy_db", "silence_gate", "FLOOR_DB", "RELATIVE_DB", "SILENT_DB"]

#: Frames quieter than this (dB full scale, mean power) are silent (16-bit dither is about -101 dB).
FLOOR_DB = -70.0
#: Frames more than this far below the clip's loudest frame are silent.
RELATIVE_DB = -60.0
#: The energy of an all-zero frame (mean power 1e-12).
SILENT_DB = -120.0


def frame_energy_db(waveforms, lengths, frame_length: int, hop_length: int, num_frames) -> tf.Tensor:
    """Mean power in dB of each frame of a zero-padded batch (plain TF, TFLite builtins).

    Args:
        waveforms: float32 ``[B, S]``.
        lengths: int32 ``[B]`` valid samples per clip (later samples count as zeros).
        frame_length: samples one frame sees (a contract's ``frame_samples``).
        hop_length: samples between frames (a contract's ``hop_samples``).
        num_frames: frames to return (an int or a scalar tensor), ``F``.

    Returns:
        float32 ``[B, F]``; a frame of zeros is :data:`SILENT_DB`.
    """
    x = tf.convert_to_tensor(waveforms, tf.float32)
    width = tf.shape(x)[1]
    x = tf.where(tf.sequence_mask(lengths, width), x, 0.0)
    needed = (num_frames - 1) * hop_length + frame_length  # samples the F frames cover
    x = tf.pad(x, [[0, 0], [0, tf.maximum(needed - width, 0)]])[:, :needed]
    power = tf.reduce_mean(tf.square(frame_samples(x, frame_length, hop_length)), axis=-1)  # [B, F]
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

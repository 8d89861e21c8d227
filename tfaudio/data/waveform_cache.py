"""Decoded, resampled waveforms on disk, so every fold, epoch and run of fine-tuning decodes a file once.

The waveform cache is the embedding cache (:class:`~tfaudio.data.embedding_cache.EmbeddingCache`) of a
"backbone" that embeds nothing: :class:`WaveformFrames` cuts a clip at the target rate into 10 ms frames
of raw samples. So it has everything the embedding cache has — content keys (a changed file is decoded
again, a renamed one found again), sharded TFRecords with a SHA-256 per shard, a commit per batch
(an interrupted run resumes), damaged shards re-decoded, ``on_error="skip"``, a progress bar — and one
namespace per sample rate and pipeline, shared by every backbone of that rate (YAMNet, the speech
embedding, Wav2Vec2 and Whisper share the 16 kHz one).

A clip comes back as its samples, zero-padded to whole 10 ms frames (at most 10 ms of silence added).

Example:
    >>> cache = WaveformCache(32000)
    >>> cache.extract(manifest)                       # decode + resample once
    >>> ds = cache.dataset(manifest.filter_folds([1, 2, 3]))   # {"waveform", "length", "label", "clip"}
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.backbones.backbone import Backbone, InputContract
from tfaudio.data.clip_embeddings import ExtractionReport
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import PipelineConfig
from tfaudio.errors import TfaudioError

__all__ = ["WaveformCache", "WaveformFrames", "FRAME_SECONDS"]

#: Seconds of audio per stored frame.
FRAME_SECONDS = 0.01


class WaveformFrames(Backbone):
    """The identity "backbone" of the waveform cache: waveforms ``[B, S]`` → their samples in frames
    ``[B, F, D]`` of ``D = rate / 100`` samples (10 ms; the last frame zero-padded), mask ``[B, F]``."""

    def __init__(self, sample_rate: int):
        rate = int(sample_rate)
        if rate < 100:
            raise TfaudioError(f"the waveform cache needs a sample rate of at least 100 Hz, got {sample_rate}.")
        size = max(1, int(round(rate * FRAME_SECONDS)))
        seconds = size / rate
        self.contract = InputContract(sample_rate=rate, frame_seconds=seconds, hop_seconds=seconds,
                                      embedding_dim=size, min_seconds=seconds)

    @property
    def fingerprint(self) -> str:
        return f"waveform-{self.contract.sample_rate}-{self.contract.embedding_dim}"

    def spec(self) -> dict[str, Any]:
        return {"name": "waveform", "sample_rate": self.contract.sample_rate}

    @property
    def variables(self) -> list[tf.Variable]:
        return []

    def graph_outputs(self, waveforms, lengths) -> dict[str, tf.Tensor]:
        size = self.contract.embedding_dim
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        lengths = tf.cast(lengths, tf.int32)
        frames = tf.maximum((tf.shape(waveforms)[1] + size - 1) // size, 1)
        x = tf.where(tf.sequence_mask(lengths, tf.shape(waveforms)[1]), waveforms, 0.0)
        x = tf.pad(x, [[0, 0], [0, frames * size - tf.shape(x)[1]]])
        emb = tf.reshape(x, [tf.shape(x)[0], frames, size])  # [B, F, D]
        mask = tf.sequence_mask(tf.maximum((lengths + size - 1) // size, 1), frames)  # [B, F]
        return {"embeddings": emb, "mask": mask}


def _flat(clip):
    """A stored clip (its samples as the frames of a one-sample "backbone") → ``{"waveform", "length",
    "label", "clip"}``."""
    wave = tf.reshape(clip["embeddings"], [-1])
    return {"waveform": wave, "length": tf.shape(wave)[0], "label": clip["label"], "clip": clip["clip"]}


class WaveformCache:
    """Waveforms of audio files at ``sample_rate``, decoded and resampled once (see the module doc).

    Args:
        sample_rate: the rate clips are stored at (a backbone's ``contract.sample_rate``).
        root: the cache folder (default: the embedding cache's, ``$TFAUDIO_CACHE/embeddings``).
        pipeline: how clips are decoded (``on_error``; its ``sample_rate`` must be unset or equal).
        batch_size: clips decoded per committed batch.
    """

    def __init__(self, sample_rate: int, root: str | os.PathLike | None = None, *,
                 pipeline: PipelineConfig | None = None, batch_size: int = 32):
        self.frames = WaveformFrames(sample_rate)
        self.store = EmbeddingCache(self.frames, root, pipeline=pipeline, batch_size=batch_size, engine="float32")

    @property
    def sample_rate(self) -> int:
        return self.frames.contract.sample_rate

    @property
    def directory(self):
        return self.store.directory

    def extract(self, manifest: Manifest, *, on_error: str | None = None, progress: bool = True) -> ExtractionReport:
        """Decodes every clip of ``manifest`` that is not stored yet (see :meth:`EmbeddingCache.extract`)."""
        return self.store.extract(manifest, on_error=on_error, progress=progress)

    def load(self, manifest: Manifest, *, extract: bool = True, progress: bool = True) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(waveforms, targets, manifest rows) of the stored clips of ``manifest``, in manifest order, in
        memory (for evaluation folds; training streams :meth:`dataset`)."""
        clips = self.store.load(manifest, extract=extract, progress=progress)
        return [e.reshape(-1) for e in clips.embeddings], clips.targets, clips.rows

    def stored(self, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
        """(the manifest rows whose clips are stored, their durations in seconds), read from the shard
        indexes alone: no waveform is loaded."""
        index = self.store.index(refresh=True)
        rows, frames = [], []
        for row, key in enumerate(self.store.keys(manifest, on_error="skip")):
            if key is None or key not in index:
                continue
            shard, pos = index[key]
            rows.append(row)
            frames.append(self.store.shard_index(shard)["num_frames"][pos])
        return np.asarray(rows, np.int64), np.asarray(frames, np.float64) * self.frames.contract.hop_seconds

    def dataset(self, manifest: Manifest, *, shuffle_files: bool = False, seed: int | None = None) -> tf.data.Dataset:
        """A streaming ``tf.data`` of the stored clips of ``manifest``: ``{"waveform": [S] float32,
        "length": int32, "label": int32 (or multi-hot float32 [classes]), "clip": the manifest row}``."""

        return self.store.clips_dataset(manifest, shuffle_files=shuffle_files, seed=seed).map(
            _flat, num_parallel_calls=tf.data.AUTOTUNE)

    def dataset_in_order(self, manifest: Manifest, order) -> tf.data.Dataset:
        """:meth:`dataset` with the clips of manifest rows ``order`` in that order (rows not stored are left
        out): what a training epoch streams, the same whatever the cache's shard layout."""
        return self.store.clips_in_order(manifest, order).map(_flat, num_parallel_calls=tf.data.AUTOTUNE,
                                                               deterministic=True)

    def with_pipeline(self, **changes: Any) -> WaveformCache:
        """A cache of the same rate and root with pipeline settings changed."""
        return WaveformCache(self.sample_rate, self.store.root,
                             pipeline=dataclasses.replace(self.store.pipeline, **changes),
                             batch_size=self.store.batch_size)

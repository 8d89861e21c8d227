"""The contract every tfaudio backbone states and the data code reads.

A backbone turns mono float32 waveforms at ``contract.sample_rate`` into a sequence of embedding
frames. Data code never hard-codes a rate or a frame size: it reads them from ``contract``.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Sequence

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class InputContract:
    """What a backbone expects and produces. Times are in seconds; sizes are derived.

    Args:
        sample_rate: input rate in Hz (e.g. 16000).
        frame_seconds: span of audio one embedding frame sees (YAMNet: 0.96 s patch).
        hop_seconds: step between embedding frames (YAMNet: 0.48 s).
        embedding_dim: size of one embedding vector.
        min_seconds: shortest input that gives one frame; shorter clips are zero-padded to it.
    """

    sample_rate: int
    frame_seconds: float
    hop_seconds: float
    embedding_dim: int
    min_seconds: float

    @property
    def min_samples(self) -> int:
        return int(round(self.min_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))


class Backbone(abc.ABC):
    """Base class of backbones (YAMNet, Wav2Vec2/HuBERT).

    Subclasses set ``contract`` and implement :meth:`frames` and :meth:`batch_frames` in plain
    TensorFlow so that the same code runs in ``tf.data``, in Keras and in an exported graph.
    """

    #: The input contract; set by subclasses.
    contract: InputContract
    #: Names of the backbone's own output classes (AudioSet for YAMNet), or None.
    class_names: Sequence[str] | None = None

    @property
    def sample_rate(self) -> int:
        return self.contract.sample_rate

    @property
    def embedding_dim(self) -> int:
        return self.contract.embedding_dim

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short stable hash of the architecture, weights and settings (used as cache key)."""

    @abc.abstractmethod
    def frames(self, waveform: tf.Tensor) -> tf.Tensor:
        """One clip: float32 [samples] at ``sample_rate`` → embeddings [frames, embedding_dim]."""

    @abc.abstractmethod
    def batch_frames(self, waveforms: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """A zero-padded batch: float32 [batch, samples] and int32 [batch] valid lengths →
        (embeddings [batch, frames, embedding_dim], bool mask [batch, frames]).

        Frames of each clip equal :meth:`frames` of that clip alone; frames past a clip's end are
        masked out.
        """

    #: Per-clip work a data pipeline may run in its own workers, or None (the default). When set, a
    #: pure-TF method of one clip ``[samples]`` at ``sample_rate`` → features ``[n, ...]`` (YAMNet: its
    #: log-mel patches ``[P, 96, 64]``): :class:`~tfaudio.data.pipeline.AudioDataset` maps it per clip,
    #: on one thread each and beside the model, and :meth:`batch_frames_from_features` finishes the
    #: job with the same frames as :meth:`batch_frames`.
    clip_features: Callable[[tf.Tensor], tf.Tensor] | None = None

    def batch_frames_from_features(self, features: tf.Tensor, counts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """:meth:`batch_frames` from zero-padded :meth:`clip_features` ``[batch, n, ...]`` and the
        number of real rows per clip ``[batch]``. Backbones that define :meth:`clip_features` implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no clip_features step; use batch_frames.")

    def num_frames(self, num_samples: int) -> int:
        """How many frames a clip of ``num_samples`` samples yields (at least one)."""
        c = self.contract
        extra = max(0, num_samples - c.min_samples)
        return 1 + math.ceil(extra / c.hop_samples)


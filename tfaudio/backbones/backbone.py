"""The contract every tfaudio backbone states, and the one method it implements.

A backbone turns mono float32 waveforms at ``contract.sample_rate`` into a sequence of embedding
frames. Data code never hard-codes a rate or a frame size: it reads them from ``contract``.

A new backbone plugs in by implementing four members (everything else is derived here, so the cache,
the heads, the clip scorer, ``tfaudio tag``, the pipeline, Beam and export all work with it):

- ``contract`` (:class:`InputContract`), ``fingerprint`` and :meth:`Backbone.spec`;
- :meth:`Backbone.graph_outputs`: a zero-padded batch → embeddings, a frame mask and, for backbones
  with classes of their own (AudioSet), their scores, in plain TF ops (traceable, TFLite builtins);
- ``variables``: every ``tf.Variable`` :meth:`~Backbone.graph_outputs` reads (exports track them).

Then register it in :mod:`tfaudio.backbones.registry`.
"""
from __future__ import annotations

import abc
import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.errors import TfaudioError
from tfaudio.signal import melspec


@dataclasses.dataclass(frozen=True)
class InputContract:
    """What a backbone expects and produces. Times are in seconds; sizes are derived.

    Args:
        sample_rate: input rate in Hz (e.g. 16000).
        frame_seconds: span of audio one embedding frame sees (YAMNet: 0.96 s patch).
        hop_seconds: step between embedding frames (YAMNet: 0.48 s).
        embedding_dim: size of one embedding vector.
        min_seconds: shortest input that gives one frame; shorter clips are zero-padded to it.
        window_seconds: the fixed input of a streaming / TFLite model (one Android window; YAMNet:
            0.975 s). None: ``min_seconds``.
    """

    sample_rate: int
    frame_seconds: float
    hop_seconds: float
    embedding_dim: int
    min_seconds: float
    window_seconds: float | None = None

    @property
    def min_samples(self) -> int:
        return int(round(self.min_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))

    @property
    def frame_samples(self) -> int:
        return int(round(self.frame_seconds * self.sample_rate))

    @property
    def window_samples(self) -> int:
        return int(round((self.window_seconds or self.min_seconds) * self.sample_rate))


class Backbone(abc.ABC):
    """Base class of backbones (YAMNet, EfficientAT, speech embedding, Wav2Vec2/HuBERT, Whisper).

    Subclasses set ``contract`` and implement :meth:`graph_outputs`, :attr:`variables`,
    :attr:`fingerprint` and :meth:`spec`. The eager methods (:meth:`batch_outputs`,
    :meth:`batch_frames`, :meth:`batch_scores`, :meth:`frames`) check their input and run
    :meth:`graph_outputs` through one trace (free batch and length), so eager results and exported
    graphs are the same computation.
    """

    #: The input contract; set by subclasses.
    contract: InputContract
    #: Names of the backbone's own output classes (AudioSet for YAMNet / EfficientAT), or None.
    class_names: Sequence[str] | None = None
    #: Name scope of the backbone's signal frontend in graphs: int8 TFLite keeps those ops float.
    frontend_scope: str | None = None
    #: True when the backbone's own scores are per clip (``"clip_scores"``), not per frame.
    clip_level_scores: bool = False
    #: How TFLite exports trace the frontend's STFT: ``"dft"`` (one DFT matmul, inside
    #: :func:`tfaudio.signal.melspec.tflite_compatible`: FULLY_CONNECTED, XNNPACK-friendly) or
    #: ``"rfft"`` (the RFFT2D builtin: no DFT matrix in the file, far fewer multiplies for long windows).
    tflite_stft: str = "dft"
    #: Optional: ``graph_window(waveform [1, S]) -> dict`` like :meth:`graph_outputs` for one unpadded
    #: clip, a simpler graph for fixed-window TFLite models (no batch bookkeeping); None: the exporter
    #: calls :meth:`graph_outputs` with the full length.
    graph_window: Callable[[tf.Tensor], dict[str, tf.Tensor]] | None = None

    @property
    def sample_rate(self) -> int:
        return self.contract.sample_rate

    @property
    def embedding_dim(self) -> int:
        return self.contract.embedding_dim

    @property
    def name(self) -> str:
        """The registry name (``spec()["name"]``)."""
        return str(self.spec().get("name", type(self).__name__))

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short stable hash of the architecture, weights and settings (used as cache key)."""

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """What :func:`tfaudio.backbones.registry.get_backbone` needs to build this backbone again."""

    @property
    @abc.abstractmethod
    def variables(self) -> list[tf.Variable]:
        """Every ``tf.Variable`` :meth:`graph_outputs` reads (an export tracks them)."""

    @abc.abstractmethod
    def graph_outputs(self, waveforms: tf.Tensor, lengths: tf.Tensor) -> dict[str, tf.Tensor]:
        """The backbone as plain TF ops (traceable in a ``tf.function``: no NumPy, no eager checks).

        Args:
            waveforms: float32 ``[B, S]`` at ``contract.sample_rate``, zero-padded.
            lengths: int32 ``[B]`` valid samples per clip, ``0 <= length <= S``.

        Returns:
            ``{"embeddings": [B, F, D] float32, "mask": [B, F] bool}`` where frame ``f`` of clip ``b``
            equals what that clip gives alone and frames past its end are masked out (zeros); plus,
            when :attr:`class_names` is set, either ``"scores": [B, F, K]`` (frame scores, pooled by the
            masked mean) or ``"clip_scores": [B, K]`` (a backbone that pools a clip itself), and
            optionally ``"clip_embedding": [B, D']`` (the clip embedding the model itself pools).
        """

    # ---- derived: graph -----------------------------------------------------------------------
    def graph_frames(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """(embeddings ``[B, F, D]``, mask ``[B, F]``) of :meth:`graph_outputs`."""
        out = self.graph_outputs(waveforms, lengths)
        return out["embeddings"], out["mask"]

    # ---- derived: eager -----------------------------------------------------------------------
    def _traced_outputs(self):
        fn = self.__dict__.get("_tfaudio_traced_outputs")
        if fn is None:
            signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
            fn = tf.function(self.graph_outputs, input_signature=signature, autograph=False)
            self.__dict__["_tfaudio_traced_outputs"] = fn
        return fn

    def check_batch(self, waveforms, lengths=None) -> tuple[tf.Tensor, tf.Tensor]:
        """``waveforms [B, S]`` and ``lengths [B]`` (None: all ``S``) as checked tensors.

        Raises:
            TfaudioError: wrong ranks, lengths that do not match the batch or the width.
        """
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        if waveforms.shape.rank != 2:
            raise TfaudioError(f"a backbone takes a batch of mono waveforms [batch, samples], got shape "
                               f"{waveforms.shape}. Fix: tfaudio.data.audio_converter.AudioConverter prepares "
                               "any audio (files, arrays, stereo, other rates) and pad_batch batches it.")
        if lengths is None:
            lengths = tf.fill([tf.shape(waveforms)[0]], tf.shape(waveforms)[1])
        lengths = tf.cast(tf.convert_to_tensor(lengths), tf.int32)
        if lengths.shape.rank != 1 or lengths.shape[0] != waveforms.shape[0]:
            raise TfaudioError(f"lengths must be [batch] = [{waveforms.shape[0]}], got shape {lengths.shape}.")
        lens = lengths.numpy()
        if lens.size and (lens.min() < 0 or lens.max() > waveforms.shape[1]):
            raise TfaudioError(f"lengths must be in 0..{waveforms.shape[1]} (the batch width), got "
                               f"{lens.min()}..{lens.max()}.")
        return waveforms, lengths

    def batch_outputs(self, waveforms, lengths=None) -> dict[str, tf.Tensor]:
        """:meth:`graph_outputs` of a checked, zero-padded batch (one trace for every shape)."""
        waveforms, lengths = self.check_batch(waveforms, lengths)
        if waveforms.shape[0] == 0:
            return {"embeddings": tf.zeros([0, 0, self.embedding_dim]), "mask": tf.zeros([0, 0], tf.bool)}
        return self._traced_outputs()(waveforms, lengths)

    def batch_frames(self, waveforms, lengths=None) -> tuple[tf.Tensor, tf.Tensor]:
        """A zero-padded batch → (embeddings ``[B, F, D]``, bool mask ``[B, F]``); see :meth:`graph_outputs`."""
        out = self.batch_outputs(waveforms, lengths)
        return out["embeddings"], out["mask"]

    def batch_scores(self, waveforms, lengths=None) -> tuple[tf.Tensor, tf.Tensor]:
        """The backbone's own frame scores ``[B, F, K]`` and mask ``[B, F]`` (backbones with ``scores``)."""
        if not self.class_names:
            raise TfaudioError(f"{type(self).__name__} has no classes of its own to score.")
        out = self.batch_outputs(waveforms, lengths)
        if "scores" not in out:
            raise TfaudioError(f"{type(self).__name__} scores whole clips: use clip_scores().")
        return out["scores"], out["mask"]

    def frames(self, waveform) -> tf.Tensor:
        """One clip ``[samples]`` at ``contract.sample_rate`` → embeddings ``[frames, embedding_dim]``."""
        x = tf.convert_to_tensor(waveform, tf.float32)
        if x.shape.rank != 1:
            raise TfaudioError(f"frames takes one mono clip [samples], got shape {x.shape}. Fix: use "
                               "batch_frames for batches, average channels for stereo.")
        emb, mask = self.batch_frames(x[None], tf.shape(x)[:1])
        return tf.boolean_mask(emb[0], mask[0])

    def num_frames(self, num_samples: int) -> int:
        """How many frames a clip of ``num_samples`` samples yields (at least one)."""
        c = self.contract
        extra = max(0, num_samples - c.min_samples)
        return 1 + math.ceil(extra / c.hop_samples)

    #: Per-clip work a data pipeline may run in its own workers, or None (the default). When set, a
    #: pure-TF method of one clip ``[samples]`` at ``sample_rate`` → features ``[n, ...]`` (YAMNet: its
    #: log-mel patches ``[P, 96, 64]``): :class:`~tfaudio.data.pipeline.AudioDataset` maps it per clip,
    #: on one thread each and beside the model, and :meth:`batch_frames_from_features` finishes the
    #: job with the same frames as :meth:`batch_frames`.
    clip_features: Callable[[tf.Tensor], tf.Tensor] | None = None

    def display_log_mel(self, waveform: np.ndarray) -> tuple[np.ndarray, float]:
        """A log-mel spectrogram ``[frames, bins]`` of one clip at :attr:`sample_rate` to show a person
        (the demo page), and its hop in seconds. Default: YAMNet-style settings at this backbone's rate;
        a backbone with a log-mel frontend of its own overrides it with that."""
        return display_log_mel(waveform, self.sample_rate)

    def batch_frames_from_features(self, features: tf.Tensor, counts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """:meth:`batch_frames` from zero-padded :meth:`clip_features` ``[batch, n, ...]`` and the
        number of real rows per clip ``[batch]``. Backbones that define :meth:`clip_features` implement it."""
        raise NotImplementedError(f"{type(self).__name__} has no clip_features step; use batch_frames.")

    # ---- fine-tuning (:mod:`tfaudio.tasks.finetune`) -----------------------------------------------
    #: What :meth:`finetune_features` returns: ``"log_mel"`` (``[N, T, M]``, time-major: the fine-tuning
    #: road masks bands and frames of it, SpecAugment-style) or ``"waveform"`` (nothing to mask).
    finetune_feature_kind: str = "waveform"
    #: How many of :meth:`finetune_blocks`, from the input, stay frozen unless a recipe says otherwise
    #: (Wav2Vec2: its convolutional feature encoder, as transformers' recipes do).
    finetune_frozen_blocks: int = 0
    #: Speed perturbation unless a recipe says otherwise (``FineTuneConfig.speed``): off, but speech
    #: backbones set 0.1 (chosen by nested CV for the speech embedding: BENCHMARKS.md "Fine-tuning:
    #: nested CV of recipes"; ASR and keyword-spotting recipes use it against speaker variation).
    finetune_speed: float = 0.0

    def finetune_features(self, waveforms, lengths) -> tuple[tf.Tensor, Any]:
        """The first half of :meth:`graph_outputs` while fine-tuning: a zero-padded batch →
        (features, state) for :meth:`finetune_frames`. Default: the waveforms and lengths themselves."""
        return waveforms, lengths

    def finetune_frames(self, features, state, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """The second half: (features, state) of :meth:`finetune_features` → (embeddings ``[B, F, D]``,
        mask ``[B, F]``), differentiable in :attr:`variables`; ``training`` runs dropout and (unless
        frozen) batch norm in training mode. Default: :meth:`graph_outputs` (inference mode), so any
        backbone whose graph is differentiable can be fine-tuned."""
        out = self.graph_outputs(features, state)
        return out["embeddings"], out["mask"]

    def finetune_blocks(self) -> list[tuple[str, list[tf.Variable]]]:
        """The trainable variables in named blocks, from the input to the output (what freezing the first
        N blocks and layer-wise learning-rate decay count). Default: one block of every trainable variable."""
        return [("body", [v for v in self.variables if v.trainable])]

    def finetune_clip_bytes(self, window_samples: int) -> int | None:
        """A rough upper estimate of the memory one training clip of ``window_samples`` takes in the
        forward and backward pass (activations kept for the gradients), from which the fine-tuning road
        picks a micro-batch that fits; None (default): small next to any batch (the CNN backbones)."""
        return None

    def assign_variables(self, values: Sequence[np.ndarray], source: str = "<values>") -> Backbone:
        """Sets :attr:`variables` to ``values`` (in that order; e.g. a fine-tuned model's saved weights)
        and forgets the cached fingerprint. Returns self.

        Raises:
            TfaudioError: the number or shapes of ``values`` do not fit this backbone.
        """
        variables = self.variables
        if len(values) != len(variables):
            raise TfaudioError(f"{source}: {len(values)} weight arrays for a backbone with {len(variables)} "
                               f"({self!r}). Fix: load them into the backbone they were saved from.")
        for v, value in zip(variables, values):
            if tuple(np.shape(value)) != tuple(v.shape):
                raise TfaudioError(f"{source}: weight {v.name} has shape {tuple(v.shape)}, the saved one "
                                   f"{tuple(np.shape(value))}. Fix: load them into the backbone they were saved from.")
        for v, value in zip(variables, values):
            v.assign(np.asarray(value, v.dtype.as_numpy_dtype))
        self._fingerprint = None
        return self


def transformer_clip_bytes(layers: int, positions: int, width: int, ffn: int, heads: int) -> int:
    """:meth:`Backbone.finetune_clip_bytes` of a transformer encoder: float32 activations kept per layer
    for the backward pass — about 3 copies of the attention weights (``heads × positions²``: scores,
    softmax, dropout), 3 of the feed-forward's inner layer and ~6 of the residual stream's width (q, k,
    v, the attention output, the norms), twice for what the backward pass holds beside them. Wav2Vec2-base
    on 1 s clips: 75 MB (measured: ~0.1 GB per clip); Whisper-base's 30 s window: 3.3 GB."""
    per_layer = 3 * heads * positions**2 + positions * (3 * ffn + 6 * width)
    return int(2 * 4 * layers * per_layer)


def split_blocks(variables: Sequence[tf.Variable], blocks: Sequence[tuple[str, Sequence[tf.Variable]]], *,
                 rest: str = "rest", rest_at: int | None = None) -> list[tuple[str, list[tf.Variable]]]:
    """Named blocks of ``variables`` for :meth:`Backbone.finetune_blocks`: ``blocks`` as given (empty ones
    dropped), plus the variables none of them holds as one block ``rest``, inserted at position
    ``rest_at`` (None: last)."""
    taken = {id(v) for _, vs in blocks for v in vs}
    out = [(name, list(vs)) for name, vs in blocks if vs]
    left = [v for v in variables if id(v) not in taken]
    if left:
        out.insert(len(out) if rest_at is None else rest_at, (rest, left))
    return out


def display_log_mel(waveform: np.ndarray, sample_rate: int, config: melspec.LogMelConfig | None = None
                    ) -> tuple[np.ndarray, float]:
    """Log-mel ``[frames, bins]`` of an unpadded clip (at least one window, so the time axis matches the
    waveform's) with ``config`` (default: YAMNet-style settings at ``sample_rate``), and the hop in seconds."""
    if config is None:
        config = melspec.LogMelConfig(sample_rate=sample_rate, upper_edge_hertz=min(7500.0, 0.45 * sample_rate))
    x = np.pad(np.asarray(waveform, np.float32), (0, max(0, config.window_samples - len(waveform))))
    return np.asarray(melspec.log_mel_spectrogram(x, config), np.float32), config.hop_seconds


def weights_digest(prefix: str, settings: Any, variables: Sequence[Any]) -> str:
    """``prefix-`` + 16 hex digits of sha256 over ``repr(settings)`` and every variable's name and value:
    the fingerprint of a backbone (the same weights give the same key wherever they were loaded from)."""

    digest = hashlib.sha256(repr(settings).encode())
    for w in variables:
        digest.update(w.name.encode())
        digest.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return f"{prefix}-{digest.hexdigest()[:16]}"

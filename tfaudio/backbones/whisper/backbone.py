"""Whisper's encoder as a tfaudio backbone (language identification, speech tasks), on transformers'
TensorFlow ``TFWhisperModel``.

A checkpoint (a hub id such as ``openai/whisper-tiny`` or a folder written by ``save_pretrained``) is
loaded with transformers; tfaudio runs only the encoder, on log-mel features it computes itself in
plain TF (:func:`tfaudio.backbones.whisper.frontend.whisper_log_mel`, the feature extractor's computation).
Data flow of :meth:`WhisperBackbone.graph_outputs`::

    waveforms [B, S], lengths [B]
      → cut to max_seconds, zero past each length                           [B, S]
      → 30 s chunks: clip b has max(1, ceil(length / 30 s)) of them          [K, 480000]   (K chunks in all)
      → log-mel per chunk, zero-padded to 30 s like WhisperFeatureExtractor  [K, 3000, mel]  ("frontend" scope)
      → conv1 (k3) + GELU, conv2 (k3, stride 2) + GELU, + positions         [K, 1500, D]
      → encoder layers (full attention over the 30 s window)                [K, 1500, D]
      → last layer (after the final LayerNorm) / hidden_states[k] / softmax-weighted sum of all
      → chunks back in clip order, frames past each clip's audio masked      [B, F, D], mask [B, F]

One frame per 20 ms (two 10 ms log-mel frames): a clip of ``n`` samples has ``max(1, ceil(n / 320))``
valid frames (the frames whose centre lies in the audio), ``F = max(1, ceil(S / 320))``.

**Short clips: padded to 30 s, as Whisper was trained.** The encoder has a fixed 1500 positions
(``max_source_positions``; its positional table is added to exactly 1500 frames) and no attention mask:
Whisper was trained, and is run by transformers and OpenAI, on 30 s windows zero-padded after the
audio, so its layers expect to see that padding. tfaudio does the same and keeps only the frames
covering the real audio for the embeddings and the (masked mean) pooling. Attending over the valid
frames only (a truncated sequence or an attention mask) would feed the encoder inputs it never saw
in training. Because every chunk is padded to 30 s whatever the batch, a clip's frames do not depend
on the other clips of a batch: a padded batch equals each clip alone (tested, < 1e-4; only float
rounding of different matrix shapes differs).

**Long clips (> 30 s): processed as consecutive 30 s chunks**, each its own Whisper window (the last
one zero-padded), and their frames concatenated: nothing is cut. A frame attends only within its own
chunk. ``max_seconds`` cuts clips instead (e.g. ``max_seconds=30``: only the first window).

Cost: every chunk runs the whole encoder on 1500 frames, even for a 1 s clip (whisper-tiny: ~8 M
parameters; its attention weights alone are 6 heads x 1500² floats = 54 MB per chunk and layer).
Eager extraction therefore runs at most ``chunk_batch`` chunks per call (default 4).

Exports: a SavedModel takes clips of any length. A TFLite window (``contract.window_seconds``, 30 s)
is one chunk; a shorter ``window_samples`` still runs the encoder on a whole padded 30 s window.

The checkpoint's decoder is loaded by transformers too (it has no TF encoder-only Whisper class) but
never run, and it is not in :attr:`WhisperBackbone.variables`: exports carry the encoder only.

Example:
    >>> whisper = WhisperBackbone.from_pretrained("openai/whisper-tiny")     # or a local folder
    >>> whisper.contract
    InputContract(sample_rate=16000, frame_seconds=0.065, hop_seconds=0.02, embedding_dim=384, min_seconds=0.02, window_seconds=30.0)
    >>> whisper.frames(tf.zeros([16000])).shape                               # 1 s → 50 frames
    TensorShape([50, 384])
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfaudio.backbones.backbone import Backbone, InputContract, split_blocks, transformer_clip_bytes
from tfaudio.backbones.hf_checkpoint import CheckpointSource, check_layer, config_weights_digest
from tfaudio.backbones.whisper.frontend import WhisperLogMelConfig, whisper_log_mel
from tfaudio.errors import TfaudioError
from tfaudio.signal.pooling import masked_mean

__all__ = ["WhisperBackbone", "WhisperEmbedder"]

log = logging.getLogger(__name__)

# The config entries that shape the encoder's computation (the decoder's and generation settings do
# not change the embeddings, and move between config.json and generation_config.json across versions).
_ENCODER_CONFIG = ("model_type", "d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim",
                   "num_mel_bins", "max_source_positions", "activation_function")


class WhisperEmbedder(keras.layers.Layer):
    """Keras layer: (waveforms ``[B, S]``, lengths ``[B]``) → (embeddings ``[B, F, D]``, bool mask ``[B, F]``).

    Owns the Whisper encoder (its weights are this layer's weights; the decoder is not tracked) and,
    for ``layer="weighted"``, the trainable layer logits (softmax weights of the ``encoder_layers + 1``
    hidden states, initialised equal).

    Args:
        encoder: the ``TFWhisperEncoder`` of a built ``TFWhisperModel`` (``model.get_encoder()``).
        features: the log-mel settings (the checkpoint's feature extractor).
        layer: ``"last"``, an int ``k`` (``hidden_states[k]``: 0 is the input of the first encoder
            layer, ``encoder_layers`` the output after the final LayerNorm) or ``"weighted"``.
        max_samples: clips are cut to this many samples (None: no limit, long clips in 30 s chunks).
    """

    def __init__(self, encoder, features: WhisperLogMelConfig, *, layer: str | int = "last",
                 max_samples: int | None = None, frontend_scope: str = "frontend", **kwargs: Any):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.features = features
        self.layer = layer
        self.max_samples = int(max_samples) if max_samples else None
        self.frontend_scope = frontend_scope
        self.num_layers = len(encoder.encoder_layers)
        self.positions = int(encoder.max_source_positions)
        # conv2 has stride 2 over the 10 ms log-mel frames: one encoder frame per 2 hops
        self.frame_hop_samples = 2 * features.hop_samples
        if layer == "weighted":
            self.layer_logits = self.add_weight(name="layer_logits", shape=(self.num_layers + 1,),
                                                initializer="zeros", trainable=True, dtype=tf.float32)

    def layer_weights(self) -> tf.Tensor:
        """Softmax weights ``[encoder_layers + 1]`` of the hidden states (``layer="weighted"``)."""
        return tf.nn.softmax(self.layer_logits)

    def encode(self, log_mel: tf.Tensor, training: bool = False) -> tf.Tensor:
        """The encoder on 30 s windows: log-mel ``[K, 3000, mel]`` → the chosen layer ``[K, 1500, D]``.

        transformers' ``TFWhisperEncoder.call`` step by step (the same sub-layers and weights), so
        that an int layer stops after that layer and nothing runs that the output does not need.
        """
        enc = self.encoder
        h = tf.pad(log_mel, [[0, 0], [1, 1], [0, 0]])  # "same" padding of the k3 conv, as transformers
        h = keras.activations.gelu(enc.conv1(h))  # [K, 3000, D]
        h = tf.pad(h, [[0, 0], [1, 1], [0, 0]])
        h = keras.activations.gelu(enc.conv2(h))  # [K, 1500, D]
        h = h + tf.cast(enc.embed_positions.weight, h.dtype)  # [1500, D] broadcast over chunks
        h = enc.dropout(h, training=training)
        depth = self.num_layers if self.layer in ("last", "weighted") else int(self.layer)
        states = [h]
        for layer in enc.encoder_layers[:depth]:
            h, _ = layer(h, None, layer_head_mask=None, training=training)
            states.append(h)
        if depth == self.num_layers:  # hidden_states[-1] is the final LayerNorm's output, as in transformers
            states[-1] = enc.layer_norm(h)
        if self.layer == "weighted":
            stacked = tf.stack([tf.cast(s, tf.float32) for s in states], axis=0)  # [L+1, K, 1500, D]
            return tf.tensordot(self.layer_weights(), stacked, axes=1)
        return tf.cast(states[-1], tf.float32)

    def num_valid_frames(self, lengths):
        """Frames covering the audio of clips of ``lengths`` samples (int tensor): ``max(1, ceil(n / 320))``."""
        hop = self.frame_hop_samples
        return tf.maximum(1, (lengths + hop - 1) // hop)

    def split(self, waveforms, lengths) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The 30 s chunks the encoder runs: (chunks ``[K, W]`` zero-padded, how to put their frames back).

        Clip ``b`` gives ``max(1, ceil(length / W))`` chunks (cut to ``max_samples`` first); chunks of the
        batch's width past a clip's audio are left out, so they cost nothing.
        """
        x = tf.cast(waveforms, tf.float32)  # [B, S]
        n = tf.cast(lengths, tf.int32)  # [B]
        if self.max_samples:
            x = x[:, : self.max_samples]
        width = tf.shape(x)[1]
        n = tf.clip_by_value(n, 0, width)
        x = x * tf.sequence_mask(n, width, tf.float32)  # junk past each end → the zeros Whisper pads with
        batch = tf.shape(x)[0]
        window = self.features.chunk_samples
        chunks = tf.maximum(1, (width + window - 1) // window)  # C chunks per row (at least one)
        x = tf.pad(x, [[0, 0], [0, chunks * window - width]])  # [B, C * W]
        x = tf.reshape(x, [batch * chunks, window])  # [B * C, W]
        filled = tf.expand_dims(n, 1) - tf.expand_dims(tf.range(chunks) * window, 0)  # [B, C] audio per chunk
        # a clip's chunks with audio, and always its first (an empty clip still gives one frame)
        keep = tf.logical_or(filled > 0, tf.expand_dims(tf.equal(tf.range(chunks), 0), 0))  # [B, C]
        index = tf.cast(tf.where(tf.reshape(keep, [-1])), tf.int32)  # [K, 1] row-major: clip order, then time
        plan = {"index": index, "batch": batch, "chunks": chunks, "width": width, "lengths": n}
        return tf.gather(x, index[:, 0]), plan  # [K, W]

    def assemble(self, hidden: tf.Tensor, plan: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """The chunks' frames ``[K, P, D]`` back in clip order → (embeddings ``[B, F, D]``, mask ``[B, F]``)."""
        batch, chunks, dim = plan["batch"], plan["chunks"], tf.shape(hidden)[-1]
        # chunks without audio are zeros (masked below)
        hidden = tf.scatter_nd(plan["index"], hidden, tf.stack([batch * chunks, self.positions, dim]))  # [B*C, P, D]
        hidden = tf.reshape(hidden, tf.stack([batch, chunks * self.positions, dim]))  # [B, C * P, D]
        frames = self.num_valid_frames(plan["width"])  # F: the widest possible clip's frames
        hidden = hidden[:, :frames]  # [B, F, D]
        mask = tf.sequence_mask(self.num_valid_frames(plan["lengths"]), frames)  # [B, F]
        emb = hidden * tf.expand_dims(tf.cast(mask, hidden.dtype), -1)  # frames past the audio → 0
        return tf.ensure_shape(emb, [None, None, self.encoder.embed_dim]), mask

    def embed(self, waveforms, lengths, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """:meth:`split` and the log-mel (in the ``frontend_scope`` name scope), :meth:`encode`,
        :meth:`assemble`: (waveforms ``[B, S]``, lengths ``[B]``) → (embeddings ``[B, F, D]``, mask ``[B, F]``)."""
        with tf.name_scope(self.frontend_scope):
            chunks, plan = self.split(waveforms, lengths)  # [K, W]
            log_mel = whisper_log_mel(chunks, self.features)  # [K, 3000, mel]
        return self.assemble(self.encode(log_mel, training=training), plan)

    # No tensor-dependent Python control flow here or in the transformers layers used: AutoGraph off.
    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, training: bool | None = False):
        """(waveforms ``[B, S]``, lengths ``[B]``) → (embeddings ``[B, F, D]`` float32, mask ``[B, F]``)."""
        waveforms, lengths = inputs
        return self.embed(waveforms, lengths, training=bool(training))

    def compute_mask(self, inputs, mask=None):
        return None


class WhisperBackbone(Backbone):
    """Whisper's encoder as a tfaudio backbone: 16 kHz mono waveforms → one ``d_model`` embedding every
    20 ms (whisper-tiny 384, base 512, small 768, medium 1024, large 1280).

    Build it with :meth:`from_pretrained`; the constructor wraps an already loaded transformers model.
    See the module docstring for short (padded to 30 s) and long (30 s chunks) clips.

    Args:
        model: a built ``TFWhisperModel`` (or ``TFWhisperForConditionalGeneration``).
        features: the log-mel settings (from the checkpoint's feature extractor; default: the
            feature extractor's defaults with the model's ``num_mel_bins`` and 30 s windows).
        layer: ``"last"`` (default: the encoder output, after its final LayerNorm), an int ``k``
            (``hidden_states[k]``: 0 = the input of the first layer, ``encoder_layers`` = the last;
            negative counts from the end; intermediate states are the un-normalised residual stream, as
            transformers returns them) or ``"weighted"`` (a softmax-weighted sum of all hidden states with
            trainable weights, equal at first).
        max_seconds: clips are cut to this length (None: no limit, long clips run in 30 s chunks).
        chunk_batch: at most this many 30 s chunks per call in eager extraction (memory: each chunk's
            attention holds heads x 1500² floats per layer, 54 MB for whisper-tiny's 6 heads, 180 MB for
            large's 20, a few times that at peak); exported graphs run the whole batch.
        source: what the weights were loaded from (kept for :meth:`spec`).

    Raises:
        TfaudioError: the feature settings do not fit the encoder (mel bins, 30 s = positions), or a bad layer.
    """

    frontend_scope = "frontend"

    def __init__(self, model, *, features: WhisperLogMelConfig | None = None, layer: str | int = "last",
                 max_seconds: float | None = None, chunk_batch: int = 4, source: str | None = None):
        config = model.config
        self.model = model
        self.config = config
        self.source = source
        name = source or "this model"
        positions, mel_bins = int(config.max_source_positions), int(config.num_mel_bins)
        if features is None:
            # the window that fills the positional table: 2 log-mel hops per position (30 s for 1500)
            default = WhisperLogMelConfig()
            features = WhisperLogMelConfig(num_mel_bins=mel_bins,
                                           chunk_seconds=2 * positions * default.hop_samples / default.sample_rate)
        if features.num_mel_bins != mel_bins:
            raise TfaudioError(f"{name}: the feature extractor makes {features.num_mel_bins} mel bins, the encoder "
                               f"takes {mel_bins} (config.num_mel_bins). Fix: use the checkpoint's own "
                               "preprocessor_config.json (WhisperFeatureExtractor(feature_size=num_mel_bins)).")
        if features.num_frames != 2 * positions:
            raise TfaudioError(
                f"{name}: the feature extractor pads to {features.chunk_seconds:g} s = {features.num_frames} log-mel "
                f"frames, but the encoder has {positions} positions = {2 * positions} frames "
                f"({2 * positions * features.hop_seconds:g} s). Fix: set the feature extractor's chunk_length to "
                f"{2 * positions * features.hop_seconds:g} (WhisperFeatureExtractor(chunk_length=...)).")
        self.features = features
        num_layers = int(config.encoder_layers)
        self.layer = check_layer(layer, num_layers)
        if self.layer == num_layers:
            self.layer = "last"  # the same output: one name, one fingerprint
        self.max_seconds = float(max_seconds) if max_seconds else None
        self.max_samples = int(round(self.max_seconds * features.sample_rate)) if self.max_seconds else None
        if chunk_batch < 1:
            raise TfaudioError(f"chunk_batch must be >= 1, got {chunk_batch}.")
        self.chunk_batch = int(chunk_batch)
        hop = 2 * features.hop_samples  # samples per encoder frame (320 = 20 ms)
        if self.max_samples is not None and self.max_samples < hop:
            raise TfaudioError(f"max_seconds={max_seconds} is shorter than one frame ({hop / features.sample_rate:g} s). "
                               f"Fix: use max_seconds >= {hop / features.sample_rate:g}.")
        self.contract = InputContract(
            sample_rate=features.sample_rate,
            # the conv stack's view of a frame: 5 log-mel frames (4 hops + one window); attention sees
            # the whole 30 s chunk
            frame_seconds=(4 * features.hop_samples + features.n_fft) / features.sample_rate,
            hop_seconds=hop / features.sample_rate,
            embedding_dim=int(config.d_model),
            min_seconds=hop / features.sample_rate,
            window_seconds=features.chunk_seconds,
        )
        self.embedder = WhisperEmbedder(model.get_encoder(), features, layer=self.layer, max_samples=self.max_samples,
                                        frontend_scope=self.frontend_scope, name="whisper_embedder")
        self._fingerprint: str | None = None

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike,
        *,
        layer: str | int = "last",
        from_pt: bool | None = None,
        max_seconds: float | None = None,
        chunk_batch: int = 4,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
    ) -> WhisperBackbone:
        """Loads a Whisper checkpoint with transformers (``TFWhisperModel``) and its feature extractor.

        Weights are read in this order: ``model.safetensors`` (TF or PyTorch layout: no torch needed),
        ``tf_model.h5``, then PyTorch ``pytorch_model.bin`` (needs torch). Hub ids go through the
        Hugging Face cache (``cache_dir``, else $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub);
        with $HF_HUB_OFFLINE / $TRANSFORMERS_OFFLINE / $TFAUDIO_OFFLINE set, or ``local_files_only=True``,
        nothing is downloaded. The log-mel settings come from the checkpoint's ``preprocessor_config.json``
        when it has one, else from ``WhisperFeatureExtractor``'s defaults with the model's ``num_mel_bins``.
        A checkpoint without decoder weights (e.g. an encoder-only classifier) loads too.

        Args:
            model_id_or_path: a folder written by ``save_pretrained`` or a hub id such as
                ``"openai/whisper-tiny"``, ``"openai/whisper-base"``, ``"openai/whisper-large-v3"``.
            layer: see the class.
            from_pt: True: load PyTorch weights (needs torch); False: TF/safetensors only; None: TF or
                safetensors if present, else PyTorch when torch is installed.
            max_seconds: cut clips to this length (None: no limit).
            chunk_batch: see the class.
            cache_dir: the Hugging Face cache to use.
            local_files_only: never download (None: True when an offline variable is set).

        Raises:
            WeightsNotFoundError: no config or weights could be found; the message lists what was tried
                and how to point at a local folder.
            TfaudioError: the checkpoint is not a Whisper model, or only has PyTorch weights and torch is
                not installed, or its feature extractor does not fit the encoder.
        """
        import transformers

        src = CheckpointSource.resolve(model_id_or_path, example="openai/whisper-tiny", cache_dir=cache_dir,
                                       local_files_only=local_files_only)
        config = src.config()
        if config.model_type != "whisper":
            hint = (f" Fix: use --backbone {config.model_type}:{src.source}"
                    if config.model_type in ("wav2vec2", "hubert") else "")
            raise TfaudioError(f"{src.source}: model_type {config.model_type!r} is not a Whisper model.{hint}")
        features = cls._features(src, config)
        model = src.load_model(transformers.TFWhisperModel, config, from_pt,
                               ignore_missing=lambda name: "decoder" in name)  # the decoder never runs
        return cls(model, features=features, layer=layer, max_seconds=max_seconds, chunk_batch=chunk_batch,
                   source=src.source)

    @staticmethod
    def _features(src: CheckpointSource, config) -> WhisperLogMelConfig | None:
        """The feature extractor's settings as a :class:`WhisperLogMelConfig` (None without a
        ``preprocessor_config.json``: the defaults for the model)."""
        from transformers import WhisperFeatureExtractor

        fe = src.feature_extractor(WhisperFeatureExtractor)
        if fe is None:
            log.info("%s: no preprocessor_config.json; using WhisperFeatureExtractor defaults", src.source)
            return None
        if float(getattr(fe, "padding_value", 0.0)) != 0.0:
            raise TfaudioError(f"{src.source}: the feature extractor pads with {fe.padding_value}; tfaudio pads "
                               "with zeros (silence) as Whisper does. Fix: padding_value=0.0.")
        if float(getattr(fe, "dither", 0.0)) != 0.0:
            log.warning("%s: the feature extractor's dither (%s) is ignored: tfaudio's embeddings are deterministic",
                        src.source, fe.dither)
        rate = int(fe.sampling_rate)
        return WhisperLogMelConfig(sample_rate=rate, window_seconds=int(fe.n_fft) / rate,
                                   hop_seconds=int(fe.hop_length) / rate, num_mel_bins=int(fe.feature_size),
                                   chunk_seconds=float(fe.n_samples) / rate)

    # ---- identity --------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The settings besides the weights that change the embeddings."""
        return {"layer": self.layer, "max_seconds": self.max_seconds, "features": dataclasses.asdict(self.features)}

    @property
    def fingerprint(self) -> str:
        """``"whisper-"`` + 16 hex digits of sha256 over the encoder's config, the settings and every
        encoder weight (and the layer logits of ``"weighted"``)."""
        if self._fingerprint is None:
            config = {k: getattr(self.config, k, None) for k in _ENCODER_CONFIG}
            self._fingerprint = config_weights_digest("whisper", config, self.settings(),
                                                      (w.numpy() for w in self.embedder.weights))
        return self._fingerprint

    def spec(self) -> dict[str, Any]:
        """What :func:`tfaudio.backbones.get_backbone` needs to build this backbone again."""
        return {"name": "whisper", "source": self.source, "layer": self.layer, "max_seconds": self.max_seconds}

    def __repr__(self) -> str:
        c = self.config
        return (f"WhisperBackbone({self.source!r}, d_model={c.d_model}, encoder_layers={c.encoder_layers}, "
                f"num_mel_bins={c.num_mel_bins}, layer={self.layer!r})")

    # ---- shapes ----------------------------------------------------------------------------------
    def num_frames(self, num_samples: int) -> int:
        """Frames a clip of ``num_samples`` samples gives: ``max(1, ceil(n / 320))`` after cutting to
        ``max_seconds`` (16 kHz: 1 s → 50, 30 s → 1500, 45 s → 2250)."""
        n = int(num_samples)
        if self.max_samples:
            n = min(n, self.max_samples)
        return max(1, math.ceil(n / (2 * self.features.hop_samples)))

    def num_chunks(self, num_samples: int) -> int:
        """30 s windows the encoder runs for a clip of ``num_samples`` samples (at least one)."""
        n = int(num_samples)
        if self.max_samples:
            n = min(n, self.max_samples)
        return max(1, math.ceil(n / self.features.chunk_samples))

    # ---- computation -----------------------------------------------------------------------------
    @property
    def variables(self) -> list[tf.Variable]:
        """Every variable :meth:`graph_outputs` reads: the encoder's weights (not the decoder's) and,
        for ``layer="weighted"``, the layer logits."""
        return list(self.embedder.weights)

    def graph_outputs(self, waveforms, lengths) -> dict[str, tf.Tensor]:
        """The backbone as plain TF ops (SavedModel / TFLite export, ``tf.data``).

        Args:
            waveforms: float32 ``[B, S]`` at 16 kHz, zero-padded.
            lengths: int32 ``[B]`` valid samples per clip (<= S).

        Returns:
            ``{"embeddings": [B, F, D] float32, "mask": [B, F] bool}``, ``F = max(1, ceil(S / 320))``
            (cut to ``max_seconds``); frames past each clip's audio are zero and masked out.
        """
        # the embedder's steps called directly, not through Keras' __call__: so the log-mel ops are named
        # "frontend/..." at the graph's top level (the int8 TFLite exporter keeps those float)
        emb, mask = self.embedder.embed(waveforms, lengths, training=False)
        return {"embeddings": emb, "mask": mask}

    # ---- fine-tuning (tfaudio.tasks.finetune) ----------------------------------------------------
    finetune_speed = 0.1  # speech: speed perturbation (Backbone.finetune_speed)

    def finetune_frames(self, features, state, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        return self.embedder.embed(features, state, training=training)

    def finetune_clip_bytes(self, window_samples: int) -> int | None:
        """Every clip runs as whole 30 s windows (1500 positions each), however short it is."""
        c = self.config
        per_chunk = transformer_clip_bytes(int(c.encoder_layers), self.embedder.positions, int(c.d_model),
                                           int(c.encoder_ffn_dim), int(c.encoder_attention_heads))
        return self.num_chunks(window_samples) * per_chunk

    def finetune_blocks(self) -> list[tuple[str, list[tf.Variable]]]:
        """``stem`` (the two convolutions), ``layer0`` … ``layerN``, then ``top`` (final norm, layer logits)."""
        enc = self.embedder.encoder
        return split_blocks(self.embedder.trainable_weights,
                            [("stem", enc.conv1.trainable_weights + enc.conv2.trainable_weights)]
                            + [(f"layer{i}", layer.trainable_weights) for i, layer in enumerate(enc.encoder_layers)],
                            rest="top")

    def batch_outputs(self, waveforms, lengths=None) -> dict[str, tf.Tensor]:
        """:meth:`graph_outputs` of a checked batch, at most ``chunk_batch`` 30 s chunks per call: clips
        are grouped, and a clip longer than ``chunk_batch`` chunks runs in pieces of that many (chunks
        are independent, so the frames are the same as in one call; a batch of 16 clips in one call
        would hold 16 chunks' attention weights at once)."""
        waveforms, lengths = self.check_batch(waveforms, lengths)
        if waveforms.shape[0] == 0:
            return {"embeddings": tf.zeros([0, 0, self.embedding_dim]), "mask": tf.zeros([0, 0], tf.bool)}
        run = self._traced_outputs()
        counts = [self.num_chunks(int(n)) for n in lengths.numpy()]
        if sum(counts) <= self.chunk_batch:
            return run(waveforms, lengths)
        frames = self.num_frames(int(waveforms.shape[1]))  # F of the whole batch
        rows: dict[int, tuple[tf.Tensor, tf.Tensor]] = {}
        group: list[int] = []
        for i in [i for i, k in enumerate(counts) if k <= self.chunk_batch] + [None]:
            if group and (i is None or sum(counts[j] for j in group) + counts[i] > self.chunk_batch):
                # the group's rows keep the batch's width, so they give F frames
                out = run(tf.gather(waveforms, group), tf.gather(lengths, group))
                rows.update({j: (out["embeddings"][r], out["mask"][r]) for r, j in enumerate(group)})
                group = []
            if i is not None:
                group.append(i)
        step = self.chunk_batch * self.features.chunk_samples
        for i in [i for i, k in enumerate(counts) if k > self.chunk_batch]:
            n = int(lengths[i]) if not self.max_samples else min(int(lengths[i]), self.max_samples)
            pieces = []
            for start in range(0, n, step):
                size = min(step, n - start)
                out = run(waveforms[i : i + 1, start : start + size], tf.constant([size], tf.int32))
                pieces.append(out["embeddings"][0, : self.num_frames(size)])
            emb = tf.concat(pieces, axis=0)  # [num_frames(n), D]: pieces are whole chunks but the last
            rows[i] = (tf.pad(emb, [[0, frames - emb.shape[0]], [0, 0]]), tf.sequence_mask(emb.shape[0], frames))
        return {"embeddings": tf.stack([rows[i][0] for i in range(len(counts))]),
                "mask": tf.stack([rows[i][1] for i in range(len(counts))])}

    def pooled(self, waveforms, lengths=None) -> tf.Tensor:
        """Masked mean over each clip's frames: ``[B, S]`` (+ lengths ``[B]``) → ``[B, d_model]``."""
        emb, mask = self.batch_frames(waveforms, lengths)
        return masked_mean(emb, mask)

"""Wav2Vec2 and HuBERT (also DistilHuBERT) as tfaudio backbones, on transformers' TensorFlow classes.

A checkpoint (a Hugging Face model id or a folder written by ``save_pretrained``) is loaded into
``TFWav2Vec2Model`` or ``TFHubertModel`` according to its ``config.model_type``; tfaudio then runs the
model's own layers in its own forward pass so that a zero-padded batch gives, frame for frame, what
each clip gives alone. Data flow of :meth:`Wav2Vec2Backbone.batch_frames`::

    waveforms [B, S], lengths [B]
      → truncate to max_seconds, zero past each length                      [B, S]
      → per-clip zero mean / unit variance over the valid samples only      [B, S]   (do_normalize)
      → zero-pad to the receptive field (400 samples)                       [B, S']
      → conv feature encoder (7 convs, total stride 320 = 20 ms)            [B, F, 512]
          (batch_frames runs it clip by clip on each clip's own samples: faster on CPU, see
          Wav2Vec2Embedder._features_per_clip; graph_frames, export and fine-tuning run the batch)
          "layer" norm checkpoints: LayerNorm per frame (batch-independent already)
          "group" norm checkpoints (wav2vec2-base, HuBERT-base, DistilHuBERT): the first conv's
          GroupNorm normalises over TIME; its statistics are taken over each clip's valid frames only
      → feature projection (LayerNorm + Dense)                              [B, F, H]
      → transformer encoder with an attention mask of the valid frames      [B, F, H]
          (its grouped positional convolution as one convolution per group, not Keras' XLA op)
      → last layer / hidden_states[k] / softmax-weighted sum of all layers  [B, F, H], mask [B, F]

Why not follow transformers' advice for "group" norm checkpoints (zero-pad, no attention mask)?
Zero-padding changes the first GroupNorm's statistics and lets padded frames into every attention
softmax, so a padded clip's embeddings drift from the clip's own: by 0.7-2.1 (max abs, frames of
unit scale) on the tiny random test models; passing transformers an attention mask instead still
leaves 0.45-0.75 for "group" checkpoints (the GroupNorm statistics) and is exact only for "layer"
ones. With the masked statistics and the attention mask above, the batch equals the clips run alone,
which is the unpadded forward pass the checkpoint's authors evaluate.

Tolerances (float32, CPU, max abs difference of frames of unit scale), the same for "layer" norm
(wav2vec2-large-lv60 style) and "group" norm (wav2vec2-base, HuBERT, DistilHuBERT) checkpoints:
padded batch vs. each clip alone < 5e-6 measured (tests assert 1e-4); vs. transformers' own model on
the unpadded clip < 3e-6; XLA (``jit_compile=True``) vs. plain ~3e-6. The only differences left are
float rounding from different matrix shapes; nothing of one clip reaches another.

DistilHuBERT: its config has ``feat_proj_layer_norm=False``, which transformers' TF HuBERT ignores
(it always applies that LayerNorm, with weights the checkpoint does not have); tfaudio skips it, as
the PyTorch model does.

Example:
    >>> w2v = Wav2Vec2Backbone.from_pretrained("facebook/wav2vec2-base")   # or a local folder
    >>> w2v.contract
    InputContract(sample_rate=16000, frame_seconds=0.025, hop_seconds=0.02, embedding_dim=768, min_seconds=0.025)
    >>> w2v.frames(tf.zeros([16000])).shape                                # 1 s → 49 frames
    TensorShape([49, 768])
    >>> emb, mask = w2v.batch_frames(tf.zeros([8, 32000]), tf.fill([8], 32000))

One file of ~600 lines on purpose: the transformers model, its feature-extractor normalisation, the
masked group norm and the layer mix are one traced computation; loading lives in ``hf_checkpoint.py``.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.backbones.backbone import Backbone, InputContract, split_blocks, transformer_clip_bytes
from tfaudio.backbones.hf_checkpoint import CheckpointSource, check_layer, config_weights_digest
from tfaudio.errors import AudioError, TfaudioError
from tfaudio.signal.pooling import masked_mean

__all__ = ["Wav2Vec2Backbone", "Wav2Vec2Embedder", "SUPPORTED_MODEL_TYPES", "conv_output_length"]

log = logging.getLogger(__name__)

#: ``config.model_type`` → transformers' TF class. DistilHuBERT checkpoints are ``"hubert"``.
SUPPORTED_MODEL_TYPES = {"wav2vec2": "TFWav2Vec2Model", "hubert": "TFHubertModel"}
# transformers' Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm uses this epsilon.
_NORM_EPS = 1e-7
# Weights that a base-model checkpoint may lack without harm (SpecAugment's mask vector is only used
# in pre-training; DistilHuBERT has no feature-projection LayerNorm, see feat_proj_layer_norm).
_OPTIONAL_WEIGHTS = ("masked_spec_embed", "feature_projection/layer_norm")
_VOLATILE_CONFIG = ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype", "layerdrop",
                    "apply_spec_augment", "output_hidden_states", "output_attentions", "return_dict")


def conv_output_length(num_samples, kernels, strides):
    """Frames the conv feature encoder makes from ``num_samples`` samples (valid convolutions):
    ``n → (n - kernel) // stride + 1`` per layer, as transformers' ``_get_feat_extract_output_lengths``.
    Works on Python ints and on int tensors; negative results mean "not even one frame"."""
    n = num_samples
    for k, s in zip(kernels, strides, strict=True):
        n = (n - k) // s + 1
    return n


def receptive_field(kernels, strides) -> int:
    """Samples one frame of the conv stack sees (400 for wav2vec2's 7 layers: 25 ms at 16 kHz)."""
    r = 1
    for k, s in reversed(list(zip(kernels, strides, strict=True))):
        r = (r - 1) * s + k
    return r


def _masked_group_norm(x: tf.Tensor, lengths: tf.Tensor, norm: keras.layers.Layer) -> tf.Tensor:
    """transformers' TFWav2Vec2GroupNorm (GroupNorm over time and the channels of each group) with
    statistics over the first ``lengths[b]`` frames of each clip only.

    Args:
        x: float ``[B, T, C]`` conv output.
        lengths: int32 ``[B]`` valid frames per clip.
        norm: the checkpoint's GroupNorm layer (``groups``, ``epsilon``, ``gamma``, ``beta``).
    """
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    channels = x.shape[-1]
    groups = norm.groups
    shape = tf.shape(x)
    grouped = tf.reshape(x, [shape[0], shape[1], groups, channels // groups])  # [B, T, G, C/G]
    valid = tf.reshape(tf.sequence_mask(lengths, shape[1], tf.float32), [shape[0], shape[1], 1, 1])  # [B, T, 1, 1]
    count = tf.reshape(tf.maximum(tf.cast(lengths, tf.float32), 1.0), [-1, 1, 1, 1]) * (channels // groups)
    mean = tf.reduce_sum(grouped * valid, axis=[1, 3], keepdims=True) / count  # [B, 1, G, 1]
    var = tf.reduce_sum(tf.square((grouped - mean) * valid), axis=[1, 3], keepdims=True) / count
    normed = tf.reshape((grouped - mean) * tf.math.rsqrt(var + norm.epsilon), shape)  # [B, T, C]
    if norm.gamma is not None:
        normed = normed * tf.cast(norm.gamma, tf.float32)
    if norm.beta is not None:
        normed = normed + tf.cast(norm.beta, tf.float32)
    return tf.cast(normed, dtype)


def _split_grouped_conv(conv: keras.layers.Layer) -> None:
    """Runs the positional embedding's grouped convolution (wav2vec2-base: kernel 128, 16 groups of 48
    channels) as one plain convolution per group, instead of Keras' XLA-compiled grouped convolution.

    Keras compiles grouped convolutions with XLA on CPU, once per input shape: every new clip length
    cost a compilation (~0.1-1 s), and the compiled kernel was slower than per-group convolutions
    (wav2vec2-base, CPU time per 1 s clip: 23 ms alone, 13 ms in batches of 8; per group: 9.5 and
    7 ms; 5 s clips: 92 / 48 ms vs. 41 / 31 ms). Same arithmetic, so the same results; the TFLite
    converter maps each group to a builtin CONV_2D.
    """
    groups = int(conv.groups)

    def grouped(inputs, kernel):  # inputs [B, T, C], kernel [K, C/groups, C]
        xs = tf.split(inputs, groups, axis=-1)
        ks = tf.split(kernel, groups, axis=-1)
        return tf.concat([tf.nn.conv1d(x, k, stride=1, padding="VALID") for x, k in zip(xs, ks, strict=True)], -1)

    conv._jit_compiled_convolution_op = grouped


class Wav2Vec2Embedder(keras.layers.Layer):
    """Keras layer: (waveforms ``[B, S]``, lengths ``[B]``) → (embeddings ``[B, F, H]``, bool mask ``[B, F]``).

    Owns the transformers model (its weights are this layer's weights) and, for
    ``layer="weighted"``, the trainable layer logits (softmax-normalised weights of the
    ``num_hidden_layers + 1`` hidden states, initialised equal). The backbone's extraction and the
    fine-tuning model call this same layer, so they cannot drift apart.

    Args:
        model: a built ``TFWav2Vec2Model`` or ``TFHubertModel``.
        layer: ``"last"``, an int ``k`` (``hidden_states[k]``: 0 is the input of the first transformer
            layer, ``num_hidden_layers`` the last) or ``"weighted"``.
        do_normalize: per-clip zero mean / unit variance over the valid samples.
        max_samples: clips are cut to this many samples (None: no limit).
    """

    def __init__(self, model, *, layer: str | int = "last", do_normalize: bool = True,
                 max_samples: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.model = model
        config = model.config
        self.layer = layer
        self.do_normalize = bool(do_normalize)
        self.max_samples = int(max_samples) if max_samples else None
        self.kernels = tuple(int(k) for k in config.conv_kernel)
        self.strides = tuple(int(s) for s in config.conv_stride)
        self.min_samples = receptive_field(self.kernels, self.strides)
        self.num_states = int(config.num_hidden_layers) + 1
        self.group_norm = config.feat_extract_norm == "group"
        # transformers' TF HuBERT always applies the feature-projection LayerNorm; PyTorch skips it
        # when feat_proj_layer_norm is False (DistilHuBERT). Follow the checkpoint, not the TF port.
        self.projection_norm = bool(getattr(config, "feat_proj_layer_norm", True))
        conv = self.main.encoder.pos_conv_embed.conv
        if (int(getattr(conv, "groups", 1)) > 1 and conv.padding == "valid" and tuple(conv.strides) == (1,)
                and tuple(conv.dilation_rate) == (1,)):
            _split_grouped_conv(conv)
        if layer == "weighted":
            self.layer_logits = self.add_weight(name="layer_logits", shape=(self.num_states,),
                                                initializer="zeros", trainable=True, dtype=tf.float32)

    @property
    def main(self) -> keras.layers.Layer:
        """The transformers main layer (``model.wav2vec2`` or ``model.hubert``)."""
        return getattr(self.model, self.model.base_model_prefix)

    @property
    def feature_encoder(self) -> keras.layers.Layer:
        """The convolutional feature encoder (freeze it with ``.trainable = False``)."""
        return self.main.feature_extractor

    def layer_weights(self) -> tf.Tensor:
        """Softmax weights ``[num_hidden_layers + 1]`` of the hidden states (``layer="weighted"``)."""
        return tf.nn.softmax(self.layer_logits)

    def prepare(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """Truncation, zeroing past each length, normalisation over the valid samples and padding to
        the receptive field: (model input ``[B, S']``, effective lengths ``[B]``)."""
        x = tf.cast(waveforms, tf.float32)  # [B, S]
        n = tf.cast(lengths, tf.int32)  # [B]
        if self.max_samples:
            x = x[:, : self.max_samples]
            n = tf.minimum(n, self.max_samples)
        width = tf.shape(x)[1]
        n = tf.clip_by_value(n, 0, width)
        valid = tf.sequence_mask(n, width, tf.float32)  # [B, S]
        x = x * valid
        if self.do_normalize:
            count = tf.expand_dims(tf.maximum(tf.cast(n, tf.float32), 1.0), 1)  # [B, 1]
            mean = tf.reduce_sum(x, axis=1, keepdims=True) / count
            var = tf.reduce_sum(tf.square((x - mean) * valid), axis=1, keepdims=True) / count
            x = (x - mean) * tf.math.rsqrt(var + _NORM_EPS) * valid
        # clips shorter than one frame are zero-padded to it (and the padding counts as the clip)
        x = tf.pad(x, [[0, 0], [0, tf.maximum(0, self.min_samples - width)]])  # [B, S']
        return x, tf.maximum(n, self.min_samples)

    def _features(self, x, n, training):
        """Conv feature encoder with per-clip GroupNorm statistics: ``[B, S']`` → ``[B, F, C]``, ``[B]``."""
        h = tf.expand_dims(x, -1)  # [B, S', 1] (not x[..., None]: TFLite has no new-axis StridedSlice)
        for i, conv_layer in enumerate(self.feature_encoder.conv_layers):
            h = conv_layer.conv(h)
            n = (n - self.kernels[i]) // self.strides[i] + 1
            norm = getattr(conv_layer, "layer_norm", None)
            if norm is not None:
                h = _masked_group_norm(h, n, norm) if self.group_norm else norm(h)
            h = conv_layer.activation(h)
        return h, n  # [B, F, C], [B]

    def _features_per_clip(self, x, n, training):
        """:meth:`_features` one clip at a time on its own valid samples, zero-padded to the batch's
        frames: ``[B, S']``, ``[B]`` → ``[B, F, C]``, ``[B]``.

        Why: the conv encoder's activations of a batch (wav2vec2-base: 512 channels x 3,200 steps per
        second of audio, 52 MB for 8 clips of 1 s after the first conv) leave the CPU caches, and its
        element-wise steps (GroupNorm, GELU) become memory-bound; one clip's fit. Measured on 2 cores,
        8 clips: CPU time of the conv encoder -20 % (1 s and 5 s clips), and no conv work on padding.
        The transformer after it still runs on the whole batch. Dynamic shapes inside a while loop:
        for eager extraction only (not under XLA, not in exported graphs).
        """
        batch = tf.shape(x)[0]
        max_frames = conv_output_length(tf.shape(x)[1], self.kernels, self.strides)
        channels = int(self.feature_encoder.conv_layers[-1].conv.filters)

        def body(b, frames):
            h, _ = self._features(x[b : b + 1, : n[b]], n[b : b + 1], training)  # [1, F_b, C]
            h = tf.pad(tf.cast(h, tf.float32), [[0, 0], [0, max_frames - tf.shape(h)[1]], [0, 0]])  # [1, F, C]
            return b + 1, frames.write(b, h[0])

        frames = tf.TensorArray(tf.float32, size=batch, element_shape=[None, channels])
        # two clips in flight: one clip's small ops leave a core idle on a 2-core CPU
        _, frames = tf.while_loop(lambda b, _: b < batch, body, [0, frames], parallel_iterations=2)
        return tf.cast(frames.stack(), self.compute_dtype), conv_output_length(n, self.kernels, self.strides)

    # No tensor-dependent Python control flow here or in the transformers layers below: converting them
    # with AutoGraph would only cost time (~10 s per Keras fit/evaluate/predict trace of a tiny model).
    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, training: bool | None = False, per_clip_features: bool = False):
        """(waveforms ``[B, S]``, lengths ``[B]``) → (embeddings ``[B, F, H]``, mask ``[B, F]``);
        ``per_clip_features``: run the conv encoder clip by clip (see :meth:`_features_per_clip`)."""
        waveforms, lengths = inputs
        training = bool(training)
        x, n = self.prepare(waveforms, lengths)
        features_fn = self._features_per_clip if per_clip_features else self._features
        features, frames = features_fn(x, n, training)  # [B, F, C], [B]
        mask = tf.sequence_mask(frames, tf.shape(features)[1])  # [B, F]
        projection = self.main.feature_projection
        if self.projection_norm:
            hidden = projection(features, training=training)
            hidden = hidden[0] if isinstance(hidden, (tuple, list)) else hidden  # wav2vec2 also returns the norm
        else:
            hidden = projection.dropout(projection.projection(features), training=training)
        want_states = self.layer != "last"
        out = self.main.encoder(hidden, attention_mask=tf.cast(mask, hidden.dtype),
                                output_hidden_states=want_states, return_dict=True, training=training)
        if self.layer == "last":
            emb = out.last_hidden_state
        elif self.layer == "weighted":
            states = tf.stack([tf.cast(s, tf.float32) for s in out.hidden_states], axis=0)  # [L+1, B, F, H]
            emb = tf.tensordot(self.layer_weights(), states, axes=1)  # [B, F, H]
        else:
            emb = out.hidden_states[int(self.layer)]
        emb = tf.cast(emb, tf.float32) * tf.expand_dims(tf.cast(mask, tf.float32), -1)  # padded frames → 0
        return emb, mask

    def compute_mask(self, inputs, mask=None):
        return None


class Wav2Vec2Backbone(Backbone):
    """Wav2Vec2 / HuBERT / DistilHuBERT as a tfaudio backbone: 16 kHz mono waveforms → one
    ``hidden_size`` embedding every 20 ms (each frame sees 25 ms).

    Build it with :meth:`from_pretrained`; the constructor wraps an already loaded transformers model.

    Args:
        model: a built ``TFWav2Vec2Model`` or ``TFHubertModel``.
        layer: ``"last"`` (default), an int ``k`` (``hidden_states[k]``; 0 = the transformer's input,
            ``num_hidden_layers`` = the last layer; negative counts from the end) or ``"weighted"``
            (a softmax-weighted sum of all hidden states with trainable weights, equal at first).
        sampling_rate: the checkpoint's rate in Hz (its feature extractor's; 16000).
        do_normalize: zero mean / unit variance per clip over its valid samples (the feature
            extractor's setting; wav2vec2-base and most checkpoints: True).
        return_attention_mask: the feature extractor's setting, kept for information: tfaudio masks
            padded batches for every checkpoint (see the module docstring).
        max_seconds: clips are cut to this length (None: no limit; memory grows with the square of
            the length in attention).
        jit_compile: run extraction (:meth:`batch_frames`, :meth:`frames`) through XLA. Batches are
            padded to a width in steps of 0.5 s and to a power-of-two number of clips (masking keeps
            the results equal, ~3e-6), so XLA compiles once per bucket (5-20 s each for
            wav2vec2-base on 2 cores). On the 2-core test CPU it gave 0.8-2× the plain batched
            throughput from run to run, no consistent gain (BENCHMARKS.md); it is meant for GPUs and
            long extraction jobs. Off by default because of the compile time.
        source: what the weights were loaded from (kept for :meth:`spec`).
    """

    def __init__(self, model, *, layer: str | int = "last", sampling_rate: int = 16000,
                 do_normalize: bool = True, return_attention_mask: bool | None = None,
                 max_seconds: float | None = None, jit_compile: bool = False, source: str | None = None):
        config = model.config
        self.model = model
        self.config = config
        self.model_type = config.model_type
        self.layer = self._check_layer(layer, int(config.num_hidden_layers))
        self.sampling_rate = int(sampling_rate)
        self.do_normalize = bool(do_normalize)
        self.return_attention_mask = (config.feat_extract_norm == "layer" if return_attention_mask is None
                                      else bool(return_attention_mask))
        self.max_seconds = float(max_seconds) if max_seconds else None
        self.source = source
        kernels, strides = tuple(config.conv_kernel), tuple(config.conv_stride)
        self.receptive_field_samples = receptive_field(kernels, strides)
        self.hop_samples = int(np.prod(strides))
        self.contract = InputContract(
            sample_rate=self.sampling_rate,
            frame_seconds=self.receptive_field_samples / self.sampling_rate,
            hop_seconds=self.hop_samples / self.sampling_rate,
            embedding_dim=int(config.hidden_size),
            min_seconds=self.receptive_field_samples / self.sampling_rate,
        )
        max_samples = int(round(self.max_seconds * self.sampling_rate)) if self.max_seconds else None
        if max_samples is not None and max_samples < self.receptive_field_samples:
            raise TfaudioError(f"max_seconds={max_seconds} is shorter than one frame "
                               f"({self.contract.frame_seconds} s). Fix: use max_seconds >= {self.contract.frame_seconds}.")
        self.max_samples = max_samples
        self.embedder = Wav2Vec2Embedder(model, layer=self.layer, do_normalize=self.do_normalize,
                                         max_samples=max_samples, name=f"{self.model_type}_embedder")
        self._fingerprint: str | None = None
        self.shared_with_model = False  # set by fine-tuning: weights may change, fingerprint is not cached
        self.jit_compile = bool(jit_compile)
        # One trace: free batch and length, so no retracing per clip length or batch size (XLA still
        # compiles per concrete shape, hence the buckets in _run).
        signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
        self._batch_fn = tf.function(self._forward, input_signature=signature, autograph=False,
                                     jit_compile=self.jit_compile)
        self._per_clip_features_fn = tf.function(self._forward_per_clip_features, input_signature=signature,
                                                 autograph=False)

    @staticmethod
    def _check_layer(layer, num_layers: int):
        return check_layer(layer, num_layers)


    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike,
        *,
        layer: str | int = "last",
        from_pt: bool | None = None,
        max_seconds: float | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool | None = None,
        jit_compile: bool = False,
    ) -> Wav2Vec2Backbone:
        """Loads a Wav2Vec2, HuBERT or DistilHuBERT checkpoint with transformers.

        The model class follows ``config.model_type`` (``wav2vec2`` → ``TFWav2Vec2Model``, ``hubert``
        → ``TFHubertModel``). Weights are read in this order: ``model.safetensors`` (TF or PyTorch
        layout: no torch needed), ``tf_model.h5``, then PyTorch ``pytorch_model.bin`` (needs torch).
        Hub ids go through the Hugging Face cache (``cache_dir``, else $HF_HUB_CACHE, $HF_HOME/hub,
        ~/.cache/huggingface/hub); with $HF_HUB_OFFLINE / $TRANSFORMERS_OFFLINE / $TFAUDIO_OFFLINE
        set, or ``local_files_only=True``, nothing is downloaded. The input settings (rate,
        normalisation) come from the checkpoint's ``preprocessor_config.json`` when it has one, else
        from ``Wav2Vec2FeatureExtractor``'s defaults (16 kHz, normalised).

        Args:
            model_id_or_path: a folder written by ``save_pretrained`` or a hub id such as
                ``"facebook/wav2vec2-base"``, ``"facebook/hubert-base-ls960"``, ``"ntu-spml/distilhubert"``.
            layer: see the class.
            from_pt: True: load PyTorch weights (needs torch); False: TF/safetensors only; None: TF or
                safetensors if present, else PyTorch when torch is installed.
            max_seconds: cut clips to this length (None: no limit).
            cache_dir: the Hugging Face cache to use.
            local_files_only: never download (None: True when an offline variable is set).
            jit_compile: extraction through XLA (see the class).

        Raises:
            WeightsNotFoundError: no config or weights could be found; the message lists what was tried
                and how to point at a local folder.
            TfaudioError: the checkpoint is not a Wav2Vec2/HuBERT model, or only has PyTorch weights
                and torch is not installed.
        """
        src = CheckpointSource.resolve(model_id_or_path, example="facebook/wav2vec2-base", cache_dir=cache_dir,
                                       local_files_only=local_files_only)
        config = src.config()
        model_type = config.model_type
        if model_type not in SUPPORTED_MODEL_TYPES:
            hint = f" Fix: a Whisper checkpoint is the whisper backbone: whisper:{src.source}" if model_type == "whisper" else ""
            raise TfaudioError(f"{src.source}: model_type {model_type!r} has no TensorFlow class in transformers; "
                               f"supported: {', '.join(SUPPORTED_MODEL_TYPES)} (DistilHuBERT is 'hubert').{hint}")
        if getattr(config, "conv_pos_batch_norm", False):
            raise TfaudioError(f"{src.source}: conv_pos_batch_norm=True is not implemented by transformers' TF "
                               "HuBERT. Fix: use a checkpoint with weight-normalised positional convolutions.")
        if getattr(config, "add_adapter", False):
            raise TfaudioError(f"{src.source}: add_adapter=True (a CTC adapter) is not implemented by "
                               "transformers' TF Wav2Vec2. Fix: use the base (pre-trained) checkpoint.")
        import transformers

        model_cls = getattr(transformers, SUPPORTED_MODEL_TYPES[model_type])
        fe = cls._feature_extractor(src)
        model = src.load_model(model_cls, config, from_pt,
                               ignore_missing=lambda k: any(o in k for o in _OPTIONAL_WEIGHTS))
        backbone = cls(
            model, layer=layer, sampling_rate=fe["sampling_rate"], do_normalize=fe["do_normalize"],
            return_attention_mask=fe["return_attention_mask"], max_seconds=max_seconds, jit_compile=jit_compile,
            source=src.source,
        )
        return backbone

    @staticmethod
    def _feature_extractor(src: CheckpointSource) -> dict[str, Any]:
        """The feature extractor's settings, or Wav2Vec2FeatureExtractor's defaults without one."""
        from transformers import Wav2Vec2FeatureExtractor

        fe = src.feature_extractor(Wav2Vec2FeatureExtractor)
        if fe is None:
            log.info("%s: no preprocessor_config.json; using Wav2Vec2FeatureExtractor defaults", src.source)
            fe = Wav2Vec2FeatureExtractor()
        if getattr(fe, "feature_size", 1) != 1:
            raise TfaudioError(f"{src.source}: the feature extractor expects {fe.feature_size} input features; "
                               "tfaudio feeds raw mono waveforms (feature_size 1).")
        return {"sampling_rate": int(fe.sampling_rate), "do_normalize": bool(fe.do_normalize),
                "return_attention_mask": bool(fe.return_attention_mask)}

    # ---- identity --------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The settings besides the weights that change the embeddings."""
        return {"model_type": self.model_type, "layer": self.layer, "sampling_rate": self.sampling_rate,
                "do_normalize": self.do_normalize, "max_seconds": self.max_seconds,
                "projection_norm": self.embedder.projection_norm}

    @property
    def fingerprint(self) -> str:
        """``"wav2vec2-"`` / ``"hubert-"`` + 16 hex digits of sha256 over the config, the settings and
        every weight (in the model's order, names aside: they depend on Keras' naming counters)."""
        if self._fingerprint is None or self.shared_with_model:
            # settings that do not change inference (training-only regularisers, bookkeeping) stay out
            config = {k: v for k, v in self.config.to_dict().items()
                      if k not in _VOLATILE_CONFIG and "dropout" not in k and not k.startswith(("mask_", "ctc_"))}
            self._fingerprint = config_weights_digest(self.model_type, config, self.settings(),
                                                      (w.numpy() for w in self.embedder.weights))
        return self._fingerprint

    def spec(self) -> dict[str, Any]:
        """What :func:`tfaudio.backbones.get_backbone` needs to build this backbone again (the
        checkpoint's weights: weights changed by fine-tuning, and learned ``"weighted"`` layer
        weights, are saved with the fine-tuned model, not here)."""
        return {"name": self.model_type, "source": self.source, "layer": self.layer,
                "max_seconds": self.max_seconds}

    def __repr__(self) -> str:
        c = self.config
        return (f"Wav2Vec2Backbone({self.source!r}, model_type={self.model_type!r}, layers={c.num_hidden_layers}, "
                f"hidden={c.hidden_size}, feat_extract_norm={c.feat_extract_norm!r}, layer={self.layer!r})")

    # ---- shapes ----------------------------------------------------------------------------------
    def num_frames(self, num_samples: int) -> int:
        """Frames a clip of ``num_samples`` samples gives: the conv stack's exact length after cutting to
        ``max_seconds`` and padding to one receptive field (16 kHz: 1 s → 49, 5 s → 249)."""
        n = int(num_samples)
        if self.max_samples:
            n = min(n, self.max_samples)
        n = max(n, self.receptive_field_samples)
        return int(conv_output_length(n, self.config.conv_kernel, self.config.conv_stride))

    # ---- computation -----------------------------------------------------------------------------
    def _forward(self, waveforms, lengths):
        return self.embedder((waveforms, lengths), training=False)

    def _forward_per_clip_features(self, waveforms, lengths):
        return self.embedder((waveforms, lengths), training=False, per_clip_features=True)

    def _run(self, waveforms: tf.Tensor, lengths: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The traced forward pass: batches of several clips run the conv encoder clip by clip and the
        transformer on the batch; under XLA on a bucketed shape, cut back to the plain shape."""
        if not self.jit_compile:
            fn = self._batch_fn if int(waveforms.shape[0]) == 1 else self._per_clip_features_fn
            return fn(waveforms, lengths)
        batch, width = int(waveforms.shape[0]), int(waveforms.shape[1])
        if self.max_samples:
            width = min(width, self.max_samples)
            waveforms = waveforms[:, :width]
        step = self.sampling_rate // 2
        padded_width = max(step, -(-width // step) * step)
        padded_batch = 1 << (batch - 1).bit_length()
        x = tf.pad(waveforms, [[0, padded_batch - batch], [0, padded_width - width]])
        n = tf.pad(lengths, [[0, padded_batch - batch]])  # extra clips are empty: masked out
        emb, mask = self._batch_fn(x, n)
        frames = self.num_frames(width)
        return emb[:batch, :frames], mask[:batch, :frames]

    def _check_rate(self, sample_rate: int | None) -> None:
        if sample_rate is not None and int(sample_rate) != self.sampling_rate:
            raise AudioError(
                "<array>", f"sampled at {sample_rate} Hz; this {self.model_type} model needs {self.sampling_rate} Hz.",
                f"resample first: tfaudio.signal.resample.resample(waveform, {sample_rate}, {self.sampling_rate}).")

    # ---- in-graph use (export, tf.data) ----------------------------------------------------------
    @property
    def variables(self) -> list[tf.Variable]:
        """Every variable :meth:`graph_frames` reads (the model's weights and the layer logits)."""
        return list(self.embedder.weights)

    # ---- fine-tuning (tfaudio.tasks.finetune) ----------------------------------------------------
    #: The convolutional feature encoder stays frozen by default (transformers' recipes; it also saves memory).
    finetune_frozen_blocks = 1
    finetune_speed = 0.1  # speech: speed perturbation (Backbone.finetune_speed)

    def finetune_frames(self, features, state, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        # transformers' TF encoders draw LayerDrop with numpy at trace time: a traced training step would
        # drop the same layers for ever, so it is off while fine-tuning
        self.config.layerdrop = 0.0
        return self.embedder((tf.cast(features, tf.float32), tf.cast(state, tf.int32)), training=training)

    def finetune_clip_bytes(self, window_samples: int) -> int | None:
        c = self.config
        return transformer_clip_bytes(int(c.num_hidden_layers), self.num_frames(window_samples),
                                      int(c.hidden_size), int(c.intermediate_size), int(c.num_attention_heads))

    def finetune_blocks(self) -> list[tuple[str, list[tf.Variable]]]:
        """``feature_encoder`` (the convolutions), ``projection`` (projection, positional convolution,
        norms, the layer logits), then ``layer0`` … ``layerN`` of the transformer."""
        layers = list(getattr(self.embedder.main.encoder, "layer", []))
        return split_blocks(self.embedder.trainable_weights,
                            [("feature_encoder", self.embedder.feature_encoder.trainable_weights)]
                            + [(f"layer{i}", layer.trainable_weights) for i, layer in enumerate(layers)],
                            rest="projection", rest_at=1)

    def graph_outputs(self, waveforms, lengths) -> dict[str, tf.Tensor]:
        """:meth:`batch_frames` as plain TF ops, for tracing inside a ``tf.function`` (SavedModel and
        TFLite export, ``tf.data``): no eager checks, no XLA buckets.

        Args:
            waveforms: float32 ``[B, S]`` at 16 kHz, zero-padded.
            lengths: int32 ``[B]`` valid samples per clip (<= S).

        Returns:
            ``{"embeddings": [B, F, H] float32, "mask": [B, F] bool}``, frames past each clip's end zero.
        """
        emb, mask = self.embedder((tf.cast(waveforms, tf.float32), tf.cast(lengths, tf.int32)), training=False)
        return {"embeddings": emb, "mask": mask}

    def batch_outputs(self, waveforms, lengths=None) -> dict[str, tf.Tensor]:
        emb, mask = self.batch_frames(waveforms, lengths)
        return {"embeddings": emb, "mask": mask}

    def batch_frames(self, waveforms, lengths=None, *, sample_rate: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """A zero-padded batch → (embeddings ``[B, F, H]`` float32, bool mask ``[B, F]``).

        Clip ``b``'s first ``num_frames(lengths[b])`` frames equal :meth:`frames` of that clip alone;
        the rest are zero and masked out. Inside a ``tf.function`` this is :meth:`graph_frames`.

        Args:
            waveforms: float32 ``[B, S]``, mono at ``sample_rate`` (16 kHz), values in [-1, 1].
            lengths: int ``[B]`` valid samples per clip, 0 <= length <= S (None: all S).
            sample_rate: if given, checked against the model's rate.

        Raises:
            AudioError: ``sample_rate`` is not the model's rate (resample first).
        """
        self._check_rate(sample_rate)
        if not tf.executing_eagerly():
            waveforms = tf.convert_to_tensor(waveforms, tf.float32)
            lengths = tf.fill(tf.shape(waveforms)[:1], tf.shape(waveforms)[1]) if lengths is None else lengths
            return self.graph_frames(waveforms, lengths)
        waveforms, lengths = self.check_batch(waveforms, lengths)
        if waveforms.shape[0] == 0:
            return tf.zeros([0, 0, self.embedding_dim]), tf.zeros([0, 0], tf.bool)
        return self._run(waveforms, lengths)

    def frames(self, waveform, *, sample_rate: int | None = None) -> tf.Tensor:
        """One clip ``[samples]`` at 16 kHz → embeddings ``[num_frames(samples), hidden_size]``.

        Raises:
            AudioError: ``sample_rate`` is not the model's rate (resample first).
        """
        self._check_rate(sample_rate)
        x = tf.convert_to_tensor(waveform, tf.float32)
        if x.shape.rank != 1:
            raise TfaudioError(f"frames takes one mono clip [samples], got shape {x.shape}. Fix: use "
                               "batch_frames for batches, average channels for stereo.")
        if not tf.executing_eagerly():
            return self.graph_frames(tf.expand_dims(x, 0), tf.shape(x)[:1])[0][0]
        emb, _ = self._run(x[None], tf.shape(x)[:1])
        return emb[0]

    def pooled(self, waveforms, lengths=None, *, sample_rate: int | None = None) -> tf.Tensor:
        """Masked mean over time: ``[B, S]`` (+ lengths ``[B]``) → ``[B, hidden_size]``."""
        emb, mask = self.batch_frames(waveforms, lengths, sample_rate=sample_rate)
        return masked_mean(emb, mask)

    # ---- export ----------------------------------------------------------------------------------
    def pooled_module(self, num_samples: int | None = None) -> tf.Module:
        """A ``tf.Module`` for SavedModel / TFLite export with one function, ``pooled``: one clip
        ``waveform [num_samples]`` float32 at 16 kHz → ``{"embedding": [hidden_size]}`` (the masked
        time mean; ``num_samples=None`` takes any length).

        The module tracks only the variables (not the Keras layers), so saving and converting it skips
        Keras' per-layer SavedModel tracing (tiny test model: ~5-10 s to TFLite instead of 20-50 s).

        TFLite (tf 2.16, ``OpsSet.TFLITE_BUILTINS`` only): converts and runs for both fixed and free
        lengths and for "group"/"layer" norm checkpoints; the result matches :meth:`pooled` to ~1e-6
        (tested). The one op that blocked it was a new-axis ``StridedSlice`` (``x[:, :, None]`` on a
        dynamic shape, "TF Select ops: StridedSlice"); tfaudio uses ``tf.expand_dims`` instead.

        Example:
            >>> module = backbone.pooled_module()
            >>> converter = tf.lite.TFLiteConverter.from_concrete_functions(
            ...     [module.pooled.get_concrete_function()], module)
            >>> converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            >>> tflite_bytes = converter.convert()
        """
        embedder = self.embedder

        def pooled(waveform):
            emb, mask = embedder((tf.expand_dims(waveform, 0), tf.shape(waveform)[:1]), training=False)
            return {"embedding": masked_mean(emb, mask)[0]}

        module = tf.Module(name=f"{self.model_type}_pooled")
        module.weights = list(embedder.weights)
        module.pooled = tf.function(pooled, input_signature=[tf.TensorSpec([num_samples], tf.float32, name="waveform")],
                                    autograph=False)
        return module

"""End-to-end fine-tuning of a Wav2Vec2 / HuBERT backbone: waveforms → logits, one Keras model.

:func:`build_finetune_model` puts a masked time-pooling and a linear classifier on the backbone's
:class:`~tfaudio.backbones.wav2vec2.backbone.Wav2Vec2Embedder` (the same layer the backbone extracts
embeddings with, so padded batches are handled the same way). The result is a plain Keras model::

    {"waveform": [B, S] float32 at 16 kHz, "length": [B] int32}
      → embedder (normalise, conv encoder, transformer; frozen conv encoder by default)  [B, F, H], [B, F]
      → masked mean over frames ("mean") or mean ‖ std ("stats")                        [B, H] / [B, 2H]
      → dropout → Dense                                                                 [B, classes] logits

    model.compile(keras.optimizers.Adam(3e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit({"waveform": x, "length": n}, y, batch_size=4, epochs=3)

Gradient accumulation (``accumulation_steps=N``): every batch is a micro-batch; gradients are
averaged over ``N`` of them and applied once, so ``N`` micro-batches of ``b`` clips update the weights
like one batch of ``N * b`` (equal micro-batch sizes; exactly so for plain SGD, tested). Optimizer
``iterations`` count applied updates. Mixed precision (float16 compute, float32 weights and logits) is
used only on a GPU with compute capability >= 7.0; on CPU float16 is slower than float32, so the
model stays float32 and says so in the log (:func:`mixed_precision_support`).

Notes on transformers' TF models while training: LayerDrop is drawn once per *trace* there (a traced
train step would drop the same layers for ever), so fine-tuning sets ``config.layerdrop = 0``;
SpecAugment masking (``mask_time_prob``) is not applied — augment the waveforms instead.

The fine-tuning road for every backbone (Wav2Vec2/HuBERT included) is :mod:`tfaudio.tasks.finetune`
(``tfaudio finetune``); its models are ordinary classifier folders. This module is the earlier
Wav2Vec2-only road, kept (~530 lines, whole) so that the folders it wrote still load, evaluate and
export (:mod:`tfaudio.inference.loader` reads them) and can be trained further.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.backbones.wav2vec2.backbone import Wav2Vec2Backbone, Wav2Vec2Embedder
from tfaudio.errors import TfaudioError
from tfaudio.io.atomic import atomic_directory
from tfaudio.signal.pooling import masked_mean, masked_mean_std
from tfaudio.tasks.precision import gpu_float16_support

__all__ = [
    "Wav2Vec2FineTuneModel",
    "build_finetune_model",
    "save_finetune_model",
    "load_finetune_model",
    "is_finetune_folder",
    "build_sequence_classification_model",
    "mixed_precision_support",
]

log = logging.getLogger(__name__)
#: Poolings of the fine-tuned model's frame *embeddings*: ``"mean"`` (as in
#: :data:`tfaudio.heads.frame_pooling.EMBEDDING_POOLINGS`) or ``"stats"`` (mean ‖ std).
FINETUNE_POOLINGS = ("mean", "stats")
#: ``kind`` in the ``tfaudio.json`` of a folder written by :func:`save_finetune_model`.
KIND = "wav2vec2_finetune"
CONFIG_FILE = "tfaudio.json"
BACKBONE_DIR = "backbone"
HEAD_FILE = "head_weights.npz"
FORMAT_VERSION = 1


def mixed_precision_support() -> tuple[bool, str]:
    """Whether float16 mixed precision pays off here: (supported, reason).

    True only on a GPU with compute capability >= 7.0 (tensor cores). CPUs run float16 matmuls and
    convolutions slower than float32 (and some not at all), so they keep float32.
    """
    ok, why = gpu_float16_support()
    return ok, why if ok else f"{why}, so the model stays float32"


class _MaskedPooling(keras.layers.Layer):
    """(embeddings ``[B, F, H]``, bool mask ``[B, F]``) → ``[B, H]`` (mean) or ``[B, 2H]`` (mean ‖ std)."""

    def __init__(self, mode: str = "mean", **kwargs: Any):
        super().__init__(**kwargs)
        if mode not in FINETUNE_POOLINGS:
            raise TfaudioError(f"pooling must be one of {FINETUNE_POOLINGS}, got {mode!r}.")
        self.mode = mode

    def call(self, inputs):
        emb, mask = inputs
        emb = tf.cast(emb, tf.float32)  # statistics in float32 also under mixed precision
        return masked_mean(emb, mask) if self.mode == "mean" else masked_mean_std(emb, mask)  # [B, H] / [B, 2H]

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


class _LengthsFromMask(keras.layers.Layer):
    """attention mask ``[B, S]`` (1 = sample, 0 = padding) → lengths ``[B]``."""

    def call(self, mask):
        return tf.reduce_sum(tf.cast(mask, tf.int32), axis=-1)


class _Untracked:
    """Holds the accumulation variables out of Keras' attribute tracking, so they stay out of
    ``weights``, ``get_weights`` and weight files (a model with and without accumulation load the
    same files)."""

    grads: list[tf.Variable] | None = None
    step: tf.Variable | None = None


class Wav2Vec2FineTuneModel(keras.Model):
    """A functional Keras model with optional gradient accumulation in :meth:`train_step`.

    Build it with :func:`build_finetune_model`. Save and restore with ``save_weights`` /
    ``load_weights`` on a model built the same way (the transformers layers are not Keras-serialisable).

    Args:
        inputs, outputs: as for a functional ``keras.Model``.
        accumulation_steps: micro-batches per optimizer update (1: none).
        autograph: let AutoGraph convert the train / test / predict steps. Off by default: nothing in
            them branches on tensors (accumulation uses ``tf.cond``), and converting Keras' and
            transformers' Python code takes ~20 s per trace on a small CPU. Turn it on for a custom
            loss or metric with Python ``if``/``for`` over tensors.
    """

    def __init__(self, *args: Any, accumulation_steps: int = 1, autograph: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if int(accumulation_steps) < 1:
            raise TfaudioError(f"accumulation_steps must be >= 1, got {accumulation_steps}.")
        self.accumulation_steps = int(accumulation_steps)
        self.autograph = bool(autograph)
        self._accum = _Untracked()

    def _maybe_plain(self, fn):
        return fn if self.autograph else tf.autograph.experimental.do_not_convert(fn)

    def test_step(self, data):
        return self._maybe_plain(super().test_step)(data)

    def predict_step(self, data):
        return self._maybe_plain(super().predict_step)(data)

    def _build_accumulators(self) -> None:
        with tf.init_scope():
            variables = self.trainable_variables
            self._accum.grads = [
                tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, name=f"accum_{i}")
                for i, v in enumerate(variables)
            ]
            self._accum.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="micro_step")
            # the optimizer's slots must exist before its apply_gradients sits inside a tf.cond branch
            optimizer = self.optimizer
            inner = getattr(optimizer, "inner_optimizer", optimizer)
            if hasattr(inner, "build"):
                inner.build(variables)

    def make_train_function(self, force: bool = False):
        # a new train function (first fit, or after compile()) gets accumulators for the current
        # trainable variables; after changing what is trainable, compile again with a new optimizer
        if self.accumulation_steps > 1 and (self.train_function is None or force or self._accum.grads is None):
            self._build_accumulators()
        return super().make_train_function(force)

    def train_step(self, data):
        if self.accumulation_steps == 1:
            return self._maybe_plain(super().train_step)(data)
        return self._maybe_plain(self._accumulating_step)(data)

    def _accumulating_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        optimizer = self.optimizer
        scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            target = optimizer.get_scaled_loss(loss) if scaled else loss
        variables = self.trainable_variables
        grads = tape.gradient(target, variables)
        if scaled:
            grads = optimizer.get_unscaled_gradients(grads)
        n = float(self.accumulation_steps)
        # variables without a gradient (unused by the loss) are left out, as Keras' own step does
        pairs = [(acc, v, g) for acc, v, g in zip(self._accum.grads, variables, grads, strict=True) if g is not None]
        for acc, _, g in pairs:
            acc.assign_add(tf.cast(tf.convert_to_tensor(g), tf.float32) / n)
        self._accum.step.assign_add(1)

        def apply():
            optimizer.apply_gradients([(tf.cast(acc, v.dtype), v) for acc, v, _ in pairs])
            for acc, _, _ in pairs:
                acc.assign(tf.zeros_like(acc))
            return tf.constant(True)

        tf.cond(self._accum.step % self.accumulation_steps == 0, apply, lambda: tf.constant(False))
        return self.compute_metrics(x, y, y_pred, sample_weight)


def _use_mixed_precision(mixed_precision: bool | str) -> tuple[bool, str]:
    if mixed_precision not in ("auto", True, False):
        raise TfaudioError(f"mixed_precision must be 'auto', True or False, got {mixed_precision!r}.")
    if mixed_precision is False:
        return False, "float32: mixed_precision=False"
    ok, reason = mixed_precision_support()
    note = f"mixed precision (float16 compute, float32 weights): {reason}" if ok else f"float32: {reason}"
    if ok or mixed_precision == "auto":
        log.info("%s", note)
    else:
        log.warning("mixed_precision=True ignored; %s.", note)
    return ok, note


def _copy_weights(source: keras.Model, target: keras.Model, prefix: str = "") -> None:
    """Copies the target's weights named ``prefix...`` from ``source`` by name below the model's own
    scope (``get_weights`` order depends on which layers are frozen, and Keras numbers the top scope:
    ``tf_wav2_vec2_model_3/wav2vec2/...``)."""

    def key(v):
        return v.name.split("/", 1)[-1]

    values = {key(v): v for v in source.weights}
    wanted = [v for v in target.weights if key(v).startswith(prefix)]
    missing = [key(v) for v in wanted if key(v) not in values]
    if missing:
        raise TfaudioError(f"cannot copy the model: no source weights for {', '.join(missing[:3])}")
    for v in wanted:
        v.assign(tf.cast(values[key(v)], v.dtype))


def _half_safe_weight_norm(conv: keras.layers.Layer) -> None:
    """transformers' TF weight-normalised positional conv keeps ``weight_v`` as a plain float32
    ``tf.Variable`` (not auto-cast) but multiplies it by the auto-cast float16 ``weight_g``, which
    fails under mixed_float16 ("Input 'y' of 'Mul' Op has type float16 that does not match type
    float32"). This instance override does the weight norm in float32 and casts the kernel to the
    layer's compute dtype."""

    def _normalize_kernel():
        g = tf.cast(tf.transpose(conv.weight_g), tf.float32)
        kernel = tf.nn.l2_normalize(tf.cast(conv.weight_v, tf.float32), axis=conv.kernel_norm_axes) * g
        conv.kernel = tf.cast(tf.transpose(kernel), conv.compute_dtype)

    conv._normalize_kernel = _normalize_kernel


def _half_precision_embedder(backbone: Wav2Vec2Backbone) -> Wav2Vec2Embedder:
    """A copy of the backbone's model and embedder built under the ``mixed_float16`` global policy
    (Keras fixes a layer's compute dtype when the layer is created)."""
    model = type(backbone.model)(backbone.config)
    model.build_in_name_scope()
    _copy_weights(backbone.model, model)
    _half_safe_weight_norm(getattr(model, model.base_model_prefix).encoder.pos_conv_embed.conv)
    # the embedder itself computes in float32 (normalisation, GroupNorm statistics, pooling inputs);
    # the transformers layers inside it keep their mixed_float16 policy
    embedder = Wav2Vec2Embedder(model, layer=backbone.layer, do_normalize=backbone.do_normalize,
                                max_samples=backbone.max_samples, name=backbone.embedder.name, dtype="float32")
    if backbone.layer == "weighted":
        embedder.layer_logits.assign(backbone.embedder.layer_logits)
    return embedder


def build_finetune_model(
    backbone: Wav2Vec2Backbone,
    num_classes: int,
    *,
    freeze_feature_encoder: bool = True,
    freeze_backbone: bool = False,
    pooling: str = "mean",
    dropout: float = 0.1,
    accumulation_steps: int = 1,
    mixed_precision: bool | str = "auto",
    mask_input: str = "length",
    name: str | None = None,
) -> Wav2Vec2FineTuneModel:
    """A Keras model fine-tuning ``backbone`` end to end: (waveforms, lengths) → logits.

    The model shares the backbone's layers and weights (training it changes the backbone, whose
    :attr:`fingerprint` then follows the new weights), except under mixed precision, where it trains
    a float16-compute copy.

    Args:
        backbone: a :class:`Wav2Vec2Backbone` (its ``layer`` setting applies; ``"weighted"`` trains
            the layer weights too).
        num_classes: number of classes (>= 2).
        freeze_feature_encoder: keep the convolutional feature encoder fixed (the usual recipe; it
            also saves memory).
        freeze_backbone: keep the whole transformers model fixed (only the head and, with
            ``layer="weighted"``, the layer weights train).
        pooling: ``"mean"`` (masked mean over frames) or ``"stats"`` (mean ‖ standard deviation).
        dropout: dropout rate before the classifier.
        accumulation_steps: micro-batches per optimizer update (see :class:`Wav2Vec2FineTuneModel`).
        mixed_precision: ``"auto"`` (on a GPU with compute capability >= 7.0 only), True (the same,
            with a warning where unsupported) or False.
        mask_input: the second input: ``"length"`` (int32 ``[B]`` valid samples) or
            ``"attention_mask"`` (``[B, S]``, 1 for samples, 0 for padding, as transformers' feature
            extractor returns it).
        name: the model's name.

    Returns:
        A :class:`Wav2Vec2FineTuneModel` with inputs ``{"waveform", "length" | "attention_mask"}``
        and float32 logits ``[B, num_classes]``; compile it with
        ``SparseCategoricalCrossentropy(from_logits=True)``. ``model.mixed_precision`` says whether
        float16 is used and ``model.precision_note`` why (also logged).

    Example:
        >>> model = build_finetune_model(Wav2Vec2Backbone.from_pretrained("/models/hubert"), 3,
        ...                              accumulation_steps=4)
        >>> model.compile(keras.optimizers.Adam(3e-5),
        ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> model.fit({"waveform": waves, "length": lengths}, labels, batch_size=2)
    """
    if not isinstance(backbone, Wav2Vec2Backbone):
        raise TfaudioError(f"build_finetune_model needs a Wav2Vec2Backbone, got {type(backbone).__name__}.")
    if int(num_classes) < 2:
        raise TfaudioError(f"num_classes must be >= 2, got {num_classes}.")
    if mask_input not in ("length", "attention_mask"):
        raise TfaudioError(f"mask_input must be 'length' or 'attention_mask', got {mask_input!r}.")
    # transformers' TF encoders draw LayerDrop with numpy at trace time: off for a traced train step
    backbone.config.layerdrop = 0.0
    half, precision_note = _use_mixed_precision(mixed_precision)
    previous = keras.mixed_precision.global_policy()
    if half:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        embedder = _half_precision_embedder(backbone) if half else backbone.embedder
        embedder.trainable = True  # its own weighted-layer logits train even with a frozen backbone
        embedder.model.trainable = not freeze_backbone
        if not freeze_backbone:
            embedder.feature_encoder.trainable = not freeze_feature_encoder
        waveform = keras.Input(shape=(None,), dtype=tf.float32, name="waveform")  # [B, S]
        if mask_input == "length":
            second = keras.Input(shape=(), dtype=tf.int32, name="length")  # [B]
            lengths = second
        else:
            second = keras.Input(shape=(None,), dtype=tf.float32, name="attention_mask")  # [B, S]
            lengths = _LengthsFromMask(name="lengths")(second)  # [B]
        emb, mask = embedder((waveform, lengths))  # [B, F, H], [B, F]
        pooled = _MaskedPooling(pooling, name=f"{pooling}_pooling")((emb, mask))  # [B, H] or [B, 2H]
        if dropout:
            pooled = keras.layers.Dropout(dropout, name="dropout")(pooled)
        logits = keras.layers.Dense(int(num_classes), dtype="float32", name="logits")(pooled)  # [B, classes]
        model = Wav2Vec2FineTuneModel(
            inputs={"waveform": waveform, mask_input: second}, outputs=logits,
            accumulation_steps=accumulation_steps, name=name or f"{backbone.model_type}_finetune",
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.mixed_precision = half
    model.precision_note = precision_note  # e.g. "float32: no GPU found: float16 is slower ... on CPU"
    model.backbone = backbone
    model.embedder = embedder
    model.labels = None  # class names in logit order: set them, or pass labels= to save / export
    model.build_args = {"num_classes": int(num_classes), "pooling": pooling, "dropout": float(dropout),
                        "mask_input": mask_input, "freeze_feature_encoder": bool(freeze_feature_encoder),
                        "freeze_backbone": bool(freeze_backbone)}
    if not half:
        backbone.shared_with_model = True
    return model


def _head_weights(model: keras.Model) -> list[tf.Variable]:
    """The model's weights outside the transformers model: ``layer_logits`` ("weighted") and the
    classifier's kernel and bias, in the model's order."""
    inner = {id(v) for v in model.embedder.model.weights}
    return [w for w in model.weights if id(w) not in inner]


def save_finetune_model(model: Wav2Vec2FineTuneModel, path: str | os.PathLike,
                        labels: Sequence[str] | None = None, *, overwrite: bool = True) -> pathlib.Path:
    """Writes a fine-tuned model as a self-contained folder that :func:`load_finetune_model` and
    ``tfaudio export`` read (no need for the original checkpoint)::

        path/tfaudio.json          kind, labels, build settings, backbone settings
        path/labels.txt            one label per line, in logit order
        path/backbone/             the fine-tuned transformers model (save_pretrained) and its
                                   preprocessor_config.json (rate, normalisation)
        path/head_weights.npz      the classifier (and "weighted" layer logits)

    Args:
        model: from :func:`build_finetune_model` (trained or not).
        path: the folder to write (written under a temporary name, then renamed into place).
        labels: class names in logit order (default: ``model.labels``).
        overwrite: replace an existing folder.

    Raises:
        TfaudioError: no labels, or as many labels as the model has outputs; ``path`` exists and
            ``overwrite`` is False.
    """
    from transformers import Wav2Vec2FeatureExtractor

    if getattr(model, "embedder", None) is None or not hasattr(model, "build_args"):
        raise TfaudioError(f"save_finetune_model needs a model from build_finetune_model, got {model.name!r}. "
                           "Fix: for build_sequence_classification_model use model.save_weights(file).")
    labels = tuple(labels if labels is not None else (getattr(model, "labels", None) or ()))
    units = int(model.output_shape[-1])
    if len(labels) != units:
        raise TfaudioError(f"save_finetune_model: {len(labels)} labels for a model with {units} outputs. "
                           f"Fix: pass labels= with the {units} class names in logit order.")
    backbone = model.backbone

    def write(tmp: pathlib.Path) -> None:
        model.embedder.model.save_pretrained(tmp / BACKBONE_DIR)
        Wav2Vec2FeatureExtractor(sampling_rate=backbone.sampling_rate, do_normalize=backbone.do_normalize,
                                 return_attention_mask=backbone.return_attention_mask).save_pretrained(tmp / BACKBONE_DIR)
        head = _head_weights(model)
        np.savez(tmp / HEAD_FILE, **{f"w{i}": w.numpy() for i, w in enumerate(head)})
        config = {"format": FORMAT_VERSION, "kind": KIND, "labels": list(labels), "build": model.build_args,
                  "backbone": {"model_type": backbone.model_type, "layer": backbone.layer,
                               "max_seconds": backbone.max_seconds, "fine_tuned_from": backbone.source},
                  "head_weights": [w.name for w in head], "sample_rate": backbone.sampling_rate}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        (tmp / "labels.txt").write_text("\n".join(labels) + "\n")

    return atomic_directory(path, write, overwrite=overwrite)


def is_finetune_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a model written by :func:`save_finetune_model`."""
    cfg = pathlib.Path(path) / CONFIG_FILE
    try:
        return json.loads(cfg.read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_finetune_model(path: str | os.PathLike, *, mixed_precision: bool | str = False,
                        **build_overrides: Any) -> Wav2Vec2FineTuneModel:
    """A model saved by :func:`save_finetune_model`, rebuilt with the same settings and weights.

    Args:
        path: the folder.
        mixed_precision: as :func:`build_finetune_model` (default False: inference in float32).
        **build_overrides: other :func:`build_finetune_model` arguments to change (e.g.
            ``accumulation_steps`` to train further).

    Returns:
        The model, with ``labels`` set; compile it to train further.

    Raises:
        TfaudioError: ``path`` is not such a folder, or its files do not match each other.
    """
    path = pathlib.Path(path)
    if not is_finetune_folder(path):
        raise TfaudioError(f"{path} is not a fine-tuned model folder (no {CONFIG_FILE} with kind {KIND!r}). "
                           "Fix: write it with save_finetune_model(model, folder, labels).")
    cfg = json.loads((path / CONFIG_FILE).read_text())
    bb = cfg["backbone"]
    backbone = Wav2Vec2Backbone.from_pretrained(path / BACKBONE_DIR, layer=bb["layer"], max_seconds=bb["max_seconds"],
                                                local_files_only=True)
    args = {**cfg["build"], "mixed_precision": mixed_precision, **build_overrides}
    model = build_finetune_model(backbone, **args)
    head = _head_weights(model)
    with np.load(path / HEAD_FILE) as data:
        values = [data[f"w{i}"] for i in range(len(data.files))]
    if len(values) != len(head) or any(v.shape != tuple(w.shape) for v, w in zip(values, head)):
        raise TfaudioError(f"{path / HEAD_FILE}: weights of shapes {[v.shape for v in values]} do not fit the "
                           f"model built from {path / CONFIG_FILE} ({[tuple(w.shape) for w in head]}). Fix: "
                           "save the folder again with save_finetune_model.")
    for w, v in zip(head, values, strict=True):
        w.assign(v)
    model.labels = tuple(cfg["labels"])
    return model


def build_sequence_classification_model(
    model_id_or_path: str | os.PathLike,
    num_classes: int,
    *,
    freeze_feature_encoder: bool = True,
    use_weighted_layer_sum: bool = False,
    classifier_proj_size: int = 256,
    accumulation_steps: int = 1,
    **from_pretrained_kwargs: Any,
) -> Wav2Vec2FineTuneModel:
    """The alternative path: transformers' ``TFWav2Vec2ForSequenceClassification`` (projection,
    masked mean, classifier) behind the same inputs ``{"waveform", "length"}`` → logits.

    It follows transformers' own batching: an attention mask only for checkpoints whose feature
    extractor asks for one ("layer" norm); "group" norm checkpoints get zero-padded batches without a
    mask, so a padded clip's logits differ from the clip's own (use :func:`build_finetune_model`
    for batch-independent results). Wav2Vec2 only: transformers has no TF HuBERT classifier.

    Args:
        model_id_or_path: as :meth:`Wav2Vec2Backbone.from_pretrained`.
        num_classes: number of classes.
        freeze_feature_encoder: keep the convolutional feature encoder fixed.
        use_weighted_layer_sum: transformers' learned weighted sum of the hidden states.
        classifier_proj_size: width of the projection before the classifier.
        accumulation_steps: micro-batches per optimizer update (see :class:`Wav2Vec2FineTuneModel`).
        **from_pretrained_kwargs: ``from_pt``, ``cache_dir``, ``local_files_only``, ``max_seconds``.
    """
    from transformers import TFWav2Vec2ForSequenceClassification

    backbone = Wav2Vec2Backbone.from_pretrained(model_id_or_path, **from_pretrained_kwargs)
    if backbone.model_type != "wav2vec2":
        raise TfaudioError(f"{model_id_or_path}: transformers has no TF sequence classifier for "
                           f"{backbone.model_type!r}. Fix: use build_finetune_model(backbone, num_classes).")
    config = backbone.config.__class__.from_dict(
        {**backbone.config.to_dict(), "num_labels": int(num_classes), "layerdrop": 0.0,
         "use_weighted_layer_sum": bool(use_weighted_layer_sum), "classifier_proj_size": int(classifier_proj_size)})
    classifier = TFWav2Vec2ForSequenceClassification(config)
    classifier.build_in_name_scope()
    _copy_weights(backbone.model, classifier, prefix="wav2vec2/")  # projector and classifier stay new
    if freeze_feature_encoder:
        classifier.freeze_feature_encoder()
    use_mask = backbone.return_attention_mask
    prepare = backbone.embedder.prepare

    class _Classify(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.classifier = classifier

        @tf.autograph.experimental.do_not_convert  # nothing to convert; saves ~10 s per trace
        def call(self, inputs, training=False):
            x, n = prepare(*inputs)  # the backbone's normalisation and padding, [B, S'], [B]
            mask = tf.sequence_mask(n, tf.shape(x)[1], tf.float32) if use_mask else None
            return self.classifier(x, attention_mask=mask, training=bool(training)).logits

    waveform = keras.Input(shape=(None,), dtype=tf.float32, name="waveform")
    length = keras.Input(shape=(), dtype=tf.int32, name="length")
    logits = _Classify(name="sequence_classification")((waveform, length))
    model = Wav2Vec2FineTuneModel(inputs={"waveform": waveform, "length": length}, outputs=logits,
                                  accumulation_steps=accumulation_steps, name="wav2vec2_sequence_classification")
    model.backbone = backbone
    return model

"""EfficientAT: MobileNetV3 audio taggers distilled from a transformer ensemble on AudioSet (527 classes).

A tf_keras port of EfficientAT's ``mn`` models (F. Schmid et al., ICASSP 2023; github
fschmid56/EfficientAT, MIT), written from the published architecture (see
:mod:`tfaudio.backbones.efficientat.params`) and loading the official PyTorch checkpoints without
PyTorch (:mod:`tfaudio.backbones.efficientat.torch_checkpoint`). Keras layers carry the checkpoint's module names
(``features.4.block.1.0``, ``classifier.5``...), so a weight maps by name.

Data flow of :meth:`EfficientATBackbone.graph_outputs`::

    waveforms [B, S] at 32 kHz, lengths [B]
      → zero past each length, pad to >= 0.32 s                                        [B, S']
      → log-mel, each clip reflected at its own end (tfaudio.backbones.efficientat.frontend)  [B, T, 128]
      → body on [B, 128 mel, T, 1], the time axis masked to each clip's own length
        before every spatial convolution and inside every squeeze-excitation mean       [B, 4, T/32, D]
      → frame embeddings: the last feature map averaged over frequency                  [B, T/32, D]
        clip embedding: its mean over each clip's valid frames (what the model pools)   [B, D]
        clip scores: the classifier on the clip embedding, sigmoid                      [B, 527]

Why the masks: EfficientAT's squeeze-excitation averages each feature map over the *whole* clip,
and its convolutions zero-pad at the clip's end. Zeroing every column past a clip's own length
(which shrinks like the convolutions' outputs, ``ceil(T / 2)`` per stride-2 layer) before each
depthwise convolution and each mean makes every clip of a zero-padded batch compute exactly what it
computes alone. One frame embedding per 32 STFT hops (0.32 s); their mean over a whole clip is the
model's own pooled embedding (the 527 scores come from it).

One file of ~600 lines on purpose: the network, the mapping of PyTorch weights onto it and the release
lookup are the backbone; its params, frontend and checkpoint reader are files of their own.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.backbones.backbone import Backbone, InputContract, weights_digest
from tfaudio.backbones.efficientat import frontend as efficientat_frontend
from tfaudio.backbones.efficientat.params import RELEASES, Block, EfficientATParams, Release, width_from_name
from tfaudio.backbones.efficientat.torch_checkpoint import read_state_dict
from tfaudio.datasets import cache_dir, fetch, is_offline, sha256_of, shared_dir
from tfaudio.errors import TfaudioError, WeightsNotFoundError

__all__ = ["EfficientATBackbone", "build_body", "output_frames", "DEFAULT_MODEL", "LABELS_URL"]

DEFAULT_MODEL = "mn04_as"
LABELS_NAME = "class_labels_indices.csv"
LABELS_URL = "https://raw.githubusercontent.com/fschmid56/EfficientAT/main/metadata/class_labels_indices.csv"
_SUBDIR = ("models", "efficientat")


# ---- layers --------------------------------------------------------------------------------------
def output_frames(frames, halvings: int):
    """Valid time columns after ``halvings`` stride-2 layers: ``ceil(frames / 2)`` each time (a
    3×3 / pad 1 or 5×5 / pad 2 stride-2 convolution maps ``n`` columns to ``(n - 1) // 2 + 1``).

    Args:
        frames: a Python int or an int tensor (e.g. ``[B]`` log-mel frames).
        halvings: number of stride-2 layers.
    """
    for _ in range(halvings):
        frames = (frames - 1) // 2 + 1
    return frames


class HardSwish(keras.layers.Layer):
    """``x · relu6(x + 3) / 6`` (``torch.nn.Hardswish``; TFLite fuses it into HARD_SWISH)."""

    def call(self, x):
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


class TimeMask(keras.layers.Layer):
    """``[x [B, F, T, C], frames [B]]`` → ``x`` with the columns past each clip's valid length zeroed
    (its length after ``halvings`` stride-2 layers, see :func:`output_frames`)."""

    def __init__(self, halvings: int, **kwargs):
        super().__init__(**kwargs)
        self.halvings = halvings

    def call(self, inputs):
        x, frames = inputs
        valid = output_frames(tf.cast(frames, tf.int32), self.halvings)  # [B]
        mask = tf.sequence_mask(valid, tf.shape(x)[2], dtype=x.dtype)  # [B, T]
        # reshape, not mask[:, None, :, None]: TFLite has no StridedSlice with new axes
        return x * tf.reshape(mask, [-1, 1, tf.shape(mask)[1], 1])

    def get_config(self) -> dict:
        return {**super().get_config(), "halvings": self.halvings}


class MaskedMean(keras.layers.Layer):
    """``[x [B, F, T, C], frames [B]]`` → the mean of each clip's valid columns ``[B, C]``; ``x``
    must already be zero past them (:class:`TimeMask`), so the sum only needs the right count."""

    def __init__(self, halvings: int, **kwargs):
        super().__init__(**kwargs)
        self.halvings = halvings

    def call(self, inputs):
        x, frames = inputs
        valid = output_frames(tf.cast(frames, tf.int32), self.halvings)  # [B]
        count = tf.cast(tf.maximum(valid, 1) * tf.shape(x)[1], x.dtype)  # [B]: valid columns × bands
        return tf.reduce_sum(x, axis=[1, 2]) / tf.expand_dims(count, 1)  # [B, C]

    def get_config(self) -> dict:
        return {**super().get_config(), "halvings": self.halvings}


class FrequencyMean(keras.layers.Layer):
    """``[B, F, T, C]`` → ``[B, T, C]``: one embedding per time column."""

    def call(self, x):
        return tf.reduce_mean(x, axis=1)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, params: EfficientATParams,
             depthwise: bool = False, activation: str | None = None):
    """torchvision's ConvNormActivation: conv (pad ``(k - 1) // 2``, no bias) → batch norm → activation.

    Layers ``{name}.0`` (conv) and ``{name}.1`` (batch norm) as in the checkpoint. Stride 2 pads
    explicitly: Keras' "same" would pad only at the end, torch pads both sides.
    """
    pad = (kernel - 1) // 2
    padding = "same"
    if stride > 1 and pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
        padding = "valid"
    if depthwise:
        conv = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False, name=f"{name}.0")
    else:
        conv = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=f"{name}.0")
    x = conv(x)
    # no training= here: the caller's flag decides (inference everywhere but fine-tuning's training step)
    x = keras.layers.BatchNormalization(epsilon=params.batchnorm_epsilon, name=f"{name}.1")(x)
    if activation == "hardswish":
        x = HardSwish(name=f"{name}.2")(x)
    elif activation == "relu":
        x = keras.layers.ReLU(name=f"{name}.2")(x)
    return x


def _inverted_residual(x, frames, block: Block, halvings: int, params: EfficientATParams):
    """One block (``features.<i>.block.<j>``); returns (output, halvings after it)."""
    name = f"features.{block.index}.block"
    act = "hardswish" if block.hardswish else "relu"
    inputs, j = x, 0
    if block.has_expansion:
        x = _conv_bn(x, block.expanded, 1, 1, f"{name}.{j}", params, activation=act)
        j += 1
    x = TimeMask(halvings, name=f"features.{block.index}.mask")([x, frames])  # conv zero-padding at the clip's end
    x = _conv_bn(x, block.expanded, block.kernel, block.stride, f"{name}.{j}", params, depthwise=True, activation=act)
    j += 1
    halvings += block.stride == 2
    if block.se_channels:
        se = f"{name}.{j}.conc_se_layers.0"
        x = TimeMask(halvings, name=f"{se}.mask")([x, frames])
        scale = MaskedMean(halvings, name=f"{se}.mean")([x, frames])  # [B, C]
        scale = keras.layers.Dense(block.se_channels, activation="relu", name=f"{se}.fc1")(scale)
        scale = keras.layers.Dense(block.expanded, activation="sigmoid", name=f"{se}.fc2")(scale)
        scale = keras.layers.Reshape((1, 1, block.expanded), name=f"{se}.reshape")(scale)
        x = keras.layers.Multiply(name=f"{se}.scale")([x, scale])
        j += 1
    x = _conv_bn(x, block.out, 1, 1, f"{name}.{j}", params)
    if block.residual:
        x = keras.layers.Add(name=f"features.{block.index}.add")([x, inputs])
    return x, halvings


def build_body(params: EfficientATParams = EfficientATParams(), num_frames: int | None = None) -> keras.Model:
    """EfficientAT's network: (log-mel ``[B, T, 128]``, valid frames ``[B]``) → (frame embeddings
    ``[B, T', D]``, clip embedding ``[B, D]``, scores ``[B, 527]``), ``T' = ceil(T / 32)``.

    Frames past a clip's valid count may hold anything: they are masked before every convolution
    that mixes time and inside every mean, and come out as zero embeddings. Weights are random; see
    :class:`EfficientATBackbone` for the pretrained ones.

    Args:
        params: the architecture (width, classes, frontend size).
        num_frames: a fixed number of log-mel frames (static shapes, e.g. to count MACs), or None.
    """
    mels = params.frontend.num_mel_bins
    log_mel = keras.Input(shape=(num_frames, mels), name="log_mel")  # [B, T, M]
    frames = keras.Input(shape=(), dtype="int32", name="frames")  # [B]
    x = keras.layers.Permute((2, 1), name="to_mel_major")(log_mel)  # [B, M, T]
    x = keras.layers.Reshape((mels, -1 if num_frames is None else num_frames, 1), name="add_channel")(x)
    x = TimeMask(0, name="features.0.mask")([x, frames])  # [B, M, T, 1]
    x = _conv_bn(x, params.stem, 3, 2, "features.0", params, activation="hardswish")  # [B, M/2, T/2, c]
    halvings = 1
    for block in params.blocks:
        x, halvings = _inverted_residual(x, frames, block, halvings, params)
    last = f"features.{params.last_layer_index}"
    x = _conv_bn(x, params.last_conv_channels, 1, 1, last, params, activation="hardswish")  # [B, M/32, T', D]
    x = TimeMask(halvings, name=f"{last}.mask")([x, frames])
    frame_embeddings = FrequencyMean(name="frame_embeddings")(x)  # [B, T', D]
    clip_embedding = MaskedMean(halvings, name="clip_embedding")([x, frames])  # [B, D]
    h = keras.layers.Dense(params.hidden_units, name="classifier.2")(clip_embedding)  # [B, H]
    h = HardSwish(name="classifier.3")(h)
    logits = keras.layers.Dense(params.num_classes, name="classifier.5")(h)  # [B, K]
    scores = keras.layers.Activation("sigmoid", name="scores")(logits)
    return keras.Model([log_mel, frames], [frame_embeddings, clip_embedding, scores], name="efficientat_body")


# ---- weights -------------------------------------------------------------------------------------
# Keras weight → (torch suffix, layout change from torch to Keras)
_CONV = {"kernel": ("weight", (2, 3, 1, 0))}  # OIHW → HWIO
_DEPTHWISE = {"depthwise_kernel": ("weight", (2, 3, 0, 1))}  # [C, 1, kh, kw] → [kh, kw, C, 1]
_DENSE = {"kernel": ("weight", (1, 0)), "bias": ("bias", None)}  # [out, in] → [in, out]
_BN = {"gamma": ("weight", None), "beta": ("bias", None), "moving_mean": ("running_mean", None),
       "moving_variance": ("running_var", None)}


def _torch_layout(body: keras.Model) -> dict[str, tuple[tf.Variable, tuple[int, ...] | None]]:
    """torch state-dict key → (Keras variable, axes that turn the torch array into the Keras one)."""
    out = {}
    for layer in body.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            table = _DEPTHWISE
        elif isinstance(layer, keras.layers.Conv2D):
            table = _CONV
        elif isinstance(layer, keras.layers.Dense):
            table = _DENSE
        elif isinstance(layer, keras.layers.BatchNormalization):
            table = _BN
        else:
            continue
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            suffix, axes = table[short]
            out[f"{layer.name}.{suffix}"] = (w, axes)
    return out


def _torch_shape(var: tf.Variable, axes) -> tuple[int, ...]:
    shape = tuple(var.shape)
    return shape if axes is None else tuple(shape[axes.index(i)] for i in range(len(shape)))


def expected_state_shapes(params: EfficientATParams) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and torch shapes of an ``mn`` checkpoint of ``params`` (batch-norm counters
    aside), from the block table alone (no model is built; the tests check it against :func:`build_body`)."""
    out: dict[str, tuple[int, ...]] = {}

    def conv_bn(name: str, shape: tuple[int, ...]) -> None:
        out[f"{name}.0.weight"] = shape
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.1.{suffix}"] = (shape[0],)

    conv_bn("features.0", (params.stem, 1, 3, 3))
    for b in params.blocks:
        name, j = f"features.{b.index}.block", 0
        if b.has_expansion:
            conv_bn(f"{name}.0", (b.expanded, b.inputs, 1, 1))
            j = 1
        conv_bn(f"{name}.{j}", (b.expanded, 1, b.kernel, b.kernel))
        j += 1
        if b.se_channels:
            se = f"{name}.{j}.conc_se_layers.0"
            out.update({f"{se}.fc1.weight": (b.se_channels, b.expanded), f"{se}.fc1.bias": (b.se_channels,),
                        f"{se}.fc2.weight": (b.expanded, b.se_channels), f"{se}.fc2.bias": (b.expanded,)})
            j += 1
        conv_bn(f"{name}.{j}", (b.out, b.expanded, 1, 1))
    conv_bn(f"features.{params.last_layer_index}", (params.last_conv_channels, params.blocks[-1].out, 1, 1))
    out.update({"classifier.2.weight": (params.hidden_units, params.last_conv_channels),
                "classifier.2.bias": (params.hidden_units,),
                "classifier.5.weight": (params.num_classes, params.hidden_units),
                "classifier.5.bias": (params.num_classes,)})
    return out


def infer_width(state: dict[str, np.ndarray], candidates: Sequence[float] | None = None) -> float | None:
    """The width of an ``mn`` checkpoint, from its tensors' shapes (None: no standard width fits)."""
    candidates = candidates or sorted({r.width_mult for r in RELEASES.values()} | {k / 10 for k in range(1, 61)})
    shapes = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    num_classes = shapes.get("classifier.5.weight", (527,))[0]
    for width in candidates:
        if expected_state_shapes(EfficientATParams(width_mult=width, num_classes=num_classes)) == shapes:
            return width
    return None


# ---- resolution ----------------------------------------------------------------------------------
def _search_dirs() -> list[pathlib.Path]:
    dirs = []
    shared = shared_dir()
    if shared is not None:
        dirs.append(shared.joinpath(*_SUBDIR))
    dirs.append(cache_dir().joinpath(*_SUBDIR))
    return dirs


def _check_release_hash(path: pathlib.Path, release: Release) -> None:
    """Refuses a file whose SHA-256 (or size) contradicts what is known of the release."""
    if release.size is not None and path.stat().st_size != release.size:
        raise WeightsNotFoundError(
            f"{path}: {path.stat().st_size} bytes, but the official {release.filename} has {release.size} "
            f"(truncated or a different file). Fix: download it again from {release.url} (or delete it to "
            "let tfaudio download it).")
    record = path.with_name(path.name + ".sha256")  # the first download's hash (datasets.fetch)
    recorded = record.read_text().strip() if record.is_file() else ""
    expected = release.sha256 or recorded
    if not (expected or release.sha256_prefix or release.sha256_suffix):
        return
    digest = sha256_of(path)
    if (expected and digest != expected) or not digest.startswith(release.sha256_prefix) \
            or not digest.endswith(release.sha256_suffix):
        known = expected or f"{release.sha256_prefix}…{release.sha256_suffix}"
        raise WeightsNotFoundError(
            f"{path}: sha256 {digest} is not the official {release.filename}'s ({known}): damaged or replaced. "
            f"Fix: download it again from {release.url} (or delete it to let tfaudio download it).")


def _resolve_release(name: str) -> pathlib.Path:
    """The local file of release ``name``: ../shared, then the cache, then a download into the cache."""
    release = RELEASES[name]
    tried = []
    for folder in _search_dirs():
        path = folder / release.filename
        if path.is_file():
            _check_release_hash(path, release)
            return path
        tried.append(str(path))
    dest = cache_dir().joinpath(*_SUBDIR, release.filename)
    if is_offline():
        raise WeightsNotFoundError(
            f"no {release.filename} for EfficientAT {name!r}: looked in {', '.join(tried)}, and TFAUDIO_OFFLINE=1 "
            f"forbids downloading it. Fix: download {release.url} and put it at {dest} (or pass its path: "
            f"EfficientATBackbone.from_pretrained('/path/{release.filename}'), `--backbone "
            f"efficientat:/path/{release.filename}`), or unset TFAUDIO_OFFLINE.")
    try:
        path = fetch(release.url, dest, sha256=release.sha256)
    except TfaudioError as err:
        raise WeightsNotFoundError(f"EfficientAT {name!r}: not in {', '.join(tried)}, and {err}") from None
    try:
        _check_release_hash(path, release)
    except WeightsNotFoundError:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        raise
    return path


def _find_labels(near: pathlib.Path | None) -> list[str] | None:
    """The 527 AudioSet display names: next to the checkpoint, ../shared, the cache, else downloaded."""
    candidates = ([near.parent / LABELS_NAME] if near is not None else []) + [d / LABELS_NAME for d in _search_dirs()]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        if is_offline():
            return None
        try:
            path = fetch(LABELS_URL, cache_dir().joinpath(*_SUBDIR, LABELS_NAME), progress=False)
        except TfaudioError:
            return None
    with open(path, newline="", encoding="utf8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "display_name" not in rows[0]:
        raise TfaudioError(f"{path}: expected a CSV with columns index,mid,display_name (AudioSet's "
                           f"class_labels_indices.csv, {LABELS_URL}).")
    return [r["display_name"] for r in rows]


# ---- the backbone --------------------------------------------------------------------------------
class EfficientATBackbone(Backbone):
    """EfficientAT (``mn`` MobileNetV3) as a tfaudio backbone: 32 kHz mono waveforms → one embedding
    per 0.32 s (the last feature map averaged over frequency), the clip embedding the model pools,
    and its 527 AudioSet clip scores.

    Build it with :meth:`from_pretrained` (a release name such as ``"mn04_as"``, or a ``.pt`` path) or
    :meth:`from_checkpoint`; the constructor alone gives random weights. The body is frozen.

    Args:
        params: the architecture (width...); EfficientAT's ``mn04`` by default.
        class_names: the 527 AudioSet display names (None: unknown).
        source: the release name or checkpoint path (for :meth:`spec`).
        window_seconds: the fixed window of a streaming / TFLite export.

    Example:
        >>> eat = EfficientATBackbone.from_pretrained("mn04_as")
        >>> out = eat.batch_outputs(np.zeros([1, 32000], np.float32))      # 1 s of silence
        >>> out["embeddings"].shape, out["clip_scores"].shape
        (TensorShape([1, 4, 384]), TensorShape([1, 527]))
    """

    frontend_scope = "frontend"
    #: The 527 scores come from the clip embedding (the model pools a clip itself), not per frame.
    clip_level_scores = True
    #: TFLite exports keep the RFFT2D builtin: with EfficientAT's 800-sample window the DFT matmul would
    #: be 7x the body's MACs and 1.5 MB of float16 weights; measured in BENCHMARKS.md (EfficientAT).
    tflite_stft = "rfft"

    def __init__(self, params: EfficientATParams | None = None, *, class_names: Sequence[str] | None = None,
                 source: str | None = None, window_seconds: float = 1.0):
        self.params = params or EfficientATParams()
        fe = self.params.frontend
        column = (2 ** self.params.num_halvings) * fe.hop_samples / fe.sample_rate  # 0.32 s
        # frame_seconds: a column's own span (the receptive field is the whole clip: squeeze-excitation)
        self.contract = InputContract(sample_rate=fe.sample_rate, frame_seconds=column, hop_seconds=column,
                                      embedding_dim=self.params.embedding_dim, min_seconds=column,
                                      window_seconds=window_seconds)
        if self.contract.min_samples < fe.min_samples:
            raise ValueError(f"the shortest input ({self.contract.min_samples} samples) is below the frontend's "
                             f"minimum of {fe.min_samples}.")
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self.params.num_classes:
            raise TfaudioError(f"{len(self.class_names)} class names for {self.params.num_classes} outputs. Fix: "
                               f"use AudioSet's class_labels_indices.csv ({LABELS_URL}).")
        self.source = source
        self.body = build_body(self.params)
        self.body.trainable = False
        self._fingerprint: str | None = None
        f32 = tf.float32
        self._features_fn = tf.function(
            self._body_outputs, autograph=False,
            input_signature=[tf.TensorSpec([None, None, fe.num_mel_bins], f32), tf.TensorSpec([None], tf.int32)])

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, width_mult: float | None = None,
                        source: str | None = None, **kwargs: Any) -> EfficientATBackbone:
        """EfficientAT with the weights of an official ``mn*_as*.pt`` checkpoint (read without PyTorch).

        Args:
            path: the ``.pt`` file.
            width_mult: the width it must have (None: read from the file's tensors).
            source: what :meth:`spec` reports (default: the path).
            **kwargs: constructor arguments (``class_names``, ``window_seconds``); the class names are
                looked up next to the file, in ../shared and the cache by default.

        Raises:
            WeightsNotFoundError: the file is missing, not a PyTorch checkpoint, truncated, or not an
                EfficientAT ``mn`` model of the expected width.
        """
        path = pathlib.Path(path).expanduser()
        fix = (f"use an official EfficientAT mn checkpoint (e.g. {RELEASES[DEFAULT_MODEL].url}); the reader "
               "takes torch.save zip files (PyTorch >= 1.6).")
        state = read_state_dict(path, fix=fix)
        found = infer_width(state)
        if found is None:
            raise WeightsNotFoundError(_architecture_problem(path, state))
        if width_mult is not None and abs(found - width_mult) > 1e-9:
            raise WeightsNotFoundError(
                f"{path}: an EfficientAT checkpoint of width {found:g}, not the expected {width_mult:g}. Fix: use the "
                f"mn{int(round(width_mult * 10)):02d} checkpoint, or load this one by its path (its width is read "
                "from the file).")
        params = EfficientATParams(width_mult=found)
        if "class_names" not in kwargs:
            kwargs["class_names"] = _find_labels(path)
        backbone = cls(params, source=source if source is not None else str(path), **kwargs)
        backbone.assign_state_dict(state, str(path))
        return backbone

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike | None = None, **kwargs: Any) -> EfficientATBackbone:
        """EfficientAT with pretrained weights.

        ``source`` is a release name (``"mn04_as"`` by default; see
        :data:`~tfaudio.backbones.efficientat.params.RELEASES`: mn01_as … mn40_as, mn40_as_ext) or a
        checkpoint path. A release is looked for, in order, in ``../shared/models/efficientat/``
        (``$TFAUDIO_SHARED``), in ``$TFAUDIO_CACHE/models/efficientat/``, then downloaded from the
        official release into the cache (with its SHA-256; not when ``TFAUDIO_OFFLINE=1``).

        Raises:
            WeightsNotFoundError: nothing found (the message says where to put the file), or a
                found file is damaged or of another model.
        """
        source = DEFAULT_MODEL if source is None or source == "" else os.fspath(source)
        if source in RELEASES:
            path = _resolve_release(source)
            return cls.from_checkpoint(path, width_mult=RELEASES[source].width_mult, source=source, **kwargs)
        path = pathlib.Path(source).expanduser()
        if path.is_dir():
            found = sorted(path.glob("mn*.pt"))
            if len(found) != 1:
                raise WeightsNotFoundError(f"{path}: a folder with {len(found)} mn*.pt checkpoints. Fix: pass the file.")
            path = found[0]
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{source}: neither an EfficientAT release name ({', '.join(RELEASES)}) nor an existing "
                f"checkpoint file. Fix: pass a release name such as 'mn04_as', or the path of a .pt file "
                f"(e.g. {RELEASES[DEFAULT_MODEL].url}).")
        return cls.from_checkpoint(path, width_mult=width_from_name(path.name), **kwargs)

    def assign_state_dict(self, state: dict[str, np.ndarray], source: str = "<state dict>") -> EfficientATBackbone:
        """Copies a torch state dict (``{"features.0.0.weight": array, ...}``) into the body, turning
        OIHW convolutions into HWIO, depthwise ``[C, 1, kh, kw]`` into ``[kh, kw, C, 1]`` and linear
        ``[out, in]`` into ``[in, out]``.

        Raises:
            WeightsNotFoundError: keys missing or unexpected, or shapes that do not match this width.
        """
        layout = _torch_layout(self.body)
        given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        wrong = [f"{k}: expected {_torch_shape(v, axes)}, got {tuple(given[k].shape)}"
                 for k, (v, axes) in layout.items() if k in given and tuple(given[k].shape) != _torch_shape(v, axes)]
        if set(layout) != set(given) or wrong:
            raise WeightsNotFoundError(_architecture_problem(pathlib.Path(source), state, self.params))
        for key, (var, axes) in layout.items():
            value = np.asarray(given[key], np.float32)
            var.assign(value if axes is None else np.transpose(value, axes))
        self._fingerprint = None
        return self

    # ---- identity --------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """``"efficientat-"`` + 16 hex digits over the settings and every weight (the export window
        aside: it does not change the embeddings)."""
        if self._fingerprint is None:
            contract = dataclasses.replace(self.contract, window_seconds=None)
            self._fingerprint = weights_digest("efficientat", (self.params, contract), self.body.weights)
        return self._fingerprint

    def display_log_mel(self, waveform: np.ndarray) -> tuple[np.ndarray, float]:
        """EfficientAT's own log-mel (its frontend, padded to one window)."""
        config = self.params.frontend
        x = np.pad(np.asarray(waveform, np.float32), (0, max(0, config.min_samples - len(waveform))))
        return np.asarray(efficientat_frontend.log_mel(x, None, config), np.float32), config.hop_seconds

    def spec(self) -> dict[str, Any]:
        """``{"name": "efficientat", "source": "mn04_as"}`` (or the checkpoint path; plus
        ``window_seconds`` when not the default 1 s)."""
        out = {"name": "efficientat", "source": self.source}
        if self.contract.window_seconds != 1.0:
            out["window_seconds"] = self.contract.window_seconds
        return out

    def __repr__(self) -> str:
        return (f"EfficientATBackbone(source={self.source!r}, width_mult={self.params.width_mult:g}, "
                f"embedding_dim={self.embedding_dim})")

    @property
    def variables(self) -> list[tf.Variable]:
        """The body's weights (all :meth:`graph_outputs` reads)."""
        return list(self.body.weights)

    # ---- computation -----------------------------------------------------------------------------
    def num_frames(self, num_samples: int) -> int:
        """Frames a clip gives: ``ceil(max(n, 0.32 s) / 0.32 s)`` (one per 32 STFT hops)."""
        n = max(int(num_samples), self.contract.min_samples)
        return int(output_frames(efficientat_frontend.num_frames(n, self.params.frontend), self.params.num_halvings))

    def _pad(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """Zero past each length; at least ``min_samples`` wide; lengths raised to ``min_samples``."""
        x = tf.cast(tf.convert_to_tensor(waveforms), tf.float32)
        lengths = tf.cast(tf.convert_to_tensor(lengths), tf.int32)
        width = tf.shape(x)[1]
        x = tf.where(tf.sequence_mask(lengths, width), x, 0.0)
        x = tf.pad(x, [[0, 0], [0, tf.maximum(self.contract.min_samples - width, 0)]])
        return x, tf.maximum(lengths, self.contract.min_samples)

    def frontend(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """A zero-padded batch → (log-mel ``[B, T, 128]``, valid frames ``[B]``), each clip as alone."""
        fe = self.params.frontend
        x, n = self._pad(waveforms, lengths)
        return efficientat_frontend.log_mel(x, n, fe), efficientat_frontend.num_frames(n, fe)

    def _body_outputs(self, log_mel, counts) -> dict[str, tf.Tensor]:
        frame_emb, clip_emb, scores = self.body([log_mel, counts], training=False)  # [B, T', D], [B, D], [B, K]
        mask = tf.sequence_mask(output_frames(counts, self.params.num_halvings), tf.shape(frame_emb)[1])
        return {"embeddings": frame_emb, "mask": mask, "clip_scores": scores, "clip_embedding": clip_emb}

    def graph_outputs(self, waveforms, lengths) -> dict[str, tf.Tensor]:
        """A zero-padded batch as plain TF ops → ``{"embeddings" [B, F, D], "mask" [B, F],
        "clip_scores" [B, 527], "clip_embedding" [B, D]}`` (see the module doc).

        Args:
            waveforms: float32 ``[B, S]`` at 32 kHz, zero-padded.
            lengths: int32 ``[B]`` valid samples per clip.
        """
        with tf.name_scope(self.frontend_scope):
            log_mel, counts = self.frontend(waveforms, lengths)  # [B, T, 128], [B]
        return self._body_outputs(log_mel, counts)

    # ---- fine-tuning (tfaudio.tasks.finetune) ----------------------------------------------------
    finetune_feature_kind = "log_mel"

    def finetune_features(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """(log-mel ``[B, T, 128]``, valid frames ``[B]``): :meth:`frontend`."""
        with tf.name_scope(self.frontend_scope):
            return self.frontend(waveforms, lengths)

    def finetune_frames(self, features, state, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        frame_emb, _, _ = self.body([features, state], training=training)  # [B, T', D]
        mask = tf.sequence_mask(output_frames(state, self.params.num_halvings), tf.shape(frame_emb)[1])
        return frame_emb, mask

    def finetune_blocks(self) -> list[tuple[str, list[tf.Variable]]]:
        """``features.0`` (the stem) … ``features.N`` (the last conv); the AudioSet classifier does not
        make embeddings."""
        blocks: dict[int, list[tf.Variable]] = {}
        for layer in self.body.layers:
            m = re.match(r"features\.(\d+)\.", layer.name)
            if m:
                blocks.setdefault(int(m.group(1)), []).extend(w for w in layer.weights if w.trainable)
        return [(f"features.{i}", blocks[i]) for i in sorted(blocks) if blocks[i]]

    def clip_features(self, waveform) -> tf.Tensor:
        """One clip ``[samples]`` at 32 kHz → its log-mel ``[T, 128]`` (pure TF; what the data pipeline
        runs per clip in its workers, see :meth:`batch_frames_from_features`)."""
        x = tf.cast(tf.convert_to_tensor(waveform), tf.float32)
        x = tf.pad(x, [[0, tf.maximum(self.contract.min_samples - tf.shape(x)[0], 0)]])
        return efficientat_frontend.log_mel(x, None, self.params.frontend)

    def batch_features_outputs(self, features, counts) -> dict[str, tf.Tensor]:
        """:meth:`graph_outputs` from zero-padded :meth:`clip_features` ``[B, T, 128]`` and their frame
        counts ``[B]`` (the same numbers)."""
        features = tf.cast(tf.convert_to_tensor(features), tf.float32)
        mels = self.params.frontend.num_mel_bins
        if features.shape.rank != 3 or features.shape[-1] != mels:
            raise TfaudioError(f"EfficientAT features must be log-mel frames [batch, frames, {mels}] "
                               f"(from clip_features), got shape {features.shape}.")
        return self._features_fn(features, tf.cast(tf.convert_to_tensor(counts), tf.int32))

    def batch_frames_from_features(self, features, counts) -> tuple[tf.Tensor, tf.Tensor]:
        """(embeddings ``[B, F, D]``, mask ``[B, F]``) from :meth:`clip_features` batches; equal to
        :meth:`batch_frames`."""
        out = self.batch_features_outputs(features, counts)
        return out["embeddings"], out["mask"]

    def batch_outputs(self, waveforms, lengths=None) -> dict[str, tf.Tensor]:
        waveforms, lengths = self.check_batch(waveforms, lengths)
        if waveforms.shape[0] == 0:
            d, k = self.embedding_dim, self.params.num_classes
            return {"embeddings": tf.zeros([0, 0, d]), "mask": tf.zeros([0, 0], tf.bool),
                    "clip_scores": tf.zeros([0, k]), "clip_embedding": tf.zeros([0, d])}
        return self._traced_outputs()(waveforms, lengths)

    def clip_scores(self, waveforms, lengths=None) -> tf.Tensor:
        """The 527 AudioSet scores ``[B, 527]`` of a zero-padded batch at 32 kHz (one row per clip)."""
        return self.batch_outputs(waveforms, lengths)["clip_scores"]


def _architecture_problem(path: pathlib.Path, state: dict[str, np.ndarray],
                          params: EfficientATParams | None = None) -> str:
    """Why a state dict is not an EfficientAT ``mn`` checkpoint (of ``params``' width), with the fix."""
    given = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    width = infer_width(state)
    fix = (f"Fix: use an official EfficientAT mn checkpoint ({', '.join(RELEASES)}; e.g. "
           f"{RELEASES[DEFAULT_MODEL].url}).")
    if params is not None and width is not None:
        return (f"{path}: an EfficientAT checkpoint of width {width:g}, but this backbone has width "
                f"{params.width_mult:g}. Fix: build it with EfficientATParams(width_mult={width:g}), or load the "
                "file with EfficientATBackbone.from_checkpoint (which reads the width from the file).")
    expected = expected_state_shapes(params or EfficientATParams(width_mult=width_from_name(path.name) or 0.4))
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} expected tensors missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unknown tensors (e.g. {', '.join(unexpected[:3])})")
    if not parts:
        parts.append("tensor shapes that fit no standard width (e.g. features.0.0.weight "
                     f"{given.get('features.0.0.weight')}, classifier.2.weight {given.get('classifier.2.weight')})")
    return (f"{path}: not an EfficientAT mn model with the MLP head: {'; '.join(parts)}. The dynamic (dymn) "
            f"models and the fully-convolutional or attention heads are not supported. {fix}")

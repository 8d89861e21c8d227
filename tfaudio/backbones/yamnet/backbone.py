"""YAMNet: a MobileNet-v1 over 0.96 s log-mel patches, trained on AudioSet (521 classes).

Written from the published description (see :mod:`tfaudio.backbones.yamnet.params`). The Keras layer
names follow the official weights file (``layer1/conv``, ``layer1/conv/bn``, ``layerN/depthwise_conv``,
``layerN/pointwise_conv``, their ``/bn``, ``dense``), so weights load by name from the official
``yamnet.h5`` or from the TF Hub SavedModel.

Data flow of :meth:`YAMNetBackbone.batch_frames` (the fast path)::

    waveforms [B, S], lengths [B]
      → zero past each length, pad to the longest clip's YAMNet length      [B, S']
      → log-mel (pure TF, tfaudio.signal.melspec)                          [B, F, 64]
      → patches, keep the real ones (mask)                                 [N, 96, 64]
      → body in chunks of up to 32 patches                                 [N, 1024], [N, 521]
      → scatter back                                                       [B, P, 1024], mask [B, P]

Each clip's patches depend only on that clip, so a batch gives what each clip gives alone. The
embedding cache splits the same flow in two: :meth:`YAMNetBackbone.clip_features` (log-mel patches of
one clip) runs in the ``tf.data`` workers, one thread per clip, and
:meth:`YAMNetBackbone.batch_frames_from_features` runs the body on the padded patches (same frames).

One file of ~700 lines on purpose: the network, its weight loading (h5, SavedModel, TF Hub) and its
batched and windowed graphs are the backbone; its params are a file of their own and its log-mel
frontend is shared (``signal/melspec.py``).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.backbones.backbone import Backbone, InputContract, display_log_mel
from tfaudio.backbones.yamnet.params import YAMNetParams
from tfaudio.datasets import REPO_ROOT, cache_dir, is_offline
from tfaudio.errors import TfaudioError, WeightsNotFoundError
from tfaudio.signal import melspec

__all__ = ["YAMNetBackbone", "build_body", "read_h5_weights", "HUB_HANDLE"]

#: The official TF Hub model.
HUB_HANDLE = "https://tfhub.dev/google/yamnet/1"
#: Where the official Keras weights can be downloaded by hand.
H5_URL = "https://storage.googleapis.com/audioset/yamnet.h5"
CLASS_MAP_NAME = "yamnet_class_map.csv"
CLASS_MAP_URL = (
    "https://raw.githubusercontent.com/tensorflow/models/master/research/audioset/yamnet/yamnet_class_map.csv"
)

# Patches per body call. Measured on a 2-core x86 CPU (TF 2.16, oneDNN): 16-32 patches run at
# ~300-340 patches/s, 64 at ~220, 128-640 at ~125-160: bigger calls spill the activations (layer2
# takes ~0.4 MB per patch) out of the caches. Chunks also bound memory on long clips.
_PATCH_CHUNK = 32
_TRUE = ("1", "true", "yes", "on")


# ---- the network ---------------------------------------------------------------------------------
def _conv_bn_relu(conv: keras.layers.Layer, x, params: YAMNetParams, relu_name: str):
    x = conv(x)
    bn = keras.layers.BatchNormalization(
        center=True, scale=False, epsilon=params.batchnorm_epsilon, name=f"{conv.name}/bn"
    )
    # no training= here: the caller's flag decides (inference everywhere but fine-tuning's training
    # step; with bn.trainable False, Keras keeps AudioSet's moving statistics even then)
    x = bn(x)
    return keras.layers.ReLU(name=relu_name)(x)


def build_body(params: YAMNetParams = YAMNetParams()) -> keras.Model:
    """YAMNet's body: log-mel patches ``[N, 96, 64]`` → (embeddings ``[N, 1024]``, scores ``[N, 521]``).

    Weights are randomly initialised; see :class:`YAMNetBackbone` to load the pretrained ones.
    """
    fe = params.frontend
    pad = params.conv_padding
    patches = keras.Input(shape=(fe.patch_frames, fe.num_mel_bins), name="patches")  # [N, 96, 64]
    x = keras.layers.Reshape((fe.patch_frames, fe.num_mel_bins, 1), name="reshape")(patches)  # [N, 96, 64, 1]
    for i, spec in enumerate(params.layers, start=1):
        if spec.kind == "conv":
            conv = keras.layers.Conv2D(spec.filters, 3, strides=spec.stride, padding=pad, use_bias=False,
                                       name=f"layer{i}/conv")
            x = _conv_bn_relu(conv, x, params, f"layer{i}/relu")
        elif spec.kind == "separable":
            depthwise = keras.layers.DepthwiseConv2D(3, strides=spec.stride, padding=pad, use_bias=False,
                                                     name=f"layer{i}/depthwise_conv")
            x = _conv_bn_relu(depthwise, x, params, f"layer{i}/depthwise_conv/relu")
            pointwise = keras.layers.Conv2D(spec.filters, 1, padding=pad, use_bias=False,
                                            name=f"layer{i}/pointwise_conv")
            x = _conv_bn_relu(pointwise, x, params, f"layer{i}/pointwise_conv/relu")
        else:
            raise ValueError(f"layer{i}: unknown kind {spec.kind!r}; expected 'conv' or 'separable'.")
    # x: [N, 3, 2, 1024]
    embeddings = keras.layers.GlobalAveragePooling2D(name="embedding")(x)  # [N, 1024]
    logits = keras.layers.Dense(params.num_classes, name="dense")(embeddings)  # [N, 521]
    scores = keras.layers.Activation("sigmoid", name="predictions")(logits)  # [N, 521]
    return keras.Model(patches, [embeddings, scores], name="yamnet_body")


class _LogMelFrontend(keras.layers.Layer):
    """Keras face of the frontend: one clip ``[samples]`` → (patches ``[P, 96, 64]``, log-mel
    ``[F, 64]``), padded like YAMNet. Calls the same :mod:`tfaudio.signal.melspec` functions as the
    data pipeline."""

    def __init__(self, config: melspec.LogMelConfig | dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = melspec.LogMelConfig(**config)
        self.config = config or melspec.LogMelConfig()

    def call(self, waveform):
        padded = melspec.pad_waveform(waveform, self.config)  # [S']
        log_mel = melspec.log_mel_spectrogram(padded, self.config)  # [F, 64]
        return melspec.log_mel_patches(log_mel, self.config), log_mel  # [P, 96, 64], [F, 64]

    def get_config(self) -> dict:
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}


# ---- weights -------------------------------------------------------------------------------------
def _short(name: str) -> str:
    """``"layer1/conv/kernel:0"`` → ``"kernel"``."""
    return re.sub(r":\d+$", "", name).rsplit("/", 1)[-1]


def _decode(x) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


def read_h5_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Weights of a Keras-2 HDF5 file (weights-only or a full model) as ``{"layer/weight": array}``,
    e.g. ``"layer2/depthwise_conv/bn/beta"``.

    Raises:
        WeightsNotFoundError: the file is missing or not an HDF5 weights file.
    """
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py ships with the package's requirements
        raise TfaudioError("reading yamnet.h5 needs h5py. Fix: pip install h5py") from err
    path = pathlib.Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: no such file. Fix: point to YAMNet's yamnet.h5 ({H5_URL}).")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise WeightsNotFoundError(
            f"{path}: not an HDF5 weights file ({err}). Fix: download YAMNet's yamnet.h5 again ({H5_URL})."
        ) from err
    out: dict[str, np.ndarray] = {}
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        layer_names = [_decode(n) for n in root.attrs.get("layer_names", [])]
        if not layer_names:  # no Keras attributes: take every dataset by its path
            root.visititems(lambda name, obj: out.setdefault(re.sub(r":\d+$", "", name), np.asarray(obj))
                            if hasattr(obj, "shape") else None)
            return out
        for layer in layer_names:
            if layer not in root:  # listed but absent: reported as missing by assign_weights
                continue
            group = root[layer]
            for weight in group.attrs.get("weight_names", []):
                weight = _decode(weight)
                if weight in group:
                    out[f"{layer}/{_short(weight)}"] = np.asarray(group[weight])
    return out


def _variable_key(layer: keras.layers.Layer, weight: tf.Variable) -> str:
    return f"{layer.name}/{_short(weight.name)}"


def _hub_cache_dir(handle: str) -> pathlib.Path:
    """Where tensorflow_hub keeps (or would keep) ``handle``: $TFHUB_CACHE_DIR or the temp dir."""
    from tensorflow_hub import resolver

    return pathlib.Path(resolver.tfhub_cache_dir(use_temp=True)) / hashlib.sha1(handle.encode("utf8")).hexdigest()


def _offline() -> bool:
    return is_offline() or os.environ.get("TFHUB_OFFLINE", "").strip().lower() in _TRUE


_cache_root = cache_dir


def _shared_roots() -> list[pathlib.Path]:
    """Where the shared assets may be: ``$TFAUDIO_SHARED``, then ``../shared`` beside the repository
    (:data:`tfaudio.datasets.REPO_ROOT`, the one place that knows where the repository is)."""
    roots = []
    if os.environ.get("TFAUDIO_SHARED"):
        roots.append(pathlib.Path(os.environ["TFAUDIO_SHARED"]))
    roots.append(REPO_ROOT.parent / "shared")
    return roots


def _read_class_map(path: pathlib.Path) -> list[str]:
    with open(path, newline="", encoding="utf8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "display_name" not in rows[0]:
        raise TfaudioError(f"{path}: expected a CSV with columns index,mid,display_name (YAMNet's class map).")
    return [row["display_name"] for row in rows]


def _find_class_map(*near: pathlib.Path | None) -> pathlib.Path | None:
    candidates = [p for p in near if p is not None]
    if candidates and near[0] is not None and not near[0].is_file():
        raise TfaudioError(f"class map {near[0]}: no such file. Fix: point to yamnet_class_map.csv "
                           f"({CLASS_MAP_URL}).")
    candidates += [r / "models" / "yamnet" / CLASS_MAP_NAME for r in _shared_roots()]
    candidates.append(_cache_root() / "models" / "yamnet" / CLASS_MAP_NAME)
    return next((p for p in candidates if p.is_file()), None)


def _is_hub_handle(source: str) -> bool:
    return bool(re.match(r"^(https?|gs)://", source))


# ---- the backbone --------------------------------------------------------------------------------
class YAMNetBackbone(Backbone):
    """YAMNet as a tfaudio backbone: 16 kHz mono waveforms → one 1024-d embedding per 0.96 s patch
    (hop 0.48 s), plus AudioSet scores.

    Build it with :meth:`from_pretrained` (finds the weights), :meth:`from_h5` or :meth:`from_hub`;
    the constructor alone gives random weights.

    Args:
        params: the architecture and frontend settings (YAMNet's published ones by default).
        trainable_top_blocks: how many of the 14 blocks, counted from the top, are trainable
            (0 = frozen feature extractor; see :meth:`set_trainable_blocks`).
        class_names: the 521 AudioSet display names (None: unknown).
        source: where the weights came from (kept for :meth:`spec` and messages).

    Example:
        >>> yamnet = YAMNetBackbone.from_pretrained()
        >>> scores, embeddings, log_mel = yamnet(tf.zeros([16000]))   # 1 s of silence at 16 kHz
        >>> scores.shape, embeddings.shape, log_mel.shape
        (TensorShape([2, 521]), TensorShape([2, 1024]), TensorShape([144, 64]))
    """

    contract = InputContract(sample_rate=16000, frame_seconds=0.96, hop_seconds=0.48, embedding_dim=1024,
                             min_seconds=0.975)
    frontend_scope = "frontend"

    def __init__(self, params: YAMNetParams | None = None, *, trainable_top_blocks: int = 0,
                 class_names: Sequence[str] | None = None, source: str | None = None):
        self.params = params or YAMNetParams()
        fe = self.params.frontend
        if (fe.sample_rate, fe.min_samples, fe.patch_hop_samples) != (
            self.contract.sample_rate, self.contract.min_samples, self.contract.hop_samples
        ) or self.params.embedding_dim != self.contract.embedding_dim:
            # the contract is what data code reads: a different frontend needs its own contract
            self.contract = InputContract(fe.sample_rate, fe.patch_seconds, fe.patch_hop_seconds,
                                          self.params.embedding_dim, fe.min_seconds)
        self.trainable_top_blocks = trainable_top_blocks
        self.class_names = list(class_names) if class_names is not None else None
        self.source = source
        self.requested_source: str | None = source
        self.body = build_body(self.params)
        self.set_trainable_blocks(trainable_top_blocks)
        self._fingerprint: str | None = None

        # One trace each (input signatures with free lengths: no retracing per clip length or batch
        # size); autograph off: nothing here branches on tensors, and converting Keras' internals
        # would cost ~15 s per trace.
        f32 = tf.float32
        patch_shape = [None, fe.patch_frames, fe.num_mel_bins]
        self._body_fn = tf.function(self._body_call, input_signature=[tf.TensorSpec(patch_shape, f32)],
                                    autograph=False)
        self._clip_fn = tf.function(self.frontend, input_signature=[tf.TensorSpec([None], f32)], autograph=False)
        self._batch_fn = tf.function(
            self.batch_frontend,
            input_signature=[tf.TensorSpec([None, None], f32), tf.TensorSpec([None], tf.int32)],
            autograph=False,
        )

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_h5(cls, path: str | os.PathLike, *, class_map: str | os.PathLike | None = None,
                **kwargs: Any) -> YAMNetBackbone:
        """YAMNet with the weights of a Keras HDF5 file in the official ``yamnet.h5`` layout.

        Args:
            path: the ``.h5`` file.
            class_map: ``yamnet_class_map.csv`` (default: next to ``path``, then the shared and cache
                folders).
            **kwargs: constructor arguments (``trainable_top_blocks``...).

        Raises:
            WeightsNotFoundError: the file is missing, unreadable or lacks some YAMNet weights.
            TfaudioError: a weight has the wrong shape.
        """
        path = pathlib.Path(path)
        weights = read_h5_weights(path)
        found = _find_class_map(pathlib.Path(class_map) if class_map else None, path.parent / CLASS_MAP_NAME)
        backbone = cls(class_names=_read_class_map(found) if found else None, source=str(path), **kwargs)
        backbone.assign_weights(weights, str(path))
        return backbone

    @classmethod
    def from_hub(cls, handle: str | os.PathLike = HUB_HANDLE, *, class_map: str | os.PathLike | None = None,
                 **kwargs: Any) -> YAMNetBackbone:
        """YAMNet with the weights of the TF Hub model (or of a SavedModel in its format on disk).

        The SavedModel's variables (named like ``layer1/conv/kernel`` or
        ``layer2/depthwise_conv/bn/beta``) are copied into the Keras body by name and shape. A URL is
        resolved through ``tensorflow_hub`` and its cache ($TFHUB_CACHE_DIR); with
        ``TFAUDIO_OFFLINE=1`` / ``TFHUB_OFFLINE=1`` only an already cached copy is used.

        Args:
            handle: a TF Hub URL (default the official YAMNet) or a local SavedModel folder.
            class_map: ``yamnet_class_map.csv`` (default: the SavedModel's asset).
            **kwargs: constructor arguments.

        Raises:
            WeightsNotFoundError: the handle cannot be resolved (offline, no such folder, download
                failure) or the model lacks some YAMNet variables.
        """
        handle = os.fspath(handle)
        try:
            import tensorflow_hub as hub
        except ImportError as err:
            raise WeightsNotFoundError(
                f"loading {handle} needs tensorflow-hub. Fix: pip install tensorflow-hub, or use the Keras "
                f"weights file: YAMNetBackbone.from_h5('yamnet.h5') ({H5_URL})."
            ) from err
        location = handle
        if _is_hub_handle(handle):
            cached = _hub_cache_dir(handle)
            if (cached / "saved_model.pb").is_file():
                location = str(cached)  # no network round trip when the cache has it
            elif _offline():
                raise WeightsNotFoundError(
                    f"{handle}: offline (TFAUDIO_OFFLINE / TFHUB_OFFLINE is set) and not in the TF Hub "
                    f"cache {cached}. Fix: unset the variable to download it, or set TFHUB_CACHE_DIR to a "
                    f"cache that has it."
                )
        elif not pathlib.Path(handle).exists():
            raise WeightsNotFoundError(f"{handle}: no such SavedModel folder. Fix: pass a folder that has "
                                       f"saved_model.pb, or a TF Hub URL such as {HUB_HANDLE}.")
        try:
            path = pathlib.Path(hub.resolve(location))
            model = hub.load(str(path))
        except Exception as err:  # network, format and file errors all mean: no weights from here
            raise WeightsNotFoundError(f"{handle}: could not load it through tensorflow_hub ({type(err).__name__}: "
                                       f"{err}).") from err
        variables = _saved_model_variables(model)
        found = _find_class_map(pathlib.Path(class_map) if class_map else None, path / "assets" / CLASS_MAP_NAME)
        backbone = cls(class_names=_read_class_map(found) if found else None, source=handle, **kwargs)
        backbone.assign_weights(variables, handle)
        return backbone

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike | None = None, **kwargs: Any) -> YAMNetBackbone:
        """YAMNet with pretrained weights, from the first place that has them.

        Order: ``source`` (a ``.h5`` file, a SavedModel folder or a TF Hub URL) → $TFAUDIO_YAMNET →
        ``models/yamnet/yamnet.h5`` under $TFAUDIO_SHARED and ``../shared`` next to the repository →
        ``$TFAUDIO_CACHE/models/yamnet/yamnet.h5`` (default ``~/.cache/tfaudio``) → TF Hub
        (:data:`HUB_HANDLE`; only its cache when $TFAUDIO_OFFLINE or $TFHUB_OFFLINE is set). An
        explicit ``source`` or $TFAUDIO_YAMNET that fails is an error, not skipped.

        Raises:
            WeightsNotFoundError: nothing worked; the message lists every place tried and how to point
                at a local copy.
        """
        explicit = os.fspath(source) if source is not None else os.environ.get("TFAUDIO_YAMNET") or None
        if explicit:
            backbone = cls._from_source(explicit, **kwargs)
            backbone.requested_source = os.fspath(source) if source is not None else None
            return backbone
        tried: list[str] = []
        candidates = [r / "models" / "yamnet" / "yamnet.h5" for r in _shared_roots()]
        candidates.append(_cache_root() / "models" / "yamnet" / "yamnet.h5")
        for path in candidates:
            if path.is_file():
                backbone = cls.from_h5(path, **kwargs)
                backbone.requested_source = None  # found by search: re-resolve on another machine
                return backbone
            tried.append(f"{path} (no such file)")
        try:
            backbone = cls.from_hub(HUB_HANDLE, **kwargs)
            backbone.requested_source = None
            return backbone
        except WeightsNotFoundError as err:
            tried.append(str(err))
        raise WeightsNotFoundError(
            "no YAMNet weights found. Tried:\n  - source argument: none given\n  - $TFAUDIO_YAMNET: not set\n"
            + "".join(f"  - {t}\n" for t in tried)
            + f"Fix: download {H5_URL} (and {CLASS_MAP_URL}) and pass its path "
            "(YAMNetBackbone.from_pretrained('/path/yamnet.h5'), `--backbone yamnet:/path/yamnet.h5`), or set "
            f"TFAUDIO_YAMNET=/path/yamnet.h5, or put it at {candidates[-1]}; or unset TFAUDIO_OFFLINE to "
            "download it from TF Hub."
        )

    @classmethod
    def _from_source(cls, source: str, **kwargs: Any) -> YAMNetBackbone:
        if _is_hub_handle(source):
            return cls.from_hub(source, **kwargs)
        path = pathlib.Path(source).expanduser()
        if path.is_dir():
            if (path / "saved_model.pb").is_file():
                return cls.from_hub(path, **kwargs)
            if (path / "yamnet.h5").is_file():
                return cls.from_h5(path / "yamnet.h5", **kwargs)
            raise WeightsNotFoundError(f"{path}: a folder without saved_model.pb or yamnet.h5. Fix: point to "
                                       f"YAMNet's yamnet.h5 ({H5_URL}) or to a TF Hub SavedModel folder.")
        if not path.exists():
            raise WeightsNotFoundError(f"{path}: no such file. Fix: point to YAMNet's yamnet.h5 ({H5_URL}), a "
                                       f"SavedModel folder, or a TF Hub URL such as {HUB_HANDLE}.")
        return cls.from_h5(path, **kwargs)

    def assign_weights(self, weights: dict[str, np.ndarray], source: str = "<weights>") -> YAMNetBackbone:
        """Copies ``{"layer/weight": array}`` into the body, matching names (a name may carry a
        prefix, e.g. ``"yamnet_frames/layer1/conv/kernel"``) and checking shapes.

        Raises:
            WeightsNotFoundError: some body weights have no match in ``weights``.
            TfaudioError: a match has the wrong shape, or a name matches twice.
        """
        wanted = {
            _variable_key(layer, w): w for layer in self.body.layers for w in layer.weights
        }
        matched: dict[str, np.ndarray] = {}
        for name, value in weights.items():
            name = re.sub(r":\d+$", "", name)
            key = next((k for k in (name, *_suffixes(name)) if k in wanted), None)
            if key is None:
                continue
            if key in matched:
                raise TfaudioError(f"{source}: two weights match {key!r}; cannot tell which is YAMNet's.")
            matched[key] = np.asarray(value)
        missing = [k for k in wanted if k not in matched]
        if missing:
            raise WeightsNotFoundError(
                f"{source}: {len(missing)} of {len(wanted)} YAMNet weights are missing, e.g. "
                f"{', '.join(missing[:4])}. Its weights are named e.g. {', '.join(list(weights)[:4])}. Fix: "
                f"use the official yamnet.h5 ({H5_URL}) or TF Hub model ({HUB_HANDLE})."
            )
        wrong = [f"{k}: expected {tuple(wanted[k].shape)}, got {matched[k].shape}"
                 for k in wanted if tuple(wanted[k].shape) != matched[k].shape]
        if wrong:
            raise TfaudioError(f"{source}: weights of the wrong shape ({'; '.join(wrong[:4])}). Fix: use "
                               f"weights of the standard YAMNet (521 classes, 1024-d embedding).")
        for key, var in wanted.items():
            var.assign(matched[key].astype(var.dtype.as_numpy_dtype))
        self._fingerprint = None
        return self

    def weights_by_name(self) -> dict[str, np.ndarray]:
        """The body's weights as ``{"layer1/conv/kernel": array, ...}`` (what :meth:`assign_weights` takes)."""
        return {_variable_key(layer, w): w.numpy() for layer in self.body.layers for w in layer.weights}

    # ---- fine-tuning -----------------------------------------------------------------------------
    def set_trainable_blocks(self, n: int) -> YAMNetBackbone:
        """Makes the top ``n`` of the 14 blocks trainable and freezes the rest.

        ``0`` freezes the whole body (a feature extractor), ``14`` trains every block. Batch norm
        keeps AudioSet's moving statistics either way (only its offset trains). The AudioSet output
        layer (``dense``) stays frozen: tfaudio's heads replace it. Recompile a Keras model built on
        :attr:`body` after calling this.
        """
        blocks = self.params.num_blocks
        if not isinstance(n, (int, np.integer)) or not 0 <= n <= blocks:
            raise ValueError(f"trainable_top_blocks must be an int in 0..{blocks}, got {n!r}.")
        first = blocks - int(n) + 1  # first trainable block number
        for layer in self.body.layers:
            m = re.match(r"layer(\d+)/", layer.name)
            layer.trainable = bool(m) and int(m.group(1)) >= first
        self.trainable_top_blocks = int(n)
        return self

    # ---- identity --------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """``"yamnet-"`` + 16 hex digits of sha256 over the settings and every weight array (so the
        same weights give the same key wherever they were loaded from; a trained block changes it)."""
        if self._fingerprint is None or self.trainable_top_blocks:
            digest = hashlib.sha256(repr(self.params).encode())
            for w in self.body.weights:
                digest.update(w.name.encode())
                digest.update(np.ascontiguousarray(w.numpy()).tobytes())
            self._fingerprint = "yamnet-" + digest.hexdigest()[:16]
        return self._fingerprint

    def display_log_mel(self, waveform: np.ndarray) -> tuple[np.ndarray, float]:
        """YAMNet's own log-mel settings."""
        return display_log_mel(waveform, self.sample_rate, self.params.frontend)

    def spec(self) -> dict[str, Any]:
        """What :func:`tfaudio.backbones.get_backbone` needs to build this backbone again (the source
        is None when the weights were found by :meth:`from_pretrained`'s search)."""
        return {"name": "yamnet", "source": self.requested_source}

    # ---- computation -----------------------------------------------------------------------------
    def _body_call(self, patches):
        return self.body(patches, training=False)

    def frontend(self, waveform) -> tuple[tf.Tensor, tf.Tensor]:
        """One clip ``[samples]`` at 16 kHz → (patches ``[P, 96, 64]``, log-mel ``[F, 64]``), padded
        like YAMNet (pure TF; the function the exported graph uses)."""
        fe = self.params.frontend
        log_mel = melspec.log_mel_spectrogram(melspec.pad_waveform(waveform, fe), fe)  # [F, 64]
        return melspec.log_mel_patches(log_mel, fe), log_mel  # [P, 96, 64], [F, 64]

    def batch_frontend(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """A zero-padded batch → (the real patches of all clips ``[N, 96, 64]``, mask ``[B, P]``).

        Clip ``b``'s patches are ``patches[sum(counts[:b]) : sum(counts[:b + 1])]`` with
        ``counts = mask.sum(1)``; each equals what the clip gives alone (samples past ``lengths[b]``
        are zeroed and each clip is padded like YAMNet).

        Args:
            waveforms: float32 ``[B, S]`` at 16 kHz.
            lengths: int32 ``[B]`` valid samples per clip (<= S).
        """
        fe = self.params.frontend
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        lengths = tf.convert_to_tensor(lengths, tf.int32)
        counts = melspec.num_patches(lengths, fe)  # [B]
        max_count = tf.reduce_max(counts)
        target = fe.min_samples + (max_count - 1) * fe.patch_hop_samples
        width = tf.shape(waveforms)[1]
        x = tf.where(tf.sequence_mask(lengths, width), waveforms, 0.0)[:, :target]  # [B, min(S, S')]
        x = tf.pad(x, [[0, 0], [0, target - tf.shape(x)[1]]])  # [B, S']
        log_mel = melspec.log_mel_spectrogram(x, fe)  # [B, F, 64]
        patches = melspec.log_mel_patches(log_mel, fe)  # [B, P, 96, 64]
        mask = tf.sequence_mask(counts, max_count)  # [B, P]
        return tf.boolean_mask(patches, mask), mask  # [N, 96, 64], [B, P]

    def embed_patches(self, patches) -> tuple[tf.Tensor, tf.Tensor]:
        """The body over any number of log-mel patches ``[N, 96, 64]`` → (embeddings ``[N, 1024]``,
        scores ``[N, 521]``), run ``_PATCH_CHUNK`` (32) patches per call, the fastest size on CPU."""
        patches = tf.cast(tf.convert_to_tensor(patches), tf.float32)
        n = int(patches.shape[0])
        if n <= _PATCH_CHUNK:
            return self._body_fn(patches)
        parts = [self._body_fn(patches[i : i + _PATCH_CHUNK]) for i in range(0, n, _PATCH_CHUNK)]
        return tf.concat([p[0] for p in parts], 0), tf.concat([p[1] for p in parts], 0)

    def predict_clip(self, waveform, *, sample_rate: int | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One clip, as the TF Hub model: (scores ``[P, 521]``, embeddings ``[P, 1024]``, log-mel ``[F, 64]``).

        Args:
            waveform: float32 ``[samples]``, mono at 16 kHz, values in [-1, 1].
            sample_rate: if given, checked against 16000 (a guard against feeding the wrong rate).
        """
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise TfaudioError(
                f"YAMNet needs {self.sample_rate} Hz audio, got {sample_rate} Hz. Fix: "
                f"tfaudio.signal.resample(waveform, {sample_rate}, {self.sample_rate}) first."
            )
        x = tf.cast(tf.convert_to_tensor(waveform), tf.float32)
        if x.shape.rank != 1:
            raise TfaudioError(f"predict_clip takes one mono clip [samples], got shape {x.shape}. Fix: use "
                               "batch_frames / batch_scores for batches, average channels for stereo.")
        patches, log_mel = self._clip_fn(x)
        embeddings, scores = self.embed_patches(patches)
        return scores, embeddings, log_mel

    __call__ = predict_clip

    def frames(self, waveform) -> tf.Tensor:
        """One clip ``[samples]`` at 16 kHz → embeddings ``[patches, 1024]``."""
        return self.predict_clip(waveform)[1]

    @property
    def variables(self) -> list[tf.Variable]:
        """Every variable :meth:`graph_outputs` reads (the body's weights)."""
        return list(self.body.variables)

    def graph_outputs(self, waveforms, lengths) -> dict[str, tf.Tensor]:
        """A zero-padded batch as plain TF ops → ``{"embeddings" [B, P, 1024], "mask" [B, P],
        "scores" [B, P, 521]}``; the body runs on the real patches only (see :meth:`batch_frontend`)."""
        with tf.name_scope(self.frontend_scope):
            patches, mask = self.batch_frontend(waveforms, lengths)  # [N, 96, 64], [B, P]
        embeddings, scores = self.body(patches, training=False)  # [N, 1024], [N, 521]
        return _scatter(embeddings, scores, mask)

    # ---- fine-tuning (tfaudio.tasks.finetune) ----------------------------------------------------
    finetune_feature_kind = "log_mel"

    def finetune_features(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """(log-mel patches of every clip ``[N, 96, 64]``, patch mask ``[B, P]``): :meth:`batch_frontend`."""
        with tf.name_scope(self.frontend_scope):
            return self.batch_frontend(waveforms, lengths)

    def finetune_frames(self, features, state, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        embeddings, scores = self.body(features, training=training)  # [N, 1024], [N, 521]
        out = _scatter(embeddings, scores, state)
        return out["embeddings"], out["mask"]

    def finetune_blocks(self) -> list[tuple[str, list[tf.Variable]]]:
        """The 14 blocks ``layer1`` … ``layer14`` (the AudioSet output layer does not make embeddings)."""
        blocks: dict[int, list[tf.Variable]] = {}
        for layer in self.body.layers:
            m = re.match(r"layer(\d+)/", layer.name)
            if m:
                blocks.setdefault(int(m.group(1)), []).extend(w for w in layer.weights if w.trainable)
        return [(f"layer{i}", blocks[i]) for i in sorted(blocks)]

    def graph_window(self, waveform) -> dict[str, tf.Tensor]:
        """One unpadded clip ``[1, S]`` → :meth:`graph_outputs`' dict (mask all True): the frontend and
        the body without the batch bookkeeping (the graph of YAMNet's fixed-window TFLite models)."""
        with tf.name_scope(self.frontend_scope):
            patches, _ = self.frontend(waveform[0])  # [P, 96, 64]
        embeddings, scores = self.body(patches, training=False)  # [P, 1024], [P, 521]
        return {"embeddings": embeddings[None], "scores": scores[None], "mask": tf.ones_like(embeddings[None, :, 0], tf.bool)}

    def batch_outputs(self, waveforms, lengths=None) -> dict[str, tf.Tensor]:
        """:meth:`graph_outputs` eagerly, the body ``_PATCH_CHUNK`` patches per call (fastest on CPU).

        Args:
            waveforms: float32 ``[B, S]`` at 16 kHz.
            lengths: int ``[B]`` valid samples per clip, 0 <= length <= S (None: all S).
        """
        waveforms, lengths = self.check_batch(waveforms, lengths)
        if waveforms.shape[0] == 0:
            return {"embeddings": tf.zeros([0, 0, self.embedding_dim]), "mask": tf.zeros([0, 0], tf.bool),
                    "scores": tf.zeros([0, 0, self.params.num_classes])}
        patches, mask = self._batch_fn(waveforms, lengths)
        return _scatter(*self.embed_patches(patches), mask)

    def clip_features(self, waveform) -> tf.Tensor:
        """One clip ``[samples]`` at 16 kHz → its log-mel patches ``[P, 96, 64]`` (pure TF).

        What :class:`~tfaudio.data.pipeline.AudioDataset` runs per clip in its workers when given
        ``features=backbone.clip_features``: the frontend then runs on one thread per clip, beside
        the body, instead of on the body's thread pool (see :meth:`batch_frames_from_features`).
        """
        return self.frontend(waveform)[0]

    def batch_frames_from_features(self, features, counts) -> tuple[tf.Tensor, tf.Tensor]:
        """(embeddings ``[B, P, 1024]``, mask ``[B, P]``) from zero-padded :meth:`clip_features`
        ``[B, P, 96, 64]`` and the patch count of each clip ``[B]``; equal to :meth:`batch_frames`."""
        features = tf.cast(tf.convert_to_tensor(features), tf.float32)
        counts = tf.cast(tf.convert_to_tensor(counts), tf.int32)
        fe = self.params.frontend
        if features.shape.rank != 4 or tuple(features.shape[2:]) != (fe.patch_frames, fe.num_mel_bins):
            raise TfaudioError(f"batch_frames_from_features takes patches [B, P, {fe.patch_frames}, "
                               f"{fe.num_mel_bins}] (from clip_features), got {features.shape}.")
        mask = tf.sequence_mask(counts, tf.shape(features)[1])  # [B, P]
        out = _scatter(*self.embed_patches(tf.boolean_mask(features, mask)), mask)
        return out["embeddings"], out["mask"]

    # ---- export ----------------------------------------------------------------------------------
    def waveform_model(self, num_samples: int | None = None) -> keras.Model:
        """A Keras model of one clip, laid out like the TF Hub model: waveform ``[num_samples]`` →
        (scores ``[P, 521]``, embeddings ``[P, 1024]``, log-mel ``[F, 64]``).

        The patches play the role of the batch axis, so the input has no batch axis. Converts to
        TFLite with builtin ops only (``num_samples=15600`` gives the official one-patch signature).

        Args:
            num_samples: a fixed clip length (fixed shapes throughout), or None for any length.
        """
        waveform = keras.Input(batch_shape=(num_samples,), name="waveform")  # [S]
        # (to save or convert it, serving_module is ~10x faster: no Keras serialization)
        patches, log_mel = _LogMelFrontend(self.params.frontend, name="log_mel_patches")(waveform)
        embeddings, scores = self.body(patches)
        return keras.Model(waveform, [scores, embeddings, log_mel], name="yamnet")

    def serving_module(self, num_samples: int | None = None) -> tf.Module:
        """A ``tf.Module`` whose ``serve(waveform [num_samples])`` returns ``{"scores" [P, 521],
        "embeddings" [P, 1024], "log_mel_spectrogram" [F, 64]}`` (the TF Hub model's outputs), with
        the weights tracked as plain variables: fast to ``tf.saved_model.save`` and to convert.

        Example:
            >>> module = yamnet.serving_module(15600)
            >>> converter = tf.lite.TFLiteConverter.from_concrete_functions(
            ...     [module.serve.get_concrete_function()], module)
            >>> converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            >>> tflite_bytes = converter.convert()
        """
        return _ServingModule(self, num_samples)


class _ServingModule(tf.Module):
    """See :meth:`YAMNetBackbone.serving_module`."""

    def __init__(self, backbone: YAMNetBackbone, num_samples: int | None):
        super().__init__(name="yamnet")
        # The variables as a plain list: saving then skips Keras' own serialization (which retraces
        # every layer and takes minutes), and the SavedModel looks like TF Hub's.
        self.variables_list = list(backbone.body.weights)
        body = backbone.body
        frontend = backbone.frontend

        @tf.function(input_signature=[tf.TensorSpec([num_samples], tf.float32, name="waveform")], autograph=False)
        def serve(waveform):
            patches, log_mel = frontend(waveform)  # [P, 96, 64], [F, 64]
            embeddings, scores = body(patches, training=False)  # [P, 1024], [P, 521]
            return {"scores": scores, "embeddings": embeddings, "log_mel_spectrogram": log_mel}

        self.serve = serve


def _scatter(embeddings, scores, mask) -> dict[str, tf.Tensor]:
    """Outputs of the real patches ``[N, ...]`` of a batch, scattered back to ``[B, P, ...]``."""
    index = tf.where(mask)  # [N, 2]
    shape = tf.shape(mask, out_type=tf.int64)
    return {
        "embeddings": tf.scatter_nd(index, embeddings, tf.concat([shape, [embeddings.shape[-1]]], 0)),
        "mask": mask,
        "scores": tf.scatter_nd(index, scores, tf.concat([shape, [scores.shape[-1]]], 0)),
    }


def _suffixes(name: str):
    """``"a/b/c"`` → ``"b/c"``, ``"c"``: a weight name without its leading scopes."""
    parts = name.split("/")
    return ("/".join(parts[i:]) for i in range(1, len(parts)))


def _saved_model_variables(model) -> dict[str, np.ndarray]:
    """Every variable reachable from a loaded SavedModel, by its saved name."""
    out: dict[str, np.ndarray] = {}
    for node in tf.train.TrackableView(model).descendants():
        if isinstance(node, tf.Variable):
            name = re.sub(r":\d+$", "", node.name)
            if name in out:
                raise TfaudioError(f"the SavedModel has two variables named {name!r}; cannot match them to YAMNet.")
            out[name] = node.numpy()
    return out

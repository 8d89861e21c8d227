"""Google's speech embedding model (TF Hub ``google/speech_embedding/1``) as a tfaudio backbone.

A small CNN trained on speech for few-shot keyword spotting; openWakeWord ships it as two TFLite
files, ``melspectrogram.tflite`` (the frontend) and ``embedding_model.tflite`` (the network). This
port reads the network's weights from ``embedding_model.tflite`` (:mod:`tfaudio.backbones.speech_embedding.tflite_weights`,
no TF Hub or TFLite runtime needed) into a tf_keras body built from the layer table in
:mod:`tfaudio.backbones.speech_embedding.params`, and computes the frontend with
:func:`tfaudio.backbones.speech_embedding.frontend.speech_mel_spectrogram` (when ``melspectrogram.tflite`` sits beside
the weights, its constants are checked against that function).

Data flow of :meth:`SpeechEmbeddingBackbone.graph_outputs`::

    waveforms [B, S] in [-1, 1] at 16 kHz, lengths [B]
      → zero past each length; pad to the longest clip's window span       [B, S']
      → mel spectrogram (int16 scale, dB, 80 dB floor per clip)            [B, F, 32]
      → x / 10 + 2 (openWakeWord's scaling)                                [B, F, 32]
      → body, fully convolutional over time: one embedding per 76-frame
        window every 8 frames (80 ms)                                      [B, P, 96]
      → mask: each clip's own windows                                      [B, P]

A clip of ``n`` samples gives ``1 + ceil(max(0, n - 12512) / 1280)`` embeddings: shorter clips are
zero-padded to one 0.782 s window, and a last partial 80 ms step is zero-padded to a whole window
(openWakeWord drops that partial window instead; the windows they share are identical). Each clip's
windows, padding and 80 dB floor depend on that clip only, so a padded batch gives what each clip
gives alone.
"""
from __future__ import annotations

import math
import os
import pathlib
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.backbones.backbone import Backbone, InputContract, weights_digest
from tfaudio.backbones.speech_embedding.frontend import (
    SpeechMelConfig,
    slaney_mel_weight_matrix,
    speech_mel_spectrogram,
)
from tfaudio.backbones.speech_embedding.params import SpeechEmbeddingParams
from tfaudio.backbones.speech_embedding.tflite_weights import PADDING, TFLiteWeights
from tfaudio.datasets import cache_dir, fetch, is_offline, shared_dir
from tfaudio.errors import TfaudioError, WeightsNotFoundError

__all__ = ["SpeechEmbeddingBackbone", "build_body", "check_frontend", "read_tflite_weights", "EMBEDDING_FILE",
           "MELSPEC_FILE", "RELEASE_FILES"]

EMBEDDING_FILE = "embedding_model.tflite"
MELSPEC_FILE = "melspectrogram.tflite"
#: openWakeWord's release v0.5.1: file → (URL, sha256). The checksums are those of the files in
#: ``../shared/models/speech_embedding``; public download scripts list the same sha256 for these
#: release assets (not re-checked against GitHub here: the development machines have no network).
RELEASE_FILES = {
    EMBEDDING_FILE: ("https://github.com/dscripka/openWakeWord/releases/download/v0.5.1/embedding_model.tflite",
                     "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8"),
    MELSPEC_FILE: ("https://github.com/dscripka/openWakeWord/releases/download/v0.5.1/melspectrogram.tflite",
                   "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8"),
}
_SUBDIR = ("models", "speech_embedding")


# ---- the network ---------------------------------------------------------------------------------
class _ClippedLeakyReLU(keras.layers.Layer):
    """``max(leaky_relu(x, alpha), floor)``: the file's LEAKY_RELU + MAXIMUM pair (both TFLite builtins)."""

    def __init__(self, alpha: float = 0.2, floor: float = -0.4, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)
        self.floor = float(floor)

    def call(self, x):
        return tf.maximum(tf.nn.leaky_relu(x, alpha=self.alpha), self.floor)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "floor": self.floor}


def build_body(params: SpeechEmbeddingParams = SpeechEmbeddingParams()) -> keras.Model:
    """The network: scaled log-mel ``[N, T, 32, 1]`` (``T >= 76``) → embeddings ``[N, P, 1, 96]``
    with ``P = 1 + (T - 76) // 8``: row ``p`` is the embedding of frames ``8p .. 8p + 75``
    (``T = 76`` is ``embedding_model.tflite``'s input). Weights are random; see
    :class:`SpeechEmbeddingBackbone` for the pretrained ones.
    """
    mels = params.frontend.num_mel_bins
    x = inputs = keras.Input(shape=(None, mels, 1), name="log_mel")  # [N, T, 32, 1]
    x = keras.layers.ZeroPadding2D(((0, 0), (params.mel_padding, params.mel_padding)), name="mel_padding")(x)
    convs = pools = 0
    for spec in params.layers:
        if spec.kind == "conv":
            x = keras.layers.Conv2D(spec.filters, spec.size, padding=spec.padding, name=f"conv{convs}")(x)
            if spec.activation:
                x = _ClippedLeakyReLU(params.leaky_alpha, params.activation_floor, name=f"conv{convs}/act")(x)
            convs += 1
        elif spec.kind == "pool":
            x = keras.layers.MaxPool2D(spec.size, padding=spec.padding, name=f"pool{pools}")(x)
            pools += 1
        else:
            raise ValueError(f"unknown layer kind {spec.kind!r}; expected 'conv' or 'pool'.")
    return keras.Model(inputs, x, name="speech_embedding")  # [N, P, 1, 96]


# ---- weights -------------------------------------------------------------------------------------
def _wrong_model(path: str, problem: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"{path}: not Google's speech embedding model (openWakeWord's {EMBEDDING_FILE}): {problem}. Fix: "
        f"use {RELEASE_FILES[EMBEDDING_FILE][0]} (a melspectrogram.tflite or another model will not do)."
    )


def read_tflite_weights(path: str | os.PathLike, params: SpeechEmbeddingParams = SpeechEmbeddingParams()
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel ``[kh, kw, in, out]``, bias ``[out]``) of every convolution of ``embedding_model.tflite``,
    in the layer table's order, after checking that the file's ops match the table op for op.

    Raises:
        WeightsNotFoundError: no such file, not a (complete) TFLite model, or another model.
    """
    path = str(path)
    model = TFLiteWeights.read(path)
    want = (-1, params.patch_frames, params.frontend.num_mel_bins, 1)
    got = model.input_shape()
    if len(got) != 4 or tuple(got[1:]) != want[1:]:
        raise _wrong_model(path, f"its input is {list(got)}, expected {list(want)}")
    ops = list(model.operators)
    pos = 0

    def take(name: str):
        nonlocal pos
        if pos >= len(ops):
            raise _wrong_model(path, f"it ends after {len(ops)} ops where a {name} was expected")
        op = ops[pos]
        if op.name != name:
            raise _wrong_model(path, f"op {pos} is {op.name}, expected {name}")
        pos += 1
        return op

    pad = model.constant(take("PAD").inputs[1]).reshape(-1).tolist()
    m = params.mel_padding
    if pad != [0, 0, 0, 0, m, m, 0, 0]:
        raise _wrong_model(path, f"its first op pads {pad}, expected the mel bands by {m}")
    weights = []
    for spec in params.layers:
        if spec.kind == "pool":
            op = take("MAX_POOL_2D")
            o = op.options
            got = ((o["filter_height"], o["filter_width"]), (o["stride_h"], o["stride_w"]), PADDING.get(o["padding"]))
            if got != (spec.size, spec.size, spec.padding):
                raise _wrong_model(path, f"op {op.index} pools {got}, expected {(spec.size, spec.size, spec.padding)}")
            continue
        op = take("CONV_2D")
        o = op.options
        if (PADDING.get(o["padding"]), o["stride_h"], o["stride_w"], o["dilation_h_factor"], o["dilation_w_factor"],
                o["fused_activation_function"]) != (spec.padding, 1, 1, 1, 1, 0):
            raise _wrong_model(path, f"op {op.index} is a convolution with options {o}, expected padding "
                                     f"{spec.padding!r}, stride 1 and no fused activation")
        kernel = model.constant(op.inputs[1])  # [out, kh, kw, in] (TFLite's layout)
        bias = model.constant(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        if kernel.ndim != 4 or kernel.shape[0] != spec.filters or tuple(kernel.shape[1:3]) != spec.size:
            raise _wrong_model(path, f"op {op.index} has a kernel {list(kernel.shape)}, expected "
                                     f"[{spec.filters}, {spec.size[0]}, {spec.size[1]}, in]")
        if bias is None or bias.shape != (spec.filters,):
            raise _wrong_model(path, f"op {op.index} has no bias of {spec.filters} values")
        weights.append((np.transpose(kernel, (1, 2, 3, 0)), bias))  # → Keras' [kh, kw, in, out]
        if spec.activation:
            alpha = take("LEAKY_RELU").options["alpha"]
            floor = model.constant(take("MAXIMUM").inputs[1]).reshape(-1)
            if not (math.isclose(alpha, params.leaky_alpha, rel_tol=1e-6) and floor.size == 1
                    and math.isclose(float(floor[0]), params.activation_floor, rel_tol=1e-6)):
                raise _wrong_model(path, f"op {op.index} is followed by a leaky ReLU α {alpha} clipped at "
                                         f"{floor.tolist()}, expected α {params.leaky_alpha} at {params.activation_floor}")
    if pos != len(ops):
        raise _wrong_model(path, f"it has {len(ops) - pos} more ops after the last convolution ({ops[pos].name}...)")
    return weights


def check_frontend(path: str | os.PathLike, config: SpeechMelConfig = SpeechMelConfig()) -> None:
    """Checks that ``melspectrogram.tflite`` computes what :func:`speech_mel_spectrogram` computes:
    the same windowed DFT kernels (as power), hop and mel filterbank (to 1e-5), the same dB floor.

    Raises:
        WeightsNotFoundError: the file is missing, damaged, or holds a different frontend.
    """
    path = str(path)
    model = TFLiteWeights.read(path)

    def wrong(problem: str) -> WeightsNotFoundError:
        return WeightsNotFoundError(
            f"{path}: not the frontend of Google's speech embedding model that tfaudio reproduces: {problem}. "
            f"Fix: use openWakeWord's {MELSPEC_FILE} ({RELEASE_FILES[MELSPEC_FILE][0]}) or remove this file."
        )

    convs = [op for op in model.operators if op.name == "CONV_2D"]
    matmuls = [op for op in model.operators if op.name in ("BATCH_MATMUL", "FULLY_CONNECTED")]
    if len(convs) != 2 or len(matmuls) != 1:
        raise wrong(f"expected two STFT convolutions and one mel matmul, found ops {sorted(set(model.op_names()))}")
    if any(op.options["stride_w"] != config.hop_samples for op in convs):
        raise wrong(f"its STFT hop is {[op.options['stride_w'] for op in convs]}, expected {config.hop_samples}")
    kernels = [model.constant(op.inputs[1]).reshape(config.num_spectrogram_bins, -1) for op in convs]
    n = np.arange(config.fft_length)
    window = np.zeros(config.fft_length)
    start = config.window_offset
    window[start : start + config.window_samples] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(config.window_samples) / config.window_samples)
    angle = 2 * np.pi * np.outer(np.arange(config.num_spectrogram_bins), n) / config.fft_length
    expected = sorted([np.abs(np.cos(angle) * window), np.abs(np.sin(angle) * window)], key=lambda a: a.sum())
    got = sorted([np.abs(k) for k in kernels], key=lambda a: a.sum())
    if any(g.shape != e.shape or np.abs(g - e).max() > 1e-5 for g, e in zip(got, expected)):
        raise wrong("its STFT kernels are not a 400-sample periodic Hann window centred in 512-sample frames")
    mel = model.constant(matmuls[0].inputs[1])
    ours = slaney_mel_weight_matrix(config)
    if mel.shape != ours.shape or np.abs(mel - ours).max() > 1e-5:
        raise wrong(f"its mel filterbank {list(mel.shape)} differs from 32 Slaney bands 60-3800 Hz")
    floors = [float(model.constant(op.inputs[1]).reshape(-1)[0]) for op in model.operators
              if op.name == "SUB" and model.tensors[op.inputs[1]].buffer]
    if floors != [config.top_db]:
        raise wrong(f"its dB floor is {floors}, expected max - {config.top_db}")


def _candidates() -> list[pathlib.Path]:
    """Folders searched for the two files, in order: the shared assets, then the cache."""
    out = []
    shared = shared_dir()
    if shared is not None:
        out.append(shared.joinpath(*_SUBDIR))
    out.append(cache_dir().joinpath(*_SUBDIR))
    return out


# ---- the backbone --------------------------------------------------------------------------------
class SpeechEmbeddingBackbone(Backbone):
    """Google's speech embedding model: 16 kHz speech → one 96-d embedding per 0.782 s window every
    80 ms (see the module docstring for the data flow).

    Build it with :meth:`from_pretrained` (finds or downloads the weights) or :meth:`from_tflite`;
    the constructor alone gives random weights.

    Args:
        params: the architecture and frontend settings (the model's own by default).
        source: where the weights came from (kept for :meth:`spec` and messages).

    Example:
        >>> backbone = SpeechEmbeddingBackbone.from_pretrained()
        >>> backbone.frames(tf.zeros([16000])).shape                 # 1 s of silence
        TensorShape([4, 96])
    """

    contract = InputContract(sample_rate=16000, frame_seconds=0.782, hop_seconds=0.08, embedding_dim=96,
                             min_seconds=0.782, window_seconds=1.0)
    frontend_scope = "frontend"

    def __init__(self, params: SpeechEmbeddingParams | None = None, *, source: str | None = None):
        self.params = params or SpeechEmbeddingParams()
        p, fe = self.params, self.params.frontend
        if p.time_stride != p.patch_hop_frames:
            raise ValueError(f"the body steps {p.time_stride} frames per output, but windows are "
                             f"{p.patch_hop_frames} frames apart: the fully convolutional body needs them equal.")
        expected = (fe.sample_rate, p.patch_samples, p.patch_hop_samples, p.embedding_dim)
        if expected != (self.contract.sample_rate, self.contract.min_samples, self.contract.hop_samples,
                        self.contract.embedding_dim):
            self.contract = InputContract(fe.sample_rate, p.patch_samples / fe.sample_rate,
                                          p.patch_hop_samples / fe.sample_rate, p.embedding_dim,
                                          p.patch_samples / fe.sample_rate, window_seconds=1.0)
        self.source = source
        self.requested_source: str | None = source
        self.body = build_body(self.params)
        self._fingerprint: str | None = None

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_tflite(cls, path: str | os.PathLike, *, check_frontend_file: bool = True,
                    **kwargs: Any) -> SpeechEmbeddingBackbone:
        """The model with the weights of ``embedding_model.tflite`` (float32, or quantised: dequantised).

        Args:
            path: the ``embedding_model.tflite`` file, or a folder that has it.
            check_frontend_file: when ``melspectrogram.tflite`` sits beside it, check that it is the
                frontend this port computes.
            **kwargs: constructor arguments.

        Raises:
            WeightsNotFoundError: missing, truncated or damaged files, or other models.
        """
        path = pathlib.Path(path).expanduser()
        if path.is_dir():
            if not (path / EMBEDDING_FILE).is_file():
                raise WeightsNotFoundError(
                    f"{path}: a folder without {EMBEDDING_FILE}. Fix: put openWakeWord's {EMBEDDING_FILE} "
                    f"({RELEASE_FILES[EMBEDDING_FILE][0]}) and {MELSPEC_FILE} ({RELEASE_FILES[MELSPEC_FILE][0]}) there."
                )
            path = path / EMBEDDING_FILE
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: no such file. Fix: download {RELEASE_FILES[EMBEDDING_FILE][0]} "
                                       f"and pass its path (or its folder).")
        backbone = cls(source=str(path), **kwargs)
        weights = read_tflite_weights(path, backbone.params)
        if check_frontend_file and (path.parent / MELSPEC_FILE).is_file():
            check_frontend(path.parent / MELSPEC_FILE, backbone.params.frontend)
        backbone.assign_weights(weights)
        return backbone

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike | None = None, **kwargs: Any) -> SpeechEmbeddingBackbone:
        """The pretrained model, from the first place that has it.

        Order: ``source`` (``embedding_model.tflite`` or its folder; an error if it fails) →
        ``models/speech_embedding/`` under the shared assets ($TFAUDIO_SHARED or ``../shared``) →
        ``$TFAUDIO_CACHE/models/speech_embedding/`` → a download of openWakeWord's v0.5.1 release files
        into that cache folder, checked against their sha256 (refused when ``TFAUDIO_OFFLINE=1``).

        Raises:
            WeightsNotFoundError: nothing worked; the message lists the places tried and where to put
                the files.
        """
        if source is not None:
            backbone = cls.from_tflite(source, **kwargs)
            backbone.requested_source = os.fspath(source)
            return backbone
        folders = _candidates()
        for folder in folders:
            if (folder / EMBEDDING_FILE).is_file():
                backbone = cls.from_tflite(folder / EMBEDDING_FILE, **kwargs)
                backbone.requested_source = None  # found by search: re-resolve on another machine
                return backbone
        cache = folders[-1]
        tried = "".join(f"  - {f / EMBEDDING_FILE} (no such file)\n" for f in folders)
        where = (f"Fix: put {EMBEDDING_FILE} ({RELEASE_FILES[EMBEDDING_FILE][0]}) and {MELSPEC_FILE} "
                 f"({RELEASE_FILES[MELSPEC_FILE][0]}) in {cache}, or pass their folder "
                 f"(`--backbone speech-embedding:/folder`, SpeechEmbeddingBackbone.from_pretrained('/folder'))")
        if is_offline():
            raise WeightsNotFoundError(f"no speech embedding weights found, and TFAUDIO_OFFLINE=1 forbids "
                                       f"downloading them. Tried:\n{tried}{where}; or unset TFAUDIO_OFFLINE.")
        try:
            for name, (url, sha256) in RELEASE_FILES.items():
                fetch(url, cache / name, sha256=sha256)
        except TfaudioError as err:
            raise WeightsNotFoundError(f"no speech embedding weights found (tried:\n{tried}) and the download "
                                       f"failed: {err}\n{where}.") from err
        backbone = cls.from_tflite(cache / EMBEDDING_FILE, **kwargs)
        backbone.requested_source = None
        return backbone

    def assign_weights(self, weights: list[tuple[np.ndarray, np.ndarray]]) -> SpeechEmbeddingBackbone:
        """Sets the convolutions' (kernel ``[kh, kw, in, out]``, bias) in layer-table order.

        Raises:
            TfaudioError: a count or shape does not match the body.
        """
        convs = [layer for layer in self.body.layers if isinstance(layer, keras.layers.Conv2D)]
        if len(weights) != len(convs):
            raise TfaudioError(f"expected {len(convs)} (kernel, bias) pairs, got {len(weights)}.")
        for layer, (kernel, bias) in zip(convs, weights):
            if tuple(layer.kernel.shape) != kernel.shape or tuple(layer.bias.shape) != bias.shape:
                raise TfaudioError(f"{layer.name}: expected kernel {tuple(layer.kernel.shape)} and bias "
                                   f"{tuple(layer.bias.shape)}, got {kernel.shape} and {bias.shape}.")
            layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        self._fingerprint = None
        return self

    # ---- identity --------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """``"speech-embedding-"`` + 16 hex digits over the settings and every weight."""
        if self._fingerprint is None:
            self._fingerprint = weights_digest("speech-embedding", self.params, self.body.weights)
        return self._fingerprint

    def spec(self) -> dict[str, Any]:
        """``{"name": "speech-embedding", "source": ...}`` (None when :meth:`from_pretrained` found
        the weights by its search)."""
        return {"name": "speech-embedding", "source": self.requested_source}

    @property
    def variables(self) -> list[tf.Variable]:
        return list(self.body.variables)

    # ---- computation -----------------------------------------------------------------------------
    def num_embeddings(self, lengths) -> tf.Tensor:
        """Embeddings per clip of ``lengths`` samples ``[B]`` (int32; at least one each)."""
        c = self.contract
        extra = tf.maximum(tf.cast(lengths, tf.int32) - c.min_samples, 0)
        return 1 + (extra + c.hop_samples - 1) // c.hop_samples

    def log_mel(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """A zero-padded batch → (the body's input ``[B, F, 32]``: each clip's mel spectrogram over its
        padded span, scaled ``x / 10 + 2``; the embeddings per clip ``[B]``).

        Args:
            waveforms: float32 ``[B, S]`` at 16 kHz in [-1, 1].
            lengths: int32 ``[B]`` valid samples per clip (<= S).
        """
        p = self.params
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        lengths = tf.cast(tf.convert_to_tensor(lengths), tf.int32)
        counts = self.num_embeddings(lengths)  # [B]
        target = p.patch_samples + (tf.reduce_max(counts) - 1) * p.patch_hop_samples
        width = tf.shape(waveforms)[1]
        x = tf.where(tf.sequence_mask(lengths, width), waveforms, 0.0)[:, :target]  # [B, min(S, S')]
        x = tf.pad(x, [[0, 0], [0, target - tf.shape(x)[1]]])  # [B, S']
        frames = p.patch_frames + (counts - 1) * p.patch_hop_frames  # [B] each clip's own mel frames
        mel = speech_mel_spectrogram(x, frames, p.frontend)  # [B, F, 32]
        return mel * p.mel_scale + p.mel_offset, counts

    def embed_log_mel(self, log_mel, training: bool = False) -> tf.Tensor:
        """The body over scaled log-mel ``[B, F, 32]`` → ``[B, 1 + (F - 76) // 8, 96]`` (window ``p``
        covers frames ``8p .. 8p + 75``)."""
        out = self.body(tf.expand_dims(log_mel, -1), training=training)  # [B, P, 1, 96]
        return out[:, :, 0, :]

    # ---- fine-tuning (tfaudio.tasks.finetune) ----------------------------------------------------
    finetune_feature_kind = "log_mel"
    finetune_speed = 0.1  # speech: speed perturbation (Backbone.finetune_speed)

    def finetune_features(self, waveforms, lengths) -> tuple[tf.Tensor, tf.Tensor]:
        """(scaled log-mel ``[B, F, 32]``, embeddings per clip ``[B]``): :meth:`log_mel`."""
        with tf.name_scope(self.frontend_scope):
            return self.log_mel(waveforms, lengths)

    def finetune_frames(self, features, state, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        embeddings = self.embed_log_mel(features, training=training)  # [B, P, 96]
        mask = tf.sequence_mask(state, tf.shape(embeddings)[1])  # [B, P]
        return tf.where(tf.expand_dims(mask, -1), embeddings, 0.0), mask

    def finetune_blocks(self) -> list[tuple[str, list[tf.Variable]]]:
        """One block per convolution (``conv0`` … ``conv19``), from the input."""
        return [(layer.name, list(layer.trainable_weights)) for layer in self.body.layers
                if isinstance(layer, keras.layers.Conv2D)]

    def graph_outputs(self, waveforms, lengths) -> dict[str, tf.Tensor]:
        """A zero-padded batch as plain TF ops → ``{"embeddings" [B, P, 96], "mask" [B, P]}``."""
        with tf.name_scope(self.frontend_scope):
            log_mel, counts = self.log_mel(waveforms, lengths)  # [B, F, 32], [B]
        embeddings = self.embed_log_mel(log_mel)  # [B, P, 96]
        mask = tf.sequence_mask(counts, tf.shape(embeddings)[1])  # [B, P]
        return {"embeddings": tf.where(tf.expand_dims(mask, -1), embeddings, 0.0), "mask": mask}

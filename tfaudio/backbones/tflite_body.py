"""A backbone's body as fixed-shape float32 TFLite models run by XNNPACK: the ``tflite`` extraction engine.

Two kinds of body, told apart by the backbone's methods:

- ``patches`` (YAMNet): log-mel patches ``[N, 96, 64]`` → embeddings ``[N, 1024]``; run in chunks of
  :data:`PATCH_ROWS` patches, the last one padded with zero patches.
- ``log_mel`` (EfficientAT): a clip's log-mel ``[T, 128]`` and its frame count → frame embeddings
  ``[T / 32, D]``; run :data:`LOG_MEL_ROWS` clips at a time, ``T`` padded with zero frames up to a
  length bucket (:data:`LOG_MEL_BUCKET_SECONDS`) and the rows with zero clips. The body masks every
  frame past a clip's count before each convolution that mixes time (and explicit zero padding makes
  the stride-2 layers independent of ``T``), so padding changes no valid frame. Batches longer than
  the last bucket run TensorFlow's float32 body (the same numbers to float32 rounding). A batch whose
  clips all fill the bucket (fixed-length data sets: ESC-50's 5 s clips) runs a second model of the
  same shape converted with those full counts as constants: the converter folds the masks away
  (masking with all-true masks changes nothing), and mn04's body ran ~1.3x as fast per clip that way
  (1.58 → 1.20 ms per 5 s clip, one thread; embeddings equal to float32 rounding, ~3e-6 of ~14).

Why fixed shapes: tflite-runtime 2.14's XNNPACK ran mn04's body converted with dynamic dimensions
(resized at run time) ~10x slower than the same body converted for one shape. Why
several one-thread interpreters (``workers``, one per core up to 4) instead of one with several threads:
an interpreter's own threads spin-wait, and on 2 busy cores 2 threads ran YAMNet's body 6x slower
than 1, while two one-thread interpreters working on halves of a batch ran ~1.8x one
(BENCHMARKS.md "Extraction engines: TFLite body (mn04)").

Converting costs ~5-10 s per shape, so the converted models are kept on disk,
``<cache>/engines/<backbone>-<key>.tflite`` (``$TFAUDIO_CACHE``, see :func:`tfaudio.datasets.cache_dir`),
keyed by the backbone's fingerprint, the kind, the shape and TensorFlow's version; written atomically;
a file that no interpreter can load is converted again.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.backbones.efficientat.backbone import output_frames
from tfaudio.datasets import cache_dir
from tfaudio.errors import TfaudioError
from tfaudio.interpreter import tflite_interpreter
from tfaudio.io.atomic import atomic_write_bytes
from tfaudio.log import native_stderr_silenced

__all__ = ["TFLiteBody", "body_kind", "PATCH_ROWS", "LOG_MEL_ROWS", "LOG_MEL_BUCKET_SECONDS"]

#: YAMNet patches per interpreter call.
PATCH_ROWS = 16
#: EfficientAT clips per interpreter call (a cache batch of 16 is two calls, run side by side).
LOG_MEL_ROWS = 8
#: Clip lengths (s) whose log-mel frame counts are the fixed shapes of EfficientAT's body: a batch is
#: padded to the first bucket that holds it (few shapes, so few conversions).
LOG_MEL_BUCKET_SECONDS = (1, 2, 3, 5, 10, 15, 20, 30)


def body_kind(backbone: Any) -> str | None:
    """``"patches"`` (a Keras body on log-mel patches: YAMNet), ``"log_mel"`` (a body on log-mel frames
    and counts: EfficientAT), or None (no body this engine can run)."""
    if callable(getattr(backbone, "embed_patches", None)):
        return "patches"
    if callable(getattr(backbone, "_body_outputs", None)):
        return "log_mel"
    return None


def _convert(fn, specs: list[tf.TensorSpec], variables: list[tf.Variable]) -> bytes:
    concrete = tf.function(fn, input_signature=specs, autograph=False).get_concrete_function()
    # A bare module holding the variables, not the Keras model: the converter saves what it is given
    # as a SavedModel first, and serialising the Keras model took ~50 of mn04's ~57 s of conversion.
    holder = tf.Module()
    holder.variables_ = list(variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with native_stderr_silenced():
        return converter.convert()


class _Shape:
    """``workers`` one-thread interpreters of one converted model (one fixed shape), each with its lock."""

    def __init__(self, model: bytes, workers: int):
        self.interpreters = [tflite_interpreter(model_content=model, num_threads=1) for _ in range(workers)]
        self.locks = [threading.Lock() for _ in range(workers)]
        details = self.interpreters[0].get_input_details()
        # inputs by rank (features first, then counts): the converter does not keep their order
        self.inputs = [d["index"] for d in sorted(details, key=lambda d: len(d["shape"]), reverse=True)]
        self.output = self.interpreters[0].get_output_details()[0]["index"]

    def run(self, worker: int, *arrays: np.ndarray) -> np.ndarray:
        it = self.interpreters[worker]
        with self.locks[worker]:
            for index, array in zip(self.inputs, arrays):
                it.set_tensor(index, array)
            it.invoke()
            return it.get_tensor(self.output).copy()


class TFLiteBody:
    """A backbone's body run by fixed-shape TFLite models on ``workers`` one-thread interpreters.

    Args:
        backbone: YAMNet or EfficientAT (see :func:`body_kind`).
        workers: interpreters (and threads) run side by side (default: one per core, at most 4).
        directory: where converted models are kept (default ``<cache>/engines``).

    Raises:
        TfaudioError: a backbone without a body this engine runs.

    Example:
        >>> body = TFLiteBody(EfficientATBackbone.from_pretrained("mn04_as"))
        >>> emb, mask = body.log_mel(features, counts)     # [B, T, 128], [B] -> [B, F, 384], [B, F]
    """

    def __init__(self, backbone: Any, *, workers: int | None = None, directory: str | os.PathLike | None = None):
        self.backbone = backbone
        self.kind = body_kind(backbone)
        if self.kind is None:
            raise TfaudioError(f"the tflite engine runs YAMNet's and EfficientAT's bodies, not "
                               f"{type(backbone).__name__}. Fix: --engine auto or float32.")
        self.workers = int(workers or max(1, min(os.cpu_count() or 1, 4)))
        self.directory = pathlib.Path(directory) if directory is not None else cache_dir() / "engines"
        self._shapes: dict[tuple[int, ...], _Shape] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tfaudio-tflite")
        fe = backbone.params.frontend
        self.mels = fe.num_mel_bins
        if self.kind == "log_mel":
            frames_per_second = fe.sample_rate / fe.hop_samples
            self.buckets = tuple(int(round(s * frames_per_second)) for s in LOG_MEL_BUCKET_SECONDS)
            self.halvings = backbone.params.num_halvings

    # ---- models ---------------------------------------------------------------------------------
    def model_path(self, shape: tuple[int, ...], full: bool = False) -> pathlib.Path:
        """Where the model of ``shape`` is kept (``full``: the one for batches of full-length clips, see
        the module doc): named by the backbone, keyed by what changes its bytes."""
        kind = self.kind + ("-full" if full else "")
        key = "|".join([self.backbone.fingerprint, kind, "x".join(map(str, shape)), tf.__version__])
        name = type(self.backbone).__name__.replace("Backbone", "").lower()
        return self.directory / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.tflite"

    def _model(self, shape: tuple[int, ...], full: bool = False) -> bytes:
        path = self.model_path(shape, full)
        if path.is_file():
            data = path.read_bytes()
            try:
                tflite_interpreter(model_content=data, num_threads=1)
                return data
            except Exception:  # noqa: BLE001 - a damaged or foreign file: convert it again
                pass
        bb = self.backbone
        if self.kind == "patches":
            specs = [tf.TensorSpec(list(shape), tf.float32)]
            data = _convert(lambda p: bb.body(p, training=False)[0], specs, bb.body.weights)
        elif full:  # every clip fills the bucket: the counts are constants, and the masks fold away
            specs = [tf.TensorSpec(list(shape), tf.float32)]
            data = _convert(lambda x: bb.body([x, tf.fill(shape[:1], shape[1])], training=False)[0], specs,
                            bb.body.weights)
        else:
            specs = [tf.TensorSpec(list(shape), tf.float32), tf.TensorSpec(shape[:1], tf.int32)]
            data = _convert(lambda x, n: bb.body([x, n], training=False)[0], specs, bb.body.weights)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        except OSError:  # a read-only cache: convert in every process
            pass
        return data

    def _shape(self, shape: tuple[int, ...], full: bool = False) -> _Shape:
        # keyed by the weights too: a backbone trained or re-assigned in place must not run stale models
        key = (self.backbone.fingerprint, full, *shape)
        with self._lock:
            if key not in self._shapes:
                self._shapes[key] = _Shape(self._model(shape, full), self.workers)
            return self._shapes[key]

    def _run_chunks(self, shape: tuple[int, ...], chunks: list[tuple[np.ndarray, ...]],
                    full: bool = False) -> list[np.ndarray]:
        runner = self._shape(shape, full)
        if len(chunks) == 1:
            return [runner.run(0, *chunks[0])]
        futures = [self._pool.submit(runner.run, i % self.workers, *c) for i, c in enumerate(chunks)]
        return [f.result() for f in futures]

    # ---- bodies ---------------------------------------------------------------------------------
    def patches(self, patches) -> np.ndarray:
        """YAMNet: patches ``[N, 96, 64]`` → embeddings ``[N, 1024]`` (float32)."""
        x = np.ascontiguousarray(patches, np.float32)
        n = x.shape[0]
        if n == 0:
            return np.zeros([0, self.backbone.embedding_dim], np.float32)
        rows = PATCH_ROWS
        pad = -n % rows
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], np.float32)])
        chunks = [(x[i : i + rows],) for i in range(0, len(x), rows)]
        return np.concatenate(self._run_chunks((rows,) + x.shape[1:], chunks))[:n]

    def log_mel(self, features, counts) -> tuple[np.ndarray, np.ndarray] | None:
        """EfficientAT: zero-padded log-mel ``[B, T, 128]`` and frame counts ``[B]`` → (frame embeddings
        ``[B, F, D]``, mask ``[B, F]``), ``F = ceil(T / 32)``; None when ``T`` is past the last bucket."""
        x = np.asarray(features, np.float32)
        counts = np.asarray(counts, np.int32)
        b, t = x.shape[0], x.shape[1]
        bucket = next((k for k in self.buckets if k >= t), None)
        if bucket is None:
            return None
        frames = output_frames(t, self.halvings)
        mask = np.arange(frames)[None, :] < output_frames(counts, self.halvings)[:, None]  # [B, F]
        if b == 0:
            return np.zeros([0, frames, self.backbone.embedding_dim], np.float32), mask
        rows = LOG_MEL_ROWS
        pad_rows = -b % rows
        if pad_rows or bucket > t:  # (a copy of the batch: only when there is something to pad)
            x = np.pad(x, [(0, pad_rows), (0, bucket - t), (0, 0)])
        # all clips fill the bucket: the model without masks (rows are independent: the padding rows'
        # outputs, dropped below, change nothing)
        full = bool(np.all(counts == bucket))
        n = np.concatenate([counts, np.ones([pad_rows], np.int32)])
        chunks = [(np.ascontiguousarray(x[i : i + rows]),) + (() if full else (n[i : i + rows],))
                  for i in range(0, len(x), rows)]
        emb = np.concatenate(self._run_chunks((rows, bucket, self.mels), chunks, full))[:b, :frames]
        return emb, mask

    def close(self) -> None:
        self._pool.shutdown(wait=False)


"""Extraction engines: how a backbone's body runs when embeddings are extracted (cache, ``embed``, ``tag``).

=============  =====================================================================================
engine         what runs the body
=============  =====================================================================================
``float32``    TensorFlow's default float32 kernels (the reference; exact).
``bfloat16``   TensorFlow with oneDNN's automatic bfloat16 rewrite (grappler's
               ``auto_mixed_precision_onednn_bfloat16``), only on CPUs with native bfloat16
               (``avx512_bf16`` or ``amx_bf16``): where bfloat16 is emulated (VNNI-only CPUs) it ran
               EfficientAT's body at 0.4x float32.
``tflite``     the body (YAMNet's, EfficientAT's) as fixed-shape float32 TFLite models run by XNNPACK
               on one-thread interpreters side by side (:mod:`tfaudio.backbones.tflite_body`), in the
               interpreter tfaudio picks (LiteRT, else tflite-runtime, else TensorFlow's).
=============  =====================================================================================

``auto`` (:func:`choose_engine`) picks by what this CPU and this Python have, at run time: ``bfloat16``
for YAMNet where it is native (never emulated: VNNI-only CPUs ran it slower); else ``tflite`` for
YAMNet and EfficientAT where a TFLite interpreter can be imported; else ``float32``. Why ``tflite``:
in every run of ``benchmarks/extraction_speed.py`` its extraction took 15-20 % less CPU than
``float32``'s (the body in XNNPACK); in wall time it was faster when the 2 cores were not saturated by
other jobs, and within the noise, either way, when they were (load 5-7). Its cost: converting each
body shape once per cache folder (~5-10 s, kept in ``<cache>/engines``). A requested engine
the machine or the backbone cannot run falls back to ``float32`` with the reason (never an error):
caches stay usable on every machine. Every engine other than ``float32`` is part of the embedding
cache's namespace (:class:`~tfaudio.data.embedding_cache.EmbeddingCache`), so embeddings of different
engines are never mixed; ``float32`` keeps the namespaces caches had before.

Gate: an engine's embeddings stay within cosine 0.999 of float32's on every frame, or downstream
5-fold CV accuracy stays within 0.5 point. ``tflite`` passes the cosine gate (float32 arithmetic:
cosine 1.00000); YAMNet in bfloat16 does not (single frames down to 0.995, mean 0.9997) but passes
the CV alternative (0.975 on esc50-subset in both; BENCHMARKS.md "Extraction engines: downstream
accuracy"). Speed (BENCHMARKS.md "Extraction engines", "Extraction engines: TFLite body (mn04)",
"Extraction speed against 7d92a63"): YAMNet's body ran 1.5x float32 in bfloat16 and ~1.2x (CPU time)
in TFLite; EfficientAT mn04's body 0.4-0.6x in bfloat16 and 1.4x (one thread) to 1.8x (two one-thread
interpreters) in TFLite. The bodies are only part of extraction (decoding, resampling and the
frontends are the rest); what made the cache's extraction ~2x as fast as at 7d92a63 is mostly its
long-lived pipeline (:mod:`tfaudio.data.clip_stream`), which every engine shares. On longer jobs the
CPU that is left is decoding, resampling, the frontends and the body in about equal parts; every engine
shares four cuts of it (BENCHMARKS.md "Extraction engines: decoding, frontend kernels, TFLite body
variants (mn04)"): 16-bit FLAC decoded by miniaudio where installed (:mod:`tfaudio.io.flac_fast`,
~1.5x as fast, the same samples), the frontends traced with :func:`tfaudio.signal.melspec.fast_kernels`
in the pipeline (YAMNet's 1.5x, EfficientAT's 1.6x as fast; features equal to ~5e-7), 16 and 8 kHz
files resampled in the stream's graph, and EfficientAT's TFLite body without masks when every clip of
a batch fills its length bucket (~1.2-1.3x). No ``int8`` engine: mn04's body fully quantized for
XNNPACK (calibrated on a fixed generated set, or even on real clips) ran ~18x slower than float32 in
tflite-runtime 2.14 and its frame embeddings fell to cosine ~0.45 of float32's: far from the gate, so it
was measured and dropped.

The library's :class:`~tfaudio.data.embedding_cache.EmbeddingCache` (and ``run_embed``, ``tag_files``)
defaults to ``float32`` (exact); the commands (``train``, ``cv``, ``evaluate``, ``tune``, ``embed``,
``tag``) default to ``auto`` (``--engine``). ``tfaudio embed`` resolves the engine on the Beam driver
(the namespace is that engine's) and workers that cannot run it fail the job rather than write float32
embeddings there; ``tfaudio tag`` runs its whole graph with :func:`scorer_engine`.

Threads: the bfloat16 rewrite is set in the calling thread's function options only, so functions other
threads trace meanwhile stay float32; the TFLite body is one per backbone, each of its interpreters
locked per call.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context as tf_context

from tfaudio.backbones.registry import entry_of
from tfaudio.backbones.tflite_body import TFLiteBody, body_kind
from tfaudio.backbones.yamnet.backbone import _scatter
from tfaudio.errors import TfaudioError
from tfaudio.interpreter import interpreter_backend

__all__ = ["ENGINES", "EngineChoice", "cpu_features", "choose_engine", "engine_functions", "bfloat16_native",
           "scorer_engine", "bfloat16_rewrite", "graph_rewrite"]

#: What ``--engine`` accepts.
ENGINES = ("auto", "float32", "bfloat16", "tflite")
#: YAMNet patches per bfloat16 body call. Measured (one process, 320 patches, CPU time per patch):
#: 16 → 0.72 ms, 32 → 0.57 ms, 64 → 0.49 ms, 160 → 0.47 ms: oneDNN's bfloat16 kernels want rows.
BF16_PATCH_ROWS = 64
#: CPU flags (``/proc/cpuinfo``) that make bfloat16 native.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = pathlib.Path("/proc/cpuinfo")


def cpu_features(path: str | os.PathLike | None = None) -> frozenset[str]:
    """The instruction-set flags of this CPU (``flags`` of ``/proc/cpuinfo``; empty where there is none,
    e.g. macOS: then no engine that needs one is chosen)."""
    try:
        text = pathlib.Path(path or _CPUINFO).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def bfloat16_native(features: frozenset[str] | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512_BF16 or AMX)."""
    features = cpu_features() if features is None else features
    return any(f in features for f in BF16_FLAGS)


def _tflite_available() -> bool:
    try:
        interpreter_backend()
    except TfaudioError:
        return False
    return True


def _runs(backbone: Any, engine: str) -> bool:
    """Whether ``engine`` can run ``backbone`` (its registry entry's ``engines``; any, for no backbone)."""
    if backbone is None:
        return True
    entry = entry_of(backbone)
    return entry is not None and engine in entry.engines


def _auto(backbone: Any) -> str:
    """What ``auto`` runs ``backbone`` with on a CPU with native bfloat16 (its entry's ``auto_engine``)."""
    if backbone is None:
        return "bfloat16"
    entry = entry_of(backbone)
    return entry.auto_engine if entry is not None else "float32"


def _has_tflite_body(backbone: Any) -> bool:
    return _runs(backbone, "tflite") and body_kind(backbone) is not None


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    """The engine that runs (``name``), what was asked (``requested``) and why (``reason``)."""

    name: str
    requested: str
    reason: str

    @property
    def fell_back(self) -> bool:
        return self.requested not in ("auto", self.name)

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def choose_engine(requested: str | None = "auto", *, backbone: Any = None,
                  features: frozenset[str] | None = None) -> EngineChoice:
    """The engine to extract ``backbone``'s embeddings with.

    Args:
        requested: one of :data:`ENGINES` (None: ``$TFAUDIO_ENGINE`` or ``auto``).
        backbone: the backbone (``tflite`` needs one with a TFLite body: YAMNet).
        features: CPU flags (default: :func:`cpu_features`).

    Raises:
        TfaudioError: an unknown engine name.
    """
    requested = (requested or os.environ.get("TFAUDIO_ENGINE") or "auto").lower()
    if requested not in ENGINES:
        raise TfaudioError(f"engine {requested!r} is not known. Fix: choose one of {', '.join(ENGINES)}.")
    features = cpu_features() if features is None else features
    tflite_ok = backbone is None or _has_tflite_body(backbone)
    if requested == "float32":
        return EngineChoice("float32", requested, "requested")
    bf16_ok = _runs(backbone, "bfloat16")
    if requested == "bfloat16":
        if not bf16_ok:
            return EngineChoice("float32", requested, f"the bfloat16 engine does not run {type(backbone).__name__}")
        if bfloat16_native(features):
            return EngineChoice("bfloat16", requested, "requested; the CPU has native bfloat16")
        return EngineChoice("float32", requested, "the CPU has no AVX512_BF16/AMX (bfloat16 would be emulated, slower)")
    if requested == "tflite":
        if not tflite_ok:
            return EngineChoice("float32", requested, f"{type(backbone).__name__} has no TFLite body")
        if not _tflite_available():
            return EngineChoice("float32", requested, "no TFLite interpreter could be imported")
        return EngineChoice("tflite", requested, "requested")
    if _auto(backbone) == "bfloat16" and bfloat16_native(features):
        return EngineChoice("bfloat16", requested, "the CPU has native bfloat16 (AVX512_BF16/AMX)")
    if backbone is not None and _has_tflite_body(backbone):
        if _tflite_available():
            return EngineChoice("tflite", requested, "TFLite/XNNPACK runs this body faster than TensorFlow")
        return EngineChoice("float32", requested, "no TFLite interpreter could be imported")
    return EngineChoice("float32", requested, "no faster engine on this CPU / backbone")


# ---- running ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def graph_rewrite(option: str) -> Iterator[None]:
    """Grappler's rewrite ``option`` (a ``RewriterConfig`` field, e.g. ``"auto_mixed_precision"``) for the
    functions first run inside, in this thread only.

    Grappler reads its options when a function is instantiated (first run), from the calling thread's
    function-call options (a ``ConfigProto`` TensorFlow keeps per thread). Setting the rewrite there,
    instead of in the process-wide ``tf.config.optimizer`` options, keeps it out of functions that other
    threads trace meanwhile (Beam's worker threads, a server's request threads): those stay float32.
    """

    ctx = tf_context.context()
    before = ctx.function_call_options
    config = config_pb2.ConfigProto()
    config.ParseFromString(before.config_proto_serialized)
    setattr(config.graph_options.rewrite_options, option, rewriter_config_pb2.RewriterConfig.ON)
    ctx.function_call_options = tf_context.FunctionCallOptions(executor_type=before.executor_type, config_proto=config)
    try:
        yield
    finally:
        ctx.function_call_options = before


def bfloat16_rewrite() -> contextlib.AbstractContextManager[None]:
    """oneDNN's automatic bfloat16 for the functions first run inside, in this thread only
    (:func:`graph_rewrite`)."""
    return graph_rewrite("auto_mixed_precision_onednn_bfloat16")


def _tflite_functions(backbone: Any, model_dir: str | os.PathLike | None = None) -> tuple[Callable, Callable]:
    """``(frames, from_features)`` with the body on :class:`~tfaudio.backbones.tflite_body.TFLiteBody`
    (one per backbone, shared by every caller and thread; converted models kept in ``model_dir`` by the
    first) and the frontend in TensorFlow."""
    body = backbone.__dict__.get("_tfaudio_tflite_body")
    if body is None:
        body = backbone.__dict__["_tfaudio_tflite_body"] = TFLiteBody(backbone, directory=model_dir)

    if body.kind == "patches":  # YAMNet

        def from_features(features, counts):
            features = np.asarray(features, np.float32)
            counts = np.asarray(counts, np.int32)
            mask = np.arange(features.shape[1])[None, :] < counts[:, None]
            emb = np.zeros([features.shape[0], features.shape[1], backbone.embedding_dim], np.float32)
            emb[mask] = body.patches(features[mask])
            return tf.constant(emb), tf.constant(mask)

        def frames(waveforms, lengths=None):
            waveforms, lengths = backbone.check_batch(waveforms, lengths)
            patches, mask = backbone._batch_fn(waveforms, lengths)
            mask = np.asarray(mask)
            emb = np.zeros([mask.shape[0], mask.shape[1], backbone.embedding_dim], np.float32)
            emb[mask] = body.patches(np.asarray(patches))
            return tf.constant(emb), tf.constant(mask)

        return frames, from_features

    frontend = backbone.__dict__.get("_tfaudio_tflite_frontend")
    if frontend is None:
        signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
        frontend = backbone.__dict__["_tfaudio_tflite_frontend"] = tf.function(
            backbone.frontend, input_signature=signature, autograph=False)

    def from_features(features, counts):  # EfficientAT
        out = body.log_mel(features, counts)
        if out is None:  # longer than the last length bucket: TensorFlow's body
            return backbone.batch_frames_from_features(features, counts)
        return tf.constant(out[0]), tf.constant(out[1])

    def frames(waveforms, lengths=None):
        waveforms, lengths = backbone.check_batch(waveforms, lengths)
        if waveforms.shape[0] == 0:
            return backbone.batch_frames(waveforms, lengths)
        log_mel, counts = frontend(waveforms, lengths)
        return from_features(log_mel.numpy(), counts.numpy())

    return frames, from_features


def _bfloat16_functions(backbone: Any) -> tuple[Callable, Callable]:
    """Fresh traces of the backbone's graph code, first run (instantiated) inside the bfloat16 rewrite;
    the backbone's own float32 functions are left alone."""

    fns = backbone.__dict__.get("_tfaudio_bf16_fns")
    patch_body = hasattr(backbone, "_body_call")  # YAMNet: a Keras body on log-mel patches
    if fns is None:
        frames_fn = tf.function(backbone.graph_frames, autograph=False, reduce_retracing=True)
        if patch_body:
            fe = backbone.params.frontend
            spec = tf.TensorSpec([None, fe.patch_frames, fe.num_mel_bins], tf.float32)
            body_fn = tf.function(backbone._body_call, input_signature=[spec], autograph=False)
        else:  # EfficientAT: log-mel frames and counts -> outputs, plain TF ops
            body_fn = tf.function(backbone._body_outputs, autograph=False, reduce_retracing=True)
        fns = backbone.__dict__["_tfaudio_bf16_fns"] = (frames_fn, body_fn)
    frames_fn, body_fn = fns

    def frames(waveforms, lengths=None):
        waveforms, lengths = backbone.check_batch(waveforms, lengths)
        with bfloat16_rewrite():
            return frames_fn(waveforms, lengths)

    def from_features(features, counts):
        features = tf.convert_to_tensor(features, tf.float32)
        counts = tf.convert_to_tensor(counts, tf.int32)
        with bfloat16_rewrite():
            if not patch_body:
                out = body_fn(features, counts)
                return out["embeddings"], out["mask"]

            mask = tf.sequence_mask(counts, tf.shape(features)[1])
            patches = tf.boolean_mask(features, mask)
            n = int(patches.shape[0])
            rows = BF16_PATCH_ROWS
            parts = [body_fn(patches[i : i + rows]) for i in range(0, max(n, 1), rows)]
            out = _scatter(tf.concat([p[0] for p in parts], 0), tf.concat([p[1] for p in parts], 0), mask)
            return out["embeddings"], out["mask"]

    return frames, from_features


def engine_functions(backbone: Any, engine: EngineChoice | str, *,
                     model_dir: str | os.PathLike | None = None) -> tuple[Callable, Callable]:
    """``(batch_frames, batch_frames_from_features)`` of ``backbone`` run by ``engine`` (same signatures
    and outputs as the backbone's own methods; ``float32`` returns them). ``model_dir``: where the
    ``tflite`` engine keeps its converted models (default ``<cache>/engines``)."""
    name = engine.name if isinstance(engine, EngineChoice) else str(engine)
    if name == "float32":
        return backbone.batch_frames, backbone.batch_frames_from_features
    if name == "bfloat16":
        return _bfloat16_functions(backbone)
    if name == "tflite":
        if not _has_tflite_body(backbone):
            raise TfaudioError(f"the tflite engine runs YAMNet's and EfficientAT's bodies, not "
                               f"{type(backbone).__name__}. Fix: --engine auto or float32.")
        return _tflite_functions(backbone, model_dir)
    raise TfaudioError(f"engine {name!r} is not known. Fix: choose one of {', '.join(ENGINES)}.")


def scorer_engine(scorer: Any, requested: str | None = "float32") -> EngineChoice:
    """Makes ``scorer`` (a :class:`~tfaudio.tasks.clip_scorer.ClipScorer`, e.g. ``tfaudio tag``'s tagger)
    run its waveform graph with the engine chosen for its backbone, and returns the choice.

    ``bfloat16`` traces the scorer's whole graph (frontend, body, the backbone's own classifier) afresh
    inside the bfloat16 rewrite; ``tflite`` runs embedding extraction only (YAMNet's body, not its
    classifier or the head), so a scorer falls back to ``float32`` with that reason.

    Args:
        scorer: the scorer; its traced ``batch`` graph is replaced (``float32``: left as it is).
        requested: one of :data:`ENGINES` (None: ``$TFAUDIO_ENGINE`` or ``auto``).
    """
    backbone = getattr(scorer, "backbone", None)
    choice = choose_engine(requested, backbone=backbone)
    if backbone is None and choice.name != "float32":  # a fine-tuned Keras model: no backbone to pick for
        return EngineChoice("float32", choice.requested, "the model has no backbone an engine can run")
    if choice.name == "tflite":
        return EngineChoice("float32", choice.requested, "the tflite engine extracts embeddings only; scoring runs "
                                                         "the whole graph in TensorFlow")
    if choice.name == "bfloat16":
        run, signature = scorer._graph("batch")
        traced = tf.function(run, input_signature=signature, autograph=False)

        def batch(audio, lengths):
            with bfloat16_rewrite():
                return traced(audio, lengths)

        scorer._traced["batch"] = batch
    return choice


@functools.lru_cache(maxsize=1)
def describe_cpu() -> str:
    """``"avx512_bf16, avx512_vnni, amx_bf16"``: the flags engines look at that this CPU has."""
    flags = cpu_features()
    wanted = ("avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni", "avx512f", "avx2")
    return ", ".join(f for f in wanted if f in flags) or "none of " + ", ".join(wanted)

"""What a model costs: parameters, multiply-accumulates per second of audio, peak activation memory,
file sizes of its exports, its labels and sample rate (``tfaudio info``).

How the numbers are counted
---------------------------
**MACs** (multiply-accumulates) come from the Keras layers' static shapes, for one example (the batch
axis left out), by :func:`layer_macs`:

- ``Conv1D/2D/3D``: output positions × output channels × kernel size × input channels / groups
- ``DepthwiseConv2D``: output positions × input channels × depth multiplier × kernel size
- ``SeparableConv``: its depthwise part + its 1×1 pointwise part
- ``Conv…Transpose``: input positions × input channels × output channels × kernel size
- ``Dense``: leading positions × input features × units
- a nested Keras model: the sum of its layers

Batch norm, activations, pooling, reshapes and the final mean are element-wise or reductions: no
multiply-accumulates are counted for them (they add under 1 % for YAMNet). A layer with weights of a
type not listed (an LSTM, attention...) is reported in ``uncounted`` instead of being guessed.

YAMNet's frontend is pure TF, not Keras layers; its two matmuls are counted from their matrices
(:func:`frontend_macs_per_frame`): the windowed DFT ``[window=400] @ [400, 2K]`` and the mel
projection ``[K] @ [K, 64]`` per 10 ms STFT frame, ``K`` being the DFT bins the mel filters use. That
is the frontend of the TFLite exports (``melspec.tflite_compatible``); TensorFlow graphs outside it
compute the same magnitudes with an RFFT, roughly 5 k real MACs per 512-point frame instead of 188 k,
so for them the frontend's share (20 M of YAMNet's 164 M MACs per second) is an upper bound.

*Per second of audio* is the steady state: frontend MACs per STFT frame × frames per second (100)
+ body and head MACs per patch × patches per second (1 / 0.48 s). *Per 10 s clip* counts the frames
and patches a 10 s clip really gives after YAMNet's padding (1008 frames, 20 patches).

The counts are checked in the tests against TensorFlow's own registered FLOP statistics (what
``tf.compat.v1.profiler`` sums; 2 FLOPs per MAC for ``Conv2D``, ``DepthwiseConv2dNative`` and
``MatMul``): YAMNet's body is 69.2 M MACs per 0.96 s patch.

**Peak activation memory** for a clip: the layers run one after another in topological order; a
tensor lives from the layer that makes it to the last layer that reads it (model outputs to the end);
the peak is the largest total size of the tensors alive while one layer runs, weights excluded. For
a chain of layers that is the largest input + output of one layer. The frontend (waveform → frames →
DFT → magnitude → mel → log-mel → patches), the body (over all the clip's patches at once, as the
exported SavedModel runs it) and the head run in turn; the peak is the largest of the three. Runtimes
that fuse batch norm and ReLU into the convolution (TFLite) need less; im2col workspaces need more.

One file of ~590 lines on purpose: the profiler's counting (Keras layers, traced graphs), memory model
and report text serve one command (``tfaudio info``).
"""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.python.framework import ops

from tfaudio.backbones.registry import entry_of, spec_string
from tfaudio.errors import TfaudioError
from tfaudio.inference.loader import load_model
from tfaudio.signal import melspec
from tfaudio.signal.melspec import tflite_compatible

__all__ = [
    "model_info",
    "format_info",
    "count_macs",
    "layer_macs",
    "peak_activation_bytes",
    "frontend_macs_per_frame",
    "graph_macs",
    "export_files",
    "to_json",
]

#: Clip length of the activation-memory figure, in seconds.
CLIP_SECONDS = 10.0
_MAC_OPS = ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "MatMul", "BatchMatMul", "BatchMatMulV2",
            "BatchMatMulV3", "Conv2DBackpropInput")


# ---- MACs ----------------------------------------------------------------------------------------
def _single_shape(shape) -> tuple | None:
    if isinstance(shape, list):  # a layer with several inputs
        return tuple(shape[0]) if len(shape) == 1 else None
    return tuple(shape)


def _known(dims: Sequence) -> bool:
    return all(d is not None for d in dims)


def layer_macs(layer) -> int | None:
    """Multiply-accumulates of one call of ``layer`` on one example (batch axis excluded).

    Args:
        layer: a built ``tf_keras`` layer of a functional model (its input and output shapes known).

    Returns:
        the count; 0 for layers without multiply-accumulate work (batch norm, activations, pooling,
        reshapes, dropout, input); None when it cannot be counted (a weighted layer of another type,
        or shapes unknown beyond the batch axis).

    Example:
        >>> conv = keras.layers.Conv2D(8, 3, padding="same")
        >>> model = keras.Sequential([keras.Input([10, 10, 4]), conv])
        >>> layer_macs(conv)   # 10 x 10 positions x 8 filters x 3 x 3 x 4 inputs
        28800
    """

    layers = keras.layers
    if isinstance(layer, keras.Model):
        counts = count_macs(layer)
        return None if any(v is None for v in counts.values()) else int(sum(counts.values()))
    try:
        in_shape, out_shape = _single_shape(layer.input_shape), _single_shape(layer.output_shape)
    except (AttributeError, RuntimeError):  # not called, or called several times with other shapes
        return None if layer.weights else 0
    conv_types = (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.SeparableConv1D, layers.SeparableConv2D)
    if isinstance(layer, (layers.Dense, *conv_types, layers.DepthwiseConv2D)):
        if in_shape is None or out_shape is None or not _known(in_shape[1:]) or not _known(out_shape[1:]):
            return None
        if isinstance(layer, layers.Dense):
            return int(np.prod(in_shape[1:-1], dtype=np.int64) * in_shape[-1] * layer.units)
        first = getattr(layer, "data_format", "channels_last") == "channels_first"
        in_ch = in_shape[1] if first else in_shape[-1]
        out_ch = out_shape[1] if first else out_shape[-1]
        in_pos = int(np.prod(in_shape[2:] if first else in_shape[1:-1], dtype=np.int64))
        out_pos = int(np.prod(out_shape[2:] if first else out_shape[1:-1], dtype=np.int64))
        kernel = int(np.prod(layer.kernel_size))
        if isinstance(layer, layers.DepthwiseConv2D):
            return out_pos * in_ch * layer.depth_multiplier * kernel
        if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
            mid = in_ch * layer.depth_multiplier
            return out_pos * mid * kernel + out_pos * mid * out_ch
        if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)):
            return in_pos * in_ch * out_ch * kernel
        return out_pos * out_ch * kernel * in_ch // getattr(layer, "groups", 1)
    no_macs = (layers.BatchNormalization, layers.LayerNormalization, layers.Embedding)
    if isinstance(layer, no_macs) or not layer.weights:
        return 0
    return None


def count_macs(model) -> dict[str, int | None]:
    """MACs per example of each layer of a Keras model, ``{layer name: count or None}``, in layer
    order (see :func:`layer_macs`). A nested model counts as one entry (the sum of its layers)."""
    return {layer.name: layer_macs(layer) for layer in model.layers}


def _sum_counted(counts: dict[str, int | None]) -> tuple[int, list[str]]:
    return int(sum(v for v in counts.values() if v)), [k for k, v in counts.items() if v is None]


def frontend_macs_per_frame(config=None) -> dict[str, int]:
    """MACs of YAMNet's log-mel frontend per STFT frame: ``{"dft": ..., "mel": ...}``.

    The DFT is one matmul of each 400-sample frame with a ``[400, 2K]`` windowed DFT matrix (real and
    imaginary parts of the ``K`` bins inside the mel range, as :func:`tfaudio.signal.melspec.log_mel_spectrogram`
    computes it); the mel projection multiplies the ``K`` magnitudes by a ``[K, 64]`` matrix.

    Args:
        config: a :class:`tfaudio.signal.melspec.LogMelConfig` (default YAMNet's).
    """

    config = config or melspec.LogMelConfig()
    used = np.flatnonzero(melspec.mel_weight_matrix(config).any(axis=1))
    bins = int(used[-1]) + 1 - int(used[0])
    return {"dft": config.window_samples * 2 * bins, "mel": bins * config.num_mel_bins}


def graph_macs(concrete_function, scope: str | None = None) -> dict[str, int]:
    """MACs by op type of a traced TF function, from TensorFlow's registered FLOP statistics (the
    numbers ``tf.compat.v1.profiler`` sums): FLOPs / 2 of the convolution and matmul ops. Needs
    static shapes. An independent check of :func:`count_macs`.

    Args:
        concrete_function: a traced ``tf.function``.
        scope: count only the ops under this top-level name scope (e.g. a backbone's ``frontend_scope``).
    """

    graph = concrete_function.graph
    out: dict[str, int] = {}
    for node in graph.as_graph_def().node:
        if node.op not in _MAC_OPS or (scope and not node.name.startswith(scope + "/")):
            continue
        try:
            flops = ops.get_stats_for_node_def(graph, node, "flops").value
        except (ValueError, KeyError):  # no statistics registered, or unknown shapes
            continue
        if flops:
            out[node.op] = out.get(node.op, 0) + int(flops) // 2
    return out


# ---- activation memory ---------------------------------------------------------------------------
def _tensor_bytes(tensor, batch: int) -> int:
    shape = list(tensor.shape)
    if shape and shape[0] is None:
        shape[0] = batch
    if not _known(shape):
        raise TfaudioError(f"tensor {getattr(tensor, 'name', tensor)} has an unknown shape {tuple(tensor.shape)}: "
                           "cannot size its activations. Fix: build the model with fixed shapes past the batch axis.")
    itemsize = np.dtype(tensor.dtype.as_numpy_dtype).itemsize
    return int(np.prod(shape, dtype=np.int64)) * itemsize


def peak_activation_bytes(model, batch: int = 1) -> tuple[int, str]:
    """The peak total size of live activations when ``model`` runs layer by layer on ``batch``
    examples: ``(bytes, name of the layer running at the peak)`` (definition in the module doc).

    Args:
        model: a functional ``tf_keras`` model with static shapes past the batch axis.
        batch: the batch size (e.g. the patches of a clip).
    """

    member = set(getattr(model, "_network_nodes", ()))
    steps: list[tuple[str, list, list, int]] = []  # (layer, inputs, outputs, extra bytes inside)
    for layer in model.layers:
        for index, node in enumerate(layer._inbound_nodes):
            if member and f"{layer.name}_ib-{index}" not in member:
                continue
            inputs = list(node.keras_inputs)
            outputs = tf.nest.flatten(node.outputs)
            extra = 0
            if hasattr(layer, "layers") and hasattr(layer, "_network_nodes"):  # a nested model
                inner, _ = peak_activation_bytes(layer, batch)
                extra = max(0, inner - sum(_tensor_bytes(t, batch) for t in inputs + outputs))
            steps.append((layer.name, inputs, outputs, extra))
    born: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}
    for i, (_, inputs, outputs, _) in enumerate(steps):
        for t in outputs:
            born.setdefault(id(t), i)
            size[id(t)] = _tensor_bytes(t, batch)
        for t in inputs:
            born.setdefault(id(t), i)
            size[id(t)] = _tensor_bytes(t, batch)
            last[id(t)] = i
    for t in tf.nest.flatten(model.outputs):
        last[id(t)] = len(steps)
    peak, where = 0, ""
    for i, (name, _, _, extra) in enumerate(steps):
        live = sum(n for key, n in size.items() if born[key] <= i <= last.get(key, born[key])) + extra
        if live > peak:
            peak, where = live, name
    return peak, where


def _frontend_tensors(config, num_samples: int) -> list[tuple[str, int]]:
    """(name, float32 bytes) of the frontend's tensors, in order, for a clip of ``num_samples``."""

    patches = melspec.num_patches(num_samples, config)
    padded = config.min_samples + (patches - 1) * config.patch_hop_samples
    frames = 1 + (padded - config.window_samples) // config.hop_samples
    bins = frontend_macs_per_frame(config)["mel"] // config.num_mel_bins
    four = 4
    return [
        ("waveform", padded * four),
        ("frames", frames * config.window_samples * four),
        ("dft", frames * 2 * bins * four),
        ("magnitude", frames * bins * four),
        ("mel", frames * config.num_mel_bins * four),
        ("log_mel", frames * config.num_mel_bins * four),
        ("patches", patches * config.patch_frames * config.num_mel_bins * four),
    ]


def _chain_peak(tensors: list[tuple[str, int]]) -> tuple[int, str]:
    pairs = [(a[1] + b[1], f"frontend/{b[0]}") for a, b in zip(tensors[:-1], tensors[1:])]
    return max(pairs)


# ---- files ---------------------------------------------------------------------------------------
def _dir_bytes(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def export_files(folder: str | os.PathLike, max_depth: int = 3) -> list[dict[str, Any]]:
    """The model and export files under ``folder``: ``[{"path", "kind", "bytes"}]``.

    Kinds: ``"saved_model"`` (a folder with ``saved_model.pb``; its total size), ``"tflite"``,
    ``"keras"`` (``.keras`` / ``.h5`` files), ``"config"`` (``tfaudio.json``, ``labels.txt``). Paths are
    relative to ``folder``; folders are searched ``max_depth`` levels deep.
    """
    root = pathlib.Path(folder)
    if root.is_file():
        kind = "tflite" if root.suffix == ".tflite" else "keras" if root.suffix in (".keras", ".h5") else "file"
        return [{"path": root.name, "kind": kind, "bytes": root.stat().st_size}]
    out: list[dict[str, Any]] = []

    def visit(path: pathlib.Path, depth: int) -> None:
        if (path / "saved_model.pb").is_file():
            out.append({"path": str(path.relative_to(root)) if path != root else ".", "kind": "saved_model",
                        "bytes": _dir_bytes(path)})
            return
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue  # temporary folders of atomic writes
            if child.is_dir() and depth < max_depth:
                visit(child, depth + 1)
            elif child.is_file():
                kind = {".tflite": "tflite", ".keras": "keras", ".h5": "keras"}.get(child.suffix)
                if kind is None and child.name in ("tfaudio.json", "labels.txt"):
                    kind = "config"
                if kind is None and child.name == "backbone_weights.npz":
                    kind = "weights"  # a fine-tuned backbone's (tfaudio finetune)
                if kind:
                    out.append({"path": str(child.relative_to(root)), "kind": kind, "bytes": child.stat().st_size})

    visit(root, 0)
    return out


# ---- the report ----------------------------------------------------------------------------------
def _params(model) -> dict[str, int]:
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    total = int(model.count_params())
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def _patch_costs(backbone, head=None, clip_seconds: float = CLIP_SECONDS) -> dict[str, Any]:
    """The ``"patches"`` cost model (YAMNet): MACs and activation memory of a Keras ``body`` run once
    per log-mel patch of ``params.frontend``, and of an optional head on its patch embeddings."""

    config = backbone.params.frontend
    front = frontend_macs_per_frame(config)
    body_counts = count_macs(backbone.body)
    body, uncounted = _sum_counted(body_counts)
    head_macs, head_uncounted = _sum_counted(count_macs(head)) if head is not None else (0, [])
    frames_per_second = config.sample_rate / config.hop_samples
    patches_per_second = 1.0 / config.patch_hop_seconds
    per_second = {
        "frontend": int(round(sum(front.values()) * frames_per_second)),
        "backbone": int(round(body * patches_per_second)),
        "head": int(round(head_macs * patches_per_second)),
    }
    num_samples = int(round(clip_seconds * config.sample_rate))
    patches = melspec.num_patches(num_samples, config)
    tensors = _frontend_tensors(config, num_samples)
    frames = tensors[1][1] // (config.window_samples * 4)
    stages = [_chain_peak(tensors), peak_activation_bytes(backbone.body, patches)]
    if head is not None:
        stages.append(peak_activation_bytes(head, patches))
    peak, where = max(stages)
    return {
        "macs": {
            "per_second": int(sum(per_second.values())),
            "per_second_by_part": per_second,
            "frontend_per_frame": front,
            "frontend_form": "DFT matmul, as in TFLite exports (TF graphs use an RFFT: far fewer MACs)",
            "backbone_per_patch": body,
            "head_per_patch": head_macs,
            "frames_per_second": frames_per_second,
            "patches_per_second": patches_per_second,
            "clip_seconds": clip_seconds,
            "per_clip": int(frames * sum(front.values()) + patches * (body + head_macs)),
            "uncounted": uncounted + head_uncounted,
        },
        "activations": {
            "clip_seconds": clip_seconds,
            "patches": int(patches),
            "peak_bytes": int(peak),
            "peak_at": where,
            "definition": "largest total size of live float32 activations when the layers run one by one "
                          "in topological order over all the clip's patches (weights excluded)",
        },
    }


def _backbone_params(backbone) -> dict[str, int] | None:
    for attr in ("body", "model"):
        model = getattr(backbone, attr, None)
        if model is not None and hasattr(model, "count_params"):
            try:
                return _params(model)
            except ValueError:  # an unbuilt model
                return None
    variables = {id(v): v for v in getattr(backbone, "variables", ())}
    if not variables:
        return None
    total = int(sum(int(np.prod(v.shape)) for v in variables.values()))
    trainable = int(sum(int(np.prod(v.shape)) for v in variables.values() if getattr(v, "trainable", False)))
    return {"total": total, "trainable": trainable, "non_trainable": total - trainable}


def _export_info(loaded) -> dict[str, Any]:
    variables = {id(v): v for v in getattr(loaded.model, "variables_", ())} or \
        {id(v): v for v in loaded.model.variables}
    total = int(sum(int(np.prod(v.shape)) for v in variables.values()))
    meta = loaded.metadata
    backbone = meta.get("backbone") or {}
    return {
        "kind": "export",
        "backbone": f"{backbone.get('name')}:{backbone['source']}" if backbone.get("source") else backbone.get("name"),
        "sample_rate": int(loaded.sample_rate),
        "model_sample_rate": meta.get("sample_rate"),
        "labels": list(loaded.labels),
        "parameters": {"total": total},
        "macs": None,
        "activations": None,
        "note": "an export folder: MACs and activation memory need the model folder (tfaudio.json + head.keras)",
    }


def model_info(model: Any, *, exports: Iterable[str | os.PathLike] = (), clip_seconds: float = CLIP_SECONDS,
               **load_kwargs: Any) -> dict[str, Any]:
    """Parameters, MACs per second of audio, peak activation memory for a clip, export file sizes,
    labels and sample rate of a model (see the module doc for how each is counted).

    Args:
        model: a saved classifier folder (``tfaudio train``), an export folder (``tfaudio export``),
            a backbone name (``"yamnet"``, ``"efficientat:mn04_as"``; its own AudioSet classes), an
            :class:`~tfaudio.tasks.audio_classifier.AudioClassifier` or a backbone.
        exports: more folders or files whose exports to list (e.g. the ``tfaudio export -o`` folder).
        clip_seconds: clip length of the activation-memory figure (default 10 s).
        **load_kwargs: passed to :func:`tfaudio.inference.loader.load_model` (e.g. ``backbone=``).

    Returns:
        ``{"model", "kind", "backbone", "sample_rate", "labels", "num_labels", "parameters": {"backbone",
        "head", "total"}, "macs": {"per_second", "per_second_by_part", ...}, "activations": {"peak_bytes",
        "peak_at", ...}, "files": [{"path", "kind", "bytes"}]}``.

    Example:
        >>> info = model_info("saved_models/dogcat", exports=["exports/dogcat"])
        >>> info["macs"]["per_second"] / 1e6, info["activations"]["peak_bytes"] / 1e6
    """

    loaded = load_model(model, tagging=isinstance(model, str) and not pathlib.Path(model).exists(), **load_kwargs)
    kind, obj, source = loaded.kind, loaded.model, loaded.source
    info: dict[str, Any] = {"model": source}
    if kind == "export":
        info.update(_export_info(loaded))
    elif kind in ("classifier", "tagger", "backbone"):
        backbone = loaded.backbone
        head = obj.head_model_ if kind == "classifier" else None
        backbone_params = _backbone_params(backbone)
        head_params = _params(head) if head is not None else {"total": 0, "trainable": 0}
        info.update({
            "kind": "classifier" if kind == "classifier" else "audio-tagging",
            "backbone": spec_string(backbone),
            "sample_rate": int(backbone.contract.sample_rate),
            "labels": list(loaded.labels),
            "parameters": {
                "backbone": backbone_params["total"] if backbone_params else None,
                "head": head_params["total"],
                "total": (backbone_params["total"] if backbone_params else 0) + head_params["total"],
                "trainable": head_params["trainable"] + (backbone_params["trainable"] if backbone_params else 0),
            },
        })
        info.update(_costs(backbone, head, clip_seconds))
        tuned = getattr(obj, "fine_tuned_", None) if kind == "classifier" else None
        if tuned:
            info["fine_tuned"] = {"recipe": (tuned.get("recipe") or {}).get("name"),
                                  "crop_seconds": tuned.get("crop_seconds"), "frozen_blocks": tuned.get("frozen_blocks"),
                                  "interpolate": tuned.get("interpolate", 1.0)}
    else:
        raise TfaudioError(f"{source}: tfaudio info does not handle {kind} models yet. Fix: pass a folder saved by "
                           "`tfaudio train`, an export folder or a backbone name (yamnet, efficientat:mn04_as).")
    info["num_labels"] = len(info["labels"]) if info.get("labels") is not None else None
    files = []
    folders = [source] if kind in ("classifier", "export") and pathlib.Path(str(source)).exists() else []
    for folder in [*folders, *exports]:
        folder = pathlib.Path(folder)
        if not folder.exists():
            raise TfaudioError(f"{folder}: no such export folder or file. Fix: pass the folder `tfaudio export -o` "
                               "wrote, or a .tflite / SavedModel path.")
        for f in export_files(folder):
            files.append({**f, "path": str(folder / f["path"]) if f["path"] != "." else str(folder)})
    info["files"] = files
    return info


def _costs(backbone, head, clip_seconds: float) -> dict[str, Any]:
    """By the backbone's registered cost model (``BackboneEntry.cost_model``; unregistered: ``graph``)."""
    entry = entry_of(backbone)
    if entry is not None and entry.cost_model == "patches":
        return _patch_costs(backbone, head, clip_seconds)
    return _graph_costs(backbone, head, clip_seconds)


def _graph_costs(backbone, head, clip_seconds: float) -> dict[str, Any]:
    """MACs of any backbone from its traced graph (TensorFlow's FLOP statistics of the convolutions and
    matmuls in ``graph_outputs`` on one clip of ``clip_seconds``; the head on the clip's frames).

    The frontend (the ops in the backbone's ``frontend_scope``) is traced in the form its TFLite
    export takes (``Backbone.tflite_stft``): a DFT matmul is counted, an RFFT is not (TensorFlow has
    no FLOP statistics for it; it costs far less than the matmul would).
    """

    rate = int(backbone.contract.sample_rate)
    n = int(round(clip_seconds * rate))
    stft = getattr(backbone, "tflite_stft", "dft")
    scope = getattr(backbone, "frontend_scope", None)
    fn = tf.function(lambda x: backbone.graph_outputs(x, tf.constant([n], tf.int32)), autograph=False)
    try:
        with tflite_compatible(stft != "rfft"):
            concrete = fn.get_concrete_function(tf.TensorSpec([1, n], tf.float32))
        by_op = graph_macs(concrete)
        front = sum(graph_macs(concrete, scope).values()) if scope else 0
    except Exception as err:  # noqa: BLE001 - a backbone whose graph cannot be traced statically
        return {"macs": None, "activations": None, "note": f"MACs could not be counted ({type(err).__name__})"}
    frames = backbone.num_frames(n)
    head_macs, uncounted = _sum_counted(count_macs(head)) if head is not None else (0, [])
    total = sum(by_op.values())
    per_clip = int(total + frames * head_macs)
    return {
        "macs": {
            "per_second": int(round(per_clip / clip_seconds)),
            "per_second_by_part": {"frontend": int(round(front / clip_seconds)),
                                   "backbone": int(round((total - front) / clip_seconds)),
                                   "head": int(round(frames * head_macs / clip_seconds))},
            "backbone_by_op": by_op,
            "frontend_form": ("RFFT (not counted) + mel matmul, as in TFLite exports" if stft == "rfft"
                              else "DFT matmul, as in TFLite exports") if scope else None,
            "clip_seconds": clip_seconds,
            "per_clip": per_clip,
            "frames": int(frames),
            "head_per_frame": int(head_macs),
            "uncounted": uncounted,
            "method": "TensorFlow's FLOP statistics of the traced graph (2 FLOPs per MAC), one clip",
        },
        "activations": None,
        "note": "activation memory is counted for YAMNet-like Keras bodies only",
    }


# ---- text ----------------------------------------------------------------------------------------
def _human(n: float) -> str:
    """165492267 → "165 M"."""
    for prefix in ("", "k", "M", "G"):
        if abs(n) < 1000 or prefix == "G":
            return f"{n:.3g} {prefix}".rstrip()
        n /= 1000
    return str(n)  # pragma: no cover


def _bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def format_info(info: dict[str, Any], max_labels: int = 12) -> str:
    """The report of :func:`model_info` as readable text (what ``tfaudio info`` prints)."""
    lines = [f"model        {info['model']}", f"kind         {info['kind']}"]
    if info.get("backbone"):
        lines.append(f"backbone     {info['backbone']}")
    rate = info.get("sample_rate")
    lines.append(f"sample rate  {f'{rate} Hz' if rate else 'unknown'}"
                 + (f" (the model runs at {info['model_sample_rate']} Hz; resampled in its graph)"
                    if info.get("model_sample_rate") not in (None, info.get("sample_rate")) else ""))
    tuned = info.get("fine_tuned")
    if tuned:
        lines.append(f"fine-tuned   the backbone trained too (recipe {tuned['recipe']}, "
                     f"{tuned['crop_seconds']:g} s windows, first {tuned['frozen_blocks']} block(s) frozen"
                     + (f", weights {tuned['interpolate']:g} of the way from the pretrained ones, head refit"
                        if tuned.get("interpolate", 1.0) != 1.0 else "") + ")")
    labels = info.get("labels")
    if labels is not None:
        shown = " | ".join(labels[:max_labels]) + (f", ... ({len(labels) - max_labels} more)" if len(labels) > max_labels else "")
        lines.append(f"labels       {len(labels)}: {shown}")
    p = info["parameters"]
    parts = [f"{k} {p[k]:,}" for k in ("backbone", "head") if p.get(k) is not None]
    lines.append(f"parameters   {p['total']:,}" + (f" ({', '.join(parts)})" if parts else "")
                 + (f"; trainable {p['trainable']:,}" if p.get("trainable") is not None else ""))
    macs = info.get("macs")
    if macs:
        by = macs["per_second_by_part"]
        lines.append(f"MACs         {_human(macs['per_second'])} per second of audio "
                     f"(frontend {_human(by['frontend'])}, backbone {_human(by['backbone'])}, head {_human(by['head'])})")
        if "backbone_per_patch" in macs:
            lines.append(f"             {_human(macs['backbone_per_patch'])} per 0.96 s patch in the backbone; "
                         f"{_human(macs['per_clip'])} for a {macs['clip_seconds']:g} s clip")
        else:
            lines.append(f"             {_human(macs['per_clip'])} for a {macs['clip_seconds']:g} s clip "
                         f"({macs['frames']} frames)")
        if macs.get("frontend_form"):
            lines.append(f"             frontend counted as: {macs['frontend_form']}")
        if macs.get("uncounted"):
            lines.append(f"             not counted: {', '.join(macs['uncounted'])}")
    act = info.get("activations")
    if act:
        lines.append(f"activations  peak {_bytes(act['peak_bytes'])} for a {act['clip_seconds']:g} s clip "
                     f"({act['patches']} patches; at {act['peak_at']})")
    if info.get("note"):
        lines.append(f"note         {info['note']}")
    files = info.get("files") or []
    if files:
        lines.append("files")
        width = max(len(f["path"]) for f in files)
        for f in files:
            lines.append(f"  {f['path']:<{width}}  {f['kind']:<11}  {_bytes(f['bytes']):>10}")
    return "\n".join(lines)


def to_json(info: dict[str, Any]) -> str:
    """``info`` as JSON (what ``tfaudio info --json`` prints)."""
    return json.dumps(info, indent=1, default=lambda x: x.item() if hasattr(x, "item") else str(x))


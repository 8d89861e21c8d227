"""Export a trained classifier as a TFLite file for Android (MediaPipe Tasks / TFLite Task Library).

Graph (builtin ops only, batch 1 as the Android task APIs need; :meth:`tfaudio.tasks.clip_scorer.ClipScorer.window`)::

    waveform [1, window_samples] float32 at the backbone's rate   ([1, None] with whole_clip=True)
      YAMNet (16 kHz): → log-mel frontend (pure TF, name scope "frontend") [P, 96, 64] → body [P, 1024]
      EfficientAT (32 kHz, 1 s): → log-mel frontend ("frontend"; RFFT2D) [100, 128] → body [4, 384]
      Wav2Vec2 / HuBERT: → normalise, conv encoder, transformer (masked)   [F, H]
      → head → frame scores                                                        [P or F, C]
      → mean over frames                                                           scores [1, C]
      fine-tuned Wav2Vec2 / HuBERT: → model → logits → softmax                     scores [1, C]

Wav2Vec2 / HuBERT classifiers and fine-tuned models convert with TFLite builtin ops only (tf 2.16;
no Flex / Select TF ops). ``float32`` is tested against the Keras scores (1e-4); ``float16``,
``dynamic`` and ``int8`` convert and run on the tiny test models (largest score change 2e-4 / 8e-4 /
2.5e-3 there; int8 quantizes the waveform normalisation too: check its accuracy on real data before
shipping it). Nothing blocks conversion now; the op that had blocked it was a new-axis
``StridedSlice`` (``x[..., None]`` on a dynamic shape: "TF Select ops: StridedSlice"), which tfaudio's
Wav2Vec2 code avoids, and the positional convolution's grouped convolution is written as one
CONV_2D per group. Should a later TensorFlow or checkpoint bring an op TFLite lacks, the error of
:func:`export_tflite` names it.

Quantization variants:

- ``float32``: no quantization.
- ``float16``: float16 weights (dequantized once at load time), float32 compute.
- ``dynamic``: dynamic-range quantization of the body and the head: int8 weights, activations
  quantized on the fly.
- ``int8``: integer quantization with a representative data set: the middle of the backbone int8,
  float ends (its first convolutions, its last blocks and the head, float16-stored weights) chosen by
  the export so that, on half of the calibration windows, top-1 agreement with the float graph reaches
  0.99 and the mean largest score change stays under 0.03; waveform input and score output stay float32
  (:mod:`tfaudio.export.int8` explains why plain full-integer YAMNet agreed on only ~0.4 of the windows
  of 11 classes, and why top-1 alone is not enough).
- ``int8_full``: every op after the frontend int8, int8 waveform input and int8 score output, for
  accelerators that need full-integer models; its agreement is recorded, and warned about, like int8's.

Both int8 variants record ``int8_agreement`` (top-1 agreement and mean largest score change on the half
of the calibration windows that did not choose them) in their ``tfaudio.json``, and warn below 0.95.

In ``dynamic`` and ``int8`` the log-mel frontend is kept float by construction: its ops live under
the ``frontend`` name scope, which is excluded from quantization (8-bit waveforms and 8-bit spectra
would lose the quiet bands that the log brings back), as in the official
``yamnet_classification.tflite``. Its two matrices (the windowed DFT and the mel filterbank) are
stored as float16 and dequantized once at load time, which keeps the file small (EfficientAT's
frontend has no DFT matrix: its STFT stays the RFFT2D builtin, see ``Backbone.tflite_stft`` and
BENCHMARKS.md). So an ``int8`` file
holds int8 kernels (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MEAN, SOFTMAX) after a float
frontend (FULLY_CONNECTED, SQRT, LOG...) and a QUANTIZE op: builtin ops only, never Select TF ops.

Model metadata as in the official ``yamnet_classification.tflite``: input ``audio_clip`` with
``AudioProperties`` (sample rate, 1 channel), output ``scores`` with ``FeatureProperties``, stats 0..1
and ``labels.txt`` attached as ``TENSOR_AXIS_LABELS`` (packed into the file as a zip entry).

One file of ~560 lines on purpose: conversion, its quantisation variants (and their measured agreement)
and the metadata written into the file are one export step.
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import flatbuffers
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from tfaudio.data.audio_converter import AudioConverter
from tfaudio.data.manifest import Manifest
from tfaudio.errors import TfaudioError
from tfaudio.export.flatbuffer import pack_model
from tfaudio.export.int8 import quantize_int8
from tfaudio.export.saved_model import METADATA_FILE, decision_metadata, decision_rule, export_metadata
from tfaudio.export.window import default_window
from tfaudio.io.atomic import atomic_write_bytes
from tfaudio.log import native_stderr_silenced, warn
from tfaudio.signal.melspec import tflite_compatible
from tfaudio.tasks.clip_scorer import clip_scorer

__all__ = ["export_tflite", "tflite_model", "read_metadata", "QUANTIZATIONS", "LABELS_FILE"]

#: Supported values of ``quantization``.
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8", "int8_full")
#: The variants calibrated on representative data (see :mod:`tfaudio.export.int8`).
INT8_VARIANTS = ("int8", "int8_full")
LABELS_FILE = "labels.txt"
#: At most this many windows calibrate int8 quantization.
MAX_CALIBRATION_WINDOWS = 300
# The oldest metadata parser that reads AudioProperties (what the official YAMNet file states).
_MIN_PARSER_VERSION = "1.3.0"
_METADATA_NAME = "TFLITE_METADATA"


# ---- the graph -----------------------------------------------------------------------------------
class _WindowModel:
    """``waveform [1, window] → scores [1, C]`` as one concrete function over a
    :class:`~tfaudio.tasks.clip_scorer.ClipScorer`.

    Only the variables are tracked (not the Keras models), so nothing else is traced.
    """

    def __init__(self, graph: Any, window_samples: int | None):
        self.module = tf.Module(name="tfaudio_tflite")
        self.module.variables_ = graph.variables

        def scores(waveform):
            return {"scores": graph.window(waveform)}  # [1, C]

        spec = tf.TensorSpec([1, window_samples], tf.float32, name="waveform")
        self.function = tf.function(scores, input_signature=[spec], autograph=False).get_concrete_function()


def _windows(waveform: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Non-overlapping windows ``[1, size]`` of a clip (the last one zero-padded)."""
    for start in range(0, max(len(waveform), 1), size):
        window = np.zeros([1, size], np.float32)
        chunk = waveform[start : start + size]
        window[0, : len(chunk)] = chunk
        yield window


def _representative_waveforms(data: Any, rate: int) -> Iterator[np.ndarray]:
    """Float32 waveforms at ``rate`` from arrays (taken to be at ``rate``), file paths or a Manifest,
    prepared by the one :class:`~tfaudio.data.audio_converter.AudioConverter`."""

    if isinstance(data, Manifest):
        data = data.paths
    if isinstance(data, (str, os.PathLike, np.ndarray)):
        data = [data]
    convert = AudioConverter(rate)
    for i, item in enumerate(data):
        yield convert(item, rate, where=None if isinstance(item, (str, os.PathLike)) else f"representative_data[{i}]")


def _calibration_set(data: Any, rate: int, window_samples: int) -> list[np.ndarray]:
    windows: list[np.ndarray] = []
    for audio in _representative_waveforms(data, rate):
        for window in _windows(audio, window_samples):
            windows.append(window)
            if len(windows) >= MAX_CALIBRATION_WINDOWS:
                return windows
    if not windows:
        raise TfaudioError("representative_data is empty. Fix: pass some real clips (e.g. the training "
                           "audio) for int8 calibration.")
    return windows


def _frontend_nodes(model: bytes, scope: str | None) -> list[str]:
    """Output tensor names of the ops in the frontend scope (the int8 quantizer leaves them float)."""

    graph = schema.Model.GetRootAsModel(model, 0).Subgraphs(0)
    names = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        for j in range(op.OutputsLength()):
            name = graph.Tensors(op.Outputs(j)).Name().decode()
            if scope and name.split(";")[0].startswith(scope + "/"):
                names.append(name)
    return names


#: Below this top-1 agreement with the float graph on the calibration windows, an int8 export warns.
INT8_AGREEMENT_WARNING = 0.95


def _warn_agreement(agreement: dict) -> None:
    """Warns when an int8 variant's recorded top-1 agreement is below :data:`INT8_AGREEMENT_WARNING`."""

    if agreement["top1"] < INT8_AGREEMENT_WARNING:
        same = int(round(agreement["top1"] * agreement["windows"]))
        warn(f"int8: the quantized model picks the float model's top class on only {same} of "
             f"{agreement['windows']} held-out calibration windows. Fix: export float16 or dynamic (close to "
             "float, half or a quarter of the float32 size), or check the int8 file on your own data before "
             "shipping it.")


def _convert(concrete, module, quantization: str, calibration: list[np.ndarray] | None, scope: str | None,
             float_function=None) -> tuple[bytes, dict | None]:
    """``(model, int8 record or None)``; the int8 variants (:mod:`tfaudio.export.int8`) choose their
    float tail on half of the calibration windows and record their agreement on the other half."""

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization in INT8_VARIANTS:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([w] for w in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
        # Calibrate, then quantize with the frontend's ops excluded: the same two steps as
        # tf.lite.experimental.QuantizationDebugger's selective quantization (denylisted_nodes).
        converter._experimental_calibrate_only = True
        calibrated = converter.convert()
        model, record, float_nodes = quantize_int8(calibrated, quantization, calibration, float_function,
                                                   _frontend_nodes(calibrated, scope))
        return _frontend_constants_to_float16(model, scope, float_nodes=float_nodes), record
    model = converter.convert()
    return (_frontend_constants_to_float16(model, scope) if quantization == "dynamic" else model), None


def _frontend_constants_to_float16(model: bytes, scope: str | None, min_elements: int = 1024,
                                   float_nodes: Sequence[str] = ()) -> bytes:
    """Stores the large constants read only by frontend ops as float16 + one DEQUANTIZE each.

    Used on the ``int8`` and ``dynamic`` models: their frontend stays float (int8 DFT / mel weights
    would need 8-bit spectra); float16 storage halves its two matrices (the windowed DFT and the mel
    filterbank), which the float16 model does for every weight. Dynamic-range int8 weights of the
    frontend are de-quantized back to float first. DEQUANTIZE of a constant runs once, at load time.
    The ops named in ``float_nodes`` (the float tail of an int8 model) are treated like the frontend's.
    """

    float_nodes = set(float_nodes)
    if not scope and not float_nodes:
        return model
    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    graph = m.subgraphs[0]
    consumers: dict[int, list] = {}
    for op in graph.operators:
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(op)

    def in_frontend(op) -> bool:
        names = [graph.tensors[int(t)].name.decode() for t in op.outputs]
        return all((scope and n.startswith(scope + "/")) or n in float_nodes for n in names)

    def float_values(tensor) -> np.ndarray | None:
        raw = m.buffers[tensor.buffer].data if 0 < tensor.buffer < len(m.buffers) else None
        if raw is None or len(raw) == 0:
            return None
        raw = np.asarray(raw, np.uint8).tobytes()
        if tensor.type == schema.TensorType.FLOAT32:
            return np.frombuffer(raw, "<f4")
        q = tensor.quantization
        if tensor.type == schema.TensorType.INT8 and q is not None and q.scale is not None:
            shape = [int(d) for d in tensor.shape]
            values = np.frombuffer(raw, np.int8).astype(np.float32).reshape(shape)
            axis = int(q.quantizedDimension) if len(q.scale) > 1 else 0
            bshape = [1] * len(shape)
            bshape[axis] = len(q.scale)
            zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else 0, np.float32)
            if zero.size > 1:
                zero = zero.reshape(bshape)
            return ((values - zero) * np.asarray(q.scale, np.float32).reshape(bshape)).ravel()
        return None

    targets = []
    for index, tensor in enumerate(graph.tensors):
        users = consumers.get(index)
        if users and all(in_frontend(op) for op in users):
            values = float_values(tensor)
            if values is not None and values.size >= min_elements:
                targets.append((index, values))
    if not targets:
        return model
    codes = [c.builtinCode for c in m.operatorCodes]
    if schema.BuiltinOperator.DEQUANTIZE in codes:
        opcode = codes.index(schema.BuiltinOperator.DEQUANTIZE)
        m.operatorCodes[opcode].version = max(m.operatorCodes[opcode].version, 3)
    else:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
        code.version = 3  # the float16-input version
        m.operatorCodes.append(code)
        opcode = len(m.operatorCodes) - 1
    readers: dict[int, int] = {}
    for sub in m.subgraphs:
        for t in sub.tensors:
            readers[t.buffer] = readers.get(t.buffer, 0) + 1
    dequantize_ops = []
    for index, values in targets:
        tensor = graph.tensors[index]
        if readers[tensor.buffer] == 1:  # the converter shares equal constants: free only our own
            m.buffers[tensor.buffer].data = None
        half = schema.BufferT()
        half.data = np.frombuffer(values.astype("<f2").tobytes(), np.uint8)
        m.buffers.append(half)
        source = schema.TensorT()
        source.shape, source.type = tensor.shape, schema.TensorType.FLOAT16
        source.buffer, source.name = len(m.buffers) - 1, tensor.name + b"_float16"
        graph.tensors.append(source)
        # buffer 0 is the empty sentinel: the tensor is now computed by the DEQUANTIZE op
        tensor.buffer, tensor.type, tensor.quantization = 0, schema.TensorType.FLOAT32, None
        op = schema.OperatorT()
        op.opcodeIndex = opcode
        op.inputs = np.array([len(graph.tensors) - 1], np.int32)
        op.outputs = np.array([index], np.int32)
        dequantize_ops.append(op)
    # constants first: operators must stay in topological order
    graph.operators = dequantize_ops + list(graph.operators)
    return pack_model(m)


# ---- metadata ------------------------------------------------------------------------------------
def _metadata_fb():
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
    except ImportError as err:
        raise TfaudioError("writing TFLite model metadata needs the metadata schema shipped with MediaPipe. "
                           "Fix: pip install mediapipe, or pass metadata=False.") from err
    return fb


def _metadata_buffer(labels: tuple[str, ...], sample_rate: int, description: str,
                     score_threshold: float | None = None) -> bytes:
    """The ``TFLITE_METADATA`` flatbuffer, laid out like the official yamnet_classification.tflite;
    ``score_threshold``: the output's ``ScoreThresholdingOptions.globalScoreThreshold`` (MediaPipe's
    classifiers drop categories scoring below it unless the app sets its own ``score_threshold``)."""

    fb = _metadata_fb()
    audio = fb.AudioPropertiesT()
    audio.sampleRate, audio.channels = int(sample_rate), 1
    inp = fb.TensorMetadataT()
    inp.name = "audio_clip"
    inp.description = (f"Input audio clip to be classified ({sample_rate / 1000:g} kHz float32 waveform samples "
                       "in range -1.0..1.0).")
    inp.content = fb.ContentT()
    inp.content.contentPropertiesType = fb.ContentProperties.AudioProperties
    inp.content.contentProperties = audio
    inp.stats = fb.StatsT()

    label_file = fb.AssociatedFileT()
    label_file.name = LABELS_FILE
    label_file.description = "Labels for categories that the model can recognize."
    label_file.type = fb.AssociatedFileType.TENSOR_AXIS_LABELS
    out = fb.TensorMetadataT()
    out.name = "scores"
    out.description = f"Scores in range 0..1.0 for each of the {len(labels)} output classes."
    out.content = fb.ContentT()
    out.content.contentPropertiesType = fb.ContentProperties.FeatureProperties
    out.content.contentProperties = fb.FeaturePropertiesT()
    out.stats = fb.StatsT()
    out.stats.max, out.stats.min = [1.0], [0.0]
    out.associatedFiles = [label_file]
    if score_threshold is not None:
        unit = fb.ProcessUnitT()
        unit.optionsType = fb.ProcessUnitOptions.ScoreThresholdingOptions
        unit.options = fb.ScoreThresholdingOptionsT()
        unit.options.globalScoreThreshold = float(score_threshold)
        out.processUnits = [unit]

    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [inp], [out]
    meta = fb.ModelMetadataT()
    meta.name = "tfaudio/audio_classifier"
    meta.description = description
    meta.version = "v1"
    meta.author = "tfaudio"
    meta.subgraphMetadata = [subgraph]
    meta.minParserVersion = _MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(meta.Pack(builder), file_identifier=b"M001")
    return bytes(builder.Output())


def _with_metadata(model: bytes, labels: tuple[str, ...], sample_rate: int, description: str,
                   export_json: str, score_threshold: float | None = None) -> bytes:
    """``model`` with the metadata buffer set and ``labels.txt`` (and tfaudio's own description,
    ``tfaudio.json``) appended as zip entries (what MediaPipe's MetadataPopulator writes)."""

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(_metadata_buffer(labels, sample_rate, description, score_threshold), np.uint8)
    m.buffers.append(buffer)
    entries = [e for e in (m.metadata or []) if e.name.decode() != _METADATA_NAME]
    entry = schema.MetadataT()
    entry.name, entry.buffer = _METADATA_NAME.encode(), len(m.buffers) - 1
    m.metadata = entries + [entry]
    out = io.BytesIO(pack_model(m))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as zf:  # stored, not compressed: the task libraries read it in place
        zf.writestr(LABELS_FILE, "\n".join(labels) + "\n")
        zf.writestr(METADATA_FILE, export_json)
    return out.getvalue()


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_to_plain(x) for x in obj]
    if hasattr(obj, "__dict__"):
        return {k: _to_plain(v) for k, v in vars(obj).items() if v is not None}
    return obj


def read_metadata(model: str | os.PathLike | bytes) -> dict[str, Any]:
    """The TFLite model metadata of a ``.tflite`` file as a dict, plus its packed files.

    The dict has the schema's field names (as MediaPipe's ``MetadataDisplayer`` JSON:
    ``name``, ``subgraphMetadata[0].inputTensorMetadata[0].content.contentProperties.sampleRate``...)
    and ``"associated_files"``: ``{name: text}`` of the files packed into the model. Empty when the
    model has no metadata.

    Example:
        >>> meta = read_metadata("export/model_int8.tflite")
        >>> meta["associated_files"]["labels.txt"].split()
        ['cat', 'dog']
    """

    data = model if isinstance(model, bytes) else pathlib.Path(model).read_bytes()
    fb = _metadata_fb()
    m = schema.Model.GetRootAsModel(data, 0)
    out: dict[str, Any] = {}
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        if entry.Name().decode() == _METADATA_NAME:
            raw = m.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            out = _to_plain(fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(raw, 0)))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            out["associated_files"] = {n: zf.read(n).decode("utf8", "replace") for n in zf.namelist()}
    except zipfile.BadZipFile:
        out["associated_files"] = {}
    return out


# ---- public API ----------------------------------------------------------------------------------
def tflite_model(
    classifier: Any,
    *,
    quantization: str = "float32",
    window_samples: int | None = None,
    whole_clip: bool = False,
    representative_data: Iterable[Any] | None = None,
    metadata: bool = True,
    labels: Sequence[str] | None = None,
) -> bytes:
    """The bytes of the TFLite model :func:`export_tflite` writes (same arguments, no file)."""

    scorer = clip_scorer(classifier, labels)
    labels = scorer.labels
    if quantization not in QUANTIZATIONS:
        raise TfaudioError(f"quantization={quantization!r}: expected one of {', '.join(QUANTIZATIONS)}.")
    contract = scorer.contract
    rate, minimum = scorer.sample_rate, contract.min_samples
    if window_samples is None:  # the median training clip's frames (the classifier's own framing), else the backbone's
        window_samples, window_from = default_window(classifier, contract)
    else:
        window_samples, window_from = int(window_samples), "argument"
    if not whole_clip and window_samples < minimum:
        raise TfaudioError(
            f"window_samples={window_samples} is shorter than one frame: the backbone needs at least {minimum} "
            f"samples ({minimum / rate:g} s at {rate} Hz). Fix: window_samples >= {minimum} (e.g. {minimum}, "
            f"or {minimum} + k * {contract.hop_samples} for k more frames)."
        )
    calibration = None
    if quantization in INT8_VARIANTS:
        if representative_data is None:
            raise TfaudioError(
                f"{quantization} quantization needs representative_data: real clips like the ones the model will see, "
                f"as float32 waveforms at {rate} Hz, audio file paths or a Manifest (e.g. the training clips). "
                "Fix: pass representative_data=..., or choose quantization='dynamic' (no data needed)."
            )
        calibration = _calibration_set(representative_data, rate, window_samples)

    stft = getattr(scorer.backbone, "tflite_stft", "dft")
    try:
        # Traced here: STFTs as DFT matmuls (FullyConnected: XNNPACK-friendly) unless the backbone
        # chose RFFT2D (Backbone.tflite_stft)
        with tflite_compatible(stft != "rfft"), native_stderr_silenced():
            window = _WindowModel(scorer, None if whole_clip else window_samples)
            model, agreement = _convert(window.function, window.module, quantization, calibration,
                                        scorer.frontend_scope, window.function)
        if agreement is not None:
            _warn_agreement(agreement)
    except TfaudioError:
        raise
    except Exception as err:  # the converter's own errors name the ops that block it
        lines = [x for x in str(err).splitlines() if x.strip() and not x.lstrip().startswith(("at ", "<unknown>"))]
        ops = sorted({x.split("'")[1] for x in lines if "op" in x and x.count("'") >= 2})
        raise TfaudioError(
            f"TFLite conversion ({quantization}) of the {scorer.description} failed"
            + (f" on the op(s) {', '.join(ops)}" if ops else "") + ": " + " | ".join(lines[:6])[:1500]
            + " Fix: try another quantization (float32, float16 and dynamic use TFLite builtin ops only), "
            "or serve the SavedModel (tfaudio export without --tflite)."
        ) from err
    if metadata:
        span = "clips of any length (resize the input)" if whole_clip else f"{window_samples / rate:g} s windows"
        description = (f"Classifies {span} of {rate / 1000:g} kHz mono audio into {len(labels)} classes "
                       f"({', '.join(labels[:10])}{', ...' if len(labels) > 10 else ''}): {scorer.description}, "
                       f"{quantization}.")
        info = export_metadata(scorer, rate, quantization=quantization,
                               window_samples=None if whole_clip else window_samples, whole_clip=bool(whole_clip),
                               window_from=None if whole_clip else window_from,
                               **decision_metadata(classifier))
        if agreement is not None:
            info["int8_agreement"] = agreement
        # MediaPipe's one global score threshold: the rejection threshold (single-label), or the lowest
        # per-class threshold (multi-label: a label below it is below its own; the per-class cuts are
        # in tfaudio.json, which MediaPipe does not read)
        rule = decision_rule(info)
        cut = min(rule["thresholds"]) if rule["thresholds"] else rule["rejection_threshold"]
        model = _with_metadata(model, labels, rate, description, json.dumps(info, indent=1, ensure_ascii=False), cut)
    return model


def export_tflite(
    classifier: Any,
    path: str | os.PathLike,
    *,
    quantization: str = "float32",
    window_samples: int | None = None,
    whole_clip: bool = False,
    representative_data: Iterable[Any] | None = None,
    overwrite: bool = False,
    metadata: bool = True,
    labels: Sequence[str] | None = None,
) -> pathlib.Path:
    """Writes ``classifier`` as a ``.tflite`` file: a waveform window at the backbone's rate in, class
    scores out.

    Input ``waveform`` float32 ``[1, window_samples]`` (mono, at the backbone's rate: 16 kHz for
    YAMNet, 32 kHz for EfficientAT; values in -1..1); output float32 ``[1, C]``: the mean of the
    head's scores over the window's frames. With
    ``whole_clip=True`` the input is ``[1, None]``: resize it per clip with
    ``interpreter.resize_tensor_input(index, [1, n])`` (MediaPipe needs a fixed window: keep it False
    for Android). Builtin TFLite ops only; no Flex/Select TF ops.

    Args:
        classifier: a trained :class:`~tfaudio.tasks.audio_classifier.AudioClassifier` on YAMNet or
            Wav2Vec2 / HuBERT, or a fine-tuned Wav2Vec2 / HuBERT model (see :func:`export_saved_model`).
        path: the ``.tflite`` file to write (atomically: a temporary file renamed into place).
        quantization: ``"float32"``, ``"float16"`` (float16 weights), ``"dynamic"`` (dynamic-range
            int8 weights), ``"int8"`` (int8 body with a float tail chosen for agreement, float
            frontend, float32 input and output; needs ``representative_data``) or ``"int8_full"``
            (int8 after the frontend, int8 input and output).
        window_samples: samples per window at the backbone's rate. Default: the frames of the
            classifier's median training clip (recorded by ``fit``; clamped to 10 s), so that the file
            scores a clip as the classifier does; the backbone's window (``contract.window_samples``:
            YAMNet 0.975 s, EfficientAT 1 s) for models without that record
            (:mod:`tfaudio.export.window`). YAMNet: at least 15600 (one 0.96 s patch + the STFT
            window), 15600 + k * 7680 gives k + 1 whole patches; Wav2Vec2: at least 400 (one 25 ms
            frame). Short windows suit streaming, but a head trained on 5 s clips and asked about
            0.975 s / 1 s windows lost 6-8 points of 5-fold CV accuracy on ESC-50 (BENCHMARKS.md
            "int8 variants: 5-fold CV")).
        whole_clip: a dynamic input length instead of a fixed window.
        representative_data: for ``int8`` / ``int8_full``: float32 waveforms at 16 kHz, audio file paths or a
            :class:`~tfaudio.data.manifest.Manifest`; cut into windows (at most 300 are used).
        overwrite: replace an existing ``path``.
        metadata: pack the TFLite model metadata (audio properties, ``labels.txt``) that MediaPipe
            Tasks and the TFLite Task Library read.
        labels: class names in score order (default: the model's).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        TfaudioError: ``path`` exists without ``overwrite``; the classifier is untrained or its labels
            do not match its head; ``window_samples`` shorter than one frame; ``int8`` without
            representative data; the converter meets an op TFLite cannot run (the message names it).

    Example:
        >>> export_tflite(clf, "export/model_float16.tflite", quantization="float16")
        >>> export_tflite(clf, "export/model_int8.tflite", quantization="int8",
        ...               representative_data=train_manifest)
    """
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise TfaudioError(f"{path} already exists. Fix: pass overwrite=True (--overwrite) or choose another file.")
    model = tflite_model(classifier, quantization=quantization, window_samples=window_samples,
                         whole_clip=whole_clip, representative_data=representative_data, metadata=metadata,
                         labels=labels)
    path.parent.mkdir(parents=True, exist_ok=True)

    atomic_write_bytes(path, model)  # also removes temporaries of writers killed earlier
    return path

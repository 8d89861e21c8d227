"""int8 TFLite variants that keep the float model's answers, each with its measured agreement.

Why plain full-integer quantization fails here (measured on YAMNet + the default head, ESC-50 subset,
head trained on folds 1-3, windows of fold 4; see BENCHMARKS.md "int8 variants"): TFLite gives every
activation tensor one int8 range, calibrated as the min/max over the calibration windows. YAMNet's last
blocks (layers 11-14) reach activations of ~40 on a few loud windows where the median window peaks at
~0.5, so on most windows those layers keep 2-4 of their 256 levels: their relative error grows from
~8 % (layer 10) to >100 % (layer 13). Neither a float head, nor a variance floor in the head's
standardisation, nor noise while training the head changed that (agreement 0.35-0.41 on 11 classes);
clipping the ranges to a quantile of the per-window peaks reached 0.92, 16-bit activations 0.47.

What works is **selective quantization with float ends**: the middle of the backbone runs int8, while
its first ops (which read the log-mel) and the last ops of the graph (the body's last blocks and the
head) stay float32, their weights stored as float16 (YAMNet, fold 4: float layers 1-2 and 10-14 +
head agreed on 0.996 of the windows; float 10-14 + head alone 0.977, float layer 1 alone 0.39). The
export chooses the ends itself, backbone by backbone: it tries float ends of growing size
(:data:`HEAD_OPS` ops at the start, :data:`TAIL_FRACTIONS` of the quantizable ops counted from the
output; fewest float ops first) and keeps the first whose
top-1 agreement with the float graph reaches :data:`CHOICE_TARGET` (a margin over the target,
:data:`AGREEMENT_TARGET`) *and* whose mean largest score change stays under :data:`SCORE_ERROR_TARGET`
on half of the calibration windows (the training audio), then records both on the *other* half
(``int8_agreement`` in ``tfaudio.json``). Tests re-measure it on windows the export never saw.

Why the score change too: with clip-length windows the head is sure of its training clips, so every
design agreed on them (top-1 1.0, EfficientAT mn04) while moving the largest score by 0.02-0.07 on
average, and unseen clips with smaller margins flipped. And the int8 arithmetic is not the same everywhere: MediaPipe runs int8
ops through XNNPACK, whose requantization differs from TFLite's builtin kernels (LiteRT with its
default XNNPACK delegate gave MediaPipe's scores exactly; LiteRT without it, tflite-runtime 2.14 and
TensorFlow's interpreter each differed from it by up to 0.1-0.3 in a score on the same mn04 file, while
the float files gave equal scores everywhere). A design whose scores stay close to float leaves room
for either arithmetic; one that only keeps the top class on confident windows does not.

Variants (see :data:`INT8_VARIANTS`):

- ``int8``: int8 body with the chosen float tail; float32 input and output (MediaPipe, LiteRT).
- ``int8_full``: every op after the frontend int8, including the input (int8 waveform) and the output
  (int8 scores), for accelerators that need full-integer models (Edge-TPU style). Its activation ranges
  are clipped to the quantile of the per-window peaks that agrees best on the choice half. It does not
  reach the target on YAMNet: its agreement is recorded (and warned about) like the others.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.export.flatbuffer import pack_model
from tfaudio.interpreter import tflite_interpreter

__all__ = ["INT8_VARIANTS", "AGREEMENT_TARGET", "SCORE_ERROR_TARGET", "TAIL_FRACTIONS", "quantize_int8",
           "quantizable_ops", "agreement", "measure"]

INT8_VARIANTS = ("int8", "int8_full")
#: The float tail grows until top-1 agreement with the float graph reaches this on the choice windows.
AGREEMENT_TARGET = 0.97
#: The search asks this much on the choice windows (a margin for windows it has not seen).
CHOICE_TARGET = 0.99
#: Float tails tried, as fractions of the quantizable ops (counted back from the output).
TAIL_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8)
#: Float starts tried: the ops up to the k-th convolution (the first ones read the log-mel, whose
#: int8 rounding YAMNet's first blocks amplify).
HEAD_OPS = (0, 1, 3, 5, 8)
#: Quantiles of the per-window activation peaks tried as ``int8_full``'s ranges (1.0: min/max).
RANGE_QUANTILES = (1.0, 0.9, 0.8, 0.5)
#: Windows per half (choice / record) at most.
MAX_WINDOWS = 150
#: The design must also keep the float graph's scores: the mean, over the choice windows, of each window's
#: largest score change (|int8 - float|, scores in 0..1) stays at or under this. Top-1 alone cannot see the
#: int8 error on the training clips, whose answers the head is sure of: fully int8 EfficientAT mn04 with
#: clip-length windows (head trained on folds 1-3) agreed on every training window while its largest score
#: change was 0.073 on average, and lost unseen clips in MediaPipe; the score change on training windows
#: ranks the designs as it does on unseen clips (BENCHMARKS.md "int8 variants: how the design is chosen").
SCORE_ERROR_TARGET = 0.03


def quantizable_ops(model: bytes, frontend_nodes: Sequence[str]) -> tuple[list[list[str]], list[int]]:
    """Output tensor names of each op outside the frontend, in execution order, and the positions (in
    that list) of the ops with weights (convolutions and fully connected layers)."""
    from tensorflow.lite.python import schema_py_generated as schema

    frontend = set(frontend_nodes)
    m = schema.Model.GetRootAsModel(model, 0)
    graph = m.Subgraphs(0)
    weighted_codes = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D,
                      schema.BuiltinOperator.FULLY_CONNECTED}
    ops, weighted = [], []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        names = [graph.Tensors(op.Outputs(j)).Name().decode() for j in range(op.OutputsLength())]
        if names and not any(n in frontend for n in names):
            code = m.OperatorCodes(op.OpcodeIndex())
            if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) in weighted_codes:
                weighted.append(len(ops))
            ops.append(names)
    return ops, weighted


def _run(model: bytes, windows: Sequence[np.ndarray]) -> np.ndarray:
    """Scores ``[N, C]`` of a TFLite model on float windows (int8 input / output handled)."""

    interpreter = tflite_interpreter(model_content=model)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rows = []
    for w in windows:
        x = np.asarray(w, np.float32)
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        rows.append(y)
    return np.stack(rows)


def agreement(model: bytes, windows: Sequence[np.ndarray], reference: np.ndarray) -> float:
    """Top-1 agreement of ``model`` with ``reference`` scores ``[N, C]`` on ``windows``."""
    return measure(model, windows, reference)["top1"]


def measure(model: bytes, windows: Sequence[np.ndarray], reference: np.ndarray) -> dict[str, float]:
    """``{"top1", "score_error"}`` of ``model`` against ``reference`` scores ``[N, C]`` on ``windows``:
    top-1 agreement, and the mean over windows of the largest score change ``max_c |s - reference|``."""
    scores, reference = _run(model, windows), np.asarray(reference)
    return {"top1": float(np.mean(scores.argmax(axis=1) == reference.argmax(axis=1))),
            "score_error": float(np.mean(np.abs(scores - reference).max(axis=1)))}


def _passes(m: dict[str, float]) -> bool:
    return m["top1"] >= CHOICE_TARGET and m["score_error"] <= SCORE_ERROR_TARGET


def _rank(m: dict[str, float]) -> tuple:
    """Better first: passes, then top-1 up to the target, then the smaller score change."""
    return (_passes(m), min(m["top1"], CHOICE_TARGET), -m["score_error"])


def _clip_ranges(calibrated: bytes, windows: Sequence[np.ndarray], quantile: float, skip: set[str]) -> bytes:
    """The calibrated model with each activation range cut to the ``quantile`` of its per-window peaks
    (the input, the output and the ``skip`` tensors keep their min/max)."""
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(calibrated, 0))
    graph = m.subgraphs[0]
    inputs = {int(i) for i in graph.inputs} | {int(i) for i in graph.outputs}
    wanted = [i for i, t in enumerate(graph.tensors)
              if i not in inputs and t.quantization is not None and t.quantization.min is not None
              and len(t.quantization.min) == 1 and t.type == schema.TensorType.FLOAT32
              and t.name.decode() not in skip]
    interpreter = tflite_interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
    index = interpreter.get_input_details()[0]["index"]
    lows: dict[int, list[float]] = {i: [] for i in wanted}
    highs: dict[int, list[float]] = {i: [] for i in wanted}
    for w in windows:
        interpreter.set_tensor(index, np.asarray(w, np.float32))
        interpreter.invoke()
        for i in wanted:
            try:
                x = interpreter.get_tensor(i)
            except ValueError:  # a tensor the runtime does not keep
                continue
            if x.size:
                lows[i].append(float(x.min()))
                highs[i].append(float(x.max()))
    for i in wanted:
        if not highs[i]:
            continue
        q = graph.tensors[i].quantization
        low, high = float(np.quantile(lows[i], 1.0 - quantile)), float(np.quantile(highs[i], quantile))
        q.min = np.array([min(low, 0.0) if float(q.min[0]) <= 0.0 else low], np.float32)
        q.max = np.array([max(high, float(q.min[0]) + 1e-6)], np.float32)
    return pack_model(m)


def quantize_int8(calibrated: bytes, variant: str, calibration: Sequence[np.ndarray], float_function: Any,
                  frontend_nodes: Sequence[str]) -> tuple[bytes, dict[str, Any], list[str]]:
    """Quantizes a calibrated model as ``variant`` (see the module docstring).

    Args:
        calibrated: the converter's calibrate-only output (float ops with recorded ranges).
        variant: one of :data:`INT8_VARIANTS`.
        calibration: the calibration windows ``[1, S]`` (the training audio): even ones choose, odd
            ones measure the recorded agreement.
        float_function: the float graph (``window → {"scores"}``), the reference.
        frontend_nodes: output names of the frontend's ops (kept float).

    Returns:
        ``(model, record, float_nodes)``: the record is ``int8_agreement`` (``top1`` and ``windows`` of
        the measuring half, plus how the variant was chosen); ``float_nodes`` are the outputs of the ops
        left float (their constants can be stored as float16).
    """

    try:
        from tensorflow.lite.python.convert import mlir_quantize
    except ImportError as err:  # pragma: no cover - moved in some future TensorFlow
        from tfaudio.errors import TfaudioError

        raise TfaudioError(f"int8 export needs tensorflow.lite.python.convert.mlir_quantize ({err}); "
                           f"this TensorFlow ({tf.__version__}) does not have it.") from err
    if variant not in INT8_VARIANTS:
        raise ValueError(f"variant={variant!r}: expected one of {INT8_VARIANTS}")
    windows = list(calibration)
    choose = windows[0::2][:MAX_WINDOWS] if len(windows) > 1 else windows
    record_on = windows[1::2][:MAX_WINDOWS] if len(windows) > 1 else windows

    def reference(ws):
        return np.stack([np.asarray(float_function(w)["scores"])[0] for w in ws])

    ref_choose, ref_record = reference(choose), reference(record_on)
    frontend = list(frontend_nodes)
    ops, weighted = quantizable_ops(calibrated, frontend)
    tried: list[dict[str, Any]] = []
    if variant == "int8":
        # a float start: every op up to the k-th op with weights (the first convolutions)
        starts = sorted({weighted[k - 1] + 1 if k else 0 for k in HEAD_OPS if k <= len(weighted)})
        candidates = sorted({(h, int(round(f * len(ops)))) for h in starts for f in TAIL_FRACTIONS
                             if h + int(round(f * len(ops))) < len(ops)}, key=lambda c: (c[0] + c[1], c[0]))
        best = None
        for head_n, tail_n in candidates:
            chosen = ops[:head_n] + (ops[len(ops) - tail_n:] if tail_n else [])
            floats = [name for names in chosen for name in names]
            model = mlir_quantize(calibrated, denylisted_nodes=frontend + floats)
            m = measure(model, choose, ref_choose)
            tried.append({"float_head_ops": head_n, "float_tail_ops": tail_n, **m})
            if best is None or _rank(m) > _rank(best[0]):
                best = (m, model, floats, head_n, tail_n)
            if _passes(m):
                break
        score, model, floats, head_n, tail_n = best
        how = {"float_head_ops": head_n, "float_tail_ops": tail_n, "quantized_ops": len(ops) - head_n - tail_n}
    else:
        best = None
        # the head's ranges (scores in 0..1) stay min/max: only the backbone's are clipped
        skip = set(frontend) | {name for names in ops[int(0.8 * len(ops)):] for name in names}
        for quantile in RANGE_QUANTILES:
            source = calibrated if quantile >= 1.0 else _clip_ranges(calibrated, choose, quantile, skip)
            model = mlir_quantize(source, denylisted_nodes=frontend, fully_quantize=True,
                                  input_data_type=tf.int8, output_data_type=tf.int8)
            m = measure(model, choose, ref_choose)
            tried.append({"range_quantile": quantile, **m})
            if best is None or _rank(m) > _rank(best[0]):
                best = (m, model, quantile)
        score, model, quantile = best
        floats = []
        how = {"range_quantile": quantile, "quantized_ops": len(ops)}
    record = {**measure(model, record_on, ref_record), "windows": len(record_on),
              "chosen_on": {"windows": len(choose), **score, "tried": tried}, "target": AGREEMENT_TARGET,
              "score_error_target": SCORE_ERROR_TARGET, **how}
    return model, record, floats

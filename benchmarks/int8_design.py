"""How the int8 design is chosen: fixed designs against the float32 file, on training folds only.

The default recipe's head is trained on esc50-subset folds 1-3; fold 4 is the development fold (fold 5,
and the CV's test folds, are not used to choose anything here). Every file has the export's default
window (one window per 5 s clip). Each int8 design (float ops at the start / at the end, see
``tfaudio/export/int8.py``), and the export's own search, is measured:

- on training windows the design's choice never saw (the calibration half that records
  ``int8_agreement``): top-1 agreement with the float32 file and the mean largest score change;
- on the clips of fold 4: the same in tflite-runtime / LiteRT (the interpreter tfaudio picks), in the
  same interpreter without its default delegates (builtin int8 kernels), and in MediaPipe's
  ``AudioClassifier``; and the largest score difference between MediaPipe and the interpreter on the
  same int8 file (the float32 file gives equal scores in both).

Run: .venv/bin/python benchmarks/int8_design.py [--backbones efficientat:mn04_as] [--designs search head=3 ...]
(writes the "int8 variants: how the design is chosen" section of BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import time
import zipfile

import numpy as np
from _common import machine, shared_dir, write_section
from int8_cv import mediapipe_scores

BACKBONES = {"yamnet": "YAMNet", "efficientat:mn04_as": "EfficientAT mn04"}
#: ``search`` (the export's choice), ``head=K`` (float up to the K-th convolution), ``tail=F`` (a float
#: fraction F of the ops at the end), ``both=K:F``.
DESIGNS = ("search", "tail=0.0", "tail=0.2", "head=1", "head=3", "head=5", "both=5:0.5")


def _fixed(design: str):
    """``(HEAD_OPS, TAIL_FRACTIONS)`` that make the search try exactly ``design``."""
    kind, value = design.split("=")
    if kind == "tail":
        return (0,), (float(value),)
    if kind == "head":
        return (int(value),), (0.0,)
    head, tail = value.split(":")
    return (int(head),), (float(tail),)


def _stats(scores: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    return {"top1": float(np.mean(scores.argmax(1) == reference.argmax(1))),
            "score_error": float(np.mean(np.abs(scores - reference).max(1)))}


def run(spec: str, designs: list[str]) -> list[dict]:
    import tfaudio.export.int8 as int8
    from tfaudio.data.audio_converter import AudioConverter
    from tfaudio.data.manifest import Manifest
    from tfaudio.export.int8 import _run
    from tfaudio.export.tflite import MAX_CALIBRATION_WINDOWS, _windows, tflite_model
    from tfaudio.interpreter import tflite_interpreter
    from tfaudio.tasks.audio_classifier import AudioClassifier

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    train, _, dev = manifest.split(train=[1, 2, 3], test=[4])
    clf = AudioClassifier(spec, labels=manifest.labels).fit(train)
    rate = clf.backbone.sample_rate
    convert = AudioConverter(rate)
    calibration = list(train.paths)
    random.Random(0).shuffle(calibration)
    float32 = tflite_model(clf, quantization="float32")
    size = json.loads(zipfile.ZipFile(io.BytesIO(float32)).read("tfaudio.json"))["window_samples"]
    waves = [convert(p, rate) for p in dev.paths]
    dev_windows = [w for wave in waves for w in _windows(wave, size)]
    assert len(dev_windows) == len(waves), "one window per clip expected"
    # the calibration windows the choice never sees (odd ones), as the export cuts them
    cal_windows = [w for p in calibration for w in _windows(convert(p, rate), size)][:MAX_CALIBRATION_WINDOWS]
    unseen_train = cal_windows[1::2][: int8.MAX_WINDOWS]
    ref_dev, ref_train = _run(float32, dev_windows), _run(float32, unseen_train)

    def builtin(model: bytes) -> np.ndarray:
        it = tflite_interpreter(model_content=model, default_delegates=False)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        rows = []
        for w in dev_windows:
            it.set_tensor(inp["index"], w)
            it.invoke()
            rows.append(it.get_tensor(out["index"])[0].copy())
        return np.stack(rows)

    rows = []
    for design in designs:
        saved = int8.HEAD_OPS, int8.TAIL_FRACTIONS
        if design != "search":
            int8.HEAD_OPS, int8.TAIL_FRACTIONS = _fixed(design)
        start = time.perf_counter()
        try:
            model = tflite_model(clf, quantization="int8", window_samples=size, representative_data=calibration)
        finally:
            int8.HEAD_OPS, int8.TAIL_FRACTIONS = saved
        seconds = time.perf_counter() - start
        record = json.loads(zipfile.ZipFile(io.BytesIO(model)).read("tfaudio.json"))["int8_agreement"]
        interpreter = _run(model, dev_windows)
        mp = mediapipe_scores(model, waves, rate, len(manifest.labels))
        row = {"design": design, "float_head_ops": record["float_head_ops"], "float_tail_ops": record["float_tail_ops"],
               "quantized_ops": record["quantized_ops"], "export_s": seconds, "mb": len(model) / 1e6,
               "train": _stats(_run(model, unseen_train), ref_train), "dev": _stats(interpreter, ref_dev),
               "dev_builtin": _stats(builtin(model), ref_dev),
               "dev_mediapipe": None if mp is None else _stats(mp, ref_dev),
               "mediapipe_vs_interpreter": None if mp is None else float(np.abs(mp - interpreter).max())}
        print(spec, json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["efficientat:mn04_as"])
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS))
    args = parser.parse_args()

    import tensorflow as tf

    from tfaudio.export.int8 import CHOICE_TARGET, SCORE_ERROR_TARGET
    from tfaudio.interpreter import interpreter_backend

    load = os.getloadavg()
    results = {spec: run(spec, args.designs) for spec in args.backbones}
    with open(os.path.join(os.path.dirname(__file__), "results", "int8_design.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d"), "results": results}, f, indent=1)

    def pair(s):
        return "n/a" if s is None else f"{s['top1']:.3f} / {s['score_error']:.3f}"

    lines = []
    for spec, rows in results.items():
        for r in rows:
            mp_gap = r["mediapipe_vs_interpreter"]
            lines.append(f"| {BACKBONES.get(spec, spec)} | {r['design']} | {r['float_head_ops']} + {r['float_tail_ops']} "
                         f"({r['quantized_ops']} int8) | {pair(r['train'])} | {pair(r['dev'])} | "
                         f"{pair(r['dev_builtin'])} | {pair(r['dev_mediapipe'])} | "
                         f"{'n/a' if mp_gap is None else f'{mp_gap:.3f}'} | {r['mb']:.2f} |")
    backend = interpreter_backend()
    body = "\n".join([
        "Default-recipe head trained on esc50-subset folds 1-3; fold 4 is the development fold (no test fold is "
        "used). Files with the export's default window (one window per 5 s clip), calibrated on the training "
        "clips. Each cell: top-1 agreement with the float32 file / mean largest score change (max over classes "
        "of |int8 - float32|, scores 0..1). \"training windows\": the calibration half the choice never saw "
        "(the head saw those clips: it is sure of them); \"fold 4\": in the interpreter tfaudio picks "
        f"({backend}), in the same without its default delegates (builtin int8 kernels), and in MediaPipe's "
        "AudioClassifier; \"MediaPipe - interpreter\": the largest score difference between the two on the same "
        f"int8 file. `search`: the export's choice (top-1 >= {CHOICE_TARGET} and mean largest score change <= "
        f"{SCORE_ERROR_TARGET} on the choice half). One run, {machine()}, TensorFlow {tf.__version__}; the 2 "
        f"cores were shared with other developers' jobs (load average {load[0]:.1f} at the start). "
        "Re-run: `python benchmarks/int8_design.py`.",
        "",
        "| backbone | design | float ops start + end | training windows | fold 4 | fold 4, builtin kernels | "
        "fold 4, MediaPipe | MediaPipe - interpreter | MB |",
        "|---|---|---|---|---|---|---|---|---|",
        *lines,
    ])
    write_section("int8 variants: how the design is chosen", body)


if __name__ == "__main__":
    main()

"""Agreement, accuracy, size and latency of each TFLite variant of YAMNet and EfficientAT mn04 classifiers.

Each backbone gets the default recipe's head trained on esc50-subset folds 1-4 (all 11 classes) and is
exported as float32, float16, dynamic, int8 (float ends chosen by the export, see
``tfaudio/export/int8.py``) and int8_full (int8 input and output), calibrated on the training clips. On
the clips of fold 5, which neither training nor calibration saw: top-1 agreement with the float32 file
per window and per clip (mean of the clip's non-overlapping windows), clip accuracy, the export's own
recorded ``int8_agreement``, file size, and latency per window (the TFLite interpreter tfaudio picks,
1 thread, median, the variants taking turns in rounds so that a busy machine slows them alike).

Run: .venv/bin/python benchmarks/int8.py   (writes the "int8 variants" section of BENCHMARKS.md)
     .venv/bin/python benchmarks/int8.py --cv   (the 5-fold CV of each variant at the export's default window:
                                                 "int8 variants: 5-fold CV"; LiteRT on the latest lane: its own section)
     .venv/bin/python benchmarks/int8.py --cv --window-seconds 0   (the same with the backbones' own windows)
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import time
import zipfile
from importlib.metadata import version

import numpy as np
from _common import machine, shared_dir, write_section

VARIANTS = ("float32", "float16", "dynamic", "int8", "int8_full")
BACKBONES = {"yamnet": "YAMNet", "efficientat:mn04_as": "EfficientAT mn04"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timed", type=int, default=30, help="timed windows per variant")
    parser.add_argument("--cv", action="store_true",
                        help="instead: 5-fold CV clip accuracy of each variant (float Keras, float32, float16, int8, "
                             "int8_full; tflite-runtime / LiteRT and MediaPipe); writes its own section")
    parser.add_argument("--window-seconds", type=float, default=None,
                        help="with --cv: export with windows of this length (default: the export's default, the "
                             "median training clip's frames; 0: the backbone's own window)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="with --cv: the variants to run (default: float32 float16 int8 int8_full); float32 is "
                             "always run (the reference)")
    args = parser.parse_args()
    if args.cv:
        from int8_cv import cv_section

        return cv_section(args.backbones, args.window_seconds, args.variants)

    import tensorflow as tf

    from tfaudio.data.audio_converter import AudioConverter
    from tfaudio.data.manifest import Manifest
    from tfaudio.export.int8 import _run
    from tfaudio.export.tflite import _windows, tflite_model
    from tfaudio.interpreter import interpreter_backend, tflite_interpreter
    from tfaudio.tasks.audio_classifier import AudioClassifier

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    train, _, test = manifest.split(train=[1, 2, 3, 4], test=[5])
    load = os.getloadavg()
    rows, results = [], {}
    for spec in args.backbones:
        clf = AudioClassifier(spec, labels=manifest.labels).fit(train)
        rate = clf.backbone.sample_rate
        calibration = list(train.paths)
        random.Random(0).shuffle(calibration)
        models, export_s, records = {}, {}, {}
        for variant in VARIANTS:
            start = time.perf_counter()
            models[variant] = tflite_model(clf, quantization=variant,
                                           representative_data=calibration if "int8" in variant else None)
            export_s[variant] = time.perf_counter() - start
            info = json.loads(zipfile.ZipFile(io.BytesIO(models[variant])).read("tfaudio.json"))
            records[variant] = info.get("int8_agreement")
            print(f"{spec} {variant}: exported in {export_s[variant]:.0f} s", flush=True)
        size = json.loads(zipfile.ZipFile(io.BytesIO(models["float32"])).read("tfaudio.json"))["window_samples"]
        convert = AudioConverter(rate)
        windows, owner = [], []
        for k, path in enumerate(test.paths):  # cut as the files cut them: the export's default window
            ws = list(_windows(convert(path, rate), size))
            windows += ws
            owner += [k] * len(ws)
        owner = np.array(owner)
        scores = {v: _run(m, windows) for v, m in models.items()}
        clip = {v: np.stack([s[owner == k].mean(0) for k in range(len(test))]) for v, s in scores.items()}
        ref_w, ref_c = scores["float32"].argmax(1), clip["float32"].argmax(1)
        # latency: one window per invoke, 1 thread, variants in turn
        runners = {}
        for v, m in models.items():
            it = tflite_interpreter(model_content=m, num_threads=1)
            runners[v] = (it, it.get_input_details()[0])
        times = {v: [] for v in models}
        timed = windows[:: max(1, len(windows) // args.timed)][: args.timed]
        per_round = -(-len(timed) // args.rounds)
        for r in range(args.rounds):
            for v, (it, inp) in runners.items():
                for w in timed[r * per_round : (r + 1) * per_round]:
                    x = w
                    if inp["dtype"] != np.float32:
                        s, z = inp["quantization"]
                        x = np.clip(np.round(w / s + z), -128, 127).astype(inp["dtype"])
                    it.set_tensor(inp["index"], x)
                    t = time.perf_counter()
                    it.invoke()
                    times[v].append(time.perf_counter() - t)
        name = BACKBONES.get(spec, spec)
        results[spec] = {}
        for v in VARIANTS:
            rec = records[v]
            res = {
                "window_agreement": float(np.mean(scores[v].argmax(1) == ref_w)),
                "clip_agreement": float(np.mean(clip[v].argmax(1) == ref_c)),
                "clip_accuracy": float(np.mean(clip[v].argmax(1) == test.targets)),
                "recorded": None if rec is None else rec["top1"],
                "mb": len(models[v]) / 1e6, "ms": float(np.median(times[v]) * 1000), "export_s": export_s[v],
                "choice": None if rec is None else {k: rec[k] for k in rec if k not in ("chosen_on",)},
            }
            results[spec][v] = res
            recorded = "" if rec is None else f"{rec['top1']:.3f}"
            rows.append(f"| {name} | {v} | {res['window_agreement']:.3f} | {res['clip_agreement']:.3f} | "
                        f"{res['clip_accuracy']:.3f} | {recorded} | {res['mb']:.2f} | {res['ms']:.1f} | "
                        f"{res['export_s']:.0f} |")
            print(rows[-1], flush=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "int8.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d"), "results": results}, f, indent=1)
    backend = interpreter_backend()
    details = []
    for spec, res in results.items():
        c = res["int8"]["choice"] or {}
        details.append(f"- {BACKBONES.get(spec, spec)} int8: float ops at the start {c.get('float_head_ops')}, "
                       f"at the end {c.get('float_tail_ops')}, int8 ops {c.get('quantized_ops')}; int8_full: "
                       f"ranges cut to the {res['int8_full']['choice'].get('range_quantile')} quantile of the "
                       "per-window peaks.")
    body = "\n".join([
        "Default-recipe heads (11 classes) trained on esc50-subset folds 1-4, exported and calibrated on the "
        "training clips; figures on the clips of fold 5 (unseen by training, calibration and the choice of "
        "the int8 design, which was made on fold 4 with folds 1-3 training). Agreement is top-1 agreement "
        "with the float32 file: per window (the export's default: the median training clip's frames) and "
        "per clip (mean of the clip's "
        "windows). \"recorded\" is the export's own `int8_agreement` (on the half of the calibration windows "
        f"that did not choose the design). Latency: {backend} {version(backend)}, 1 thread, median per "
        f"window, variants in turn over {args.rounds} rounds. One run, {machine()}, TensorFlow "
        f"{tf.__version__}; the 2 cores were shared with other developers' jobs (load average "
        f"{load[0]:.1f} at the start), so latencies are noisy; compare them within the table. "
        "Re-run: `python benchmarks/int8.py`.",
        "",
        "| backbone | variant | window agreement | clip agreement | clip accuracy | recorded | MB | ms / window | export s |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *details,
        "",
        "One test fold only: the 5-fold CV of each variant, in tflite-runtime / LiteRT and in MediaPipe's "
        "`AudioClassifier`, is in \"int8 variants: 5-fold CV\" (`python benchmarks/int8.py --cv`).",
    ])
    write_section("int8 variants", body)


if __name__ == "__main__":
    main()

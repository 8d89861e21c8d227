"""The 5-fold CV of each TFLite variant (``benchmarks/int8.py --cv``): does int8 keep the float model's accuracy?

For each backbone and each fold of esc50-subset: the default recipe's head is trained on the other four
folds (float32 embeddings, one extraction for all folds), exported as float32, float16, int8 and int8_full
(the int8 variants calibrated on the training clips only), and every variant scores the test fold's clips:
clip score = the mean of the clip's non-overlapping windows (what an app running the file on a clip
gets), in the TFLite interpreter tfaudio picks (tflite-runtime or LiteRT) and, for the float-input files,
in MediaPipe's ``AudioClassifier``. "float Keras" is the classifier itself on the cached embeddings (its
own framing: overlapping patches). Agreement is top-1 agreement with the float32 file, per window and per
clip, over all five test folds.
"""
from __future__ import annotations

import io
import json
import os
import random
import tempfile
import time
import zipfile

import numpy as np
from _common import machine, shared_dir, write_section

VARIANTS = ("float32", "float16", "int8", "int8_full")
#: The variants MediaPipe's AudioClassifier runs (float32 waveform input).
MEDIAPIPE_VARIANTS = ("float32", "float16", "int8")
BACKBONES = {"yamnet": "YAMNet", "efficientat:mn04_as": "EfficientAT mn04"}


def mediapipe_scores(model: bytes, clips: list[np.ndarray], rate: int, classes: int) -> np.ndarray | None:
    """Clip scores ``[clips, classes]`` from MediaPipe's AudioClassifier (mean over its windows), or None
    without MediaPipe."""
    try:
        from mediapipe.tasks.python import audio as mp_audio
        from mediapipe.tasks.python.components.containers.audio_data import AudioData
        from mediapipe.tasks.python.core.base_options import BaseOptions
    except ImportError:
        return None
    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(model)
        f.flush()
        options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=f.name),
                                                  max_results=-1, score_threshold=0.0)
        rows = []
        with mp_audio.AudioClassifier.create_from_options(options) as classifier:
            for clip in clips:
                windows = []
                for result in classifier.classify(AudioData.create_from_array(clip, rate)):
                    s = np.zeros(classes, np.float32)
                    for c in result.classifications[0].categories:
                        s[c.index] = c.score
                    windows.append(s)
                rows.append(np.mean(windows, axis=0))
    return np.stack(rows)


def run_backbone(spec: str, manifest, cache_root: str, window_seconds: float | None = None,
                 variants: tuple[str, ...] = VARIANTS) -> dict:
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.audio_converter import AudioConverter
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.export.int8 import _run
    from tfaudio.export.tflite import _windows, tflite_model
    from tfaudio.export.window import default_window
    from tfaudio.tasks.audio_classifier import AudioClassifier

    backbone = get_backbone(spec)
    cache = EmbeddingCache(backbone, cache_root, engine="float32")
    cache.extract(manifest)
    clips = cache.load(manifest, extract=False)
    rate = backbone.sample_rate
    convert = AudioConverter(rate)
    paths = np.asarray(manifest.paths, dtype=object)[clips.rows]
    out: dict = {"folds": [], "per_window": {}, "sample_rate": rate}
    for fold in sorted(set(int(f) for f in clips.folds)):
        start = time.perf_counter()
        test = clips.folds == fold
        clf = AudioClassifier(backbone, labels=manifest.labels, cache=cache).fit(clips.subset(~test))
        targets = clips.targets[test]
        res = {"fold": fold, "keras": float(np.mean(clf.clip_scores(clips.subset(test)).argmax(1) == targets))}
        if window_seconds is None:  # the export's default: the median training clip's frames
            size, _ = default_window(clf, backbone.contract)
        elif window_seconds == 0:  # the backbone's own window (the export's default before #23)
            size = backbone.contract.window_samples
        else:
            size = int(round(window_seconds * rate))
        res["window_samples"] = size
        calibration = list(paths[~test])
        random.Random(0).shuffle(calibration)
        waves = [convert(p, rate) for p in paths[test]]
        windows, owner = [], []
        for k, wave in enumerate(waves):
            ws = list(_windows(wave, size))
            windows += ws
            owner += [k] * len(ws)
        owner = np.asarray(owner)
        scores, clip, records = {}, {}, {}
        for variant in variants:
            began = time.perf_counter()
            model = tflite_model(clf, quantization=variant, window_samples=size,
                                 representative_data=calibration if "int8" in variant else None)
            res[f"{variant}_export_s"] = time.perf_counter() - began
            info = json.loads(zipfile.ZipFile(io.BytesIO(model)).read("tfaudio.json"))
            records[variant] = info.get("int8_agreement")
            scores[variant] = _run(model, windows)
            clip[variant] = np.stack([scores[variant][owner == k].mean(0) for k in range(len(waves))])
            res[variant] = float(np.mean(clip[variant].argmax(1) == targets))
            if variant in MEDIAPIPE_VARIANTS:
                mp = mediapipe_scores(model, waves, rate, len(manifest.labels))
                if mp is not None:
                    res[f"mediapipe_{variant}"] = float(np.mean(mp.argmax(1) == targets))
                    res[f"mediapipe_{variant}_top1"] = mp.argmax(1).tolist()
        for variant in variants:
            res[f"{variant}_window_agreement"] = float(np.mean(scores[variant].argmax(1) == scores["float32"].argmax(1)))
            res[f"{variant}_clip_agreement"] = float(np.mean(clip[variant].argmax(1) == clip["float32"].argmax(1)))
            res[f"{variant}_clip_top1"] = clip[variant].argmax(1).tolist()
            if records[variant] is not None:
                res[f"{variant}_recorded"] = records[variant]["top1"]
                res[f"{variant}_design"] = {k: v for k, v in records[variant].items() if k != "chosen_on"}
        res["targets"] = targets.tolist()
        res["windows"] = len(windows)
        res["seconds"] = time.perf_counter() - start
        print(spec, json.dumps({k: v for k, v in res.items() if not isinstance(v, (list, dict))}), flush=True)
        out["folds"].append(res)
    return out


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def cv_section(specs: list[str], window_seconds: float | None = None, variants: list[str] | None = None) -> None:
    import tensorflow as tf

    from tfaudio.data.manifest import Manifest
    from tfaudio.interpreter import interpreter_backend

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    load = os.getloadavg()
    started = time.perf_counter()
    results = {}
    chosen = tuple(v for v in VARIANTS if v == "float32" or v in (variants or VARIANTS))
    with tempfile.TemporaryDirectory() as cache_root:
        for spec in specs:
            results[spec] = run_backbone(spec, manifest, cache_root, window_seconds, chosen)
    minutes = (time.perf_counter() - started) / 60
    end_load = os.getloadavg()
    backend = interpreter_backend()
    mode = ("" if window_seconds is None else ", the backbones' windows" if window_seconds == 0
            else f", {window_seconds:g} s windows")
    runtime = "" if backend == "tflite-runtime" else f", {backend}"
    suffix = ("" if window_seconds is None else "_backbone" if window_seconds == 0 else f"_{window_seconds:g}s") + (
        "" if backend == "tflite-runtime" else f"_{backend}")
    with open(os.path.join(os.path.dirname(__file__), "results", f"int8_cv{suffix}.json"), "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%d"), "results": results}, f, indent=1)
    rows, notes = [], []
    windows = {spec: " / ".join(f"{n / res['sample_rate']:g} s" for n in sorted({r["window_samples"] for r in res["folds"]}))
               for spec, res in results.items()}
    for spec, res in results.items():
        folds = res["folds"]
        name = BACKBONES.get(spec, spec)
        keras = [r["keras"] for r in folds]
        rows.append(f"| {name} | float Keras | {_mean_std(keras)} | | | | | | |")
        float_mean = np.mean([r["float32"] for r in folds])
        for v in chosen:
            acc = [r[v] for r in folds]
            diff = 100 * (np.mean(acc) - float_mean)
            mp = [r[f"mediapipe_{v}"] for r in folds if f"mediapipe_{v}" in r]
            mp_agree = (np.mean(np.concatenate([np.equal(r[f"mediapipe_{v}_top1"], r["mediapipe_float32_top1"])
                                                for r in folds])) if len(mp) == len(folds) else None)
            win = np.average([r[f"{v}_window_agreement"] for r in folds], weights=[r["windows"] for r in folds])
            clip_agree = np.mean(np.concatenate([np.equal(r[f"{v}_clip_top1"], r["float32_clip_top1"]) for r in folds]))
            recorded = [r[f"{v}_recorded"] for r in folds if f"{v}_recorded" in r]
            rows.append(f"| {name} | {v} | {_mean_std(acc)} | {diff:+.1f} | "
                        f"{_mean_std(mp) if len(mp) == len(folds) else 'n/a'} | {win:.3f} | {clip_agree:.3f} | "
                        f"{'n/a' if mp_agree is None else f'{mp_agree:.3f}'} | "
                        f"{f'{np.mean(recorded):.3f}' if recorded else ''} |")
        for v in [v for v in ("int8", "int8_full") if v in chosen]:
            designs = [r.get(f"{v}_design", {}) for r in folds]
            key = "float_tail_ops" if v == "int8" else "range_quantile"
            errors = [round(d["score_error"], 3) for d in designs if "score_error" in d]
            notes.append(f"- {name} {v}: {key} per fold {[d.get(key) for d in designs]}"
                         + (f", float ops at the start {[d.get('float_head_ops') for d in designs]}" if v == "int8" else "")
                         + (f"; recorded mean largest score change per fold {errors}" if errors else ""))
    body = "\n".join([
        "5-fold CV of each exported variant on esc50-subset (11 classes, 440 clips): per fold, the default "
        "recipe's head trained on the other four folds (float32 embeddings), exported, the int8 variants "
        "calibrated on the training clips only (the int8 design is chosen on half of them); the test fold's "
        "clips scored by each file as the mean of the clip's non-overlapping windows "
        + ("(the export's default window: the frames of the median training clip, here "
           + ", ".join(f"{BACKBONES.get(spec, spec)} {windows[spec]}" for spec in results)
           + " per fold: one window per 5 s clip, the framing the classifier itself uses). " if window_seconds is None else
           "(the backbones' own windows, the export's default before #23: 0.975 s for YAMNet, 1 s for mn04). "
           if window_seconds == 0 else f"(files exported with {window_seconds:g} s windows). ")
        + "\"float Keras\": the classifier on its cached embeddings (YAMNet: patches every 0.48 s with the "
        "silence gate; mn04: the whole clip). "
        "Accuracy is clip accuracy, mean ± std over the 5 folds; \"vs float32\" is in points against the "
        "float32 file (1 clip of a fold = 1.1 points). Agreement: top-1 with the float32 file over all "
        "test windows / clips of the 5 folds; \"recorded\": the export's own `int8_agreement`, mean over "
        f"folds. Interpreter: {backend}; MediaPipe: AudioClassifier (float-input files; mean of its "
        f"per-window scores; \"MediaPipe clip agreement\": top-1 of its clip scores with its own float32 file's). "
        f"One run, {machine()}, TensorFlow {tf.__version__}, {minutes:.0f} min; the 2 cores were shared with other "
        f"developers' jobs (load average {load[0]:.1f} at the start, {end_load[0]:.1f} at the end). "
        f"Re-run: `{'.venv-latest/bin/' if runtime else ''}python benchmarks/int8.py --cv"
        f"{'' if window_seconds is None else f' --window-seconds {window_seconds:g}'}"
        f"{'' if chosen == VARIANTS else ' --variants ' + ' '.join(chosen)}`.",
        "",
        "| backbone | variant | accuracy | vs float32 (points) | MediaPipe accuracy | window agreement | "
        "clip agreement | MediaPipe clip agreement | recorded |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *notes,
    ])
    write_section("int8 variants: 5-fold CV" + mode + runtime, body)

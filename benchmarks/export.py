"""Size and latency of the exported TFLite variants beside the official yamnet_classification.tflite.

The model is YAMNet + a 10-class head (the ESC-10 label count; random weights: size and speed do not
depend on what the head learned) exported as float32, float16, dynamic and int8 (calibrated on real
ESC-50 windows). Latency: the TFLite interpreter tfaudio picks (LiteRT, else tflite-runtime), 1 thread,
one 0.975 s window per invoke, median over real ESC-50 windows after a warm-up; the models take turns
in several rounds so that a busy machine slows them alike.

Run: .venv/bin/python benchmarks/export.py   (writes the "Export" section of BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import pathlib
import tempfile
import time
from importlib.metadata import version

import numpy as np
from _common import machine, shared_dir, write_section

from tfaudio.interpreter import interpreter_backend

VARIANTS = ("float32", "float16", "dynamic", "int8")
TARGETS = {"float16_mb": 8.5, "int8_mb": 4.5, "int8_vs_official": 1.2}
WINDOW = 15600


def real_windows(paths: list[str], count: int) -> list[np.ndarray]:
    """``count`` windows of 15600 samples at 16 kHz, the loudest of each clip first."""
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample

    out: list[np.ndarray] = []
    for path in paths:
        audio, rate = load_audio(path)
        audio = audio if rate == 16000 else np.asarray(resample(audio, rate, 16000))
        starts = np.arange(0, len(audio) - WINDOW + 1, WINDOW)
        for s in sorted(starts, key=lambda s: -float(np.mean(audio[s : s + WINDOW] ** 2)))[:2]:
            out.append(audio[s : s + WINDOW])
        if len(out) >= count:
            break
    return out[:count]


class Runner:
    """One TFLite interpreter (1 thread) and its per-invoke times."""

    def __init__(self, path: pathlib.Path):
        from tfaudio.interpreter import tflite_interpreter

        self.path = path
        self.it = tflite_interpreter(path, num_threads=1)
        self.input = self.it.get_input_details()[0]
        self.times: list[float] = []

    def run(self, window: np.ndarray, record: bool = True) -> None:
        x = window.reshape(self.input["shape"]).astype(np.float32)
        self.it.set_tensor(self.input["index"], x)
        start = time.perf_counter()
        self.it.invoke()
        elapsed = time.perf_counter() - start
        if record:
            self.times.append(elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=60, help="timed windows per model (>= 50)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds the windows are split into")
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf
    import tf_keras as keras

    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone
    from tfaudio.data.manifest import Manifest
    from tfaudio.export.tflite import export_tflite
    from tfaudio.heads.classification_head import build_head
    from tfaudio.tasks.audio_classifier import AudioClassifier

    root = shared_dir()
    official = root / "models" / "yamnet" / "yamnet_classification.tflite"
    manifest = Manifest.from_source(root / "data" / "esc50-subset")
    esc10 = manifest.frame[manifest.frame["esc10"].astype(bool)]
    labels = sorted(set(esc10.label))
    rng = np.random.default_rng(0)
    paths = list(rng.permutation(list(manifest.paths)))
    calibration, timed = paths[:60], paths[60:]

    backbone = YAMNetBackbone.from_pretrained()
    keras.utils.set_random_seed(0)
    clf = AudioClassifier(backbone, labels=labels, cache=None)
    clf.head_model_ = build_head(backbone.embedding_dim, len(labels))

    windows = real_windows(timed, args.windows)
    sizes: dict[str, int] = {}
    runners: dict[str, Runner] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            start = time.perf_counter()
            path = export_tflite(clf, pathlib.Path(tmp) / f"model_{variant}.tflite", quantization=variant,
                                 representative_data=calibration if variant == "int8" else None)
            print(f"{variant}: exported in {time.perf_counter() - start:.1f} s", flush=True)
            sizes[variant] = path.stat().st_size
            runners[variant] = Runner(path)
        sizes["official"] = official.stat().st_size
        runners["official"] = Runner(official)

        for r in runners.values():
            for w in windows[: args.warmup]:
                r.run(w, record=False)
        per_round = -(-len(windows) // args.rounds)
        for k in range(args.rounds):
            chunk = windows[k * per_round : (k + 1) * per_round]
            for r in runners.values():
                for w in chunk:
                    r.run(w)

    ms = {name: np.array(r.times) * 1000 for name, r in runners.items()}
    median = {name: float(np.median(t)) for name, t in ms.items()}
    rows = []
    for name in (*VARIANTS, "official"):
        t = ms[name]
        label = "official yamnet_classification.tflite (521 classes)" if name == "official" else name
        rows.append(f"| {label} | {sizes[name] / 1e6:.2f} | {sizes[name] / 2**20:.2f} | {median[name]:.1f} | "
                    f"{np.percentile(t, 90):.1f} | {median[name] / median['official']:.2f}× |")
        print(f"{name:9s} {sizes[name] / 1e6:6.2f} MB  median {median[name]:6.1f} ms  p90 "
              f"{np.percentile(t, 90):6.1f} ms  ({len(t)} windows)")

    ratio = median["int8"] / median["official"]
    checks = [
        ("float16 ≤ 8.5 MB", sizes["float16"] / 1e6 <= TARGETS["float16_mb"], f"{sizes['float16'] / 1e6:.2f} MB"),
        ("int8 ≤ 4.5 MB", sizes["int8"] / 1e6 <= TARGETS["int8_mb"], f"{sizes['int8'] / 1e6:.2f} MB"),
        ("int8 latency ≤ 1.2× the official file's", ratio <= TARGETS["int8_vs_official"], f"{ratio:.2f}×"),
    ]
    for name, ok, value in checks:
        print(f"target {name}: {'met' if ok else 'NOT met'} ({value})")

    backend = interpreter_backend()
    body = "\n".join([
        f"TFLite exports of YAMNet + a {len(labels)}-class head (ESC-10's class count; random head weights, "
        "which do not change size or speed) beside the official `yamnet_classification.tflite`. Input: one "
        "0.975 s window (15600 samples at 16 kHz). Latency: "
        f"{backend} {version(backend)}, 1 thread, per `invoke()`, median "
        f"and 90th percentile of {len(windows)} real ESC-50 windows per model after {args.warmup} warm-up runs, "
        f"the models taking turns in {args.rounds} rounds. Machine: {machine()} (shared with other jobs), "
        f"TensorFlow {tf.__version__}. Re-run: `python benchmarks/export.py`.",
        "",
        "| model | size (MB) | size (MiB) | median (ms) | p90 (ms) | vs official |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *[f"- target {name}: **{'met' if ok else 'not met'}** ({value})" for name, ok, value in checks],
        "",
        "What the variants are: float16 = float16 weights, float32 compute; dynamic = int8 weights of the body "
        "and head with dynamic-range activations; int8 = int8 body and head calibrated on 60 real clips, "
        "float32 input and output. In dynamic and int8 the log-mel frontend stays float (as in the official "
        "file; 8-bit waveforms and spectra lose the quiet bands the log brings back) and its DFT and mel "
        "matrices are stored as float16. Top-1 agreement with float32 and accuracy on real clips are checked "
        "by `tests/test_export.py`.",
    ])
    write_section("Export", body)


if __name__ == "__main__":
    main()

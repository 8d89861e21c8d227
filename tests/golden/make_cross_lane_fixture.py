"""Writes the cross-lane fixture: a tiny exported classifier and the scores it gave where it was made.

tests/test_cross_lane.py loads every ``tests/golden/cross_lane/tf<version>/`` folder in whichever lane
runs it (TF 2.16 + tflite-runtime, or TF 2.21 + LiteRT) and checks that the SavedModel and the TFLite
files give these scores, so a model exported on one lane is proven to load and agree on the other.

The model is small on purpose (well under 1 MB): a two-block YAMNet-style body (same frontend, batch
norm and separable convolutions as YAMNet, seeded random weights) with a linear head trained for a few
epochs on generated tones. Run it once per lane, from the repository root:

    TFAUDIO_CACHE=$(mktemp -d) .venv/bin/python tests/golden/make_cross_lane_fixture.py
    TFAUDIO_CACHE=$(mktemp -d) .venv-latest/bin/python tests/golden/make_cross_lane_fixture.py

Each run replaces only its own ``tf<major>.<minor>`` folder.
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import shutil
import sys
import tempfile
from importlib.metadata import version

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

FIXTURES = ROOT / "tests" / "golden" / "cross_lane"
RATE = 16000
WINDOW = 15600
LABELS = ("low", "high", "hiss")


def clips() -> dict[str, np.ndarray]:
    """The inputs the scores are recorded for, rounded to 16-bit PCM (stored in the fixture as int16:
    the generators may change, and int16 → float32 is exact on every lane)."""
    from tests.helpers import noise, silence, sine

    made = {
        "low_1_5s": sine(310, 1.5, RATE) + noise(1.5, RATE, seed=1, amplitude=0.01),
        "high_1s": sine(3400, 1.0, RATE, amplitude=0.3),
        "hiss_1_2s": noise(1.2, RATE, seed=2),
        "short_silence": silence(0.4, RATE),
    }
    return {k: from_pcm16(np.clip(np.round(v * 32768), -32768, 32767).astype(np.int16)) for k, v in made.items()}


def from_pcm16(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768


def pcm16(audio: np.ndarray) -> np.ndarray:
    return np.round(audio * 32768).astype(np.int16)


def windows_of(audio: dict[str, np.ndarray], names) -> np.ndarray:
    """One TFLite input window per clip: its first ``WINDOW`` samples, zero-padded."""
    return np.stack([np.pad(audio[k], (0, max(0, WINDOW - len(audio[k]))))[:WINDOW] for k in names])


def tiny_backbone():
    """YAMNet's code with a small frontend (8 ms STFT window, 16 mel bands: small DFT and mel
    constants) and two small blocks, seeded random weights."""
    import tf_keras

    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone
    from tfaudio.backbones.yamnet.params import LayerSpec, YAMNetParams
    from tfaudio.signal.melspec import LogMelConfig

    tf_keras.utils.set_random_seed(0)
    params = YAMNetParams(frontend=LogMelConfig(window_seconds=0.008, num_mel_bins=16), num_classes=4,
                          layers=(LayerSpec("conv", 8, 2), LayerSpec("separable", 16, 2)))
    return YAMNetBackbone(params, source="cross-lane fixture (random weights)")


def interpreter_version() -> str:
    from tfaudio.interpreter import interpreter_backend

    backend = interpreter_backend()
    return f"{backend} {version(backend)}"


def main() -> None:
    from tests.helpers import tone_dataset
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.export.tflite import export_tflite
    from tfaudio.heads.classification_head import HeadConfig
    from tfaudio.interpreter import tflite_interpreter
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    tag = "tf" + ".".join(tf.__version__.split(".")[:2])
    out = FIXTURES / tag
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TFAUDIO_CACHE", str(pathlib.Path(tmp) / "cache"))
        data = tone_dataset(pathlib.Path(tmp) / "data", n_per_class=4, seconds=1.2)
        train, val, _ = data.split(train=[1, 2], val=[3])
        clf = AudioClassifier(tiny_backbone(), labels=LABELS, head=HeadConfig.linear())
        clf.fit(train, val, TrainConfig(epochs=80, learning_rate=0.05, patience=80, seed=0))

        build = pathlib.Path(tmp) / tag
        build.mkdir()
        saved = export_saved_model(clf, build / "saved_model")
        tflite = {v: export_tflite(clf, build / f"model_{v}.tflite", quantization=v,
                                   representative_data=train.paths if v == "int8" else None)
                  for v in ("float32", "int8")}

        audio = clips()
        names = list(audio)
        # The scores this lane's runtimes give (what the other lane must reproduce).
        served = tf.saved_model.load(str(saved))
        expected: dict[str, np.ndarray] = {f"audio/{k}": pcm16(v) for k, v in audio.items()}
        expected["keras"] = np.stack([clf.predict_scores(audio[k])[0] for k in names])
        expected["serving_default"] = np.stack(
            [served.signatures["serving_default"](audio=tf.constant(audio[k]))["classifier"].numpy() for k in names])
        width = max(len(a) for a in audio.values())
        batch = np.stack([np.pad(audio[k], (0, width - len(audio[k]))) for k in names])
        lengths = np.array([len(audio[k]) for k in names], np.int32)
        expected["batch"] = served.signatures["batch"](audio=tf.constant(batch),
                                                       lengths=tf.constant(lengths))["classifier"].numpy()
        windows = windows_of(audio, names)
        for variant, path in tflite.items():
            it = tflite_interpreter(path)
            inp, outp = it.get_input_details()[0], it.get_output_details()[0]
            rows = []
            for w in windows:
                it.set_tensor(inp["index"], w[None].astype(np.float32))
                it.invoke()
                rows.append(it.get_tensor(outp["index"])[0].copy())
            expected[f"tflite_{variant}"] = np.stack(rows)
        np.savez_compressed(build / "expected.npz", names=np.array(names), **expected)
        made_by = {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "tf_keras": version("tf-keras"),
            "numpy": np.__version__,
            "interpreter": interpreter_version(),
            "labels": list(LABELS),
            "window_samples": WINDOW,
        }
        (build / "made_by.json").write_text(json.dumps(made_by, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(build, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out.relative_to(ROOT)} ({size / 1024:.0f} KiB), made by {made_by}")
    print("scores (serving_default):", np.round(expected["serving_default"], 3).tolist())


if __name__ == "__main__":
    main()

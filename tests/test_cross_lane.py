"""Models exported on one lane load and give the same scores on the other.

``tests/golden/cross_lane/tf<version>/`` holds a tiny classifier exported by
``tests/golden/make_cross_lane_fixture.py`` on each tested lane (TF 2.16 + tflite-runtime, TF 2.21 +
LiteRT), with the scores it gave there. Whichever lane runs this file loads every folder's SavedModel
(``tf.saved_model.load`` and Keras 3's ``TFSMLayer``, as the README tells Keras 3 users) and TFLite
files (through :func:`tfaudio.interpreter.tflite_interpreter`) and compares.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tfaudio.interpreter import tflite_interpreter

FIXTURES = pathlib.Path(__file__).parent / "golden" / "cross_lane"
MADE = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.npz").exists())
# Float32 rounding of other TF and interpreter builds; measured: 0 for the SavedModels and int8, 3e-8 for
# float32 TFLite (TF 2.16 + tflite-runtime 2.14 vs TF 2.21 + LiteRT 2.3).
ATOL = 1e-5


def _load(tag: str):
    folder = FIXTURES / tag
    with np.load(folder / "expected.npz") as z:
        expected = {k: z[k] for k in z.files}
    names = [str(n) for n in expected["names"]]
    audio = {n: expected[f"audio/{n}"].astype(np.float32) / 32768 for n in names}
    return folder, json.loads((folder / "made_by.json").read_text()), names, audio, expected


def test_fixtures_from_both_lanes_are_checked_in():
    assert {"tf2.16", "tf2.21"} <= set(MADE), f"missing fixtures: run tests/golden/make_cross_lane_fixture.py ({MADE})"


@pytest.mark.parametrize("tag", MADE)
def test_saved_model_gives_the_recorded_scores(tag):
    folder, made_by, names, audio, expected = _load(tag)
    served = tf.saved_model.load(str(folder / "saved_model"))
    one = served.signatures["serving_default"]
    for i, name in enumerate(names):
        out = one(audio=tf.constant(audio[name]))
        np.testing.assert_allclose(out["classifier"].numpy(), expected["serving_default"][i], atol=ATOL,
                                   err_msg=f"{name}: SavedModel made by {made_by}")
        assert out["label"].numpy().decode() == made_by["labels"][int(expected["serving_default"][i].argmax())]
    width = max(len(a) for a in audio.values())
    batch = np.stack([np.pad(audio[n], (0, width - len(audio[n]))) for n in names])
    lengths = np.array([len(audio[n]) for n in names], np.int32)
    out = served.signatures["batch"](audio=tf.constant(batch), lengths=tf.constant(lengths))
    np.testing.assert_allclose(out["classifier"].numpy(), expected["batch"], atol=ATOL)
    np.testing.assert_allclose(expected["batch"], expected["keras"], atol=ATOL)  # as made


@pytest.mark.parametrize("tag", MADE)
def test_keras3_tfsmlayer_loads_the_saved_model(tag):
    keras = pytest.importorskip("keras", reason="Keras 3 (the 'keras' package) is not installed")
    if not hasattr(keras.layers, "TFSMLayer"):
        pytest.skip(f"keras {keras.__version__} has no TFSMLayer (Keras 3 has)")
    folder, _, names, audio, expected = _load(tag)
    layer = keras.layers.TFSMLayer(str(folder / "saved_model"), call_endpoint="serving_default")
    out = layer(tf.constant(audio[names[0]]))
    np.testing.assert_allclose(np.asarray(out["classifier"]), expected["serving_default"][0], atol=ATOL)


@pytest.mark.parametrize("variant", ["float32", "int8"])
@pytest.mark.parametrize("tag", MADE)
def test_tflite_gives_the_recorded_scores(tag, variant):
    folder, made_by, names, audio, expected = _load(tag)
    it = tflite_interpreter(folder / f"model_{variant}.tflite")
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    window = made_by["window_samples"]
    for i, name in enumerate(names):
        x = np.pad(audio[name], (0, max(0, window - len(audio[name]))))[:window]
        it.set_tensor(inp["index"], x[None])
        it.invoke()
        np.testing.assert_allclose(it.get_tensor(out["index"])[0], expected[f"tflite_{variant}"][i], atol=ATOL,
                                   err_msg=f"{name}: {variant} made by {made_by}")

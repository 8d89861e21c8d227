"""Tests of tfaudio.signal.framing: seconds to samples, pad/crop, minimum length, frames, TFLite."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import noise
from tfaudio.signal.framing import (
    frame,
    frame_samples,
    pad_or_crop,
    pad_or_crop_samples,
    pad_to_min_length,
    seconds_to_samples,
)


def run_tflite(fn, spec: tf.TensorSpec, x: np.ndarray) -> np.ndarray:
    """Converts ``fn`` with TFLite builtins only and runs it on ``x`` in the TFLite interpreter."""
    from tfaudio.interpreter import tflite_interpreter

    f = tf.function(fn, input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tflite_interpreter(model_content=converter.convert())
    index_in = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index_in, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index_in, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_seconds_to_samples_rounds():
    assert seconds_to_samples(0.96, 16000) == 15360
    assert seconds_to_samples(0.025, 16000) == 400
    assert seconds_to_samples(5.0, 44100) == 220500
    assert seconds_to_samples(1 / 3, 100) == 33
    assert seconds_to_samples(0.0299, 100) == 3  # rounded, not truncated
    with pytest.raises(ValueError, match="seconds"):
        seconds_to_samples(-1.0, 16000)


@pytest.mark.parametrize("align", ["start", "center"])
def test_pad_or_crop_values(align):
    x = np.arange(1, 8, dtype=np.float32)  # 7 samples
    padded = pad_or_crop_samples(x, 10, align=align).numpy()
    cropped = pad_or_crop_samples(x, 4, align=align).numpy()
    if align == "start":
        np.testing.assert_array_equal(padded, [1, 2, 3, 4, 5, 6, 7, 0, 0, 0])
        np.testing.assert_array_equal(cropped, [1, 2, 3, 4])
    else:
        np.testing.assert_array_equal(padded, [0, 1, 2, 3, 4, 5, 6, 7, 0, 0])
        np.testing.assert_array_equal(cropped, [2, 3, 4, 5])
    np.testing.assert_array_equal(pad_or_crop_samples(x, 7, align=align).numpy(), x)


def test_pad_or_crop_seconds_batch_and_static_shape():
    batch = np.stack([noise(0.5, 16000, seed=0), noise(0.5, 16000, seed=1)])  # [2, 8000]
    out = pad_or_crop(batch, 1.0, 16000)
    assert out.shape == (2, 16000)
    np.testing.assert_array_equal(out.numpy()[:, :8000], batch)
    assert not out.numpy()[:, 8000:].any()
    assert pad_or_crop(batch, 0.25, 16000, align="center").shape == (2, 4000)
    f = tf.function(lambda x: pad_or_crop(x, 1.0, 16000), input_signature=[tf.TensorSpec([None], tf.float32)])
    assert f.get_concrete_function().structured_outputs.shape.as_list() == [16000]
    assert f(noise(2.0, 16000)).shape == (16000,)
    with pytest.raises(ValueError, match="align"):
        pad_or_crop(batch, 1.0, 16000, align="end")


def test_pad_to_min_length():
    np.testing.assert_array_equal(pad_to_min_length(np.ones(3, np.float32), 5).numpy(), [1, 1, 1, 0, 0])
    x = noise(0.1, 16000)
    np.testing.assert_array_equal(pad_to_min_length(x, 100).numpy(), x)
    assert pad_to_min_length(tf.zeros([2, 3]), 4).shape == (2, 4)
    f = tf.function(lambda x: pad_to_min_length(x, 15600), input_signature=[tf.TensorSpec([None], tf.float32)])
    assert f(tf.zeros([100])).shape == (15600,) and f(tf.zeros([20000])).shape == (20000,)


def test_frame_samples_values_and_counts():
    x = np.arange(10, dtype=np.float32)
    frames = frame_samples(x, 4, 3).numpy()
    np.testing.assert_array_equal(frames, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    padded = frame_samples(x, 4, 3, pad_end=True).numpy()
    np.testing.assert_array_equal(padded[-1], [9, 0, 0, 0])
    assert padded.shape == (4, 4)
    assert frame_samples(x[:3], 4, 3).shape == (0, 4)  # shorter than a frame: no frame
    assert frame_samples(np.zeros([2, 10], np.float32), 4, 3).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="hop_length"):
        frame_samples(x, 4, 0)


def test_frame_in_seconds_and_along_axis_0():
    assert frame(tf.zeros([16000]), 0.025, 0.010, 16000).shape == (98, 400)
    log_mel = np.random.default_rng(0).standard_normal([200, 64]).astype(np.float32)  # [frames, mel]
    patches = frame_samples(log_mel, 96, 48, axis=0).numpy()  # YAMNet: 0.96 s patches, 0.48 s hop
    assert patches.shape == (3, 96, 64)
    np.testing.assert_array_equal(patches[1], log_mel[48:144])
    assert frame(log_mel, 0.96, 0.48, 100, axis=0).shape == (3, 96, 64)


def test_frame_and_pad_or_crop_in_tflite():
    log_mel = np.random.default_rng(1).standard_normal([250, 64]).astype(np.float32)
    got = run_tflite(lambda m: frame_samples(m, 96, 48, axis=0), tf.TensorSpec([None, 64], tf.float32), log_mel)
    np.testing.assert_array_equal(got, frame_samples(log_mel, 96, 48, axis=0).numpy())

    x = noise(0.3, 16000)
    got = run_tflite(lambda w: frame(w, 0.025, 0.010, 16000, pad_end=True), tf.TensorSpec([None], tf.float32), x)
    np.testing.assert_array_equal(got, frame(x, 0.025, 0.010, 16000, pad_end=True).numpy())

    spec = tf.TensorSpec([None, None], tf.float32)
    for n in (3000, 20000):
        batch = noise(n / 16000, 16000)[None]
        got = run_tflite(lambda w: pad_or_crop(w, 1.0, 16000, align="center"), spec, batch)
        np.testing.assert_array_equal(got, pad_or_crop(batch, 1.0, 16000, align="center").numpy())

"""frame_energy_db: O(N) hop sums give the numbers of squaring every framed copy (the formula before
issue #23), for every backbone's frame/hop contract, any lengths and frame counts; and it stays plain
TFLite builtins (the clip scorer's exported graphs call it)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.test_framing import run_tflite
from tfaudio.signal.frame_energy import SILENT_DB, frame_energy_db


def reference_db(waveforms, lengths, frame: int, hop: int, num_frames: int) -> np.ndarray:
    """The definition, in float64: mean square of samples [i * hop, i * hop + frame), zeros past each length."""
    x = np.asarray(waveforms, np.float64)
    out = np.empty([x.shape[0], num_frames])
    for b, n in enumerate(lengths):
        row = np.zeros(max(x.shape[1], (num_frames - 1) * hop + frame))
        row[:n] = x[b, :n]
        for i in range(num_frames):
            out[b, i] = np.mean(row[i * hop : i * hop + frame] ** 2)
    return 10.0 * np.log10(out + 1e-12)


# (frame, hop) of YAMNet (0.96 / 0.48 s at 16 kHz), EfficientAT (0.32 / 0.32 s at 32 kHz), the speech
# embedding (0.782 / 0.08 s at 16 kHz: gcd 32, a frame is 9 hops and 31 blocks), and made-up ones
# (frame < hop, co-prime).
CONTRACTS = [(15360, 7680), (10240, 10240), (12512, 1280), (300, 700), (7, 5)]


@pytest.mark.parametrize("frame,hop", CONTRACTS)
def test_equals_the_definition(frame, hop):
    rng = np.random.default_rng(frame + hop)
    width = 3 * frame + 5 * hop + 17
    x = (rng.standard_normal([3, width]) * rng.uniform(0.01, 1.0, [3, 1])).astype(np.float32)
    lengths = np.array([width, width // 3, 1], np.int32)  # full, partial, one sample
    for num_frames in (1, 4, 9):  # fewer frames than the audio has, and more (zeros past the end)
        got = frame_energy_db(x, lengths, frame, hop, num_frames).numpy()
        want = reference_db(x, lengths, frame, hop, num_frames)
        assert got.shape == (3, num_frames)
        np.testing.assert_allclose(got, want, atol=2e-3, err_msg=f"{frame}/{hop}, {num_frames} frames")


def test_silence_and_a_tensor_frame_count_in_a_traced_function():
    fn = tf.function(lambda x, n, f: frame_energy_db(x, n, 15360, 7680, f), reduce_retracing=True)
    x = np.zeros([2, 40000], np.float32)
    x[1, :15360] = 0.5  # -6 dB over the first two hops: frames of two hops are -6, -9 and silent
    got = fn(x, np.array([40000, 40000], np.int32), tf.constant(3)).numpy()
    np.testing.assert_allclose(got[0], SILENT_DB, atol=1e-3)
    np.testing.assert_allclose(got[1], [10 * np.log10(0.25), 10 * np.log10(0.125), SILENT_DB], atol=1e-3)


def test_runs_in_tflite_as_builtins():
    frame, hop = 12512, 1280
    rng = np.random.default_rng(3)
    x = rng.standard_normal([1, 20000]).astype(np.float32)
    spec = tf.TensorSpec([1, 20000], tf.float32)
    got = run_tflite(lambda a: frame_energy_db(a, tf.constant([15000]), frame, hop, 5), spec, x)
    np.testing.assert_allclose(got, reference_db(x, [15000], frame, hop, 5), atol=2e-3)

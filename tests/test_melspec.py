"""The log-mel frontend: equal to tf.signal's STFT (RFFT and TFLite DFT-matmul paths), right shapes and
counts, TFLite builtins only."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import noise, silence, sine
from tfaudio.signal.melspec import (
    LogMelConfig,
    log_mel_patches,
    log_mel_spectrogram,
    mel_weight_matrix,
    num_patches,
    pad_waveform,
    stft_magnitude,
    tflite_compatible,
)

CFG = LogMelConfig()


@pytest.fixture(params=["rfft", "dft-matmul"])
def stft_path(request):
    """Runs a test once per STFT implementation (the default RFFT, and TFLite's DFT matmul)."""
    with tflite_compatible(request.param == "dft-matmul"):
        yield request.param


def _exact_mel(x, cfg=CFG):
    """Mel energies in float64 through numpy's FFT (the ground truth for float32 implementations)."""
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), cfg.window_samples)
    frames = frames[:: cfg.hop_samples]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.window_samples) / cfg.window_samples)
    return np.abs(np.fft.rfft(frames * window, cfg.fft_length)) @ mel_weight_matrix(cfg).astype(np.float64)


def test_config_derived_sizes():
    assert (CFG.window_samples, CFG.hop_samples, CFG.fft_length, CFG.num_spectrogram_bins) == (400, 160, 512, 257)
    assert (CFG.patch_frames, CFG.patch_hop_frames, CFG.patch_hop_samples) == (96, 48, 7680)
    assert CFG.min_samples == 15600 and CFG.min_seconds == pytest.approx(0.975)
    assert LogMelConfig(window_seconds=0.032).fft_length == 512  # 512 samples: already a power of two
    assert LogMelConfig(sample_rate=8000).fft_length == 256


@pytest.mark.parametrize("frame_length,frame_step,fft_length", [(400, 160, 512), (256, 128, 256), (300, 100, 1024)])
def test_stft_magnitude_equals_tf_signal_stft(frame_length, frame_step, fft_length, stft_path):
    x = np.stack([noise(1.3, 16000, seed=1), sine(440, 1.3, 16000) + noise(1.3, 16000, seed=2, amplitude=0.01)])
    ours = stft_magnitude(x, frame_length, frame_step, fft_length).numpy()  # [2, F, K]
    ref = np.abs(tf.signal.stft(x, frame_length, frame_step, fft_length).numpy())
    assert ours.shape == ref.shape == (2, 1 + (len(x[0]) - frame_length) // frame_step, fft_length // 2 + 1)
    # float32 sums of 400 terms: ~1e-5 of the largest magnitude (~40 here)
    np.testing.assert_allclose(ours, ref, atol=1e-4 * ref.max(), rtol=0)
    single = stft_magnitude(x[1], frame_length, frame_step, fft_length).numpy()
    np.testing.assert_allclose(single, ours[1], atol=1e-5 * ref.max(), rtol=0)


@pytest.mark.parametrize("signal", ["silence", "noise", "sine"])
def test_log_mel_equals_reference(signal, stft_path):
    x = {"silence": silence(1.0, 16000), "noise": noise(1.0, 16000, seed=3),
         "sine": sine(440, 1.0, 16000)}[signal]
    ours = log_mel_spectrogram(x).numpy()
    assert ours.shape == (98, 64) and ours.dtype == np.float32
    exact = _exact_mel(x)
    # float32 error of the energies is ~1e-6 of the loudest band (tf.signal.stft has the same);
    # in the log it is < 1e-4 except in bands ~60 dB below the loudest, near the 0.001 floor.
    np.testing.assert_allclose(np.exp(ours) - CFG.log_offset, exact, atol=1e-5 * max(exact.max(), 1), rtol=0)
    loud = exact > 1e-3 * exact.max()
    np.testing.assert_allclose(ours[loud], np.log(exact + CFG.log_offset)[loud], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours, np.log(exact + CFG.log_offset), atol=3e-3, rtol=0)
    if signal == "silence":
        np.testing.assert_allclose(ours, np.log(CFG.log_offset), rtol=1e-6)


def test_batch_equals_single_and_shapes(stft_path):
    x = np.stack([noise(2.0, 16000, seed=s) for s in range(3)])  # [3, 32000]
    padded = pad_waveform(x)
    assert padded.shape == (3, CFG.min_samples + 3 * CFG.patch_hop_samples)  # 2 s → 4 patches
    lm = log_mel_spectrogram(padded)
    patches = log_mel_patches(lm)
    assert lm.shape == (3, 1 + (padded.shape[1] - 400) // 160, 64) and patches.shape == (3, 4, 96, 64)
    for i in range(3):
        np.testing.assert_allclose(log_mel_patches(log_mel_spectrogram(pad_waveform(x[i])))[1], patches[i, 1],
                                   atol=1e-5)
    # patch j is log-mel frames 48 j .. 48 j + 95
    np.testing.assert_array_equal(patches[0, 2], lm[0, 96:192])


@pytest.mark.parametrize("n,expected", [(0, 1), (100, 1), (15600, 1), (15601, 2), (15600 + 7680, 2),
                                        (15601 + 7680, 3), (80000, 10)])
def test_padding_and_patch_counts(n, expected):
    from tests.helpers import ToyBackbone

    assert num_patches(n) == expected == ToyBackbone().num_frames(n)
    assert int(num_patches(tf.constant(n))) == expected
    padded = pad_waveform(tf.ones([n]))
    assert padded.shape == (CFG.min_samples + (expected - 1) * CFG.patch_hop_samples,)
    assert float(tf.reduce_sum(padded)) == n  # zeros appended at the end only
    assert log_mel_patches(log_mel_spectrogram(padded)).shape[0] == expected


@pytest.mark.slow
def test_tf_function_dynamic_length_traces_once():
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def frontend(w):
        traces.append(1)
        return log_mel_patches(log_mel_spectrogram(pad_waveform(w)))

    for n in (1000, 16000, 40000):
        assert frontend(tf.zeros([n])).shape[0] == num_patches(n)
    assert len(traces) == 1
    # the mel matrix is built at trace time from a cached numpy constant, also inside a graph
    assert mel_weight_matrix().shape == (257, 64)


def test_paths_agree_and_build_different_graphs():
    x = noise(1.5, 16000, seed=9)
    graphs, outputs = {}, {}
    for path in (False, True):
        with tflite_compatible(path):
            fn = tf.function(lambda w: log_mel_spectrogram(w), input_signature=[tf.TensorSpec([None], tf.float32)])
            graphs[path] = {op.type for op in fn.get_concrete_function().graph.get_operations()}
            outputs[path] = fn(x).numpy()
    np.testing.assert_allclose(outputs[True], outputs[False], atol=1e-4)
    assert {"RFFT", "ComplexAbs"} <= graphs[False] and "Sqrt" not in graphs[False]
    assert not {"RFFT", "ComplexAbs"} & graphs[True] and "Sqrt" in graphs[True]


def test_tflite_builtins_only(stft_path):
    from tfaudio.interpreter import tflite_interpreter

    @tf.function(input_signature=[tf.TensorSpec([15600], tf.float32)])
    def frontend(w):
        return log_mel_patches(log_mel_spectrogram(pad_waveform(w)))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([frontend.get_concrete_function()], frontend)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails on any Flex op
    model = converter.convert()
    it = tflite_interpreter(model_content=model)
    x = noise(0.975, 16000, seed=5)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    out = it.get_tensor(it.get_output_details()[0]["index"])
    assert out.shape == (1, 96, 64)
    np.testing.assert_allclose(out, frontend(x).numpy(), atol=1e-4)

"""The frontends' faster TF kernels (``melspec.fast_kernels``), which the data pipeline's per-clip step
traces with: the banded mel projection equals the dense one, EfficientAT's and YAMNet's log-mels and
embeddings stay those of the plain kernels to float32 rounding, the graph really takes the shortcuts
(no complex ``abs``, one matmul per band group), and exports (``tflite_compatible``) keep their form.
Also: a stream resamples 16 and 8 kHz in its graph, with the decode step's samples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.helpers import noise, silence, sine, write_audio
from tfaudio.backbones.efficientat import frontend as eat
from tfaudio.data.clip_stream import ClipStream
from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import AudioDataset, PipelineConfig, decode_clip
from tfaudio.signal import melspec


def _clips(rate: int, seconds: float = 1.3) -> list[np.ndarray]:
    """Silence, seeded noise, a sine and a quiet mix: the frontends' golden-test signals."""
    return [silence(seconds, rate), noise(seconds, rate, seed=3),
            sine(440.0, seconds, rate), (0.01 * noise(seconds, rate, seed=4) + sine(3000.0, seconds, rate, 0.01))]


def _traced(fn, fast: bool, tflite: bool = False):
    with melspec.fast_kernels(fast), melspec.tflite_compatible(tflite):
        return tf.function(fn, input_signature=[tf.TensorSpec([None], tf.float32)], autograph=False
                           ).get_concrete_function()


def _op_types(concrete) -> list[str]:
    return [op.type for op in concrete.graph.get_operations()]


@pytest.mark.parametrize("weights", [eat.kaldi_mel_matrix(), melspec.mel_weight_matrix()], ids=["kaldi", "yamnet"])
def test_banded_mel_equals_the_dense_product(weights):
    used = np.flatnonzero(weights.any(axis=1))
    w = weights[used[0] : used[-1] + 1]
    spectrum = np.random.default_rng(0).random([2, 7, w.shape[0]]).astype(np.float32) ** 4  # [B, F, K]
    dense = melspec.mel_matmul(spectrum, w).numpy()
    with melspec.fast_kernels():
        banded = melspec.mel_matmul(spectrum, w).numpy()
    np.testing.assert_allclose(dense, spectrum.astype(np.float64) @ w, rtol=1e-5)
    assert banded.shape == dense.shape == (2, 7, w.shape[1])
    np.testing.assert_allclose(banded, dense, rtol=2e-6, atol=1e-30)
    groups = melspec._mel_bands(w.tobytes(), w.shape, melspec.MEL_BANDS_PER_GROUP)
    assert sum(last - first for first, last, _ in groups) < 2 * w.shape[0]  # far fewer bins than bands x bins


@pytest.mark.parametrize("rate", [32000, 16000], ids=["efficientat", "yamnet"])
def test_fast_kernels_keep_the_log_mel(rate):
    if rate == 32000:
        fn = lambda x: eat.log_mel(x)  # noqa: E731
    else:
        fn = lambda x: melspec.log_mel_spectrogram(melspec.pad_waveform(x))  # noqa: E731
    plain, fast = _traced(fn, False), _traced(fn, True)
    assert "ComplexAbs" in _op_types(plain) and "ComplexAbs" not in _op_types(fast)
    assert _op_types(fast).count("MatMul") > _op_types(plain).count("MatMul") + 2  # the band groups
    for clip in _clips(rate):
        a, b = plain(tf.constant(clip, tf.float32)).numpy(), fast(tf.constant(clip, tf.float32)).numpy()
        assert a.shape == b.shape
        # log-mel values of order 1-10: float32 rounding of the power and of the sums
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-5)


def test_exports_keep_their_form():
    """Inside tflite_compatible the DFT matmul and the dense mel stay, fast kernels or not."""
    fn = lambda x: melspec.log_mel_spectrogram(melspec.pad_waveform(x))  # noqa: E731
    both, export = _op_types(_traced(fn, True, tflite=True)), _op_types(_traced(fn, False, tflite=True))
    assert both == export
    assert "RFFT" not in both and both.count("MatMul") == 2  # the DFT matrix, the mel matrix


@pytest.mark.slow  # ~4 s: a small EfficientAT and a stream pipeline
def test_pipeline_features_give_the_plain_embeddings(tmp_path):
    """The cache's path (the stream's fast-kernel features, then the body) against the backbone's own
    batch_frames (plain kernels): the same embeddings to float32 rounding."""
    from tfaudio.backbones.efficientat.backbone import EfficientATBackbone
    from tfaudio.backbones.efficientat.params import EfficientATParams

    bb = EfficientATBackbone(EfficientATParams(0.1))
    clips = [noise(1.1, 32000, seed=5) + sine(700.0, 1.1, 32000, 0.2), sine(2500.0, 1.1, 32000, 0.3)]
    paths = [str(write_audio(tmp_path / f"c{i}.wav", c, 32000)) for i, c in enumerate(clips)]
    c = bb.contract
    stream = ClipStream(PipelineConfig(sample_rate=32000), bb.clip_features, (c.frame_samples, c.hop_samples),
                        keep_audio=True)
    try:
        (batch,) = list(stream.batches(paths, 2))
    finally:
        stream.close()
    got, got_mask = bb.batch_frames_from_features(batch["features"], batch["feature_count"])
    want, want_mask = bb.batch_frames(tf.constant(batch["audio"]), tf.constant(batch["length"]))
    np.testing.assert_array_equal(np.asarray(got_mask), np.asarray(want_mask))
    want = np.asarray(want)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-4 * np.abs(want).max())


@pytest.mark.slow  # ~3 s: a stream and a data set built and run
def test_a_stream_resamples_speech_rates_in_its_graph(tmp_path):
    config = PipelineConfig(sample_rate=32000)
    stream = ClipStream(config, None, None, keep_audio=True)
    assert {16000, 8000, 44100} <= set(stream.rates)
    specs = [(16000, 0.7), (8000, 0.6), (44100, 0.5)]
    paths = [str(write_audio(tmp_path / f"r{r}.wav", noise(s, r, seed=r) + sine(1000.0, s, r, 0.2), r))
             for r, s in specs]
    decoded = [np.asarray(decode_clip(p, config)) for p in paths]  # the decode step's resampling
    manifest = Manifest(pd.DataFrame({"path": paths, "label": ["a"] * len(paths)}))
    dataset = [e["audio"] for e in AudioDataset(manifest, config).iterate()]
    try:
        got = [e["audio"] for _, e in stream.clips(paths)]
    finally:
        stream.close()
    for g, d, w in zip(got, dataset, decoded, strict=True):
        assert g.shape == w.shape == d.shape
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-6)
        np.testing.assert_allclose(g, d, rtol=0, atol=2e-6)

"""The tflite engine's bodies (tfaudio.backbones.tflite_body): EfficientAT's body in fixed-shape TFLite
models gives TensorFlow's embeddings and masks for clips of any length (padded to a length bucket and
to whole interpreter calls), falls back to TensorFlow past the last bucket, and keeps its converted
models on disk (reused, a damaged file converted again)."""
from __future__ import annotations

import numpy as np
import pytest

from tfaudio.backbones import engines, tflite_body
from tfaudio.backbones.tflite_body import LOG_MEL_ROWS, TFLiteBody, body_kind

pytestmark = pytest.mark.slow  # each converts a small EfficientAT body to TFLite (~5-10 s)


@pytest.fixture(autouse=True)
def _engine_models_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path / "tfaudio-cache"))


@pytest.fixture(scope="module")
def tiny():
    """EfficientAT at width 0.1 with random weights (no download): the same layers as mn04."""
    from tfaudio.backbones.efficientat.backbone import EfficientATBackbone
    from tfaudio.backbones.efficientat.params import EfficientATParams

    return EfficientATBackbone(EfficientATParams(0.1))


def _batch(seconds=(0.3, 1.0, 1.7)):
    """A zero-padded batch of noisy tones at 32 kHz: shorter than a frame, one bucket, two buckets' lengths."""
    rng = np.random.default_rng(1)
    n = [int(32000 * s) for s in seconds]
    t = np.arange(max(n)) / 32000
    clips = [(0.3 * np.sin(2 * np.pi * (200 + 700 * i) * t) + 0.05 * rng.standard_normal(t.size))[:k]
             for i, k in enumerate(n)]
    batch = np.stack([np.pad(c, (0, max(n) - len(c))) for c in clips]).astype(np.float32)
    return batch, np.array(n, np.int32)


def _close(a, b):
    """Equal to float32 rounding (random weights give embeddings of ~1e-7: compare relative to them)."""
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())


def test_efficientat_tflite_body_gives_tensorflows_embeddings(tiny):
    assert body_kind(tiny) == "log_mel"
    batch, lengths = _batch()
    ref, ref_mask = (np.asarray(t) for t in tiny.batch_frames(batch, lengths))
    frames, from_features = engines.engine_functions(tiny, "tflite")
    emb, mask = (np.asarray(t) for t in frames(batch, lengths))
    np.testing.assert_array_equal(mask, ref_mask)
    assert emb.shape == ref.shape
    _close(emb, ref)
    assert not emb[~mask].any()  # frames past a clip's end stay zero, as TensorFlow's
    # the cache's road: per-clip log-mels zero-padded by tf.data, then the body (rows padded to whole calls)
    feats = [np.asarray(tiny.clip_features(b[:n])) for b, n in zip(batch, lengths)]
    counts = np.array([len(f) for f in feats], np.int32)
    padded = np.stack([np.pad(f, ((0, counts.max() - len(f)), (0, 0))) for f in feats])
    assert len(padded) % LOG_MEL_ROWS != 0  # the body pads the rows itself
    emb2, mask2 = (np.asarray(t) for t in from_features(padded, counts))
    np.testing.assert_array_equal(mask2, ref_mask)
    _close(emb2, ref)


def test_past_the_last_bucket_tensorflow_runs_the_body(tiny, monkeypatch):
    monkeypatch.setattr(tflite_body, "LOG_MEL_BUCKET_SECONDS", (1,))  # read when a body is made
    body = TFLiteBody(tiny, workers=1)
    batch, lengths = _batch((0.5, 1.5))
    log_mel, counts = (np.asarray(t) for t in tiny.frontend(batch, lengths))
    assert body.log_mel(log_mel, counts) is None  # 1.5 s does not fit the 1 s bucket
    assert body.log_mel(log_mel[:1, :100], counts[:1]) is not None
    assert len(list(body.directory.glob("*.tflite"))) == 1  # only the 1 s shape was converted


def test_converted_models_are_kept_and_a_damaged_one_is_replaced(tiny, monkeypatch):
    batch, lengths = _batch((0.5,))
    log_mel, counts = (np.asarray(t) for t in tiny.frontend(batch, lengths))
    first = TFLiteBody(tiny, workers=1)
    want, _ = first.log_mel(log_mel, counts)
    files = list(first.directory.glob("efficientat-*.tflite"))
    assert len(files) == 1
    real = tflite_body._convert

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the model is on disk")

    monkeypatch.setattr(tflite_body, "_convert", no_conversion)
    got, _ = TFLiteBody(tiny, workers=1).log_mel(log_mel, counts)
    np.testing.assert_array_equal(got, want)
    files[0].write_bytes(b"not a flatbuffer")
    converted = []
    monkeypatch.setattr(tflite_body, "_convert", lambda *a, **k: converted.append(1) or real(*a, **k))
    got, _ = TFLiteBody(tiny, workers=1).log_mel(log_mel, counts)
    assert converted and files[0].read_bytes()[4:8] == b"TFL3"
    np.testing.assert_array_equal(got, want)


def test_new_weights_of_the_same_backbone_get_new_tflite_models():
    """A backbone fine-tuned or re-assigned in place: the engine follows its weights (no stale interpreter)."""
    from tfaudio.backbones.efficientat.backbone import EfficientATBackbone
    from tfaudio.backbones.efficientat.params import EfficientATParams

    bb = EfficientATBackbone(EfficientATParams(0.1))
    batch, lengths = _batch((1.0,))
    frames, _ = engines.engine_functions(bb, "tflite")
    before = np.asarray(frames(batch, lengths)[0])
    bb.assign_variables([v.numpy() * 1.5 for v in bb.variables])
    after = np.asarray(frames(batch, lengths)[0])
    ref = np.asarray(bb.batch_frames(batch, lengths)[0])
    assert not np.allclose(after, before)
    _close(after, ref)


def test_batches_of_full_length_clips_run_the_model_without_masks(tiny):
    """Clips that all fill their bucket (1 s = the 1 s bucket's 100 frames) run the model converted with
    constant counts (masks folded away); one shorter clip in the batch brings back the masked model.
    Both give TensorFlow's embeddings."""
    body = TFLiteBody(tiny, workers=2)
    shape = (LOG_MEL_ROWS, 100, body.mels)
    for seconds, full in [((1.0, 1.0, 1.0), True), ((1.0, 0.6, 1.0), False)]:
        batch, lengths = _batch(seconds)
        log_mel, counts = (np.asarray(t) for t in tiny.frontend(batch, lengths))
        assert log_mel.shape[1] == 100
        emb, mask = body.log_mel(log_mel, counts)
        ref, ref_mask = (np.asarray(t) for t in tiny.batch_frames(batch, lengths))
        np.testing.assert_array_equal(mask, ref_mask)
        _close(emb, ref)
        assert body.model_path(shape, full=True).is_file() and body.model_path(shape).is_file() is not full
    assert body.model_path(shape, full=True) != body.model_path(shape)

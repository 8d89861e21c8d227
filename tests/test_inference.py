"""The inference layer: every kind of loaded model scores through one protocol; top-k and the masked
poolings exist once and give what they promise."""
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import ToyBackbone, tone_dataset
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.export.saved_model import export_saved_model
from tfaudio.heads.decode import top_k
from tfaudio.inference import Scorer, frame_times, load_model
from tfaudio.signal.pooling import masked_mean, masked_mean_std
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.recipe import TrainConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("inference")
    m = tone_dataset(root / "audio", n_per_class=4, folds=2)
    bb = ToyBackbone()
    clf = AudioClassifier(bb, labels=m.labels, cache=EmbeddingCache(bb, root / "cache"))
    clf.fit(m, config=TrainConfig(epochs=5, seed=0))
    clf.save(root / "model")
    export_saved_model(clf, root / "export")
    return clf, root, m


def test_every_kind_implements_the_scorer_protocol(trained):
    clf, root, m = trained
    waves = [np.sin(np.linspace(0, 300, n)).astype(np.float32) * 0.3 for n in (16000, 24000)]
    reference = clf.scorer.scores(waves)
    for source, kind in ((clf, "classifier"), (root / "model", "classifier"), (root / "export", "export")):
        loaded = load_model(source, backbone=clf.backbone) if kind == "classifier" else load_model(source)
        scorer = loaded.scorer
        assert isinstance(scorer, Scorer) and scorer.kind == kind, source
        assert scorer.labels == tuple(m.labels) and scorer.sample_rate == 16000
        np.testing.assert_allclose(scorer.scores(waves), reference, atol=1e-5)
        outs = scorer.outputs(waves)
        assert len(outs) == 2 and all(o["classifier"].shape == (3,) for o in outs)
        if kind == "classifier":  # frame scores with their times
            assert scorer.frame_hop_seconds == pytest.approx(0.48) and scorer.frame_seconds == pytest.approx(0.96)
            frames = outs[1]["frame_scores"]
            times = frame_times(len(frames), scorer.frame_hop_seconds, scorer.frame_seconds)
            assert len(frames) == clf.backbone.num_frames(24000) and times[-1, 0] < 1.5 <= times[-1, 1]
        else:
            assert scorer.frame_hop_seconds is None


def test_top_k_is_stable_on_ties_and_bounded():
    labels = ["a", "b", "c", "d"]
    scores = np.array([0.2, 0.4, 0.4, 0.0], np.float32)
    assert [t["label"] for t in top_k(scores, labels, 3)] == ["b", "c", "a"]  # ties keep label order
    assert [t["index"] for t in top_k(scores, labels, None)] == [1, 2, 0, 3]
    assert top_k(scores, labels, 10)[0] == {"label": "b", "index": 1, "score": pytest.approx(0.4)}


def test_masked_poolings_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, [3, 6, 4]).astype(np.float32)
    w = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]], bool)
    mean = masked_mean(tf.constant(x), tf.constant(w)).numpy()
    stats = masked_mean_std(tf.constant(x), tf.constant(w)).numpy()
    for b in range(2):
        rows = x[b][w[b]]
        np.testing.assert_allclose(mean[b], rows.mean(0), rtol=1e-5)
        np.testing.assert_allclose(stats[b], np.concatenate([rows.mean(0), np.sqrt(rows.var(0) + 1e-6)]), rtol=1e-4)
    np.testing.assert_array_equal(mean[2], 0.0)  # no frame counts: zeros, not NaN
    np.testing.assert_allclose(masked_mean(tf.constant(x)).numpy(), x.mean(1), rtol=1e-5)  # None: every frame

import json

import numpy as np
import pytest

from tests.helpers import ToyBackbone, same_computation, sine, tone_dataset
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.errors import ManifestError, TfaudioError
from tfaudio.heads.classification_head import HeadConfig, build_head
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.recipe import TrainConfig

FAST = TrainConfig(epochs=40, batch_size=16, learning_rate=3e-3, patience=5)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tone_dataset(tmp_path_factory.mktemp("audio"), n_per_class=6)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    bb = ToyBackbone()
    cache = EmbeddingCache(bb, tmp_path_factory.mktemp("cache"))
    tr, va, te = data.split(train=[1], val=[2], test=[3])
    clf = AudioClassifier(bb, cache=cache).fit(tr, va, FAST)
    return clf, te


def test_heads_shapes_and_options():
    mlp = build_head(16, 3)
    assert [type(layer).__name__ for layer in mlp.layers] == ["InputLayer", "Dense", "Dense"]
    assert mlp.layers[1].units == 512
    probe = build_head(16, 3, HeadConfig.linear())
    assert len(probe.layers) == 2
    reg = build_head(16, 3, HeadConfig(hidden_units=(8,), dropout=0.5, l2=1e-3))
    assert any(type(layer).__name__ == "Dropout" for layer in reg.layers) and reg.losses
    x = np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(mlp(x)).sum(axis=1), 1.0, rtol=1e-5)
    multi = np.asarray(build_head(16, 3, HeadConfig(multi_label=True))(x))
    assert ((multi > 0) & (multi < 1)).all() and not np.allclose(multi.sum(axis=1), 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["stats", "embedding_mean"])
def test_pooled_embedding_heads_score_each_frame_as_a_one_frame_clip(pooling):
    import tensorflow as tf

    head = build_head(8, 3, HeadConfig(hidden_units=(6,), pooling=pooling))
    frames = tf.random.stateless_normal([2, 5, 8], [0, 1])
    out = head({"frames": frames, "weights": tf.ones([2, 5])})
    assert out["clip"].shape == (2, 3) and out["frames"].shape == (2, 5, 3)
    for f in (0, 3):  # frame f alone, as a clip
        alone = head({"frames": frames[:, f : f + 1], "weights": tf.ones([2, 1])})["clip"]
        assert np.allclose(out["frames"][:, f], alone, atol=1e-6)
    assert not np.allclose(out["frames"][:, 0], out["clip"])  # a clip is more than its first frame


def test_fit_evaluate_predict(trained):
    clf, test = trained
    rep = clf.evaluate(test)
    assert rep["clip"]["accuracy"] == 1.0 and rep["frame"]["accuracy"] > 0.9
    assert rep["clip"]["num_examples"] == len(test)
    assert "val_loss" in clf.history_ and len(clf.history_["loss"]) <= FAST.epochs
    top = clf.predict([sine(3000, 1.2, 16000), sine(300, 1.0, 44100)], sample_rate=None, top_k=2)
    assert top[0][0]["label"] == "high" and len(top[0]) == 2
    top = clf.predict(sine(300, 1.0, 44100), sample_rate=44100)
    assert top[0][0]["label"] == "low"
    files = clf.predict(test.paths[:3])
    assert [f[0]["label"] for f in files] == list(test.frame.label[:3])


@pytest.mark.slow
def test_clip_scores_are_the_mean_of_frame_scores(trained):
    clf, test = trained
    clips = clf.cache.load(test, progress=False)
    scores = clf.clip_scores(clips)
    for i in (0, 3):
        np.testing.assert_allclose(scores[i], clf.frame_scores(clips.embeddings[i]).mean(axis=0), **same_computation(scores[i]))
    np.testing.assert_allclose(clf.predict_scores(test.paths[:4]), scores[:4], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_reproducible_with_a_seed(data, tmp_path):
    bb = ToyBackbone()
    cache = EmbeddingCache(bb, tmp_path)
    tr = data.filter_folds([1, 2])
    cfg = TrainConfig(epochs=3, batch_size=8, seed=7)
    a = AudioClassifier(bb, cache=cache).fit(tr, config=cfg)
    b = AudioClassifier(bb, cache=cache).fit(tr, config=cfg)
    c = AudioClassifier(bb, cache=cache).fit(tr, config=TrainConfig(epochs=3, batch_size=8, seed=8))
    x = np.ones([2, 8], np.float32)
    np.testing.assert_allclose(a.frame_scores(x), b.frame_scores(x))
    assert not np.allclose(a.frame_scores(x), c.frame_scores(x))


def test_save_and_load_round_trip(trained, tmp_path):
    clf, test = trained
    out = clf.save(tmp_path / "model")
    cfg = json.loads((out / "tfaudio.json").read_text())
    assert cfg["labels"] == ["low", "high", "hiss"] and cfg["backbone"]["name"] == "toy"
    assert (out / "labels.txt").read_text().split() == ["low", "high", "hiss"]
    back = AudioClassifier.load(out, backbone=clf.backbone, cache=clf.cache)
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(back.frame_scores(x), clf.frame_scores(x), **same_computation(clf.frame_scores(x)))
    assert back.labels == clf.labels and back.history_ == clf.history_
    assert not list(tmp_path.glob(".*tmp"))


def test_clear_errors(data, tmp_path):
    bb = ToyBackbone()
    clf = AudioClassifier(bb, labels=data.labels, cache=EmbeddingCache(bb, tmp_path))
    with pytest.raises(TfaudioError, match="not trained"):
        clf.predict(sine(300, 1, 16000))
    one_class = data.select(["low"]).filter_folds([1])
    with pytest.raises(ManifestError, match="too few clips per class"):
        clf.fit(data.filter_folds([1]), config=TrainConfig(min_clips_per_class=3))
    with pytest.raises(ManifestError, match=r"\['hiss'\] have no clips"):
        clf.fit(data.select(["low", "high"]).with_labels(data.labels).filter_folds([1]))
    with pytest.raises(ManifestError, match="at least 2 classes"):
        AudioClassifier(bb, cache=clf.cache).fit(one_class, config=TrainConfig(epochs=1))


@pytest.mark.slow
def test_class_weights_balance_an_imbalanced_training_set(data, tmp_path):
    bb = ToyBackbone()
    cache = EmbeddingCache(bb, tmp_path)
    frame = data.frame
    keep = (frame.label != "hiss") | (frame.index % 3 == 0)  # 2 hiss clips against 6 of each other class
    from tfaudio.data.manifest import Manifest

    imb = Manifest(frame[keep], labels=data.labels)
    clf = AudioClassifier(bb, cache=cache).fit(imb, config=TrainConfig(epochs=30, batch_size=8))
    rep = clf.evaluate(data)
    assert rep["clip"]["per_class"]["hiss"]["recall"] == 1.0


@pytest.mark.slow
def test_mixup_and_multilabel_modes_train(data, tmp_path):
    bb = ToyBackbone()
    cache = EmbeddingCache(bb, tmp_path)
    tr = data.filter_folds([1, 2])
    mix = AudioClassifier(bb, cache=cache).fit(tr, config=TrainConfig(epochs=30, batch_size=8, mixup=0.2, learning_rate=3e-3))
    assert mix.evaluate(data.filter_folds([3]))["clip"]["accuracy"] >= 2 / 3
    multi = AudioClassifier(bb, head=HeadConfig(multi_label=True), cache=cache).fit(
        tr, config=TrainConfig(epochs=30, batch_size=8, learning_rate=3e-3)
    )
    rep = multi.evaluate(data.filter_folds([3]))["clip"]
    assert rep["mAP"] > 0.8

"""Recipes (default / tutorial / from a file), the silence gate, the three poolings, seed ensembles,
per-epoch training logs and nested-CV tuning, on the tiny ToyBackbone."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import ToyBackbone, noise, sine, tone_dataset, write_audio
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.heads.classification_head import HeadConfig
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.recipe import Recipe, TrainConfig, get_recipe

FAST = {"epochs": 15, "batch_size": 16, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    """Tones and hiss of 0.5-1 s followed by 2-3 s of digital silence (ESC-50's padding), 3 folds."""
    import pandas as pd

    root = tmp_path_factory.mktemp("padded")
    rng = np.random.default_rng(1)
    rows = []
    for label, freq in (("low", 300.0), ("high", 3500.0), ("hiss", None)):
        for i in range(6):
            sound = noise(0.7, 16000, seed=i) if freq is None else sine(freq * rng.uniform(0.95, 1.05), 0.7, 16000)
            audio = np.concatenate([sound, np.zeros(int(16000 * rng.uniform(2.0, 3.0)), np.float32)])
            path = write_audio(root / label / f"{label}_{i}.wav", audio, 16000)
            rows.append({"path": str(path), "label": label, "fold": i % 3 + 1})
    return Manifest(pd.DataFrame(rows), labels=["low", "high", "hiss"])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return EmbeddingCache(ToyBackbone(), tmp_path_factory.mktemp("cache"), batch_size=8)


def test_named_recipes_and_files(tmp_path):
    default, tutorial = get_recipe(), get_recipe("tutorial")
    assert default.validation == "none" and default.head.silence_gate and default.head.standardize
    assert default.train.schedule == "cosine" and default.train.label_smoothing > 0
    assert tutorial.validation == "fold" and tutorial.train.monitor == "loss" and tutorial.head == HeadConfig()
    path = default.replace(name="mine", head={"hidden_units": (64,)}).save(tmp_path / "r.json")
    again = get_recipe(str(path))
    assert again.name == "mine" and again.head.hidden_units == (64,) and again.train == default.train
    from tfaudio.errors import TfaudioError

    (tmp_path / "bad.json").write_text(json.dumps({"head": {"pooling": "max"}}))
    with pytest.raises(TfaudioError, match="not a valid recipe.*pooling"):
        get_recipe(str(tmp_path / "bad.json"))
    (tmp_path / "bad_ft.json").write_text(json.dumps({"finetune": {"refit_head": "yes"}}))
    with pytest.raises(TfaudioError, match="not a valid recipe.*refit_head must be true or false"):
        get_recipe(str(tmp_path / "bad_ft.json"))
    for bad in (1.5, -0.1, "half", True):
        (tmp_path / "bad_ft.json").write_text(json.dumps({"finetune": {"interpolate": bad}}))
        with pytest.raises(TfaudioError, match="not a valid recipe.*interpolate must be a number in"):
            get_recipe(str(tmp_path / "bad_ft.json"))
    (tmp_path / "auto_ft.json").write_text(json.dumps({"finetune": {"interpolate": "auto"}}))
    assert get_recipe(str(tmp_path / "auto_ft.json")).finetune.interpolate == "auto"
    with pytest.raises(TfaudioError, match="unknown recipe 'fancy'.*default, tutorial"):
        get_recipe("fancy")


@pytest.mark.slow
def test_cache_stores_frame_energies_and_the_gate_finds_the_padding(padded, cache):
    clips = cache.load(padded, progress=False)
    assert clips.energies is not None and all(len(db) == len(e) for db, e in zip(clips.energies, clips.embeddings))
    gates = clips.gates()
    for g, db in zip(gates, clips.energies):
        assert g[0] and not g[-1]  # the sound opens the clip; the last frame is digital silence
        assert db[-1] < -100 and db[0] > -40
    x_all, _, _ = clips.frames()
    x_gated, y, _ = clips.frames(gate=True)
    assert len(x_gated) < len(x_all) and len(y) == len(x_gated)


@pytest.mark.slow
def test_the_gate_keeps_silence_out_of_the_score_on_every_road(padded, cache, tmp_path):
    """Cached-embedding scores (evaluate) == waveform scores (predict) == the exported SavedModel's, with
    the gate; and the gate makes the padded clips' scores confident instead of diluted."""
    import tensorflow as tf

    from tfaudio.export.saved_model import export_saved_model

    split = padded.split(train=[1, 2], test=[3])
    recipe = get_recipe().replace(train=FAST)
    clf = AudioClassifier(cache.backbone, labels=padded.labels, cache=cache, recipe=recipe).fit(split.train)
    test = cache.load(split.test, progress=False)
    from_cache = clf.clip_scores(test)
    paths = [split.test.paths[i] for i in range(len(split.test))]
    from_audio = clf.predict_scores(paths)
    np.testing.assert_allclose(from_cache, from_audio, atol=1e-5)
    export_saved_model(clf, tmp_path / "sm")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    audio = clf.scorer  # the same converter as predict
    from tfaudio.data.audio_converter import AudioConverter

    wave = AudioConverter(16000)(paths[0])
    served = loaded.signatures["serving_default"](audio=tf.constant(wave))["classifier"].numpy()
    np.testing.assert_allclose(served, from_audio[0], atol=1e-5)
    assert audio.silence_gate
    ungated = AudioClassifier(cache.backbone, labels=padded.labels, cache=cache,
                              recipe=recipe.replace(head={"silence_gate": False})).fit(split.train)
    assert from_cache.max(axis=1).mean() > ungated.clip_scores(test).max(axis=1).mean()


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["attention", "stats"])
def test_clip_level_heads_train_save_load_and_score_alike(pooling, padded, cache, tmp_path):
    recipe = get_recipe().replace(head={"pooling": pooling, "hidden_units": (32,)}, train=FAST)
    split = padded.split(train=[1, 2], test=[3])
    clf = AudioClassifier(cache.backbone, labels=padded.labels, cache=cache, recipe=recipe).fit(split.train)
    rep = clf.evaluate(split.test)
    assert rep["clip"]["accuracy"] >= 0.6
    paths = list(split.test.paths)
    np.testing.assert_allclose(clf.clip_scores(cache.load(split.test, progress=False)), clf.predict_scores(paths),
                               atol=1e-5)
    clf.save(tmp_path / "m")
    again = AudioClassifier.load(tmp_path / "m", backbone=cache.backbone, cache=cache)
    assert again.head.pooling == pooling
    np.testing.assert_allclose(again.predict_scores(paths), clf.predict_scores(paths), atol=1e-6)
    assert clf.scorer.frame_scores and again.scorer.frame_scores  # stats: each frame scored as a one-frame clip


@pytest.mark.slow
def test_seed_ensemble_averages_its_members(padded, cache):
    split = padded.split(train=[1, 2], test=[3])
    recipe = get_recipe().replace(head={"ensemble": 3, "hidden_units": (16,)}, train=FAST)
    clf = AudioClassifier(cache.backbone, labels=padded.labels, cache=cache, recipe=recipe).fit(split.train)
    members = [layer for layer in clf.head_model_.layers if layer.name.startswith("head_")]
    assert len(members) == 3
    x, _, _ = cache.load(split.test, progress=False).frames()
    mean = np.mean([np.asarray(m(x, training=False)) for m in members], axis=0)
    np.testing.assert_allclose(np.asarray(clf.head_model_(x, training=False)), mean, atol=1e-6)


def test_epoch_logs_are_each_epochs_values_and_fixed_schedules_run_every_epoch(padded, cache, capsys):
    split = padded.split(train=[1, 2], test=[3])
    config = TrainConfig(**FAST, verbose=2)
    clf = AudioClassifier(cache.backbone, labels=padded.labels, cache=cache).fit(split.train, config=config)
    assert len(clf.history_["loss"]) == FAST["epochs"]  # no validation: the whole schedule
    out = capsys.readouterr().out
    last = clf.history_["loss"][-1]
    assert f"loss: {last:.4f}" in out  # the last epoch's own value, not a running mean since epoch 1


def test_tutorial_recipe_stops_on_the_training_loss(padded, cache):
    split = padded.split(train=[1], val=[2], test=[3])
    clf = AudioClassifier(cache.backbone, labels=padded.labels, cache=cache, recipe="tutorial")
    clf.fit(split.train, split.val, TrainConfig(epochs=200, batch_size=32, learning_rate=0.05, monitor="loss",
                                                patience=3, mixup=0.0, label_smoothing=0.0, schedule="constant"))
    assert len(clf.history_["loss"]) < 200 and "val_loss" in clf.history_


@pytest.mark.slow
def test_tune_nested_cv_writes_a_recipe_train_takes(padded, cache, tmp_path, capsys):
    from tfaudio.tasks.tuning import tune

    a = get_recipe().replace(name="fast", train={"epochs": 8, "batch_size": 16})
    b = get_recipe().replace(name="linear", head={"hidden_units": ()}, train={"epochs": 8, "batch_size": 16})
    result = tune(padded, cache.backbone, grid=[a, b], cache=cache, output_dir=tmp_path / "t", progress=False)
    assert set(result["inner"]) == {"1", "2", "3"} and set(result["inner"]["1"]) == {"fast", "linear"}
    assert len(result["outer"]["per_fold"]) == 3 and 0.0 <= result["outer"]["mean"] <= 1.0
    assert set(result["outer"]["chosen"].values()) <= {"fast", "linear"}
    winner = Recipe.load(tmp_path / "t" / "recipe.json")
    assert winner.name == result["recipe"]["name"]
    saved = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert saved["outer"]["mean"] == result["outer"]["mean"]


@pytest.mark.slow
def test_cv_report_records_folds_clips_and_history(padded, cache, tmp_path):
    from tfaudio.tasks.cross_validation import cross_validate

    summary = cross_validate(padded, cache.backbone, get_recipe().replace(train={"epochs": 5, "batch_size": 16}),
                             cache=cache, output_dir=tmp_path, progress=False)
    saved = json.loads((tmp_path / "cv.json").read_text())
    assert len(saved["clips"]) == len(padded) and {c["fold"] for c in saved["clips"]} == {1, 2, 3}
    assert all(len(f["history"]["loss"]) == 5 for f in saved["folds"])
    assert saved["recipe"]["name"] == "default" and summary["recipe"]["validation"] == "none"


def test_manifest_from_a_csv_without_folds(tmp_path):
    m = tone_dataset(tmp_path / "a", n_per_class=2)
    csv = tmp_path / "x.csv"
    csv.write_text("filename,category\n" + "\n".join(f"{p},{lab}" for p, lab in zip(m.paths, m.frame.label)) + "\n")
    loaded = Manifest.from_csv(csv, audio_dir="/")
    assert not loaded.has_folds and len(loaded) == len(m)

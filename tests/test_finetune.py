"""Fine-tuning: augmentations, the waveform cache, the training road (loss, frozen parts, resume after kill -9,
MirroredStrategy) and what comes out of it (an ordinary model folder that predicts, evaluates and exports)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import (
    TinyConvBackbone,
    noise,
    same_computation,
    shared,
    tflite_window_scores,
    tone_dataset,
    write_audio,
)
from tfaudio.backbones import registry
from tfaudio.backbones.entry import BackboneEntry
from tfaudio.data.waveform_cache import WaveformCache
from tfaudio.errors import TfaudioError
from tfaudio.signal import augment
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.finetune import INTERPOLATE_GRID, FineTuneRun, WarmupCosine, evaluate_waveforms, finetune
from tfaudio.tasks.recipe import Recipe, get_recipe

RATE = 8000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tiny():
    """The test-only trainable backbone, registered so that saved models can name it."""
    entry = registry.register_backbone(BackboneEntry(
        name="tiny", cls="tests.helpers:TinyConvBackbone", example="tiny", summary="test-only",
        build=lambda source, **kw: TinyConvBackbone(sample_rate=RATE, tag=source or "tiny", **kw)), replace=True)
    yield entry
    registry.unregister_backbone("tiny")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    return tone_dataset(root / "audio", n_per_class=6, rate=RATE, seconds=1.0, folds=3), root


def recipe(**finetune) -> Recipe:
    """The finetune recipe made small: a linear head, 4 epochs of batches of 4."""
    r = get_recipe("finetune").replace(head={"hidden_units": ()},
                                       train={"epochs": 4, "batch_size": 4, "learning_rate": 1e-2})
    return r.replace(finetune={"head_epochs": 0, "warmup_epochs": 0.5, **finetune})


def weights(backbone) -> list[np.ndarray]:
    return [v.numpy().copy() for v in backbone.variables]


# ---- augmentations -----------------------------------------------------------------------------
def test_crop_or_pad_is_repeatable_and_stays_inside_the_clip():
    clip = np.arange(1000, dtype=np.float32)
    a, n = augment.crop_or_pad(clip, 1000, 300, seed=[1, 2])
    b, _ = augment.crop_or_pad(clip, 1000, 300, seed=[1, 2])
    assert int(n) == 300 and np.array_equal(a, b)
    starts = {int(augment.crop_or_pad(clip, 1000, 300, seed=[1, s])[0][0]) for s in range(20)}
    assert len(starts) > 5 and all(0 <= s <= 700 for s in starts)
    assert np.array_equal(np.diff(a), np.ones(299))  # one contiguous stretch of the clip
    short, n = augment.crop_or_pad(clip[:100], 100, 300, seed=[1, 2])
    short = short.numpy()
    assert int(n) == 100 and np.array_equal(short[:100], clip[:100]) and not short[100:].any()
    start, _ = augment.crop_or_pad(clip, 1000, 300)  # no seed: the start
    assert np.array_equal(start, clip[:300])


def test_gain_shift_mixup_and_masks_do_what_they_say():
    x = tf.constant(noise(0.5, RATE, seed=1)[None].repeat(4, 0))
    g = augment.random_gain(x, 6.0, [0, 1]).numpy()
    ratio_db = 20 * np.log10(np.abs(g).max(1) / np.abs(x.numpy()).max(1))
    assert np.all(np.abs(ratio_db) <= 6.0 + 1e-4) and np.ptp(ratio_db) > 0.1
    assert np.array_equal(augment.random_gain(x, 0.0, [0, 1]), x)

    lengths = tf.constant([4000, 4000, 100, 4000])
    shifted, n = augment.time_shift(x, lengths, 400, [3, 4])
    for row in range(4):
        s = int(n[row]) - int(lengths[row]) if int(n[row]) < 4000 else None
        if s is not None and s > 0:  # moved later: zeros first, then the clip
            assert not shifted[row, :s].numpy().any()
            assert np.allclose(shifted[row, s : s + 50], x[row, :50])
    assert np.all(n.numpy() >= 1)

    y = tf.one_hot([0, 1, 2, 0], 3)
    mixed, n2, ym = augment.mixup(x, lengths, y, 0.4, [5, 6])
    assert np.allclose(ym.numpy().sum(1), 1.0) and np.all(ym.numpy().max(1) >= 0.5 - 1e-6)
    assert np.all(n2.numpy() >= lengths.numpy())
    same = augment.mixup(x, lengths, y, 0.4, [5, 6])
    assert np.array_equal(same[0], mixed)

    feats = tf.random.stateless_normal([3, 50, 20], [0, 0])
    masked = augment.spec_mask(feats, 0.3, 0.2, [7, 8]).numpy()
    changed = masked != feats.numpy()
    assert changed.any() and not changed.all()
    assert np.array_equal(masked, augment.spec_mask(feats, 0.3, 0.2, [7, 8]))
    assert np.array_equal(augment.spec_mask(feats, 0.0, 0.0, [7, 8]), feats)


def test_speed_perturbation_plays_the_clip_faster_or_slower():
    assert augment.speed_factors(0.0) == (1,)
    speeds = augment.speed_factors(0.1)
    assert float(speeds[0]) == 0.9 and float(speeds[-1]) == 1.1 and 1 in speeds and list(speeds) == sorted(speeds)
    with pytest.raises(ValueError, match="max_change"):
        augment.speed_factors(0.6)
    rate, hz = 8000, 500.0
    tone = np.sin(2 * np.pi * hz * np.arange(rate) / rate).astype(np.float32)
    seen = {}
    for s in range(30):
        out, n = augment.speed_perturb(tone, rate, 0.1, [s, 7])
        out = out.numpy()
        assert out.shape == (int(n),)
        speed = rate / int(n)  # 10 % faster: 10 % shorter ...
        nearest = min(speeds, key=lambda f: abs(float(f) - speed))
        assert abs(float(nearest) - speed) < 1e-3
        spectrum = np.abs(np.fft.rfft(out[500:-500] * np.hanning(len(out) - 1000)))
        peak = np.argmax(spectrum) * rate / (len(out) - 1000)
        assert abs(peak - hz * float(nearest)) < 10.0  # ... and 10 % higher
        seen[nearest] = out
    assert len(seen) >= 4  # the draws cover the speeds
    again, _ = augment.speed_perturb(tone, rate, 0.1, [3, 7])
    assert np.array_equal(again, augment.speed_perturb(tone, rate, 0.1, [3, 7])[0])  # repeatable
    assert np.array_equal(augment.speed_perturb(tone, 4000, 0.0, [3, 7])[0], tone[:4000])  # off: the valid part


def test_training_stream_perturbs_speed_only_when_asked(data, tiny):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    train = m.filter_folds([1, 2])
    cache.extract(train, progress=False)
    speech = TinyConvBackbone(RATE)
    speech.finetune_speed = 0.1  # as the speech backbones declare

    def lengths(backbone, speed):
        run = FineTuneRun(backbone, m.labels, recipe(speed=speed, crop_seconds=2.0, shift_seconds=0.0,
                                                     gain_db=0.0).replace(train={"mixup": 0.0}), cache=cache)
        run._rows = cache.stored(train)[0]
        plan = run._plan(train, np.ones(len(train)), np.arange(len(train)) % len(m.labels))
        return set(np.concatenate([b["length"].numpy() for b in run._train_dataset(train, plan, 0)]).tolist())

    assert lengths(TinyConvBackbone(RATE), 0.0) == {RATE}  # 1 s clips padded into a 2 s window
    assert lengths(TinyConvBackbone(RATE), None) == {RATE}  # the backbone's default: off
    assert lengths(speech, 0.0) == {RATE}  # the recipe overrides the backbone
    for backbone, speed in ((TinyConvBackbone(RATE), 0.1), (speech, None)):
        seen = lengths(backbone, speed)
        assert len(seen) > 1 and seen <= {math.ceil(RATE / s) for s in augment.speed_factors(0.1)}


def test_each_epoch_streams_a_permutation_of_the_clips_whatever_the_cache_layout(tmp_path, data, tiny):
    m, _ = data
    train = m.filter_folds([1, 2])
    whole = WaveformCache(RATE, tmp_path / "whole")
    whole.extract(train, progress=False)  # one pass: one shard
    parts = WaveformCache(RATE, tmp_path / "parts")
    for fold in (2, 1):  # fold by fold, the later fold first: other shards, another shard order
        parts.extract(m.filter_folds([fold]), progress=False)
    waves, _, _ = whole.load(train, extract=False, progress=False)
    order = np.random.default_rng(3).permutation(len(train))
    for cache in (whole, parts):  # the data layer: the caller's order, the stored samples
        got = list(cache.dataset_in_order(train, order).as_numpy_iterator())
        assert [int(e["clip"]) for e in got] == order.tolist()
        assert all(np.array_equal(e["waveform"], waves[r]) for e, r in zip(got, order))

    def epoch(cache, k):
        run = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(), cache=cache)
        run._rows = cache.stored(train)[0]
        plan = run._plan(train, np.ones(len(train)), np.asarray(train.targets))
        return [b["waveform"].numpy() for b in run._train_dataset(train, plan, k)]

    first = epoch(whole, 0)
    assert all(np.array_equal(a, b) for a, b in zip(first, epoch(parts, 0)))  # the same batches
    plain = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(gain_db=0.0, shift_seconds=0.0).replace(
        train={"mixup": 0.0}), cache=whole)
    plain._rows = whole.stored(train)[0]
    plan = plain._plan(train, np.ones(len(train)), np.asarray(train.targets))
    seen = [w for b in plain._train_dataset(train, plan, 1) for w in b["waveform"].numpy()]
    assert sorted(map(bytes, seen)) == sorted(bytes(w.astype(np.float32)) for w in waves)  # every clip once
    assert not all(np.array_equal(a, b) for a, b in zip(first, epoch(whole, 1)))  # a new order each epoch


def test_speech_backbones_perturb_speed_by_default():
    """Chosen by nested CV for the speech embedding (BENCHMARKS.md "Fine-tuning: nested CV of recipes")."""
    from tfaudio.backbones.efficientat.backbone import EfficientATBackbone
    from tfaudio.backbones.speech_embedding.backbone import SpeechEmbeddingBackbone
    from tfaudio.backbones.wav2vec2.backbone import Wav2Vec2Backbone
    from tfaudio.backbones.whisper.backbone import WhisperBackbone
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone

    assert all(c.finetune_speed == 0.1 for c in (SpeechEmbeddingBackbone, Wav2Vec2Backbone, WhisperBackbone))
    assert EfficientATBackbone.finetune_speed == YAMNetBackbone.finetune_speed == 0
    assert get_recipe("finetune").finetune.speed is None  # the recipe leaves it to the backbone


def test_warmup_cosine_schedule():
    s = WarmupCosine(1.0, total=100, warmup=10, hold=20)
    assert float(s(0)) == 0.0 and float(s(19)) == 0.0  # held
    assert 0 < float(s(20)) < float(s(25)) < float(s(29)) <= 1.0  # warming up
    assert float(s(30)) == pytest.approx(1.0, abs=1e-6) and float(s(99)) < 0.01  # cosine down


# ---- the waveform cache ------------------------------------------------------------------------
def test_waveform_cache_stores_the_decoded_clip_once(tmp_path):
    audio = noise(0.73, RATE, seed=3)
    write_audio(tmp_path / "a" / "hiss" / "x.wav", audio, RATE, subtype="FLOAT")
    from tfaudio.data.manifest import Manifest

    m = Manifest.from_source(tmp_path / "a")
    cache = WaveformCache(RATE, tmp_path / "cache")
    assert cache.extract(m, progress=False).extracted == 1
    assert cache.extract(m, progress=False).extracted == 0  # stored: not decoded again
    waves, _, _ = cache.load(m, extract=False)
    assert len(waves[0]) == 5840 and np.allclose(waves[0][: len(audio)], audio) and not waves[0][len(audio):].any()
    rows, seconds = cache.stored(m)
    assert list(rows) == [0] and seconds[0] == pytest.approx(0.73)
    clip = next(iter(cache.dataset(m)))
    assert np.array_equal(clip["waveform"], waves[0]) and int(clip["length"]) == 5840
    assert WaveformCache(16000, tmp_path / "cache").directory != cache.directory  # one namespace per rate


# ---- training ----------------------------------------------------------------------------------
def test_finetuning_trains_the_backbone_and_saves_an_ordinary_model(tmp_path, data, tiny):
    m, root = data
    backbone = TinyConvBackbone(RATE)
    before = weights(backbone)
    cache = WaveformCache(RATE, root / "cache")
    plain = recipe(gain_db=0.0, shift_seconds=0.0, freq_mask=0.0, time_mask=0.0).replace(train={"mixup": 0.0})
    clf = finetune(m.filter_folds([1, 2]), backbone, plain, val=m.filter_folds([3]), cache=cache, progress=False)
    loss = clf.history_["loss"]
    assert loss[-1] < 0.8 * loss[0] and len(clf.history_["val_accuracy"]) == 4
    assert any(not np.allclose(a, b) for a, b in zip(before, weights(backbone)))  # the backbone trained
    assert clf.head.pooling == "embedding_mean" and clf.fine_tuned_["recipe"]["name"] == "finetune"

    # the windows it trained on (1 s clips, uncropped) make the TFLite export's default window
    from tfaudio.export.window import default_window, window_for_frames

    c = backbone.contract
    frames = 1 + int(np.ceil((RATE - c.frame_samples) / c.hop_samples))
    assert clf.train_clips_ == {"clips": 12, "median_frames": frames,
                                "median_seconds": pytest.approx(c.min_seconds + (frames - 1) * c.hop_seconds)}
    assert default_window(clf, c) == (window_for_frames(c, frames), "training_clips")

    clf.save(tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "tfaudio.json").read_text())
    assert cfg["fine_tuned"]["weights"] == "backbone_weights.npz" and cfg["train_clips"] == clf.train_clips_
    assert cfg["fine_tuned"]["speed"] == 0.0  # the speed perturbation in force is recorded (tiny: off)
    loaded = AudioClassifier.load(tmp_path / "model")  # a fresh pretrained "tiny", then the fine-tuned weights
    waves, targets, _ = cache.load(m.filter_folds([3]), extract=False)
    assert np.allclose(loaded.scorer.scores(waves), clf.scorer.scores(waves), atol=1e-6)
    report = evaluate_waveforms(loaded, cache, m.filter_folds([3]))
    assert report["accuracy"] == pytest.approx(np.mean(clf.scorer.scores(waves).argmax(1) == targets))

    # frame scores (each frame scored as a one-frame clip), so `tfaudio detect` takes the model too
    frames = loaded.scorer.batch(waves[0][None], [len(waves[0])], frame_scores=True)["frame_scores"]
    assert loaded.scorer.frame_scores and frames.shape[-1] == len(m.labels) and frames.shape[1] > 1
    from tfaudio.cli import main

    assert main(["detect", m.filter_folds([3]).paths[0], "--model", str(tmp_path / "model"),
                 "-o", str(tmp_path / "events")]) == 0
    assert (tmp_path / "events" / "events.csv").read_text().startswith("filename,onset,offset,event_label,score")

    from tfaudio.inference.model_info import model_info

    info = model_info(str(tmp_path / "model"))
    assert info["fine_tuned"]["recipe"] == "finetune" and any(f["kind"] == "weights" for f in info["files"])
    (tmp_path / "model" / "backbone_weights.npz").write_bytes(b"garbage")
    with pytest.raises(TfaudioError, match="backbone_weights.npz.*cannot read"):
        AudioClassifier.load(tmp_path / "model")


def test_augmentations_are_training_only(data, tiny):
    m, root = data
    run = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(freq_mask=0.3, time_mask=0.3, dropout=0.3),
                      cache=WaveformCache(RATE, root / "cache"))
    waves, _, _ = run.cache.load(m.filter_folds([3]), progress=False)
    x = tf.constant(np.stack(waves[:4]))
    n = tf.fill([4], x.shape[1])
    inference = run.forward(x, n, training=False).numpy()
    scores = run.classifier().scorer.scores(waves[:4])  # the exported computation
    assert np.allclose(inference, scores, **same_computation(scores))
    trained = run.forward(x, n, training=True, seed=[0, 1]).numpy()
    assert not np.allclose(trained, inference, atol=1e-4)  # masks and dropout act while training only


@pytest.mark.parametrize("pooling", ["embedding_mean", "mean"])
def test_silence_gate_leaves_silent_frames_out_in_training_and_in_scores(data, tiny, pooling):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    gated_recipe = recipe().replace(head={"silence_gate": True, "pooling": pooling})
    gated = FineTuneRun(TinyConvBackbone(RATE), m.labels, gated_recipe, cache=cache)
    plain = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe().replace(head={"pooling": pooling}), cache=cache)
    waves, _, _ = cache.load(m.filter_folds([3]), progress=False)
    padded = [np.concatenate([w, np.zeros(RATE, np.float32)]) for w in waves[:4]]  # + 1 s of digital silence
    x, n = tf.constant(np.stack(padded)), tf.fill([4], 2 * RATE)
    mask = gated.backbone.finetune_frames(*gated.backbone.finetune_features(x, n), training=False)[1]
    counted = gated._counted_frames(x, n, mask).numpy()
    scorer = gated.classifier().scorer
    assert np.array_equal(counted, scorer.weights(x, n, mask).numpy())  # the frames inference counts
    assert counted.sum() < mask.numpy().sum() and counted.any(axis=1).all()  # silent frames out, sound kept
    scores = scorer.scores(padded)
    assert np.allclose(gated.forward(x, n, training=False).numpy(), scores, **same_computation(scores))
    assert not np.allclose(plain.forward(x, n, training=False).numpy(), scores, atol=1e-4)  # the gate changes them


@pytest.mark.parametrize("pooling", ["mean", "attention", "stats"])
def test_every_head_pooling_fine_tunes_and_scores_as_its_saved_classifier(tmp_path, data, tiny, pooling):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    plain = recipe(gain_db=0.0, shift_seconds=0.0, freq_mask=0.0, time_mask=0.0).replace(
        head={"pooling": pooling}, train={"mixup": 0.0})
    clf = finetune(m.filter_folds([1, 2]), TinyConvBackbone(RATE), plain, cache=cache, progress=False)
    loss = clf.history_["loss"]
    assert loss[-1] < 0.8 * loss[0] and clf.head.pooling == pooling
    clf.save(tmp_path / "model")
    loaded = AudioClassifier.load(tmp_path / "model")
    waves, _, _ = cache.load(m.filter_folds([3]), extract=False)
    scores = loaded.scorer.scores(waves)
    assert np.allclose(scores, clf.scorer.scores(waves), **same_computation(scores))
    run = FineTuneRun(loaded.backbone, m.labels, plain, cache=cache)  # the road's forward on the trained weights
    run.head = loaded.head_model_
    x, n = tf.constant(np.stack(waves)), tf.fill([len(waves)], len(waves[0]))
    assert np.allclose(run.forward(x, n, training=False).numpy(), scores, **same_computation(scores))


def test_refit_head_trains_the_default_head_on_the_fine_tuned_embeddings(monkeypatch, tmp_path, data, tiny):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    seen = {}
    real_fit = AudioClassifier.fit

    def fit(self, train, *args, **kwargs):  # the clips the refit trains on
        seen["clips"] = train
        return real_fit(self, train, *args, **kwargs)

    monkeypatch.setattr(AudioClassifier, "fit", fit)
    run = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(refit_head=True), cache=cache)
    run.fit(m.filter_folds([1, 2]), progress=False)
    clf = run.classifier()
    default = get_recipe("default").head
    assert clf.head == default and clf.head_model_ is run.refit_.head_model_ and clf.head_model_ is not run.head
    clips = seen["clips"]
    waves, targets, _ = cache.load(m.filter_folds([1, 2]), extract=False)
    assert np.array_equal(clips.targets, targets) and clips.energies is not None
    # it trained on what inference computes: the fine-tuned backbone's frames, gated as the scorer gates them
    scores = clf.scorer.scores(waves)
    assert np.allclose(clf.clip_scores(clips), scores, **same_computation(scores))
    assert np.mean(scores.argmax(1) == targets) >= 0.8
    clf.save(tmp_path / "model")
    loaded = AudioClassifier.load(tmp_path / "model")
    assert loaded.head.pooling == "mean" and loaded.head.silence_gate
    assert np.allclose(loaded.scorer.scores(waves), scores, **same_computation(scores))


def test_a_frame_head_trains_on_each_frames_cross_entropy():
    from tfaudio.tasks.finetune import _cross_entropy

    rng = np.random.default_rng(0)
    frames = rng.dirichlet(np.ones(3), size=(2, 4)).astype(np.float32)  # [B=2, F=4, C=3]
    weights = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], np.float32)  # clip 0: two frames count
    targets = np.eye(3, dtype=np.float32)[[0, 2]]
    per_frame = -np.log(np.clip((frames * targets[:, None]).sum(-1), 1e-7, 1))
    expected = (per_frame * weights).sum(1) / weights.sum(1)
    clip = (frames * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)
    got = _cross_entropy(tf.constant(targets), tf.constant(clip), (tf.constant(frames), tf.constant(weights))).numpy()
    assert np.allclose(got, expected, atol=1e-6)
    pooled = _cross_entropy(tf.constant(targets), tf.constant(clip)).numpy()  # the clip score's own
    assert np.allclose(pooled, -np.log((clip * targets).sum(-1)), atol=1e-6) and np.all(got > pooled)  # Jensen


def test_linear_probe_first_starts_fine_tuning_from_a_converged_head(monkeypatch, data, tiny):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    train = m.filter_folds([1, 2])
    waves, targets, _ = cache.load(train, progress=False)
    x, n = tf.constant(np.stack(waves)), tf.fill([len(waves)], len(waves[0]))
    start = {}
    real = FineTuneRun._epochs

    def epochs(self, *args, **kwargs):  # the head's training accuracy when fine-tuning begins
        start[self.config.probe_epochs] = np.mean(self.forward(x, n, training=False).numpy().argmax(1) == targets)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FineTuneRun, "_epochs", epochs)
    for probe in (0, 40):
        run = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(probe_epochs=probe).replace(train={"epochs": 1}),
                          cache=cache)
        run.fit(train, progress=False)
    history = run.probe_history
    assert len(history["loss"]) == 40 and history["loss"][-1] < 0.7 * history["loss"][0]
    assert start[40] >= 0.9 and start[40] > start[0] + 0.3, start  # a random head guesses; a probed one knows
    assert FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(), cache=cache).config.probe_epochs == 0  # off


@pytest.mark.slow
def test_frozen_batchnorm_and_frozen_blocks_stay_put(data, tiny):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")

    def fit(**finetune_settings):
        bb = TinyConvBackbone(RATE)
        before = {v.name: v.numpy().copy() for v in bb.variables}
        finetune(m.filter_folds([1, 2]), bb, recipe(**finetune_settings), cache=cache, progress=False)
        return {v.name: not np.allclose(before[v.name], v.numpy()) for v in bb.variables}

    frozen = fit(batchnorm="frozen", freeze_blocks=1)
    assert not any(c for name, c in frozen.items() if "moving_" in name)  # statistics kept
    assert not any(c for name, c in frozen.items() if name.startswith("block1/"))  # block 1 frozen whole
    assert frozen["block2/conv/kernel:0"] and frozen["block2/bn/gamma:0"]  # block 2 trains (scale too)
    trained = fit(batchnorm="train", freeze_blocks=0)
    assert trained["block1/bn/moving_mean:0"] and trained["block1/conv/kernel:0"]
    head_only = fit(freeze_blocks=-1)
    assert not any(head_only.values())  # a head on frozen features


def test_too_few_clips_and_classes_are_refused(data, tiny):
    m, root = data
    run = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(), cache=WaveformCache(RATE, root / "cache"))
    with pytest.raises(TfaudioError, match="no training clips"):
        run.fit(m.filter_folds([1]).select(["low", "high"]).with_labels(m.labels), progress=False)
    with pytest.raises(TfaudioError, match="at least 2 classes"):
        FineTuneRun(TinyConvBackbone(RATE), ["one"], recipe())


_CHILD = """
import os, sys, tensorflow as tf
sys.path.insert(0, {root!r})
from tests.test_finetune import RATE, recipe, TinyConvBackbone
from tests.helpers import tone_dataset
from tfaudio.data.waveform_cache import WaveformCache
from tfaudio.tasks.finetune import FineTuneRun
saves = []
real_save = tf.train.CheckpointManager.save
def save(self, *a, **k):
    path = real_save(self, *a, **k)
    saves.append(path)
    if len(saves) == 2 and {kill}:
        os.kill(os.getpid(), 9)  # kill -9 right after the second epoch's checkpoint
    return path
tf.train.CheckpointManager.save = save
m = tone_dataset({audio!r}, n_per_class=6, rate=RATE, seconds=1.0, folds=3)
run = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(probe_epochs=5), cache=WaveformCache(RATE, {cache!r}),
                  checkpoint_dir={ckpt!r})  # with a linear probe first: a resumed run must not probe again
run.fit(m.filter_folds([1, 2]), progress=False)
import numpy as np
np.savez({out!r}, *[v.numpy() for v in run.backbone.variables + run.head.variables])
"""


@pytest.mark.slow
def test_killed_run_resumes_and_ends_where_the_uninterrupted_one_ends(tmp_path, data):
    m, root = data

    def child(name, kill):
        script = _CHILD.format(root=ROOT, audio=str(root / "audio2"), cache=str(root / "cache2"),
                               ckpt=str(tmp_path / name), kill=kill, out=str(tmp_path / f"{name}.npz"))
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})

    whole = child("whole", False)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = child("resumed", True)
    assert killed.returncode == -9  # SIGKILL
    assert not (tmp_path / "resumed.npz").exists()
    resumed = child("resumed", False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch 2 of 4" in resumed.stdout
    a, b = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "resumed.npz")
    for k in a.files:
        assert np.allclose(a[k], b[k], atol=1e-5), k


@pytest.mark.slow
def test_checkpoints_of_another_run_are_refused(tmp_path, data, tiny):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(), cache=cache,
                checkpoint_dir=tmp_path / "ck").fit(m.filter_folds([1, 2]), progress=False)
    other = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(gain_db=1.0), cache=cache, checkpoint_dir=tmp_path / "ck")
    with pytest.raises(TfaudioError, match="checkpoints of another run.*--restart"):
        other.fit(m.filter_folds([1, 2]), progress=False)


_MIRRORED = """
import os, sys, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {root!r})
from tests.test_finetune import RATE, recipe, TinyConvBackbone
from tests.helpers import tone_dataset
from tfaudio.data.waveform_cache import WaveformCache
from tfaudio.tasks.finetune import FineTuneRun
from tfaudio.backbones import registry
from tfaudio.backbones.entry import BackboneEntry
registry.register_backbone(BackboneEntry(name="tiny", cls="tests.helpers:TinyConvBackbone", example="tiny",
                                         build=lambda source, **kw: TinyConvBackbone(RATE, tag=source or "tiny")))
m = tone_dataset({audio!r}, n_per_class=6, rate=RATE, seconds=1.0, folds=3)
plain = recipe(gain_db=0.0, shift_seconds=0.0, freq_mask=0.0, time_mask=0.0, dropout=0.0).replace(train={{"mixup": 0.0}})
out = {{}}
half = plain.replace(finetune={{"precision": "float16"}}, train={{"epochs": 6}})
os.environ["TFAUDIO_FLOAT16_EMULATE"] = "1"  # float16 on the CPU through TensorFlow's emulation
from tfaudio.tasks.precision import DynamicLossScale
# a first scale that overflows for certain (3e38 x the loss is not finite even in float32): the first steps
# must be skipped on both replicas and the scale halved until they are finite
DynamicLossScale.__init__.__defaults__ = (3e38,) + DynamicLossScale.__init__.__defaults__[1:]
for name, strategy, r in (("one", None, plain), ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), plain),
                          ("two16", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), half)):
    run = FineTuneRun(TinyConvBackbone(RATE), m.labels, r, cache=WaveformCache(RATE, {cache!r}), strategy=strategy)
    run.fit(m.filter_folds([1, 2]), progress=False)
    out[name] = [np.asarray(v.numpy()) for v in run.backbone.variables]
    out[name + "_replicas"] = run.strategy.num_replicas_in_sync
    out[name + "_loss"] = run.history["loss"]
    out[name + "_accuracy"] = run.history["accuracy"]
    out[name + "_scale"] = float(run.loss_scale.scale.numpy()) if run.loss_scale is not None else None
assert out["one_replicas"] == 1 and out["two_replicas"] == 2, out
start = [np.asarray(v.numpy()) for v in TinyConvBackbone(RATE).variables]
assert any(not np.allclose(a, b) for a, b in zip(start, out["two"]))  # the mirrored run trained
for a, b in zip(out["one"], out["two"]):
    assert np.allclose(a, b, atol=1e-4), np.abs(a - b).max()
# float16 with loss scaling on two replicas: the first steps overflowed, were skipped on both replicas and
# the scale lowered; the run trains all the same
assert out["two16_scale"] < 3e38 / 2, out["two16_scale"]
assert all(np.isfinite(w).all() for w in out["two16"])
assert out["two16_loss"][-1] < 0.75 * out["two16_loss"][0], out["two16_loss"]
acc = out["two16_accuracy"]
assert max(acc) >= 0.9 and acc[-1] > acc[0], acc
print("MIRRORED OK", out["one_loss"], out["two_loss"])
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpu_devices_trains_like_one_device(tmp_path):
    script = _MIRRORED.format(root=ROOT, audio=str(tmp_path / "audio"), cache=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and "MIRRORED OK" in done.stdout, done.stderr[-3000:]



def test_interpolate_moves_the_backbone_between_its_pretrained_and_fine_tuned_weights(tmp_path, data, tiny, capsys):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    backbone = TinyConvBackbone(RATE)
    pretrained = weights(backbone)
    run = FineTuneRun(backbone, m.labels, recipe(interpolate=0.5), cache=cache).fit(m.filter_folds([1, 2]),
                                                                                    progress=False)
    assert run.alpha_ == 0.5 and run.refit_ is not None  # the head is refit on the interpolated backbone
    half = weights(backbone)
    tuned = weights(run.interpolate(1.0).backbone)
    assert run.refit_ is None and run.classifier().head_model_ is run.head  # 1: the road's own model again
    moved = [not np.allclose(a, b) for a, b in zip(pretrained, tuned)]
    assert any(moved)
    for a, h, b in zip(pretrained, half, tuned):
        assert np.allclose(h, (a + b) / 2, rtol=1e-6, atol=1e-7)
    run.interpolate(0.0)  # the pretrained backbone, to the bit, with the frozen default's head
    assert all(np.array_equal(a, b) for a, b in zip(pretrained, weights(backbone)))
    clf = run.interpolate(0.25).classifier()
    assert clf.fine_tuned_["interpolate"] == 0.25 and clf.head == get_recipe("default").head
    waves, targets, _ = cache.load(m.filter_folds([1, 2]), extract=False)
    scores = clf.scorer.scores(waves)
    assert np.mean(scores.argmax(1) == targets) >= 0.8
    clf.save(tmp_path / "model")
    loaded = AudioClassifier.load(tmp_path / "model")
    assert loaded.fine_tuned_["interpolate"] == 0.25
    from tfaudio.inference.model_info import model_info

    assert model_info(str(tmp_path / "model"))["fine_tuned"]["interpolate"] == 0.25
    from tfaudio.cli import main

    assert main(["info", str(tmp_path / "model")]) == 0
    assert "weights 0.25 of the way from the pretrained ones" in capsys.readouterr().out
    assert np.allclose(loaded.scorer.scores(waves), scores, **same_computation(scores))
    with pytest.raises(ValueError, match="alpha must be a number in"):
        run.interpolate(1.5)
    plain = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(), cache=cache)
    with pytest.raises(TfaudioError, match="call fit"):
        plain.interpolate(0.5)
    plain.fit(m.filter_folds([1, 2]), progress=False)  # interpolate 1: the pretrained weights are not kept
    with pytest.raises(TfaudioError, match="not kept.*--interpolate"):
        plain.interpolate(0.5)


def test_interpolate_auto_chooses_alpha_by_the_validation_clips(monkeypatch, tmp_path, data, tiny, capsys):
    m, root = data
    cache = WaveformCache(RATE, root / "cache")
    run = FineTuneRun(TinyConvBackbone(RATE), m.labels, recipe(interpolate="auto"), cache=cache)
    with pytest.raises(TfaudioError, match="validation clips, and there are none"):
        run.fit(m.filter_folds([1, 2]), progress=False)
    refits = []
    real_refit = FineTuneRun._refit_head
    monkeypatch.setattr(FineTuneRun, "_refit_head", lambda self, plan: refits.append(1) or real_refit(self, plan))
    run.fit(m.filter_folds([1, 2]), m.filter_folds([3]), progress=False)
    got = run.interpolation_scores_
    assert tuple(got) == INTERPOLATE_GRID
    assert len(refits) == sum(a < 1 for a in INTERPOLATE_GRID)  # one refit per alpha < 1, the chosen one kept
    monkeypatch.undo()
    assert run.alpha_ == max(INTERPOLATE_GRID, key=lambda a: (got[a], a))  # the best; ties: the larger alpha
    val, targets, _ = cache.load(m.filter_folds([3]), extract=False)
    clf = run.classifier()
    assert np.mean(clf.scorer.scores(val).argmax(1) == targets) == got[run.alpha_]  # the model is the chosen one
    assert clf.fine_tuned_["interpolate"] == run.alpha_
    assert clf.fine_tuned_["interpolate_validation"] == {str(a): v for a, v in got.items()}
    assert (run.refit_ is None) == (run.alpha_ == 1.0)
    from tfaudio.cli import main  # the command says what it chose, and the model folder records it

    frame = m.frame.assign(filename=m.frame.path, category=m.frame.label)[["filename", "fold", "category"]]
    frame.to_csv(tmp_path / "data.csv", index=False)
    assert main(["finetune", str(tmp_path / "data.csv"), "--audio-dir", "/", "--backbone", "tiny", "--folds", "1:2:3",
                 "--epochs", "2", "--batch-size", "4", "--interpolate", "auto", "--cache", str(root / "clicache"),
                 "-o", str(tmp_path / "model")]) == 0
    said = capsys.readouterr().out
    tuned = json.loads((tmp_path / "model" / "tfaudio.json").read_text())["fine_tuned"]
    assert set(tuned["interpolate_validation"]) == {"1.0", "0.75", "0.5", "0.25"}
    assert f"chosen: {tuned['interpolate']:g}" in said and "validation accuracy per alpha" in said

# ---- the command line --------------------------------------------------------------------------
@pytest.mark.slow
def test_cv_finetune_on_the_cli_resumes_finished_folds(tmp_path, data, tiny, capsys):
    from tfaudio.cli import main

    m, root = data
    csv = tmp_path / "data.csv"
    frame = m.frame.assign(filename=m.frame.path, category=m.frame.label)[["filename", "fold", "category"]]
    frame.to_csv(csv, index=False)
    args = ["cv", str(csv), "--audio-dir", "/", "--backbone", "tiny", "--finetune", "--epochs", "2", "--batch-size",
            "4", "--head-epochs", "0", "--refit-head", "--interpolate", "0.5", "--cache", str(root / "clicache"), "-o", str(tmp_path / "cv")]
    assert main(args) == 0
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert len(summary["folds"]) == 3 and summary["recipe"]["finetune"]["head_epochs"] == 0
    assert summary["recipe"]["finetune"]["refit_head"] is True and summary["recipe"]["finetune"]["interpolate"] == 0.5
    assert (tmp_path / "cv" / "fold1" / "report_confusion.png").is_file()
    assert not (tmp_path / "cv" / "fold1" / "checkpoints").exists()
    capsys.readouterr()
    assert main(args) == 0  # again: every fold was finished, none trains again
    assert capsys.readouterr().out.count("done in an earlier run") == 3


@pytest.mark.slow
def test_finetune_command_with_efficientat_predicts_and_exports_alike(tmp_path, data):
    """mn04 fine-tuned from the command line: the folder predicts and exports like any tfaudio model, and the
    SavedModel and the float TFLite file give the Keras model's scores."""
    checkpoint = shared("models", "efficientat")
    if not checkpoint.exists():
        pytest.skip(f"{checkpoint} is absent (EfficientAT mn04 weights from ../shared)")
    from tfaudio.cli import main
    from tfaudio.inference.loader import load_model

    m, root = data
    frame = m.frame.assign(filename=m.frame.path, category=m.frame.label)[["filename", "fold", "category"]]
    frame.to_csv(tmp_path / "data.csv", index=False)
    out = tmp_path / "mn04"
    assert main(["finetune", str(tmp_path / "data.csv"), "--audio-dir", "/", "--backbone", "efficientat:mn04_as",
                 "--epochs", "1", "--batch-size", "4", "--folds", "1,2::3", "--cache", str(root / "mncache"),
                 "-o", str(out)]) == 0
    assert (out / "test_report.json").is_file() and (out / "test_report_confusion.png").is_file()
    assert (out / "backbone_weights.npz").is_file() and not (out / "checkpoints").exists()
    assert main(["export", str(out), "-o", str(tmp_path / "export"), "--tflite", "float32"]) == 0
    waves, _, _ = WaveformCache(32000, root / "mncache" / "embeddings").load(m.filter_folds([3]), extract=False)
    model = load_model(out)
    assert model.model.fine_tuned_ is not None and model.sample_rate == 32000
    keras_scores = model.scorer.scores(waves)
    export = load_model(tmp_path / "export", input_rate=32000)
    assert np.allclose(export.scorer.scores(waves), keras_scores, **same_computation(keras_scores))
    from tfaudio.export.window import default_window

    size, source = default_window(model.model, model.model.backbone.contract)  # the windows it trained on
    assert source == "training_clips" and size >= 32000
    windows = np.stack([np.pad(w[:size], (0, max(size - len(w), 0))) for w in waves])  # the file's fixed window
    tflite = tflite_window_scores(tmp_path / "export" / "model_float32.tflite", windows)
    expected = model.scorer.scores(list(windows))
    assert np.allclose(tflite, expected, atol=1e-4)


# ---- every backbone's fine-tuning hooks --------------------------------------------------------
def _check_hooks(backbone, seconds: float = 1.0):
    """finetune_features → finetune_frames (inference mode) is graph_outputs; gradients reach the top block."""
    rate = backbone.sample_rate
    x = tf.constant(np.stack([noise(seconds, rate, seed=1), noise(seconds, rate, seed=2)]))
    n = tf.constant([x.shape[1], x.shape[1] // 2], tf.int32)
    out = backbone.graph_outputs(x, n)
    emb, mask = backbone.finetune_frames(*backbone.finetune_features(x, n), training=False)
    assert np.array_equal(mask, out["mask"])
    assert np.allclose(emb, out["embeddings"], **same_computation(out["embeddings"]))
    blocks = backbone.finetune_blocks()
    assert len(blocks) >= 2 and all(v.trainable for _, vs in blocks for v in vs)
    top = blocks[-1][1]
    with tf.GradientTape() as tape:
        e, m = backbone.finetune_frames(*backbone.finetune_features(x, n), training=True)
        loss = tf.reduce_sum(tf.square(e) * tf.cast(m, tf.float32)[..., None])
    grads = tape.gradient(loss, top)
    assert any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    return blocks


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yamnet", "efficientat:mn04_as", "speech-embedding"])
def test_pretrained_backbones_can_be_finetuned(name):
    try:
        backbone = registry.get_backbone(name)
    except TfaudioError as err:
        pytest.skip(f"{name}: weights not in ../shared ({err})")
    blocks = _check_hooks(backbone, seconds=1.2)
    expected = {"yamnet": 14, "efficientat:mn04_as": 17, "speech-embedding": 20}[name]
    assert len(blocks) == expected
    assert backbone.finetune_feature_kind == "log_mel"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wav2vec2", "whisper"])
def test_transformers_backbones_fine_tune_on_the_same_road(tmp_path, kind):
    if kind == "wav2vec2":
        from tests.test_wav2vec2 import _write_checkpoint
        from tfaudio.backbones.wav2vec2.backbone import Wav2Vec2Backbone as cls

        folder = _write_checkpoint(tmp_path / kind, "group")
    else:
        from tests.test_whisper import _write_checkpoint
        from tfaudio.backbones.whisper.backbone import WhisperBackbone as cls

        folder = _write_checkpoint(tmp_path / kind, "short")
    backbone = cls.from_pretrained(folder)
    blocks = _check_hooks(backbone)
    names = [n for n, _ in blocks]
    assert names[0] in ("feature_encoder", "stem") and "layer1" in names
    m = tone_dataset(tmp_path / "audio", n_per_class=2, rate=16000, seconds=0.5, folds=2)
    frozen_first = [v.numpy().copy() for v in blocks[0][1]]
    r = recipe().replace(train={"epochs": 1, "batch_size": 3})
    clf = finetune(m, backbone, r, cache=WaveformCache(16000, tmp_path / "cache"), progress=False)
    first_kept = all(np.array_equal(a, v.numpy()) for a, v in zip(frozen_first, blocks[0][1]))
    assert first_kept == (kind == "wav2vec2")  # Wav2Vec2 keeps its conv feature encoder frozen by default
    waves, _, _ = WaveformCache(16000, tmp_path / "cache").load(m, extract=False)
    assert clf.scorer.scores(waves).shape == (len(m), 3)


@pytest.mark.slow
def test_bad_files_stop_the_run_or_are_skipped_and_counted(tmp_path, data, tiny):
    import pandas as pd

    from tfaudio.data.manifest import Manifest

    m, _ = data
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    frame = pd.concat([m.frame, pd.DataFrame([{"path": str(bad), "label": "low", "fold": 1}])], ignore_index=True)
    with_bad = Manifest(frame, labels=m.labels)
    cache = WaveformCache(RATE, tmp_path / "cache")
    with pytest.raises(TfaudioError, match="broken.wav"):
        finetune(with_bad.filter_folds([1, 2]), TinyConvBackbone(RATE), recipe(), cache=cache, progress=False)
    clf = finetune(with_bad.filter_folds([1, 2]), TinyConvBackbone(RATE), recipe().replace(train={"epochs": 1}),
                   cache=cache, on_error="skip", progress=False)
    assert [p for p, _ in clf.skipped_] == [str(bad)]


@pytest.mark.slow
def test_bfloat16_is_used_only_where_the_cpu_has_it(monkeypatch, data, tiny):
    from tfaudio.tasks import finetune as ft
    from tfaudio.tasks import precision

    monkeypatch.setattr(precision, "bfloat16_native", lambda: False)
    assert ft.precision_choice("bfloat16")[0] == "float32" and "no native bfloat16" in ft.precision_choice("bfloat16")[1]
    assert ft.precision_choice("auto")[0] == "float32" and ft.precision_choice("float32")[0] == "float32"
    monkeypatch.setattr(precision, "bfloat16_native", lambda: True)
    assert ft.precision_choice("bfloat16")[0] == "bfloat16"
    monkeypatch.undo()
    if not precision.bfloat16_native():
        return
    m, root = data  # this CPU computes bfloat16 natively: a run in it trains float32 weights
    bb = TinyConvBackbone(RATE)
    clf = finetune(m.filter_folds([1, 2]), bb, recipe(precision="bfloat16").replace(train={"epochs": 2}),
                   cache=WaveformCache(RATE, root / "cache"), progress=False)
    assert clf.fine_tuned_["precision"] == "bfloat16" and all(v.dtype == tf.float32 for v in bb.variables)
    assert np.isfinite(clf.history_["loss"]).all()


@pytest.mark.slow
def test_micro_batches_give_the_whole_batch_step_in_less_memory(monkeypatch, data, tiny):
    m, root = data
    plain = recipe(gain_db=0.0, shift_seconds=0.0, freq_mask=0.0, time_mask=0.0).replace(train={"mixup": 0.0,
                                                                                                 "epochs": 2})
    cache = WaveformCache(RATE, root / "cache")
    runs = {}
    for micro in (None, 1, 2):
        run = FineTuneRun(TinyConvBackbone(RATE), m.labels, plain.replace(finetune={"micro_batch": micro}), cache=cache)
        runs[micro] = run.fit(m.filter_folds([1, 2]), progress=False)
    assert runs[None].plan.micro_batch == 4 and runs[2].plan.micro_batch == 2
    for micro in (1, 2):  # gradients summed over the micro-batches: the same steps (frozen batch norm)
        for a, b in zip(runs[None].backbone.variables, runs[micro].backbone.variables):
            assert np.allclose(a.numpy(), b.numpy(), atol=1e-5), micro
    assert np.allclose(runs[None].history["loss"], runs[1].history["loss"], atol=1e-5)
    # unset, the micro-batch follows the backbone's memory estimate and the budget
    monkeypatch.setattr(TinyConvBackbone, "finetune_clip_bytes", lambda self, n: 1e9, raising=False)
    monkeypatch.setenv("TFAUDIO_FINETUNE_MEMORY_GB", "2.5")
    auto = FineTuneRun(TinyConvBackbone(RATE), m.labels, plain.replace(train={"epochs": 1}), cache=cache)
    assert auto.fit(m.filter_folds([1, 2]), progress=False).plan.micro_batch == 2
    with pytest.raises(TfaudioError, match="micro_batch 3 does not divide the batch of 4.*--micro-batch 2"):
        FineTuneRun(TinyConvBackbone(RATE), m.labels, plain.replace(finetune={"micro_batch": 3}),
                    cache=cache).fit(m.filter_folds([1, 2]), progress=False)


def test_transformer_memory_estimates_grow_with_the_window():
    from tfaudio.backbones.backbone import transformer_clip_bytes

    base_1s = transformer_clip_bytes(12, 49, 768, 3072, 12)  # Wav2Vec2-base, 1 s
    assert 5e7 < base_1s < 2e8
    assert transformer_clip_bytes(12, 499, 768, 3072, 12) > 10 * base_1s  # 10 s: attention grows with its square
    assert transformer_clip_bytes(6, 1500, 512, 2048, 8) > 1e9  # Whisper-base's 30 s window


def test_loss_scale_halves_on_overflow_and_grows_after_finite_steps():
    from tfaudio.tasks.precision import DynamicLossScale

    s = DynamicLossScale(initial_scale=8.0, growth_steps=3)
    assert not bool(DynamicLossScale.all_finite([tf.constant([1.0, np.inf]), None]))
    assert bool(DynamicLossScale.all_finite([tf.constant([1.0]), None]))
    s.update(tf.constant(False))
    assert float(s.scale) == 4.0 and int(s.good_steps) == 0
    for _ in range(2):
        s.update(tf.constant(True))
    assert float(s.scale) == 4.0 and int(s.good_steps) == 2
    s.update(tf.constant(True))  # the third finite step in a row
    assert float(s.scale) == 8.0 and int(s.good_steps) == 0


@pytest.mark.slow
def test_float16_trains_with_loss_scaling_where_a_gpu_has_it(monkeypatch, data, tiny):
    """No GPU here: TensorFlow's CPU emulation of the float16 rewrite stands in for it."""
    from tfaudio.tasks import precision

    assert precision.precision_choice("float16")[0] == "float32" or tf.config.list_physical_devices("GPU")
    m, root = data
    plain = recipe(gain_db=0.0, shift_seconds=0.0, freq_mask=0.0, time_mask=0.0).replace(train={"epochs": 4,
                                                                                              "mixup": 0.0})
    cache = WaveformCache(RATE, root / "cache")
    ref = FineTuneRun(TinyConvBackbone(RATE), m.labels, plain, cache=cache).fit(m.filter_folds([1, 2]), progress=False)
    monkeypatch.setenv(precision.EMULATE_ENV, "1")
    monkeypatch.setattr(precision.DynamicLossScale.__init__, "__defaults__", (3e38, 2000, "loss_scale"))
    run = FineTuneRun(TinyConvBackbone(RATE), m.labels, plain.replace(finetune={"precision": "float16"}), cache=cache)
    run.fit(m.filter_folds([1, 2]), progress=False)
    assert run.precision == "float16" and "emulated" in run.precision_note
    # the first steps overflowed (3e38 x the loss is not finite in float32): skipped, the scale halved
    assert float(run.loss_scale.scale) < 3e38 / 2
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()).all() for v in run.backbone.variables)
    assert run.history["loss"][-1] < run.history["loss"][0]
    # the float16 model answers as the float32 one does (every clip: the unseen fold has only 6)
    waves, _, _ = cache.load(m, extract=True, progress=False)
    a, b = ref.classifier().scorer.scores(waves), run.classifier().scorer.scores(waves)
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.8


def test_finetune_command_refuses_bad_options_in_one_line(tmp_path, data, tiny, capsys):
    from tfaudio.cli import main

    m, _ = data
    frame = m.frame.assign(filename=m.frame.path, category=m.frame.label)[["filename", "fold", "category"]]
    frame.to_csv(tmp_path / "data.csv", index=False)
    base = ["finetune", str(tmp_path / "data.csv"), "--audio-dir", "/", "--backbone", "tiny", "-o", str(tmp_path / "o")]
    for bad, said in ((["--crop-seconds", "-1"], "crop_seconds must be positive"),
                      (["--layer-decay", "2"], "layer_decay must be in"),
                      (["--speed", "0.6"], "speed must be in"),
                      (["--probe-epochs", "-1"], "probe_epochs"),
                      (["--interpolate", "2"], "interpolate must be a number in [0, 1] or 'auto'"),
                      (["--interpolate", "auto"], "validation clips, and there are none"),  # no VAL folds
                      (["--recipe", str(tmp_path / "nope.json")], "cannot read the recipe")):
        assert main(base + bad) == 2
        err = capsys.readouterr().err
        assert said in err and "Fix:" in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as bad:  # argparse: not a number, not "auto"
        main(base + ["--interpolate", "half"])
    err = capsys.readouterr().err
    assert bad.value.code == 2 and "expected a number in [0, 1] or 'auto', got 'half'" in err, err
    assert not (tmp_path / "o").exists()
    # cv --finetune takes the head options of `tfaudio cv`; one fine-tuning cannot honour is refused, not ignored
    cv = ["cv", str(tmp_path / "data.csv"), "--audio-dir", "/", "--backbone", "tiny", "--finetune", "-o",
          str(tmp_path / "o")]
    assert main(cv + ["--ensemble", "3"]) == 2
    err = capsys.readouterr().err
    assert "--ensemble does not apply" in err and "Fix:" in err and "Traceback" not in err, err
    assert main(cv + ["--interpolate", "auto"]) == 2  # cross-validation keeps no validation clips to choose by
    err = capsys.readouterr().err
    assert "cross-validation of fine-tuning keeps none" in err and "Fix:" in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()

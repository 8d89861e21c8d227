"""Keyword spotting end to end through the CLI (train, cv, evaluate, predict, export) on real Speech
Commands clips with a tiny random Wav2Vec2 written by ``save_pretrained``: the path a user's checkpoint
takes (``--backbone wav2vec2:<folder>``). Random weights say nothing about accuracy, so the tests check
that every output exists and that they agree with each other: reports, labels, predictions on files,
the model's own scores and the exported SavedModel and TFLite file."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers import shared
from tests.test_wav2vec2 import _write_checkpoint, check_served, serve_fresh
from tfaudio.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:`seed_generator` is deprecated")

CLASSES = ("yes", "no", "up")
PER_CLASS = 12  # 36 clips of 1 s: 12 per class, 5 speaker-grouped folds of ~2 speakers per class


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    """A folder per class with the first PER_CLASS clips of each (symlinks: the names carry the speaker)."""
    source = shared("data", "speech-commands-mini")
    root = tmp_path_factory.mktemp("kws")
    for label in CLASSES:
        (root / "data" / label).mkdir(parents=True)
        for wav in sorted((source / label).glob("*.wav"))[:PER_CLASS]:
            os.symlink(wav, root / "data" / label / wav.name)
    _write_checkpoint(root / "w2v", "group")
    return root


@pytest.fixture(scope="module")
def trained(kws):
    """``tfaudio train`` with the Wav2Vec2 backbone: (model folder, printed text, common options)."""
    common = ["--backbone", f"wav2vec2:{kws / 'w2v'}", "--cache", str(kws / "cache"), "--epochs", "5"]
    out = kws / "model"
    assert main(["train", str(kws / "data"), "--classes", *CLASSES, *common, "-o", str(out)]) == 0
    return out, common


@pytest.mark.slow
def test_train_writes_model_and_consistent_reports(trained, kws):
    out, _ = trained
    for f in ("tfaudio.json", "head.keras", "labels.txt", "test_report.json",
              "test_report_confusion.png", "test_frame_report.json"):
        assert (out / f).is_file(), f
    assert not (out / "val_report.json").exists()  # the default recipe holds no validation fold out
    config = json.loads((out / "tfaudio.json").read_text())
    assert config["backbone"]["name"] == "wav2vec2" and config["backbone"]["source"] == str(kws / "w2v")
    assert config["labels"] == list(CLASSES) and config["sample_rate"] == 16000
    assert (out / "labels.txt").read_text().split() == list(CLASSES)
    clip, frame = (json.loads((out / f"test_{k}report.json").read_text()) for k in ("", "frame_"))
    assert clip["labels"] == list(CLASSES)
    confusion = np.array(clip["confusion_matrix"])
    assert confusion.shape == (3, 3) and confusion.sum() == clip["num_examples"] > 0
    assert clip["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert [clip["per_class"][c]["support"] for c in CLASSES] == list(confusion.sum(axis=1))
    # frame level: one frame per 20 ms, 49 per 1 s clip
    assert clip["num_examples"] * 40 < frame["num_examples"] <= clip["num_examples"] * 49


@pytest.mark.slow
def test_evaluate_and_predict_agree_with_the_model(trained, kws, capsys):
    from tfaudio.tasks.audio_classifier import AudioClassifier

    out, common = trained
    capsys.readouterr()
    assert main(["evaluate", str(out), str(kws / "data"), "--classes", *CLASSES, "--cache", str(kws / "cache"),
                 "-o", str(kws / "eval")]) == 0
    report = json.loads((kws / "eval" / "eval_report.json").read_text())
    assert report["num_examples"] == len(CLASSES) * PER_CLASS and report["labels"] == list(CLASSES)

    files = sorted(str(p) for label in CLASSES for p in (kws / "data" / label).iterdir())
    capsys.readouterr()
    assert main(["predict", str(out), *files, "--top-k", "3", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines() if x.startswith("{")]
    assert [x["file"] for x in lines] == files
    printed = np.array([[{p["label"]: p["score"] for p in x["predictions"]}[c] for c in CLASSES] for x in lines])
    clf = AudioClassifier.load(out)
    scores = clf.predict_scores(files)
    np.testing.assert_allclose(printed, scores, atol=1e-6)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # softmax head
    # evaluate (cached embeddings) and predict (waveforms through the backbone) agree clip by clip
    truth = np.array([CLASSES.index(f.split("/")[-2]) for f in files])
    predicted = scores.argmax(axis=1)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (truth, predicted), 1)
    assert confusion.tolist() == report["confusion_matrix"]


@pytest.mark.slow
def test_cv_reports_every_fold(trained, kws, capsys):
    _, common = trained
    out = kws / "cv"
    assert main(["cv", str(kws / "data"), "--classes", *CLASSES, *common, "--folds", "3", "-o", str(out)]) == 0
    assert "±" in capsys.readouterr().out
    summary = json.loads((out / "cv.json").read_text())
    assert summary["num_folds"] == 3
    folds = [json.loads((out / f"fold{k}" / "report.json").read_text()) for k in (1, 2, 3)]
    assert sum(f["num_examples"] for f in folds) == len(CLASSES) * PER_CLASS  # each clip tested once
    assert summary["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean([f["accuracy"] for f in folds]))
    assert np.array(summary["confusion_matrix"]).sum() == len(CLASSES) * PER_CLASS


@pytest.mark.slow
def test_export_serves_the_model_scores(trained, kws, capsys):
    pytest.importorskip("mediapipe", reason="TFLite metadata needs mediapipe: pip install 'tfaudio[tflite]'")
    from tfaudio.io.decode import load_audio
    from tfaudio.tasks.audio_classifier import AudioClassifier

    out, _ = trained
    export = kws / "export"
    assert main(["export", str(out), "-o", str(export), "--tflite", "float32", "--window-samples", "16000"]) == 0
    assert "model_float32.tflite" in capsys.readouterr().out
    files = [str(sorted((kws / "data" / label).iterdir())[0]) for label in CLASSES]
    clips = [load_audio(f)[0] for f in files]
    clf = AudioClassifier.load(out)
    expected = clf.predict_scores(clips)
    info, res = serve_fresh([export / "saved_model"], clips, kws / "fresh")
    assert info["modules"] == []
    check_served(info, res, 0, clips, expected, CLASSES)

    from tfaudio.interpreter import tflite_interpreter

    it = tflite_interpreter(export / "model_float32.tflite")
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    for x, e in zip(clips, expected, strict=True):
        window = np.zeros([1, 16000], np.float32)
        window[0, : len(x)] = x[:16000]
        it.set_tensor(inp["index"], window)
        it.invoke()
        if len(x) == 16000:  # a shorter clip is zero-padded in the window: scores of a longer input
            np.testing.assert_allclose(it.get_tensor(outp["index"])[0], e, atol=1e-4)

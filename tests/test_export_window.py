"""The TFLite export's default window: the frames of the classifier's median training clip (recorded by
``fit`` in ``tfaudio.json``), the backbone's window for model folders saved before that record, and
``--window-samples`` / ``--window-seconds`` over both. A toy backbone (frames of 64 ms every 32 ms, so
its own window is 64 ms; TFLite's RFFT needs power-of-two frames) on generated 1.5 s clips."""
from __future__ import annotations

import contextlib
import io
import json
import zipfile

import numpy as np
import pytest

from tests.helpers import ToyBackbone, tone_dataset
from tfaudio.export.window import MAX_DEFAULT_SECONDS, window_for_frames

SECONDS = 1.5  # the generated clips: 1 + ceil((24000 - 1024) / 512) = 46 frames
FRAMES = 46
CLIP_WINDOW = 1024 + 45 * 512  # 24064 samples, 1.504 s: what the classifier's frames of such a clip cover


def _toy(source=None, **kwargs):
    from tfaudio.backbones.backbone import InputContract

    backbone = ToyBackbone(tag="window")
    backbone.contract = InputContract(16000, 0.064, 0.032, 8, 0.064)
    return backbone


@pytest.fixture(scope="module")
def toy():
    """The toy backbone registered under a name of its own, so a saved model folder rebuilds it."""
    from tfaudio.backbones import registry
    from tfaudio.backbones.entry import BackboneEntry

    registry.register_backbone(BackboneEntry(name="toy", cls="tests.helpers:ToyBackbone", example="toy",
                                             summary="test-only", build=_toy))
    yield
    registry.unregister_backbone("toy")


@pytest.fixture(scope="module")
def saved(toy, tmp_path_factory):
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    root = tmp_path_factory.mktemp("window")
    data = tone_dataset(root / "audio", n_per_class=4, seconds=SECONDS, folds=2)
    backbone = _toy()
    clf = AudioClassifier(backbone, cache=EmbeddingCache(backbone, root / "cache")).fit(
        data.filter_folds([1]), config=TrainConfig(epochs=3, batch_size=8))
    clf.save(root / "model")
    return clf, data, root


def _export(args: list[str]) -> int:
    from tfaudio.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)


def _tflite_info(path) -> tuple[list[int], dict]:
    from tfaudio.interpreter import tflite_interpreter

    shape = [int(d) for d in tflite_interpreter(path).get_input_details()[0]["shape"]]
    with zipfile.ZipFile(path) as z:
        return shape, json.loads(z.read("tfaudio.json"))


def test_window_for_frames_stays_on_the_frame_grid_and_under_the_cap():
    contract = _toy().contract
    assert window_for_frames(contract, 1) == contract.min_samples == 1024
    assert window_for_frames(contract, 0) == contract.min_samples  # at least one frame
    assert window_for_frames(contract, FRAMES) == CLIP_WINDOW
    capped = window_for_frames(contract, 1000)  # 8-minute clips: at most MAX_DEFAULT_SECONDS, whole patches
    assert capped <= MAX_DEFAULT_SECONDS * contract.sample_rate < capped + contract.hop_samples
    assert (capped - contract.min_samples) % contract.hop_samples == 0


def test_fit_records_the_training_clips_and_load_reads_them(saved):
    from tfaudio.tasks.audio_classifier import AudioClassifier

    clf, data, root = saved
    record = clf.train_clips_
    assert record == {"clips": len(data.filter_folds([1])), "median_frames": FRAMES,
                      "median_seconds": pytest.approx(1.504)}
    assert json.loads((root / "model" / "tfaudio.json").read_text())["train_clips"] == record
    assert AudioClassifier.load(root / "model").train_clips_ == record


@pytest.mark.slow
def test_default_window_follows_the_training_clips_and_scores_a_clip_as_keras(saved):
    from tfaudio.data.audio_converter import AudioConverter

    clf, data, root = saved
    out = root / "export_default"
    assert _export(["export", str(root / "model"), "-o", str(out), "--tflite", "float32"]) == 0
    shape, info = _tflite_info(out / "model_float32.tflite")
    assert shape == [1, CLIP_WINDOW]
    assert info["window_samples"] == CLIP_WINDOW and info["window_from"] == "training_clips"
    # an unseen 1.5 s clip, zero-padded to the window (what MediaPipe does): the classifier's own scores
    from tests.helpers import tflite_window_scores

    clips = [AudioConverter(16000)(p, 16000) for p in data.filter_folds([2]).paths[:3]]
    padded = np.stack([np.pad(c, (0, CLIP_WINDOW - len(c))) for c in clips])
    np.testing.assert_allclose(tflite_window_scores(out / "model_float32.tflite", padded),
                               clf.predict_scores(clips), atol=1e-4)


@pytest.mark.slow
def test_old_folders_fall_back_to_the_backbone_window_and_flags_override(saved, tmp_path):
    clf, _, root = saved
    old = tmp_path / "old_model"  # a folder saved before train_clips was recorded
    clf.save(old)
    config = json.loads((old / "tfaudio.json").read_text())
    del config["train_clips"]
    (old / "tfaudio.json").write_text(json.dumps(config))
    assert _export(["export", str(old), "-o", str(tmp_path / "a"), "--tflite", "float32"]) == 0
    shape, info = _tflite_info(tmp_path / "a" / "model_float32.tflite")
    assert shape == [1, 1024] and info["window_from"] == "backbone"

    assert _export(["export", str(root / "model"), "-o", str(tmp_path / "b"), "--tflite", "float32",
                    "--window-seconds", "0.5"]) == 0
    shape, info = _tflite_info(tmp_path / "b" / "model_float32.tflite")
    assert shape == [1, 8000] and info["window_samples"] == 8000 and info["window_from"] == "argument"
    assert _export(["export", str(root / "model"), "-o", str(tmp_path / "c"), "--tflite", "float32",
                    "--window-samples", "4096"]) == 0
    assert _tflite_info(tmp_path / "c" / "model_float32.tflite")[0] == [1, 4096]


def test_bad_window_flags_are_one_line_errors_and_write_nothing(saved, tmp_path, capsys):
    _, _, root = saved
    model = str(root / "model")
    assert _export(["export", model, "-o", str(tmp_path / "a"), "--tflite", "float32", "--window-seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert "--window-seconds" in err and "Fix:" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):  # argparse: the two flags exclude each other
        _export(["export", model, "-o", str(tmp_path / "b"), "--window-seconds", "1", "--window-samples", "16000"])
    assert _export(["export", model, "-o", str(tmp_path / "c"), "--tflite", "float32", "--window-seconds", "0.03"]) == 2
    assert "at least 1024 samples" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())

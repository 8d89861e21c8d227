"""The speech backbones through the product (issue #14): ``--backbone speech-embedding`` and
``--backbone whisper:<folder>`` in ``tfaudio train`` / ``cv`` / ``evaluate`` / ``predict`` / ``info`` /
``export``, ``tfaudio.pipeline``, SavedModel and TFLite exports and MediaPipe.

Real Speech Commands clips (3 words x 8 clips, folds grouped by speaker) with Google's speech embedding
model from ``../shared``, and a tiny random Whisper written by ``save_pretrained`` (as tests/test_whisper.py
builds it). A few clips train nothing worth measuring, so the tests check that the roads agree with
each other: reports, predictions, the pipeline, the model's own scores and every export.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.helpers import shared, tflite_window_scores
from tfaudio.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:`seed_generator` is deprecated")

CLASSES = ("no", "up", "yes")  # labels are sorted: the order every output uses
PER_CLASS = 8
RATE = 16000


# ---- fast: the graph the exports trace -------------------------------------------------------------
@pytest.mark.slow
def test_silence_gate_shares_the_frontend_scope():
    """The silence gate's energy ops run in the backbone's top-level frontend scope (not "frontend_1"),
    so int8 TFLite exports keep them float like the rest of the frontend."""
    import tensorflow as tf

    from tfaudio.backbones.speech_embedding.backbone import SpeechEmbeddingBackbone
    from tfaudio.heads.classification_head import HeadConfig, build_head
    from tfaudio.tasks.clip_scorer import ClipScorer

    bb = SpeechEmbeddingBackbone()  # random weights: only the graph's names matter
    config = HeadConfig(hidden_units=(8,), silence_gate=True)
    scorer = ClipScorer(bb, build_head(96, 3, config), CLASSES, head_config=config)
    for fn in (scorer.window, lambda x: scorer.batch(x, tf.shape(x)[1:2])["classifier"]):
        graph = tf.function(fn, autograph=False).get_concrete_function(tf.TensorSpec([1, RATE], tf.float32)).graph
        names = [op.name for op in graph.get_operations()]
        assert not [n for n in names if n.startswith(bb.frontend_scope + "_")], "a second frontend scope"
        logs = [op.name for op in graph.get_operations() if op.type == "Log"]
        assert len(logs) >= 2 and all(n.startswith(bb.frontend_scope + "/") for n in logs), logs  # mel + gate


# ---- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    """A folder per word with its first PER_CLASS clips (symlinks: the names carry the speaker)."""
    shared("models", "speech_embedding", "embedding_model.tflite")
    source = shared("data", "speech-commands-mini")
    root = tmp_path_factory.mktemp("speech")
    for label in CLASSES:
        (root / "data" / label).mkdir(parents=True)
        for wav in sorted((source / label).glob("*.wav"))[:PER_CLASS]:
            os.symlink(wav, root / "data" / label / wav.name)
    return root


def files_of(kws) -> list[str]:
    return sorted(str(p) for label in CLASSES for p in (kws / "data" / label).iterdir())


def common(kws) -> list[str]:
    return ["--backbone", "speech-embedding", "--cache", str(kws / "cache")]


@pytest.fixture(scope="module")
def trained(kws):
    """``tfaudio train --backbone speech-embedding`` with the default recipe: the model folder."""
    out = kws / "model"
    assert main(["train", str(kws / "data"), *common(kws), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def model_scores(trained, kws):
    """AudioClassifier.predict_scores of every file: what every other road must give."""
    from tfaudio.tasks.audio_classifier import AudioClassifier

    clf = AudioClassifier.load(trained)
    return clf, files_of(kws), clf.predict_scores(files_of(kws))


# ---- speech embedding: train, evaluate, predict, pipeline, cv, info ---------------------------------
@pytest.mark.slow
def test_train_saves_a_speech_embedding_model(trained):
    config = json.loads((trained / "tfaudio.json").read_text())
    assert config["backbone"] == {"name": "speech-embedding", "source": None}  # found again by its search
    assert config["labels"] == list(CLASSES) and config["sample_rate"] == RATE
    assert config["head"]["silence_gate"] and config["head"]["standardize"]  # the default recipe
    clip, frame = (json.loads((trained / f"test_{k}report.json").read_text()) for k in ("", "frame_"))
    assert clip["num_examples"] >= 1
    # 1 s clips give 4 embeddings (0.782 s windows every 80 ms); the silence gate may drop some
    assert clip["num_examples"] <= frame["num_examples"] <= 4 * clip["num_examples"]


@pytest.mark.slow
def test_evaluate_predict_and_pipeline_agree(trained, kws, model_scores, capsys):
    import tfaudio

    clf, files, scores = model_scores
    assert scores.shape == (len(CLASSES) * PER_CLASS, len(CLASSES))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)

    assert main(["evaluate", str(trained), str(kws / "data"), "--cache", str(kws / "cache"), "-o",
                 str(kws / "eval")]) == 0
    report = json.loads((kws / "eval" / "eval_report.json").read_text())
    truth = np.array([CLASSES.index(f.split("/")[-2]) for f in files])
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (truth, scores.argmax(axis=1)), 1)
    assert report["labels"] == list(CLASSES)
    assert confusion.tolist() == report["confusion_matrix"]  # cached embeddings = waveforms through the backbone

    capsys.readouterr()
    assert main(["predict", str(trained), *files, "--top-k", "3", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines() if x.startswith("{")]
    assert [x["file"] for x in lines] == files
    printed = np.array([[{p["label"]: p["score"] for p in x["predictions"]}[c] for c in CLASSES] for x in lines])
    np.testing.assert_allclose(printed, scores, atol=1e-6)

    classify = tfaudio.pipeline("audio-classification", model=str(trained), top_k=None)
    assert classify.sample_rate == RATE and tuple(classify.labels) == CLASSES
    for s, got in zip(scores, classify(files), strict=True):
        assert [g["label"] for g in got] == [CLASSES[i] for i in np.argsort(-s)]
        np.testing.assert_allclose([g["score"] for g in got], np.sort(s)[::-1], atol=1e-5)


@pytest.mark.slow
def test_cv_folds_are_grouped_by_speaker(kws, capsys):
    out = kws / "cv"
    assert main(["cv", str(kws / "data"), *common(kws), "--folds", "3", "--epochs", "10", "-o", str(out)]) == 0
    assert "±" in capsys.readouterr().out
    summary = json.loads((out / "cv.json").read_text())
    assert summary["num_folds"] == 3 and summary["recipe"]["name"] == "default"
    folds = [json.loads((out / f"fold{k}" / "report.json").read_text()) for k in (1, 2, 3)]
    assert sum(f["num_examples"] for f in folds) == len(CLASSES) * PER_CLASS  # each clip tested once
    speakers: dict[str, set] = {}
    for clip in summary["clips"]:
        assert clip["group"] == os.path.basename(clip["file"]).split("_")[0]
        speakers.setdefault(clip["group"], set()).add(clip["fold"])
    assert all(len(f) == 1 for f in speakers.values()), speakers  # no speaker in two folds


@pytest.mark.slow
def test_info_counts_parameters_and_macs(trained, model_scores, capsys):
    clf, _, _ = model_scores
    capsys.readouterr()
    assert main(["info", str(trained), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backbone"] == "speech-embedding" and info["sample_rate"] == RATE
    assert info["labels"] == list(CLASSES)
    params = info["parameters"]
    assert params["backbone"] == sum(int(np.prod(v.shape)) for v in clf.backbone.variables) == 328_224
    assert params["head"] == clf.head_model_.count_params()
    macs = info["macs"]
    by = macs["per_second_by_part"]
    assert by["frontend"] > 0 and by["backbone"] > by["frontend"] and by["head"] > 0
    assert macs["per_second"] == pytest.approx(sum(by.values()), rel=1e-6)
    # the body: 5.5 M MACs per 0.782 s window (counted from its convolutions), 12.5 windows per second
    assert 60e6 < by["backbone"] < 80e6, by
    assert main(["info", str(trained)]) == 0
    text = capsys.readouterr().out
    assert "MACs" in text and "per second of audio" in text and "speech-embedding" in text


# ---- speech embedding: exports ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(trained, kws):
    """``tfaudio export``: a 16 kHz SavedModel with float32 / float16 / int8 TFLite files, and an
    8 kHz SavedModel (resampled in its graph)."""
    e16, e8 = kws / "export16", kws / "export8"
    assert main(["export", str(trained), "-o", str(e16), "--tflite", "float32", "float16", "int8",
                 "--representative", str(kws / "data"), "--window-seconds", "1"]) == 0  # not the clips' 1.022 s
    assert main(["export", str(trained), "-o", str(e8), "--input-rate", "8000", "--frame-scores"]) == 0
    return e16, e8


def _clips(files, n=6):
    from tfaudio.io.decode import load_audio

    out = []
    for f in files[:: max(1, len(files) // n)][:n]:
        audio, rate = load_audio(f)
        assert rate == RATE
        out.append(audio)
    out[1] = np.concatenate([out[1], out[2]])  # 2 s: more windows than the TFLite window
    out[2] = out[2][:9000]  # shorter than one 0.782 s window: padded by the graph
    return out


@pytest.mark.slow
def test_saved_models_describe_themselves_and_resample_in_graph(exported, model_scores):
    import tensorflow as tf

    from tfaudio.export.saved_model import read_export_metadata
    from tfaudio.signal.resample import resample

    clf, files, _ = model_scores
    clips = _clips(files)
    for folder, rate in zip(exported, (RATE, 8000), strict=True):
        meta = read_export_metadata(folder / "saved_model")
        assert meta["sample_rate"] == RATE and meta["input_rate"] == rate
        assert meta["labels"] == list(CLASSES) and meta["backbone"]["name"] == "speech-embedding"
        assert meta["window_samples"] == RATE and meta["silence_gate"]
        model = tf.saved_model.load(str(folder / "saved_model"))
        signature = model.signatures["metadata"]()
        assert int(signature["input_rate"]) == rate and int(signature["sample_rate"]) == RATE
        inputs = clips if rate == RATE else [np.asarray(resample(x, RATE, rate)) for x in clips]
        expected = clf.predict_scores(inputs, sample_rate=rate)
        for x, e in zip(inputs, expected, strict=True):
            out = model.signatures["serving_default"](audio=tf.constant(x))
            np.testing.assert_allclose(out["classifier"].numpy(), e, atol=1e-5)
            assert out["label"].numpy().decode() == CLASSES[int(np.argmax(e))]
            if rate != RATE:  # --frame-scores: one row per 80 ms window of the clip at 16 kHz
                frames = out["frame_scores"].numpy()
                assert frames.shape == (clf.backbone.num_frames(len(x) * RATE // rate), 3)
        lengths = np.array([len(x) for x in inputs], np.int32)
        batch = np.full([len(inputs), lengths.max()], 0.3, np.float32)  # junk in the padding
        for i, x in enumerate(inputs):
            batch[i, : len(x)] = x
        out = model.signatures["batch"](audio=tf.constant(batch), lengths=tf.constant(lengths))
        np.testing.assert_allclose(out["classifier"].numpy(), expected, atol=1e-5)


def _tflite_scores(path, windows: np.ndarray) -> np.ndarray:
    return tflite_window_scores(path, windows, shape=[[1, RATE], [1, len(CLASSES)]])


def _windows(files) -> np.ndarray:
    """Every clip as one 1 s window (zero-padded: the TFLite input)."""
    from tfaudio.io.decode import load_audio

    out = np.zeros([len(files), RATE], np.float32)
    for i, f in enumerate(files):
        audio = load_audio(f)[0][:RATE]
        out[i, : len(audio)] = audio
    return out


@pytest.mark.slow
def test_tflite_files_state_16k_and_labels_and_match_the_model(exported, model_scores):
    import tensorflow as tf

    from tfaudio.export.tflite import read_metadata

    clf, files, _ = model_scores
    windows = _windows(files)
    expected = clf.predict_scores(list(windows))
    scores = {}
    for variant in ("float32", "float16", "int8"):
        path = exported[0] / f"model_{variant}.tflite"
        meta = read_metadata(path)
        sub = meta["subgraphMetadata"][0]
        assert sub["inputTensorMetadata"][0]["content"]["contentProperties"] == {"sampleRate": RATE, "channels": 1}
        label_file = sub["outputTensorMetadata"][0]["associatedFiles"][0]["name"]
        assert meta["associated_files"][label_file].split() == list(CLASSES)
        described = json.loads(meta["associated_files"]["tfaudio.json"])
        assert described["sample_rate"] == RATE and described["labels"] == list(CLASSES)
        scores[variant] = _tflite_scores(path, windows)
    np.testing.assert_allclose(scores["float32"], expected, atol=1e-4)
    # measured on these 24 clips: float16 weights max |Δ| 5e-3; int8 body and head 0.11, top-1 all equal
    assert np.abs(scores["float16"] - expected).max() < 0.02
    assert np.abs(scores["int8"] - expected).max() < 0.25
    assert np.mean(scores["int8"].argmax(1) == expected.argmax(1)) >= 0.8
    # int8: the frontend (mel and silence gate) stays float, the body is int8
    it = tf.lite.Interpreter(model_path=str(exported[0] / "model_int8.tflite"))
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    ops = [(op["op_name"], tensors[op["inputs"][0]]["dtype"], tensors[op["outputs"][0]]["name"])
           for op in it._get_ops_details()]
    assert ("CONV_2D", np.int8) in {(name, dtype) for name, dtype, _ in ops}
    logs = [(dtype, out) for name, dtype, out in ops if name == "LOG"]
    assert len(logs) >= 2 and all(dtype == np.float32 for dtype, _ in logs), logs


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_mediapipe_classifies_with_the_tflite_files(exported, model_scores, variant):
    pytest.importorskip("mediapipe")
    import soundfile as sf
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from tfaudio.signal.resample import resample

    _, files, _ = model_scores
    files = files[::4]
    path = exported[0] / f"model_{variant}.tflite"
    expected = _tflite_scores(path, _windows(files))
    options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
    with mp_audio.AudioClassifier.create_from_options(options) as classifier:
        for f, e in zip(files, expected, strict=True):
            audio, rate = sf.read(f, dtype="float32")
            results = classifier.classify(AudioData.create_from_array(audio[:RATE], rate))
            assert len(results) == 1  # one 1 s window
            got = {c.category_name: c.score for c in results[0].classifications[0].categories}
            assert set(got) == set(CLASSES)
            # int8: MediaPipe's int8 kernels round differently from tflite-runtime's (measured up to 0.053
            # on one class of one clip); the top class is the same
            np.testing.assert_allclose([got[c] for c in CLASSES], e, atol=1e-4 if variant == "float32" else 0.1)
            if np.diff(np.sort(e)[-2:])[0] > 0.2:  # a clear winner stays the winner
                assert max(got, key=got.get) == CLASSES[int(np.argmax(e))]
        # 8 kHz audio: MediaPipe resamples to the 16 kHz the metadata states
        audio = np.asarray(resample(sf.read(files[0], dtype="float32")[0], RATE, 8000))
        results = classifier.classify(AudioData.create_from_array(audio, 8000))
        assert results and {c.category_name for c in results[0].classifications[0].categories} == set(CLASSES)


# ---- Whisper (a tiny random checkpoint) ------------------------------------------------------------
@pytest.fixture(scope="module")
def whisper(kws):
    """``tfaudio train --backbone whisper:<folder>`` on the same clips: (model folder, options)."""
    from tests.test_whisper import _write_checkpoint

    folder = _write_checkpoint(kws / "whisper-tiny", "tiny")  # the released models' 30 s input
    options = ["--backbone", f"whisper:{folder}", "--cache", str(kws / "cache"), "--epochs", "10"]
    out = kws / "whisper_model"
    assert main(["train", str(kws / "data"), *options, "-o", str(out)]) == 0
    return out, options, folder


@pytest.mark.slow
def test_whisper_trains_and_cross_validates(whisper, kws):
    out, options, folder = whisper
    config = json.loads((out / "tfaudio.json").read_text())
    assert config["backbone"]["name"] == "whisper" and config["backbone"]["source"] == str(folder)
    assert config["labels"] == list(CLASSES) and config["sample_rate"] == RATE
    assert (out / "test_report.json").is_file()
    cv = kws / "whisper_cv"
    # the tutorial's recipe, without its validation fold (3 folds of 8 clips per word leave too few to train)
    assert main(["cv", str(kws / "data"), *options, "--folds", "3", "--recipe", "tutorial", "--validation", "none",
                 "-o", str(cv)]) == 0
    summary = json.loads((cv / "cv.json").read_text())
    assert summary["num_folds"] == 3 and summary["recipe"]["name"] == "tutorial"
    assert summary["recipe"]["validation"] == "none" and summary["head"]["hidden_units"] == [512]
    assert np.array(summary["confusion_matrix"]).sum() == len(CLASSES) * PER_CLASS


@pytest.mark.slow
def test_whisper_saved_model_takes_waveforms(whisper, kws):
    import tensorflow as tf

    from tfaudio.export.saved_model import read_export_metadata
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample
    from tfaudio.tasks.audio_classifier import AudioClassifier

    out, _, _ = whisper
    export = kws / "whisper_export"
    assert main(["export", str(out), "-o", str(export), "--input-rate", "8000"]) == 0
    meta = read_export_metadata(export / "saved_model")
    assert meta["backbone"]["name"] == "whisper" and meta["sample_rate"] == RATE and meta["input_rate"] == 8000
    files = files_of(kws)
    clips = [load_audio(f)[0] for f in files[::8]]
    clips.append(np.concatenate([load_audio(f)[0] for f in files + files[:10]]))  # ~34 s: two 30 s windows
    c8 = [np.asarray(resample(x, RATE, 8000)) for x in clips]
    expected = AudioClassifier.load(out).predict_scores(c8, sample_rate=8000)
    model = tf.saved_model.load(str(export / "saved_model"))
    for x, e in zip(c8, expected, strict=True):
        got = model.signatures["serving_default"](audio=tf.constant(x))["classifier"].numpy()
        np.testing.assert_allclose(got, e, atol=1e-5)

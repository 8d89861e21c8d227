"""EfficientAT (mn04_as) through every road of the product, as YAMNet goes: ``tfaudio tag``, the pipeline,
``tfaudio info``, the demo page's analysis, ``train`` / ``cv`` / ``evaluate`` / ``predict`` on real
clips, Beam ``embed`` / ``predict``, and ``tfaudio export`` (SavedModel at 32 kHz and resampling 16 and
44.1 kHz in its graph; TFLite float16 / int8 with 32 kHz + labels metadata, in a TFLite interpreter and
MediaPipe's AudioClassifier; the backbone's own 527-class tagger)."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import shared, tflite_window_scores
from tfaudio.cli import main

CKPT = ("models", "efficientat", "mn04_as_mAP_432.pt")
SPEC = "efficientat:mn04_as"
RATE = 32000
LABELS = ("dog", "rooster")


def _run(args: list[str]) -> str:
    """``tfaudio ARGS`` in this process; asserts exit status 0 and returns what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(args)
    assert status == 0, out.getvalue()[-2000:]
    return out.getvalue()


@pytest.fixture(scope="module")
def eat():
    shared(*CKPT)
    from tfaudio.backbones.registry import get_backbone

    return get_backbone(SPEC)


@pytest.fixture(scope="module")
def dog_mp3():
    return shared("data", "animals-mp3", "dog.mp3")


@pytest.fixture(scope="module")
def tagger(eat):
    from tfaudio.inference.loader import load_model

    return load_model(eat, tagging=True)


# ---- tagging, pipeline, info, demo page (no training) --------------------------------------------
@pytest.mark.slow  # loads the backbone again (the CLI)
def test_tag_the_dog_with_527_audioset_labels(eat, dog_mp3, tagger):
    from tfaudio.commands.tag import tag_files

    assert tagger.kind == "tagger" and len(tagger.labels) == 527 and tagger.sample_rate == RATE
    (row,) = tag_files(eat, [str(dog_mp3)], top_k=3)
    top3 = [e["label"] for e in row["events"]]
    assert {"Dog", "Bark"} & set(top3), top3
    assert row["frames"] == 1  # EfficientAT pools the clip itself: one score row per clip
    printed = _run(["tag", "--backbone", SPEC, str(dog_mp3), "--top-k", "527", "--json"])
    events = json.loads(printed.strip().splitlines()[-1])["events"]
    assert len(events) == 527 and len({e["label"] for e in events}) == 527
    assert [e["label"] for e in events[:3]] == top3


@pytest.mark.slow  # loads the backbone twice (by name, by path)
def test_pipeline_audio_tagging(dog_mp3):
    import tfaudio

    tag = tfaudio.pipeline("audio-tagging", model=SPEC)
    assert tag.sample_rate == RATE and len(tag.labels) == 527
    top = tag(str(dog_mp3), top_k=3)
    assert {"Dog", "Bark"} & {t["label"] for t in top}, top
    # an array at another rate goes through the same front door
    from tfaudio.io.decode import load_audio

    audio, rate = load_audio(dog_mp3)
    again = tag(audio, sampling_rate=rate, top_k=3)
    assert [t["label"] for t in again] == [t["label"] for t in top]
    np.testing.assert_allclose([t["score"] for t in again], [t["score"] for t in top], atol=1e-5)
    # the checkpoint's path works like the release name
    by_path = tfaudio.pipeline("audio-tagging", model=str(shared(*CKPT)))(str(dog_mp3), top_k=3)
    assert [t["label"] for t in by_path] == [t["label"] for t in top]
    np.testing.assert_allclose([t["score"] for t in by_path], [t["score"] for t in top], atol=1e-6)


@pytest.mark.slow
def test_info_counts_parameters_and_macs_from_the_graph(eat):
    """MACs of the traced graph equal the body's own layer count; the frontend is counted as exported
    (RFFT2D, not counted, + the mel matmul)."""
    from tfaudio.backbones.efficientat import frontend as fe
    from tfaudio.backbones.efficientat.backbone import build_body
    from tfaudio.inference.model_info import count_macs, format_info, model_info

    info = model_info(eat)
    assert info["kind"] == "audio-tagging" and info["num_labels"] == 527 and info["sample_rate"] == RATE
    assert info["parameters"]["backbone"] == eat.body.count_params()
    macs = info["macs"]
    frames = fe.num_frames(10 * RATE)  # 1001 log-mel frames for 10 s
    body = sum(count_macs(build_body(eat.params, num_frames=frames)).values())
    by_part = macs["per_second_by_part"]
    assert abs(by_part["backbone"] * 10 - body) / body < 0.01, (by_part, body)
    weights = fe.kaldi_mel_matrix()
    used = np.flatnonzero(weights.any(axis=1))
    assert by_part["frontend"] == round(frames * (used[-1] + 1 - used[0]) * 128 / 10)  # the mel matmul
    assert macs["per_second"] == sum(by_part.values()) and macs["frames"] == eat.num_frames(10 * RATE)
    text = format_info(info)
    assert "MACs" in text and "RFFT" in text and "527" in text


@pytest.mark.slow
def test_demo_page_analysis_of_the_tagger(tagger, dog_mp3):
    from tfaudio.apps.gradio_demo import analyze, analyze_file

    a = analyze_file(tagger, dog_mp3, top_k=3)
    assert {"Dog", "Bark"} & {t["label"] for t in a.top}
    assert a.sample_rate == RATE and a.frame_scores.shape == (1, 527)
    assert a.frame_seconds == pytest.approx(len(a.waveform) / RATE)  # one row spanning the clip
    assert a.log_mel.shape[1] == 128  # EfficientAT's own log-mel
    b = analyze(tagger, a.waveform, RATE, top_k=3)
    assert [t["label"] for t in b.top] == [t["label"] for t in a.top]


# ---- training roads on real clips ----------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Dog vs rooster, 6 ESC-50 clips each (2 per fold in folds 1-3; 44.1 kHz FLAC), as an ESC-50-style
    CSV with absolute file names; and two unseen fold-4 clips of each class."""
    from tfaudio.data.manifest import Manifest

    esc = Manifest.from_source(shared("data", "esc50-subset")).frame
    rows, unseen = [], {}
    for label in LABELS:
        for fold in (1, 2, 3):
            for path in esc[(esc.label == label) & (esc.fold == fold)].path[:2]:
                rows.append({"filename": path, "fold": fold, "category": label})
        unseen[label] = list(esc[(esc.label == label) & (esc.fold == 4)].path[:2])
    root = tmp_path_factory.mktemp("data")
    pd.DataFrame(rows).to_csv(root / "clips.csv", index=False)
    return root / "clips.csv", unseen


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """``tfaudio train --backbone efficientat:mn04_as`` (train folds 1-2, validate 3): (model folder, cache, printed)."""
    csv, _ = data
    root = tmp_path_factory.mktemp("train")
    cache, model = str(root / "cache"), root / "model"
    printed = _run(["train", str(csv), "--backbone", SPEC, "--folds", "1,2:3", "--epochs", "30", "--learning-rate",
                    "3e-3", "--cache", cache, "-o", str(model)])
    return model, cache, printed


@pytest.fixture(scope="module")
def clf(trained, eat):
    from tfaudio.tasks.audio_classifier import AudioClassifier

    return AudioClassifier.load(trained[0], backbone=eat)


@pytest.mark.slow
def test_cli_train_evaluate_predict_and_cv(data, trained, clf, tmp_path):
    csv, unseen = data
    model, cache, printed = trained
    assert "training on folds [1, 2] (8 clips), validating on [3] (4 clips)" in printed
    saved = json.loads((model / "tfaudio.json").read_text())
    assert saved["backbone"]["name"] == "efficientat" and saved["backbone"]["source"] == "mn04_as"
    assert clf.backbone.contract.embedding_dim == 384 and tuple(clf.labels) == LABELS

    text = _run(["evaluate", str(model), str(csv), "--folds", "3", "--cache", cache])
    assert "4 examples, 2 classes" in text and (model / "eval_report.json").is_file()

    files = unseen["dog"] + unseen["rooster"]
    rows = [json.loads(x) for x in _run(["predict", str(model), *files, "--json"]).splitlines() if x.startswith("{")]
    assert [r["file"] for r in rows] == files
    want = clf.predict_scores(files)
    for row, scores in zip(rows, want, strict=True):
        assert row["predictions"][0]["label"] == LABELS[int(np.argmax(scores))]
        assert row["predictions"][0]["score"] == pytest.approx(float(scores.max()), abs=1e-5)
    assert np.mean(want.argmax(1) == np.array([0, 0, 1, 1])) >= 0.75  # unseen clips, mostly right

    out = tmp_path / "cv"
    text = _run(["cv", str(csv), "--backbone", SPEC, "--epochs", "20", "--cache", cache, "-o", str(out)])
    assert "over 3 folds" in text
    summary = json.loads((out / "cv.json").read_text())
    assert summary["num_folds"] == 3 and summary["num_examples"] == 12


# ---- Beam ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_beam_embed_in_memory_equals_the_local_cache(data, trained, eat, tmp_path, capsys):
    pytest.importorskip("apache_beam")
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest

    csv, _ = data
    manifest = Manifest.from_csv(csv)
    out = tmp_path / "beam"
    assert main(["embed", str(csv), "--output", str(out), "--backbone", SPEC, "--shard-size", "6",
                 "--batch-size", "4", "--runner", "DirectRunner", "--direct_running_mode=in_memory"]) == 0
    assert "12 clips in 2 shards" in capsys.readouterr().out
    # the namespace `tfaudio embed` wrote: its default engine (auto: EfficientAT's TFLite body)
    beam = EmbeddingCache(eat, out / "embeddings", engine="auto").load(manifest, extract=False, progress=False)
    local = EmbeddingCache(eat, f"{trained[1]}/embeddings").load(manifest, progress=False)
    assert list(beam.rows) == list(local.rows)
    for a, b in zip(beam.embeddings, local.embeddings, strict=True):
        assert a.shape == b.shape == (16, 384)  # 5 s: one frame per 0.32 s
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# ---- export --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(trained, data, tmp_path_factory):
    """``tfaudio export MODEL --tflite float16 int8 --representative CSV``: the output folder."""
    csv, _ = data
    out = tmp_path_factory.mktemp("export") / "dog_rooster"
    printed = _run(["export", str(trained[0]), "-o", str(out), "--tflite", "float16", "int8", "--representative",
                    str(csv), "--window-seconds", "1"])  # the 1 s streaming window (default: the training clips')
    assert printed.count("wrote ") == 3
    return out


def _load(path, rate: int) -> np.ndarray:
    from tfaudio.data.audio_converter import AudioConverter

    return AudioConverter(rate)(path)


@pytest.mark.slow
def test_saved_model_at_32k_and_resampling_16k_and_44k(exported, clf, data, tmp_path):
    import tensorflow as tf

    from tfaudio.export.saved_model import export_saved_model, read_export_metadata

    _, unseen = data
    meta = read_export_metadata(exported)
    assert meta["sample_rate"] == meta["input_rate"] == RATE and meta["labels"] == list(LABELS)
    assert meta["backbone"] == {"name": "efficientat", "source": "mn04_as"} and meta["kind"] == "classifier"
    assert meta["window_samples"] == RATE  # the TFLite window: 1 s
    files = [unseen["dog"][0], unseen["rooster"][0]]
    for rate in (RATE, 16000, 44100):
        path = exported / "saved_model" if rate == RATE else export_saved_model(clf, tmp_path / f"sm{rate}",
                                                                                   input_rate=rate)
        model = tf.saved_model.load(str(path))
        assert int(model.signatures["metadata"]()["input_rate"]) == rate
        for f in files:
            audio = _load(f, rate)
            got = model.signatures["serving_default"](audio=tf.constant(audio))["classifier"].numpy()
            want = clf.predict_scores(audio, sample_rate=rate)[0]
            np.testing.assert_allclose(got, want, atol=1e-4 if rate == RATE else 2e-3)


@pytest.fixture(scope="module")
def windows(data, clf):
    """Every 1 s window of the four unseen clips at 32 kHz, and the Keras model's scores on each."""
    _, unseen = data
    x = []
    for f in unseen["dog"] + unseen["rooster"]:
        audio = _load(f, RATE)
        x += [audio[s : s + RATE] for s in range(0, len(audio) - RATE + 1, RATE)]
    x = np.stack(x)
    return x, clf.predict_scores(list(x))


def _tflite_scores(path, x: np.ndarray) -> np.ndarray:
    return tflite_window_scores(path, x, shape=[[1, RATE], [1, len(LABELS)]], num_threads=2)


def _ops(path) -> set[tuple[str, str]]:
    from tfaudio.interpreter import tflite_interpreter

    it = tflite_interpreter(path)
    it.allocate_tensors()
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    return {(op["op_name"], tensors[op["inputs"][0]]["dtype"].__name__) for op in it._get_ops_details()
            if len(op["inputs"]) and op["inputs"][0] >= 0}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["float16", "int8"])
def test_tflite_metadata_ops_and_agreement_with_keras(variant, exported, windows):
    from tfaudio.export.tflite import read_metadata

    path = exported / f"model_{variant}.tflite"
    meta = read_metadata(path)
    inp = meta["subgraphMetadata"][0]["inputTensorMetadata"][0]
    assert inp["content"]["contentProperties"] == {"sampleRate": RATE, "channels": 1}
    assert meta["associated_files"]["labels.txt"].split() == list(LABELS)
    assert json.loads(meta["associated_files"]["tfaudio.json"])["sample_rate"] == RATE
    ops = _ops(path)
    assert not any("FLEX" in op or op == "CUSTOM" for op, _ in ops)
    assert ("RFFT2D", "float32") in ops  # EfficientAT's TFLite frontend (Backbone.tflite_stft)
    x, keras_scores = windows
    scores = _tflite_scores(path, x)
    agreement = float(np.mean(scores.argmax(1) == keras_scores.argmax(1)))
    if variant == "float16":
        assert agreement == 1.0 and np.abs(scores - keras_scores).max() < 0.02
    else:  # int8 body and head, float frontend
        assert ("CONV_2D", "int8") in ops and ("LOG", "float32") in ops
        assert agreement >= 0.85, agreement


def _confident(clf, files: list[str], label: str) -> str:
    scores = clf.predict_scores(files)
    best = int(np.argmax(scores[:, LABELS.index(label)]))
    assert scores[best, LABELS.index(label)] > 0.7, scores
    return files[best]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["float16", "int8"])
def test_mediapipe_audio_classifier_runs_the_export(variant, exported, clf, data):
    pytest.importorskip("mediapipe")
    import soundfile as sf
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    _, unseen = data
    dog = _confident(clf, unseen["dog"], "dog")
    audio, rate = sf.read(dog, dtype="float32")
    assert rate == 44100  # MediaPipe resamples to the 32 kHz the metadata states
    options = mp_audio.AudioClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(exported / f"model_{variant}.tflite")))
    with mp_audio.AudioClassifier.create_from_options(options) as classifier:
        results = classifier.classify(AudioData.create_from_array(audio, rate))
    assert len(results) >= 4  # one per 1 s window of the 5 s clip
    totals: dict[str, float] = {}
    for r in results:
        for c in r.classifications[0].categories:
            totals[c.category_name] = totals.get(c.category_name, 0.0) + c.score
    assert set(totals) == set(LABELS) and max(totals, key=totals.get) == "dog", totals


@pytest.mark.slow
def test_tagger_export_saved_model_and_tflite(dog_mp3, tagger, tmp_path):
    """``tfaudio export efficientat:mn04_as``: the backbone's own 527-class tagger."""
    import tensorflow as tf

    from tfaudio.export.saved_model import read_export_metadata
    from tfaudio.export.tflite import read_metadata

    out = tmp_path / "tagger"
    _run(["export", SPEC, "-o", str(out), "--tflite", "float16"])
    meta = read_export_metadata(out)
    assert meta["kind"] == "tagger" and len(meta["labels"]) == 527 and meta["sample_rate"] == RATE
    audio = _load(dog_mp3, RATE)
    model = tf.saved_model.load(str(out / "saved_model"))
    got = model.signatures["serving_default"](audio=tf.constant(audio))
    np.testing.assert_allclose(got["classifier"].numpy(), tagger.scorer.scores([audio])[0], atol=1e-4)
    assert got["label"].numpy().decode() in ("Dog", "Animal", "Domestic animals, pets")
    path = out / "model_float16.tflite"
    labels = read_metadata(path)["associated_files"]["labels.txt"].splitlines()
    assert labels == list(tagger.labels)
    from tfaudio.interpreter import tflite_interpreter

    it = tflite_interpreter(path)
    it.allocate_tensors()
    window = audio[RATE : 2 * RATE]
    it.set_tensor(it.get_input_details()[0]["index"], window[None])
    it.invoke()
    scores = it.get_tensor(it.get_output_details()[0]["index"])[0]
    np.testing.assert_allclose(scores, tagger.scorer.scores([window])[0], atol=0.02)
    assert {"Dog", "Bark"} & {labels[i] for i in np.argsort(-scores)[:5]}


@pytest.mark.slow
def test_beam_predict_with_the_export(exported, data, clf, tmp_path, capsys):
    pytest.importorskip("apache_beam")
    csv, _ = data
    out = tmp_path / "scores.jsonl"
    assert main(["predict", str(exported), str(csv), "--output", str(out), "--top-k", "1",
                 "--direct_running_mode=in_memory"]) == 0
    assert "12 of 12 files scored by DirectRunner" in capsys.readouterr().out
    rows = {r["file"]: r for r in map(json.loads, out.read_text().splitlines())}
    files = list(pd.read_csv(csv).filename)
    want = clf.predict_scores(files)
    for f, scores in zip(files, want, strict=True):
        np.testing.assert_allclose([rows[f]["scores"][lab] for lab in LABELS], scores, atol=1e-4)


# ---- make demo's choice --------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_chooses_the_backbone_on_the_validation_fold_only(data, monkeypatch, tmp_path):
    from tfaudio.commands.esc50_demo import choose_backbone
    from tfaudio.data.manifest import Manifest
    from tfaudio.tasks.recipe import TrainConfig

    shared("models", "yamnet", "yamnet.h5")
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path))
    manifest = Manifest.from_csv(data[0])
    notes = []
    choice = choose_backbone(manifest, ("yamnet", SPEC, "efficientat:/nowhere/mn10_as_mAP_471.pt"),
                             train_config=TrainConfig(epochs=20, learning_rate=3e-3), train_folds=[1, 2],
                             val_folds=[3], log=notes.append)
    assert set(choice["accuracy"]) == {"yamnet", SPEC}  # the missing checkpoint is skipped, with a note
    assert len(notes) == 1 and "mn10_as_mAP_471.pt" in notes[0]
    best = max(choice["accuracy"].values())
    assert choice["accuracy"][choice["name"]] == best
    assert choice["name"] == next(n for n, a in choice["accuracy"].items() if a == best)  # YAMNet wins ties
    clf = choice["classifier"]
    assert clf.backbone is choice["backbone"] and clf.is_trained
    assert sorted(choice["extraction"]) == sorted(choice["accuracy"])

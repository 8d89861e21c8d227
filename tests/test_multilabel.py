"""Multi-label metrics (AP, mAP, AUC → d', lwlrap, F1 at per-class thresholds), threshold choice, the
"none of these" rejection threshold, and multi-label CSV cells, against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tfaudio.data.multi_labels import is_multi_label, multi_hot, read_vocabulary, split_labels
from tfaudio.errors import ManifestError
from tfaudio.tasks.multilabel_metrics import (
    average_precision,
    choose_thresholds,
    f1_at_thresholds,
    lwlrap,
    multilabel_report,
    rejection_report,
    rejection_threshold,
)
from tfaudio.tasks.report_figures import per_class_ap_figure

Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
S = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.75], [0.1, 0.65]])


def test_average_precision_auc_dprime_and_lwlrap_by_hand():
    # class 0 ranked: 0.9 (+), 0.8 (-), 0.3 (+), 0.1 (-): AP = 1/2 * 1 + 1/2 * 2/3; class 1: both positives on top
    np.testing.assert_allclose(average_precision(Y, S), [5 / 6, 1.0])
    # lwlrap: (clip 0, a) 1/1; (clip 1, b) 1/2 (a ranks above); (clip 2, a) 2/2; (clip 2, b) 1/1
    assert lwlrap(Y, S) == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    rep = multilabel_report(Y, S, ["a", "b"])
    assert rep["mAP"] == pytest.approx((5 / 6 + 1) / 2)
    # class 0 AUC: of the 4 (positive, negative) pairs, 0.3 < 0.8 is the one misordered → 3/4
    assert rep["per_class"]["a"]["auc"] == pytest.approx(0.75)
    assert rep["per_class"]["a"]["d_prime"] == pytest.approx(math.sqrt(2) * 0.6744897501960817)
    assert rep["per_class"]["b"]["auc"] == 1.0


def test_thresholds_maximise_f1_on_the_scores_they_are_given():
    t = choose_thresholds(Y, S)
    # class 0: cutting between 0.1 and 0.3 accepts 0.9, 0.8, 0.3 → F1 = 2*2 / (3 + 2) = 0.8, the best
    assert t == pytest.approx([0.2, 0.675])
    f1 = f1_at_thresholds(Y, S, t)
    assert f1["per_class_f1"] == pytest.approx([0.8, 1.0])
    assert f1["micro_f1"] == pytest.approx(8 / 9) and f1["macro_f1"] == pytest.approx(0.9)
    # chosen on other clips, they are used as given: on a test set they need not be optimal
    other = np.array([[0.25, 0.9], [0.15, 0.1]])
    assert f1_at_thresholds(np.array([[0, 1], [1, 0]]), other, t)["per_class_f1"] == pytest.approx([0.0, 1.0])
    assert choose_thresholds(np.zeros([2, 1]), np.array([[0.3], [0.6]]), default=0.5) == pytest.approx([0.5])


def test_rejection_threshold_keeps_the_asked_share_of_correct_clips():
    val = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    targets = np.array([0, 0, 1, 0])  # the last is misclassified; correct top scores 0.6, 0.7, 0.9
    assert rejection_threshold(val, targets, keep=1.0) == 0.6
    assert rejection_threshold(val, targets, keep=0.6) == 0.7
    out = np.array([[0.8, 0.2], [0.5, 0.5], [0.65, 0.35]])
    rep = rejection_report(val, targets, out, 0.7)
    assert rep == {"threshold": 0.7, "accuracy_kept": 0.5, "accuracy_without": 0.75, "in_set_rejected": 0.5,
                   "false_accepts": pytest.approx(1 / 3)}
    with pytest.raises(Exception, match="no validation clip is classified correctly"):
        rejection_threshold(val, np.array([1, 1, 0, 0]))


def test_multi_label_cells_and_vocabulary(tmp_path):
    assert split_labels("Bark,Dog, Domestic_animals") == ("Bark", "Dog", "Domestic_animals")
    assert split_labels("Domestic animals, pets; Dog") == ("Domestic animals, pets", "Dog")  # ';' wins over ','
    assert split_labels("dog") == ("dog",) and split_labels("dog;dog") == ("dog",)
    assert not is_multi_label(["dog", "cat"]) and is_multi_label(["dog", "dog;rain"])
    with pytest.raises(ManifestError, match="meta.csv:3: empty label in 'dog;;rain'"):
        split_labels("dog;;rain", where="meta.csv:3")
    voc = tmp_path / "vocabulary.csv"
    voc.write_text("1,Dog,/m/0bt9lr\n0,Bark,/m/05tny_\n")
    assert read_vocabulary(voc) == ["Bark", "Dog"]  # FSD50K order by index
    y = multi_hot([("Dog",), ("Bark", "Dog")], read_vocabulary(voc))
    np.testing.assert_array_equal(y, [[0, 1], [1, 1]])
    with pytest.raises(ManifestError, match="row 1: label 'Cat' is not in the vocabulary"):
        multi_hot([("Cat",)], ["Bark", "Dog"])


# ---- multi-label data through training, evaluation, saving and export ---------------------------
def _mixtures(root, per_fold: int = 7, folds: int = 3, rate: int = 16000):
    """Clips holding a random non-empty subset of {low 300 Hz tone, high 3.5 kHz tone, hiss}, labelled
    'low;hiss' etc. in a CSV with folds."""
    from tests.helpers import noise, sine, write_audio

    rng = np.random.default_rng(0)
    rows = ["filename,fold,category"]
    subsets = [("low",), ("high",), ("hiss",), ("low", "high"), ("low", "hiss"), ("high", "hiss"), ("low", "high", "hiss")]
    for fold in range(1, folds + 1):
        for i in range(per_fold):
            labels = subsets[(i + fold) % len(subsets)]
            audio = noise(1.5, rate, seed=int(rng.integers(1 << 30)), amplitude=0.3 if "hiss" in labels else 0.005)
            for name, freq in (("low", 300.0), ("high", 3500.0)):
                if name in labels:
                    audio = audio + sine(freq * rng.uniform(0.95, 1.05), 1.5, rate, amplitude=0.4)
            write_audio(root / f"{fold}_{i}.wav", audio, rate)
            rows.append(f"{fold}_{i}.wav,{fold},{';'.join(labels)}")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    return root / "meta.csv"


@pytest.mark.slow
def test_multi_label_csv_trains_a_sigmoid_head_with_thresholds_from_the_training_folds(tmp_path, capsys):
    from tests.helpers import ToyBackbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    m = Manifest.from_csv(_mixtures(tmp_path), audio_dir=tmp_path)
    assert m.multi_label and m.labels == ("high", "hiss", "low")
    assert m.targets.shape == (21, 3) and m.class_counts()["low"] == int(m.targets[:, 2].sum())
    # single-label views stay multi-label (a fold where every clip has one label keeps multi-hot targets)
    assert m.filter_folds([1]).multi_label and m.select(["low"]).labels == ("low",)
    assert set(m.select(["low"]).label_sets()) == {("low",)}
    bb = ToyBackbone()
    clf = AudioClassifier(bb, labels=m.labels, cache=EmbeddingCache(bb, tmp_path / "cache"))
    train, test = m.filter_folds([1, 2]), m.filter_folds([3])
    clf.fit(train, config=TrainConfig(epochs=60, batch_size=16, learning_rate=3e-3))
    assert clf.head.multi_label  # the data reached the head's switch: sigmoid outputs
    scores = clf.clip_scores(clf.cache.load(test))
    assert not np.allclose(scores.sum(axis=1), 1.0)
    # thresholds: the F1-best cuts on the training folds' scores, not on the test fold's
    train_clips = clf.cache.load(train)
    np.testing.assert_allclose(clf.thresholds_, choose_thresholds(train_clips.targets, clf.clip_scores(train_clips)))
    rep = clf.evaluate(test)["clip"]
    assert rep["multi_label"] and rep["mAP"] > 0.8 and rep["lwlrap"] > 0.8
    assert rep["thresholds"] == clf.thresholds_ and 0 <= rep["macro_f1_at_thresholds"] <= 1
    per_class_ap_figure(rep, tmp_path / "ap.png")  # the evaluation report's per-class AP as a PNG
    assert (tmp_path / "ap.png").read_bytes()[:4] == b"\x89PNG"
    saved = clf.save(tmp_path / "model")
    back = AudioClassifier.load(saved, backbone=bb)
    assert back.thresholds_ == clf.thresholds_ and back.head.multi_label
    # the export carries them, and `tfaudio predict` lists the labels above them
    import json

    from tfaudio.cli import main
    from tfaudio.export.saved_model import export_saved_model, read_export_metadata

    exported = export_saved_model(clf, tmp_path / "export")
    meta = read_export_metadata(exported)
    assert meta["multi_label"] and meta["thresholds"] == pytest.approx(clf.thresholds_)
    from tfaudio.export.tflite import read_metadata, tflite_model

    tfl = read_metadata(tflite_model(clf))
    packed = json.loads(tfl["associated_files"]["tfaudio.json"])
    assert packed["thresholds"] == pytest.approx(clf.thresholds_)  # and the TFLite file's
    # MediaPipe's one global score threshold: the lowest class threshold (float32 in the flatbuffer)
    unit = tfl["subgraphMetadata"][0]["outputTensorMetadata"][0]["processUnits"][0]
    assert unit["options"]["globalScoreThreshold"] == pytest.approx(min(clf.thresholds_), rel=1e-6)
    wav = test.paths[0]
    assert main(["predict", str(exported), wav, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    score = clf.predict_scores(wav)[0]
    assert out["labels"] == [m.labels[j] for j in np.flatnonzero(score > np.asarray(clf.thresholds_))]
    assert out["labels"] == sorted(test.label_sets()[0], key=m.labels.index)  # this clip's true labels


def test_fsd50k_style_comma_cells_need_the_separator(tmp_path):
    from tfaudio.data.manifest import Manifest

    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "b.wav").write_bytes(b"")
    csv = tmp_path / "dev.csv"
    csv.write_text('fname,labels,split\na.wav,"Bark,Dog",train\nb.wav,Dog,train\n')
    single = Manifest.from_csv(csv, audio_dir=tmp_path, path_column="fname", label_column="labels")
    assert not single.multi_label and single.labels == ("Bark,Dog", "Dog")  # commas alone stay one label
    multi = Manifest.from_csv(csv, audio_dir=tmp_path, path_column="fname", label_column="labels", label_separator=",")
    assert multi.multi_label and multi.labels == ("Bark", "Dog")
    np.testing.assert_array_equal(multi.targets, [[1, 1], [0, 1]])
    with pytest.raises(ManifestError, match=r"dev.csv:2: empty label"):
        csv.write_text('fname,labels\na.wav,"Bark,,Dog"\n')
        Manifest.from_csv(csv, audio_dir=tmp_path, path_column="fname", label_column="labels", label_separator=",")


@pytest.mark.slow
def test_none_of_these_threshold_is_chosen_on_validation_clips_and_exported(tmp_path, capsys):
    import json

    from tests.helpers import ToyBackbone, silence, tone_dataset, write_audio
    from tfaudio.cli import main
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.export.saved_model import export_saved_model, read_export_metadata
    from tfaudio.export.tflite import read_metadata, tflite_model
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    data = tone_dataset(tmp_path / "audio", n_per_class=4)
    bb = ToyBackbone()
    fast = TrainConfig(epochs=30, batch_size=8, learning_rate=3e-3)
    clf = AudioClassifier(bb, cache=EmbeddingCache(bb, tmp_path / "cache"))
    clf.fit(data.filter_folds([1]), data.filter_folds([2]), fast)
    val = clf.cache.load(data.filter_folds([2]))
    assert clf.rejection_threshold_ == rejection_threshold(clf.clip_scores(val), val.targets, keep=0.95)
    plain = AudioClassifier(bb, cache=clf.cache).fit(data.filter_folds([1]), config=fast)  # no validation folds
    assert plain.rejection_threshold_ is None
    back = AudioClassifier.load(clf.save(tmp_path / "model"), backbone=bb)
    assert back.rejection_threshold_ == clf.rejection_threshold_ and back.thresholds_ is None
    exported = export_saved_model(clf, tmp_path / "export")
    assert read_export_metadata(exported)["rejection_threshold"] == pytest.approx(clf.rejection_threshold_)
    # the TFLite metadata's global score threshold (MediaPipe) is the rejection threshold; none without one
    out = read_metadata(tflite_model(clf))["subgraphMetadata"][0]["outputTensorMetadata"][0]
    assert out["processUnits"][0]["options"]["globalScoreThreshold"] == pytest.approx(clf.rejection_threshold_, rel=1e-6)
    assert "processUnits" not in read_metadata(tflite_model(plain))["subgraphMetadata"][0]["outputTensorMetadata"][0]
    quiet = write_audio(tmp_path / "quiet.wav", silence(1.5, 16000), 16000)
    files = [data.filter_folds([3]).paths[0], str(quiet)]
    assert main(["predict", str(exported), *files, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()[-2:]]
    tops = clf.predict_scores(files).max(axis=1)
    assert [r["none_of_these"] for r in rows] == [bool(t < clf.rejection_threshold_) for t in tops]
    assert rows[1]["none_of_these"]  # silence is none of the three classes


@pytest.mark.slow
def test_streamed_frames_of_multi_label_data_carry_multi_hot_labels(tmp_path):
    from tests.helpers import ToyBackbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest

    m = Manifest.from_csv(_mixtures(tmp_path, per_fold=3, folds=1), audio_dir=tmp_path)
    cache = EmbeddingCache(ToyBackbone(), tmp_path / "cache")
    x, y, clip = cache.load(m, progress=False).frames()  # the in-memory frames: y [frames, classes]
    rows = list(cache.frames_dataset(m).as_numpy_iterator())
    got = np.stack([r["embedding"] for r in rows])
    labels = np.stack([r["label"] for r in rows])
    assert labels.dtype == np.float32 and labels.shape == (len(rows), len(m.labels))
    order, ref = np.lexsort(got.T[::-1]), np.lexsort(x.T[::-1])  # shards need not keep the manifest's order
    np.testing.assert_allclose(got[order], x[ref])
    np.testing.assert_array_equal(labels[order], y[ref])
    np.testing.assert_array_equal(np.array([r["clip"] for r in rows])[order], clip[ref])
    assert labels.sum(axis=1).max() > 1  # some frames carry several labels


@pytest.mark.slow
def test_every_consumer_reports_the_decision_of_the_models_thresholds(tmp_path, capsys):
    """predict, the pipeline, the demo's analysis and Beam's rows: the labels above a multi-label model's
    per-class thresholds, and "none of these" below a single-label model's rejection threshold, read
    from the saved model's / the export's metadata."""
    import json

    from tests.helpers import ToyBackbone, tone_dataset
    from tfaudio import pipeline
    from tfaudio.apps.gradio_demo import analyze_file
    from tfaudio.beam.predict import FormatRow
    from tfaudio.cli import main
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.export.saved_model import decision_rule, export_saved_model
    from tfaudio.inference.loader import describe_export, load_model
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    bb = ToyBackbone()
    quick = TrainConfig(epochs=3, batch_size=8, learning_rate=3e-3)
    m = Manifest.from_csv(_mixtures(tmp_path / "mix", per_fold=4, folds=1), audio_dir=tmp_path / "mix")
    clf = AudioClassifier(bb, labels=m.labels, cache=EmbeddingCache(bb, tmp_path / "cache"))
    clf.fit(m, config=quick)
    files = m.paths[:3]
    s = clf.predict_scores(files)  # [3, C]
    clf.thresholds_ = [float(t) for t in s.mean(axis=0)]  # each class: accepted for some clips, not others
    want = [[m.labels[j] for j in np.flatnonzero(row > s.mean(axis=0))] for row in s]
    assert any(want) and any(len(w) < len(m.labels) for w in want)
    saved = clf.save(tmp_path / "ml-model")
    exported = export_saved_model(clf, tmp_path / "ml-export")
    for source in (saved, exported):  # one place states the thresholds, for a saved model and an export
        assert load_model(source, backbone=bb).thresholds == pytest.approx(clf.thresholds_)
    pipe = pipeline("audio-classification", model=str(saved), backbone=bb, top_k=None)
    assert [sorted((d["label"] for d in out if d["accepted"]), key=m.labels.index) for out in pipe(files)] == want
    assert main(["predict", str(exported), *files, "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()[-3:]]
    assert [r["labels"] for r in rows] == want and [r["none_of_these"] for r in rows] == [not w for w in want]
    assert [analyze_file(load_model(saved, backbone=bb), f).decision["labels"] for f in files] == want
    _, labels, _, meta = describe_export(exported)
    fmt = FormatRow(labels, 2, "jsonl", decision_rule(meta))
    fmt.setup()
    beam_rows = [json.loads(next(iter(fmt.process(((None, f, None), row))))) for f, row in zip(files, s)]
    assert [r["labels"] for r in beam_rows] == want

    # single-label: "none of these" when the top score is below the rejection threshold
    data = tone_dataset(tmp_path / "tones", n_per_class=2, folds=1)
    one = AudioClassifier(bb, cache=clf.cache).fit(data, config=quick)
    files = data.paths[:3]
    top = one.predict_scores(files).max(axis=1)
    assert top.min() < top.max()
    one.rejection_threshold_ = float(np.median(top))  # the clips below the median are rejected
    model = load_model(one.save(tmp_path / "one"), backbone=bb)
    assert model.rejection_threshold == one.rejection_threshold_ and model.thresholds is None
    rejected = [bool(t < one.rejection_threshold_) for t in top]
    assert any(rejected) and not all(rejected)
    out = pipeline("audio-classification", model=model.model, top_k=2)(files)  # the object: its own threshold
    assert [not o[0]["accepted"] and not o[1]["accepted"] for o in out] == rejected
    assert [analyze_file(model, f).decision["none_of_these"] for f in files] == rejected
    fmt = FormatRow(model.labels, 1, "csv", decision_rule(model.metadata))
    fmt.setup()
    assert [next(iter(fmt.process(((None, f, None), row)))).endswith(str(r).lower())
            for f, row, r in zip(files, one.predict_scores(files), rejected)] == [True] * 3


@pytest.mark.slow
def test_cv_on_a_multi_label_csv_reports_map_per_fold_and_mean_std(tmp_path, capsys, monkeypatch):
    import json

    from tests.helpers import ToyBackbone
    from tfaudio.backbones import registry
    from tfaudio.cli import main

    csv = _mixtures(tmp_path, per_fold=4, folds=3)
    monkeypatch.setattr(registry, "get_backbone", lambda *a, **k: ToyBackbone())  # the CLI's backbone, tiny
    out = tmp_path / "cv"
    assert main(["cv", str(csv), "--epochs", "10", "--cache", str(tmp_path / "cache"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "cv.json").read_text())
    assert summary["num_folds"] == 3 and summary["multi_label"]
    m = summary["metrics"]["mAP"]
    per_fold = [f["clip"]["mAP"] for f in summary["folds"]]  # each fold's own report
    assert m["per_fold"] == pytest.approx(per_fold) and m["n"] == 3
    assert m["mean"] == pytest.approx(np.mean(per_fold)) and m["std"] == pytest.approx(np.std(per_fold))
    assert f"mAP {m['mean']:.3f} ± {m['std']:.3f}" in text  # the printed summary
    assert all(f"{v:.3f}" in text for v in per_fold)  # and the per-fold table
    assert m["mean"] > 0.7  # the tones and hiss are easy: the multi-hot targets reached the head


@pytest.mark.slow
def test_tune_on_a_multi_label_csv_compares_recipes_by_map(tmp_path, capsys, monkeypatch):
    import json

    from tests.helpers import ToyBackbone
    from tfaudio.backbones import registry
    from tfaudio.cli import main
    from tfaudio.tasks.recipe import get_recipe

    csv = _mixtures(tmp_path, per_fold=4, folds=3)
    monkeypatch.setattr(registry, "get_backbone", lambda *a, **k: ToyBackbone())
    grid = []
    for name, hidden in (("linear", []), ("mlp", [16])):  # two quick candidates
        recipe = get_recipe("tutorial").replace(head={"hidden_units": hidden}, train={"epochs": 5}, name=name)
        grid.append(str(recipe.save(tmp_path / f"{name}.json")))
    out = tmp_path / "tune"
    assert main(["tune", str(csv), "--grid", ",".join(grid), "--inner-folds", "1", "--cache", str(tmp_path / "cache"),
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    result = json.loads((out / "tune.json").read_text())
    assert result["metric"] == "mAP" and len(result["outer"]["per_fold"]) == 3
    assert all(0 < v <= 1 for v in result["outer"]["per_fold"])
    assert result["outer"]["mean"] == pytest.approx(np.mean(result["outer"]["per_fold"]))
    assert "mean inner mAP" in text and f"mAP: {result['outer']['mean']:.3f} ± {result['outer']['std']:.3f}" in text
    assert result["recipe"]["name"] in ("linear", "mlp") and (out / "recipe.json").is_file()


def test_decide_labels_above_thresholds_none_below_rejection_and_background():
    from tfaudio.data.manifest import BACKGROUND
    from tfaudio.errors import TfaudioError
    from tfaudio.heads.decode import decide

    labels = ["a", "b", "c"]
    assert decide([0.9, 0.2, 0.7], labels) is None  # no rule: top-k only
    assert decide([0.9, 0.2, 0.7], labels, thresholds=[0.5, 0.1, 0.8]) == {"labels": ["a", "b"], "none_of_these": False}
    assert decide([0.1, 0.0, 0.7], labels, thresholds=[0.5, 0.1, 0.8])["none_of_these"]
    # a multi-label model's thresholds win over a rejection threshold
    assert decide([0.9, 0.2, 0.7], labels, thresholds=[0.95] * 3, rejection_threshold=0.1)["none_of_these"]
    assert decide([0.5, 0.3, 0.2], labels, rejection_threshold=0.5) == {"labels": ["a"], "none_of_these": False}
    assert decide([0.45, 0.35, 0.2], labels, rejection_threshold=0.5)["none_of_these"]
    assert decide([0.2, 0.7, 0.1], ["a", BACKGROUND, "c"]) == {"labels": [], "none_of_these": True}
    assert decide([0.7, 0.2, 0.1], ["a", BACKGROUND, "c"]) == {"labels": ["a"], "none_of_these": False}
    with pytest.raises(TfaudioError, match="2 thresholds for 3 class scores"):
        decide([0.9, 0.2, 0.7], labels, thresholds=[0.5, 0.5])


@pytest.mark.slow
def test_train_with_a_background_dir_reports_false_accepts_and_maps_it_to_none_of_these(tmp_path, capsys, monkeypatch):
    import json

    from tests.helpers import ToyBackbone, noise, sine, tone_dataset, write_audio
    from tfaudio.backbones import registry
    from tfaudio.cli import main
    from tfaudio.data.manifest import BACKGROUND, Manifest
    from tfaudio.errors import ManifestError
    from tfaudio.inference.loader import load_model

    data = tone_dataset(tmp_path / "audio", n_per_class=6, folds=3)
    frame = data.frame.assign(filename=[p.split("/audio/")[1] for p in data.paths], category=data.frame.label)
    csv = tmp_path / "tones.csv"
    frame[["filename", "fold", "category"]].to_csv(csv, index=False)
    bg = tmp_path / "elsewhere"
    for i in range(6):  # out of the set: 6 kHz tones and near silence
        audio = sine(6000.0 + 50 * i, 1.5, 16000) if i % 2 else noise(1.5, 16000, seed=i, amplitude=0.002)
        write_audio(bg / f"bg_{i}.wav", audio, 16000)
    bb = ToyBackbone()
    monkeypatch.setattr(registry, "get_backbone", lambda *a, **k: bb)
    out = tmp_path / "model"
    args = ["train", str(csv), "--audio-dir", str(tmp_path / "audio"), "--folds", "1:2:3", "--epochs", "30",
            "--cache", str(tmp_path / "cache"), "-o", str(out)]
    assert main([*args, "--background-dir", str(bg)]) == 0
    text = capsys.readouterr().out
    model = load_model(out, backbone=bb)
    assert model.labels[-1] == BACKGROUND and sorted(model.labels[:-1]) == sorted(data.labels)
    report = json.loads((out / "test_report.json").read_text())["background"]
    test_bg = sorted(str(p) for p in bg.glob("*.wav"))[2::3]  # fold 3: every third file, sorted by name
    scores = model.scorer.scores([model.converter()(p) for p in test_bg])
    top = scores.argmax(axis=1)
    reject = model.rejection_threshold
    accepted = (top != len(data.labels)) & (scores.max(axis=1) >= (reject if reject is not None else -1))
    assert report == {"clips": 2, "false_accepts": pytest.approx(accepted.mean())}
    assert f"{accepted.mean():.1%} of 2 out-of-set (background) clips" in text
    assert [model.decide(s)["none_of_these"] for s in scores] == list(~accepted)
    assert not accepted.all()  # the background class does take some out-of-set clips
    (tmp_path / "empty").mkdir()
    assert main([*args, "--background-dir", str(tmp_path / "empty")]) == 2
    assert "no audio files" in capsys.readouterr().err
    with pytest.raises(ManifestError, match="single-label data"):
        Manifest.from_csv(_mixtures(tmp_path / "mix", per_fold=4, folds=1), audio_dir=tmp_path / "mix").with_background(bg)

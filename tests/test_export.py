"""Export: SavedModel (TF Serving) and TFLite (Android) of a dog-vs-cat classifier trained on real YAMNet
embeddings of ESC-50 clips; loaded back in a fresh process, in the TFLite interpreter (LiteRT, else
tflite-runtime) and in MediaPipe."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from tests.helpers import same_computation, shared, tflite_window_scores
from tfaudio.interpreter import tflite_interpreter

pytestmark = pytest.mark.slow

LABELS = ("dog", "cat")
WINDOW = 15600
WINDOWS_PER_CLIP = 4  # 32 test clips x 4 = 128 windows: one borderline flip stays under 1 point


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def split():
    from tfaudio.data.manifest import Manifest

    csv = shared("data", "esc50-subset", "meta", "esc50.csv")
    return Manifest.from_csv(csv).select(list(LABELS)).split(train=[1, 2], val=[3], test=[4, 5])


@pytest.fixture(scope="module")
def clf(split, tmp_path_factory):
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    backbone = YAMNetBackbone.from_h5(shared("models", "yamnet", "yamnet.h5"))
    cache = EmbeddingCache(backbone, tmp_path_factory.mktemp("cache"))
    train, val = cache.load(split.train, progress=False), cache.load(split.val, progress=False)
    config = TrainConfig(epochs=12, batch_size=32, learning_rate=3e-3, patience=3)
    return AudioClassifier(backbone, labels=LABELS, cache=cache).fit(train, val, config)


def _load_16k(path) -> np.ndarray:
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample

    audio, rate = load_audio(path)
    return audio if rate == 16000 else np.asarray(resample(audio, rate, 16000))


@pytest.fixture(scope="module")
def eval_clips(split):
    """The test clips at 16 kHz with their label index, in manifest order."""
    return [(_load_16k(p), LABELS.index(lab)) for p, lab in zip(split.test.paths, split.test.frame.label, strict=True)]


@pytest.fixture(scope="module")
def windows(eval_clips):
    """The loudest non-overlapping 0.975 s windows of each test clip: ([n, 15600], labels [n])."""
    out, labels = [], []
    for audio, y in eval_clips:
        starts = np.arange(0, len(audio) - WINDOW + 1, WINDOW)
        rms = [np.mean(audio[s : s + WINDOW] ** 2) for s in starts]
        for s in starts[np.argsort(rms)[::-1][:WINDOWS_PER_CLIP]]:
            out.append(audio[s : s + WINDOW])
            labels.append(y)
    return np.stack(out), np.array(labels)


@pytest.fixture(scope="module")
def keras_window_scores(clf, windows):
    return clf.predict_scores(list(windows[0]))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def saved_models(clf, exports):
    from tfaudio.export.saved_model import export_saved_model

    full = export_saved_model(clf, exports / "sm", frame_scores=True, backbone_scores=True)
    at44k = export_saved_model(clf, exports / "sm44k", input_rate=44100)
    return full, at44k


@pytest.fixture(scope="module")
def cli_export(clf, tmp_path_factory):
    """``tfaudio export`` of the saved classifier: (output folder, arguments, printed text)."""
    pytest.importorskip("mediapipe", reason="TFLite metadata needs mediapipe: pip install 'tfaudio[tflite]'")
    import contextlib
    import io

    from tfaudio.cli import main

    tmp = tmp_path_factory.mktemp("cli")
    clf.save(tmp / "model")
    out = tmp / "export"
    args = ["export", str(tmp / "model"), "--output", str(out), "--tflite", "dynamic", "--audioset",
            "--window-seconds", "0.975"]  # the streaming window these tests use (WINDOW samples)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    return out, args, printed.getvalue()


@pytest.fixture(scope="module")
def tflite(clf, split, exports, cli_export):
    """``tflite(variant) -> path``, each variant converted once (``dynamic`` by the CLI test's run)."""
    from tfaudio.export.tflite import export_tflite

    made: dict[str, pathlib.Path] = {"dynamic": cli_export[0] / "model_dynamic.tflite"}

    def get(variant: str) -> pathlib.Path:
        if variant not in made:
            whole = variant == "whole_clip"
            quantization = "float32" if whole else variant
            made[variant] = export_tflite(clf, exports / f"model_{variant}.tflite", quantization=quantization,
                                          whole_clip=whole, representative_data=split.train,
                                          window_samples=None if whole else WINDOW)
        return made[variant]

    return get


def _run_tflite(path, inputs: np.ndarray) -> np.ndarray:
    return tflite_window_scores(path, inputs, num_threads=2)


# ---- SavedModel, in a fresh process without tfaudio ----------------------------------------------
FRESH = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf

    data = np.load(sys.argv[1])
    full, at44k = (tf.saved_model.load(p) for p in sys.argv[2:4])
    out = {"signatures": sorted(full.signatures), "inputs": {}, "outputs": {}}
    for name, f in full.signatures.items():
        out["inputs"][name] = sorted(f.structured_input_signature[1])
        out["outputs"][name] = sorted(f.structured_outputs)
    res = {}

    def plain(t):  # strings as unicode arrays: npz cannot hold bytes objects
        if t.dtype != tf.string:
            return t.numpy()
        v = np.asarray(t.numpy(), dtype=object)
        return np.array([b.decode() for b in v.ravel()]).reshape(v.shape)

    def run(model, key, prefix):
        clips = [data[k] for k in sorted(data.files) if k.startswith(key)]
        for i, x in enumerate(clips):
            r = model.signatures["serving_default"](audio=tf.constant(x))
            for k, v in r.items():
                res[f"{prefix}{k}_{i}"] = plain(v)
        lengths = np.array([len(x) for x in clips], np.int32)
        batch = np.zeros([len(clips), lengths.max()], np.float32)
        for i, x in enumerate(clips):
            batch[i, : len(x)] = x
        short = int(np.argmin(lengths))
        batch[short, lengths[short]:] = 0.3  # the padding must not matter
        r = model.signatures["batch"](audio=tf.constant(batch), lengths=tf.constant(lengths))
        for k, v in r.items():
            res[f"{prefix}batch_{k}"] = plain(v)

    run(full, "c16_", "")
    run(at44k, "c44_", "at44k_")
    meta = full.signatures["metadata"]()
    out["metadata"] = {"input_rate": int(meta["input_rate"]), "sample_rate": int(meta["sample_rate"]),
                       "labels": [b.decode() for b in meta["labels"].numpy()],
                       "json": json.loads(meta["metadata"].numpy().decode()),
                       "at44k_input_rate": int(at44k.signatures["metadata"]()["input_rate"])}
    # malformed requests: INVALID_ARGUMENT with a message, never an answer
    two = np.zeros([2, 16000], np.float32)
    bad = {
        "lengths_short": ("batch", dict(audio=two, lengths=np.array([16000], np.int32))),
        "lengths_negative": ("batch", dict(audio=two, lengths=np.array([16000, -5], np.int32))),
        "lengths_too_long": ("batch", dict(audio=two, lengths=np.array([16000, 16001], np.int32))),
        "lengths_zero": ("batch", dict(audio=two, lengths=np.array([16000, 0], np.int32))),
        "nan": ("serving_default", dict(audio=np.full(16000, np.nan, np.float32))),
        "inf_in_batch": ("batch", dict(audio=np.array([[0.1] * 100, [np.inf] * 100], np.float32),
                                       lengths=np.array([100, 100], np.int32))),
        "empty": ("serving_default", dict(audio=np.zeros(0, np.float32))),
    }
    out["rejected"] = {}
    for name, (sig, kwargs) in bad.items():
        try:
            full.signatures[sig](**{k: tf.constant(v) for k, v in kwargs.items()})
            out["rejected"][name] = None
        except tf.errors.InvalidArgumentError as err:
            out["rejected"][name] = err.message[:2000]
    out["labels_txt"] = open(full.labels_file.asset_path.numpy().decode()).read()  # assets/labels.txt
    assert "tfaudio" not in sys.modules, "loading the SavedModel imported tfaudio"
    out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tfaudio", "tf_keras"))
    np.savez(sys.argv[4], **res)
    print(json.dumps(out))
''')


@pytest.fixture(scope="module")
def clips(split):
    """Two dog clips (44.1 kHz files) and two cat clips (16 kHz files), two of them cropped, so that
    the batch has four different lengths; at 16 kHz and at the dogs' native 44.1 kHz."""
    from tfaudio.io.decode import load_audio

    test = split.test.frame
    dogs = list(test.path[test.label == "dog"][:2])
    cats = list(test.path[test.label == "cat"][:2])
    c16 = [_load_16k(dogs[0]), _load_16k(cats[0]), _load_16k(dogs[1])[: 33600], _load_16k(cats[1])[: 11200]]
    raw = [load_audio(p) for p in dogs]
    assert all(rate == 44100 for _, rate in raw)
    c44 = [raw[0][0], raw[1][0][: 92610]]
    return c16, c44


@pytest.fixture(scope="module")
def fresh(saved_models, clips, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fresh")
    c16, c44 = clips
    np.savez(tmp / "in.npz", **{f"c16_{i}": x for i, x in enumerate(c16)}, **{f"c44_{i}": x for i, x in enumerate(c44)})
    (tmp / "fresh.py").write_text(FRESH)
    # a clean serving environment: transformers sets TF_USE_LEGACY_KERAS=1 in this process, which makes
    # `import tensorflow` import tf_keras in the child
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = subprocess.run([sys.executable, "fresh.py", "in.npz", *map(str, saved_models), "out.npz"], cwd=tmp,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return info, dict(np.load(tmp / "out.npz"))


def test_saved_model_in_a_fresh_process_equals_predict_scores(clf, clips, fresh):
    info, res = fresh
    c16, _ = clips
    assert info["modules"] == []  # neither tfaudio nor Keras is needed to serve it
    assert info["signatures"] == ["batch", "metadata", "serving_default"]
    assert info["inputs"] == {"serving_default": ["audio"], "batch": ["audio", "lengths"], "metadata": []}
    assert info["outputs"]["serving_default"] == ["audioset", "classifier", "frame_scores", "frame_weights", "label"]
    assert info["outputs"]["batch"] == ["audioset", "classifier", "label"]
    assert info["labels_txt"].split("\n")[:2] == list(LABELS)

    expected = clf.predict_scores(c16)
    for i, x in enumerate(c16):
        scores = res[f"classifier_{i}"]
        assert scores.shape == (2,)
        np.testing.assert_allclose(scores, expected[i], atol=1e-5)
        assert res[f"label_{i}"].item() == LABELS[int(np.argmax(expected[i]))]
        frames = res[f"frame_scores_{i}"]
        assert frames.shape == (clf.backbone.num_frames(len(x)), 2)
        weights = res[f"frame_weights_{i}"]  # the silence gate: which frames the clip score counts
        assert weights.shape == frames.shape[:1] and set(np.unique(weights)) <= {0.0, 1.0} and weights.any()
        np.testing.assert_allclose(np.average(frames, axis=0, weights=weights), scores, **same_computation(scores))
        audioset, _, _ = clf.backbone.predict_clip(x)
        np.testing.assert_allclose(res[f"audioset_{i}"], np.asarray(audioset).mean(axis=0), atol=1e-5)
    # the batch signature equals per-clip calls (four lengths, garbage in one row's padding)
    np.testing.assert_allclose(res["batch_classifier"], np.stack([res[f"classifier_{i}"] for i in range(4)]), atol=1e-5)
    assert list(res["batch_label"]) == [res[f"label_{i}"].item() for i in range(4)]
    np.testing.assert_allclose(res["batch_audioset"], np.stack([res[f"audioset_{i}"] for i in range(4)]), atol=1e-5)


def test_saved_model_describes_itself_and_rejects_malformed_requests(clf, fresh):
    info, _ = fresh
    meta = info["metadata"]
    assert meta["input_rate"] == 16000 and meta["at44k_input_rate"] == 44100 and meta["sample_rate"] == 16000
    assert meta["labels"] == list(LABELS) == meta["json"]["labels"]
    assert meta["json"]["backbone"]["name"] == "yamnet" and meta["json"]["window_samples"] == WINDOW
    rejected = info["rejected"]
    assert all(rejected.values()), rejected  # every malformed request failed with INVALID_ARGUMENT
    assert "one entry per row" in rejected["lengths_short"]
    assert "at least one sample" in rejected["lengths_negative"] and "at least one sample" in rejected["lengths_zero"]
    assert "<= the padded width" in rejected["lengths_too_long"]
    assert "NaN or Inf" in rejected["nan"] and "NaN or Inf" in rejected["inf_in_batch"]
    assert "at least one sample" in rejected["empty"]


def test_saved_model_at_44k_resamples_in_graph(clf, clips, fresh):
    from tfaudio.signal.resample import resample

    _, res = fresh
    _, c44 = clips
    assert set(k for k in res if k.startswith("at44k_") and not k.startswith("at44k_batch")) == {
        f"at44k_{k}_{i}" for k in ("classifier", "label") for i in range(2)}
    expected = clf.predict_scores([np.asarray(resample(x, 44100, 16000)) for x in c44])
    # the first 16 kHz clip is the same file resampled by the same resampler: equal up to float error
    np.testing.assert_allclose(res["at44k_classifier_0"], res["classifier_0"], atol=1e-5)
    for i in range(2):
        np.testing.assert_allclose(res[f"at44k_classifier_{i}"], expected[i], atol=1e-5)
    np.testing.assert_allclose(res["at44k_batch_classifier"],
                               np.stack([res[f"at44k_classifier_{i}"] for i in range(2)]), atol=1e-5)


def test_saved_model_cli_shows_and_runs_it(clf, saved_models, clips, tmp_path):
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip(f"{cli} is not installed")
    path = str(saved_models[0])
    one_second = clips[0][1][:16000]
    np.save(tmp_path / "audio.npy", one_second)
    np.save(tmp_path / "nan.npy", np.full(16000, np.nan, np.float32))
    base = [str(cli), "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default"]
    # all at once: each spends most of its time importing TensorFlow
    jobs = {
        "show": [str(cli), "show", "--all", "--dir", path],
        "run": base + ["--inputs", f"audio={tmp_path / 'audio.npy'}"],
        "exprs": base + ["--input_exprs", "audio=[0.0, 0.25, -0.25, 0.5]"],  # the docstring's form: a literal
        "nan": base + ["--inputs", f"audio={tmp_path / 'nan.npy'}"],
    }
    procs = {k: subprocess.Popen(v, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k, v in jobs.items()}
    out = {k: (p.communicate(timeout=240), p.returncode) for k, p in procs.items()}
    (show_out, show_err), code = out["show"]
    assert code == 0, show_err[-2000:]
    for word in ("signature_def['serving_default']", "signature_def['batch']", "signature_def['metadata']",
                 "inputs['audio']", "inputs['lengths']", "outputs['classifier']", "outputs['label']", "DT_STRING"):
        assert word in show_out
    (run_out, run_err), code = out["run"]
    assert code == 0, run_err[-2000:]
    expected = clf.predict_scores([one_second])[0]
    assert "Result for output key classifier" in run_out
    assert f"b'{LABELS[int(np.argmax(expected))]}'" in run_out
    (exprs_out, exprs_err), code = out["exprs"]
    assert code == 0 and "Result for output key label" in exprs_out, exprs_err[-2000:]
    (_, nan_err), code = out["nan"]
    assert code != 0 and "NaN or Inf" in nan_err  # INVALID_ARGUMENT, not a label


def test_saved_model_overwrite_rules_and_no_leftovers(clf, saved_models, exports, tmp_path):
    from tfaudio.errors import TfaudioError
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.io.atomic import atomic_directory

    path = saved_models[1]
    stamp = (path / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(TfaudioError, match="already exists.*overwrite=True"):
        export_saved_model(clf, path)
    assert (path / "saved_model.pb").stat().st_mtime_ns == stamp
    assert [p.name for p in exports.iterdir() if p.name.startswith(".")] == []
    # the folder swap export_saved_model writes through: replaced whole, or untouched on failure
    target = tmp_path / "model"
    atomic_directory(target, lambda d: (d / "a.txt").write_text("1"))
    atomic_directory(target, lambda d: (d / "b.txt").write_text("2"), overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]

    def fail(d):
        (d / "c.txt").write_text("3")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_directory(target, fail, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]


# ---- TFLite --------------------------------------------------------------------------------------
def _op_types(path) -> list[tuple[str, str]]:
    """(op name, dtype of its first input) of every op."""
    it = tflite_interpreter(path)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    return [(op["op_name"], tensors[op["inputs"][0]]["dtype"].__name__) for op in it._get_ops_details()]


def test_tflite_runs_in_the_interpreter_and_matches_keras(tflite, windows, keras_window_scores):
    path = tflite("float32")
    it = tflite_interpreter(path)
    inp, out = it.get_input_details(), it.get_output_details()
    assert len(inp) == len(out) == 1
    assert list(inp[0]["shape"]) == [1, WINDOW] and inp[0]["dtype"] == np.float32
    assert list(out[0]["shape"]) == [1, len(LABELS)] and out[0]["dtype"] == np.float32
    scores = _run_tflite(path, windows[0])
    assert np.abs(scores - keras_window_scores).max() < 1e-4
    ops = {name for name, _ in _op_types(path)}
    assert not any("FLEX" in op or op == "CUSTOM" for op in ops), ops
    # the frontend's STFT is traced as a DFT matmul for TFLite (melspec.tflite_compatible), not an RFFT
    assert not {"RFFT2D", "COMPLEX_ABS"} & ops and "FULLY_CONNECTED" in ops, ops


def test_tflite_metadata_has_the_official_structure(tflite):
    from tfaudio.export.tflite import read_metadata

    ours = read_metadata(tflite("float32"))
    official = read_metadata(shared("models", "yamnet", "yamnet_classification.tflite"))

    def skeleton(meta):
        sub = meta["subgraphMetadata"][0]
        (inp,), (out,) = sub["inputTensorMetadata"], sub["outputTensorMetadata"]
        return {
            "model": sorted(k for k in meta if k not in ("license", "associated_files")),
            "input": (inp["name"], inp["content"]["contentPropertiesType"], inp["content"]["contentProperties"]),
            "output": (out["name"], out["content"]["contentPropertiesType"], out["stats"],
                       [f["type"] for f in out["associatedFiles"]]),
            "parser": meta["minParserVersion"],
        }

    assert skeleton(ours) == skeleton(official)
    assert ours["subgraphMetadata"][0]["inputTensorMetadata"][0]["content"]["contentProperties"] == {
        "sampleRate": 16000, "channels": 1}
    label_file = ours["subgraphMetadata"][0]["outputTensorMetadata"][0]["associatedFiles"][0]["name"]
    assert ours["associated_files"][label_file].split() == list(LABELS)


def _mediapipe_case(case, tflite):
    if case == "ours":
        return str(tflite("float32")), set(LABELS), {"dog": "dog", "cat": "cat"}, 1
    path = shared("models", "yamnet", "yamnet_classification.tflite")
    # AudioSet puts parents (Animal, Domestic animals, pets) beside Dog / Cat: look in the top 5
    return str(path), None, {"dog": "Dog", "cat": "Cat"}, 5


def _confident_clips(clf, split):
    """A 44.1 kHz dog file and a 16 kHz cat file that the classifier gets right with a clear margin."""
    from tfaudio.io.decode import audio_info

    test = split.test.frame
    scores = clf.predict_scores(list(test.path))
    rates = {"dog": 44100, "cat": 16000}
    chosen = {}
    for path, label, s in zip(test.path, test.label, scores, strict=True):
        if label not in chosen and s[LABELS.index(label)] > 0.9 and audio_info(path).sample_rate == rates[label]:
            chosen[label] = path
    assert set(chosen) == set(LABELS), f"no confidently classified test clip at {rates}: {chosen}"
    return chosen


@pytest.mark.parametrize("case", ["ours", "official"])
def test_mediapipe_classifies_clips_and_streams(case, clf, split, tflite):
    pytest.importorskip("mediapipe")
    import soundfile as sf
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from tfaudio.export.tflite import read_metadata

    model, names, expected, k = _mediapipe_case(case, tflite)
    files = _confident_clips(clf, split)
    # our export's metadata carries the rejection threshold as MediaPipe's global score threshold
    units = read_metadata(model)["subgraphMetadata"][0]["outputTensorMetadata"][0].get("processUnits") or []
    threshold = units[0]["options"]["globalScoreThreshold"] if units else 0.0
    if case == "ours" and clf.rejection_threshold_ is not None:
        assert threshold == pytest.approx(clf.rejection_threshold_, rel=1e-6)
    options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=model))
    with mp_audio.AudioClassifier.create_from_options(options) as classifier:
        for label, path in files.items():
            audio, rate = sf.read(path, dtype="float32")  # 44.1 kHz or 16 kHz: MediaPipe resamples
            results = classifier.classify(AudioData.create_from_array(audio, rate))
            assert len(results) >= 4  # one per 0.975 s of the 5 s clip
            totals: dict[str, float] = {}
            lowest = 1.0
            for r in results:
                for c in r.classifications[0].categories:
                    totals[c.category_name] = totals.get(c.category_name, 0.0) + c.score
                    lowest = min(lowest, c.score)
            if names is not None:  # MediaPipe drops the categories below the threshold ("none of these")
                assert set(totals) <= names and lowest >= threshold - 1e-6
            top = sorted(totals, key=totals.get, reverse=True)[:k]
            assert expected[label] in top, (label, top)

    got = []
    options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=model),
                                              running_mode=mp_audio.RunningMode.AUDIO_STREAM, max_results=2,
                                              result_callback=lambda result, ms: got.append((ms, result)))
    audio, rate = sf.read(files["dog"], dtype="float32")
    step = rate // 4
    with mp_audio.AudioClassifier.create_from_options(options) as classifier:
        for start in range(0, len(audio) - step + 1, step):
            classifier.classify_async(AudioData.create_from_array(audio[start : start + step], rate),
                                      start * 1000 // rate)
        deadline = time.time() + 10
        while len(got) < 4 and time.time() < deadline:
            time.sleep(0.05)
    assert len(got) >= 4
    streamed = {c.category_name for _, r in got for c in r.classifications[0].categories}
    assert streamed <= names if names is not None else streamed
    if names is not None:
        assert any(r.classifications[0].categories[0].category_name == "dog" for _, r in got)


@pytest.fixture(scope="module")
def float_window_scores(tflite, windows):
    return _run_tflite(tflite("float32"), windows[0])


@pytest.mark.parametrize("variant", ["float16", "dynamic", "int8"])
def test_quantized_variants_agree_with_float(variant, tflite, windows, float_window_scores, caplog):
    x, y = windows
    with caplog.at_level("WARNING", logger="tfaudio"):
        path = tflite(variant)  # int8 is converted here, the first time it is asked for
    scores = _run_tflite(path, x)
    reference = float_window_scores.argmax(axis=1)
    agreement = float(np.mean(scores.argmax(axis=1) == reference))
    accuracy, float_accuracy = float(np.mean(scores.argmax(axis=1) == y)), float(np.mean(reference == y))
    print(f"{variant}: {len(x)} windows, top-1 agreement {agreement:.2%}, accuracy {accuracy:.2%} "
          f"(float {float_accuracy:.2%}), max |score - float| {np.abs(scores - float_window_scores).max():.4f}, "
          f"{path.stat().st_size / 1e6:.2f} MB")
    assert path.stat().st_size < tflite("float32").stat().st_size / 1.9
    ops = _op_types(path)
    assert not any("FLEX" in op or op == "CUSTOM" for op, _ in ops)
    if variant == "int8":  # int8 body, float frontend (like the official YAMNet file)
        assert ("CONV_2D", "int8") in ops and ("LOG", "float32") in ops
        # Full-integer YAMNet moves its embedding by ~12 % RMS and the default head standardises its
        # inputs, which amplifies that: the export measures its own agreement on the calibration
        # windows and states it (a warning below 0.95); here it must match what unseen windows show.
        with zipfile.ZipFile(path) as z:
            measured = json.loads(z.read("tfaudio.json"))["int8_agreement"]
        assert measured["windows"] >= 32 and 0.0 <= measured["top1"] <= 1.0
        assert abs(measured["top1"] - agreement) <= 0.15, (measured, agreement)
        warned = [r.getMessage() for r in caplog.records if "int8: the quantized model" in r.getMessage()]
        assert bool(warned) == (measured["top1"] < 0.95), warned
        return
    top2 = np.sort(float_window_scores, axis=1)[:, -2:]
    confident = top2[:, 1] - top2[:, 0] >= 0.2  # windows the float model does not hesitate on
    assert confident.mean() > 0.5
    assert np.mean(scores.argmax(axis=1)[confident] == reference[confident]) >= 0.98
    assert agreement >= 0.95
    assert abs(accuracy - float_accuracy) <= 2.5 / len(x)  # at most two windows


def test_whole_clip_variant_takes_two_lengths(clf, tflite, eval_clips):
    it = tflite_interpreter(tflite("whole_clip"))
    inp = it.get_input_details()[0]
    assert list(inp["shape_signature"]) == [1, -1]
    audio = eval_clips[0][0]
    for n in (16000, 56000):
        it.resize_tensor_input(inp["index"], [1, n])
        it.allocate_tensors()
        it.set_tensor(inp["index"], audio[None, :n])
        it.invoke()
        scores = it.get_tensor(it.get_output_details()[0]["index"])
        assert scores.shape == (1, 2)
        np.testing.assert_allclose(scores[0], clf.predict_scores([audio[:n]])[0], atol=1e-4)


@pytest.mark.parametrize("problem", ["untrained", "labels", "window", "int8 data", "exists"])
def test_tflite_clear_errors(problem, clf, tmp_path):
    from tfaudio.errors import TfaudioError
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.export.tflite import export_tflite
    from tfaudio.tasks.audio_classifier import AudioClassifier

    path = tmp_path / "model.tflite"
    kwargs, match = {}, None
    if problem == "untrained":
        model, match = AudioClassifier(clf.backbone, labels=LABELS, cache=clf.cache), "untrained"
    elif problem == "labels":
        model = AudioClassifier(clf.backbone, labels=("dog", "cat", "cow"), cache=clf.cache)
        model.head_model_, match = clf.head_model_, "3 labels.*2 scores"
    elif problem == "window":
        model, kwargs, match = clf, {"window_samples": 8000}, "at least 15600 samples"
    elif problem == "int8 data":
        model, kwargs, match = clf, {"quantization": "int8"}, "representative_data"
    else:
        path.write_bytes(b"x")
        model, match = clf, "already exists"
    with pytest.raises(TfaudioError, match=match):
        export_tflite(model, path, **kwargs)
    if problem in ("untrained", "labels"):
        with pytest.raises(TfaudioError, match=match):
            export_saved_model(model, tmp_path / "sm")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["model.tflite"] if problem == "exists" else [])


# ---- CLI -----------------------------------------------------------------------------------------
def test_cli_export(cli_export, capsys):
    import tensorflow as tf

    from tfaudio.cli import main

    out, args, printed = cli_export
    assert (out / "saved_model" / "saved_model.pb").is_file() and (out / "model_dynamic.tflite").is_file()
    assert "model_dynamic.tflite" in printed
    sig = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    assert sorted(sig.structured_outputs) == ["audioset", "classifier", "label"]

    assert main(args) == 2
    assert "already exist" in capsys.readouterr().err
    model = args[1]
    assert main(["export", model, "--output", str(out.parent / "x"), "--tflite", "int8"]) == 2
    assert "--representative" in capsys.readouterr().err
    assert not (out.parent / "x").exists()


def test_no_temporary_files_are_left(exports, cli_export):
    for folder in (exports, cli_export[0]):
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []

"""tfaudio.pipeline: every input kind gives what the model gives on the same audio; bad inputs fail
with an error naming the input and the fix. Input handling runs on a toy-backbone classifier (fast);
audio tagging and the exported SavedModel run the real YAMNet weights from ../shared."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import ToyBackbone, noise, shared, sine, tone_dataset, write_audio
from tfaudio import pipeline
from tfaudio.errors import AudioError, TfaudioError
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.recipe import TrainConfig

FAST = TrainConfig(epochs=40, batch_size=16, learning_rate=3e-3, patience=5)
LABELS = ("low", "high", "hiss")
# Score differences between a 16 kHz clip and the same clip sampled at another rate, then resampled
# back by the pipeline (band-limited below 4 kHz, so nothing is lost at 8 kHz): measured <= 0.015,
# at 8 kHz where both resamplers filter close to the tone.
RATE_ATOL = 0.02


def tone(freq: float, rate: int, seconds: float = 1.5) -> np.ndarray:
    return sine(freq, seconds, rate) + noise(seconds, rate, amplitude=0.01)


def as_dict(result: list[dict]) -> dict[str, float]:
    return {r["label"]: r["score"] for r in result}


def assert_same(a: list, b: list, atol: float = 1e-6) -> None:
    """Two pipeline answers (one input's list of dicts, or a batch's list of lists) agree: same labels
    in the same order, scores within ``atol``."""
    if a and isinstance(a[0], list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, atol)
        return
    assert [r["label"] for r in a] == [r["label"] for r in b]
    assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=atol)


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    from tfaudio.data.embedding_cache import EmbeddingCache

    data = tone_dataset(tmp_path_factory.mktemp("audio"), n_per_class=4, folds=2)
    backbone = ToyBackbone()
    cache = EmbeddingCache(backbone, tmp_path_factory.mktemp("cache"))
    return AudioClassifier(backbone, cache=cache).fit(data, config=FAST)


@pytest.fixture(scope="module")
def pipe(clf):
    return pipeline("audio-classification", model=clf)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    """A 'high' tone written as a 16 kHz WAV, with its samples."""
    audio = tone(3500, 16000)
    return write_audio(tmp_path_factory.mktemp("clip") / "high.wav", audio, 16000), audio


# ---- inputs --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_file_gives_the_classifiers_scores_sorted(pipe, clf, wav):
    path, _ = wav
    out = pipe(str(path))
    assert [set(r) for r in out] == [{"score", "label"}] * 3  # default top_k 5, only 3 labels
    scores = [r["score"] for r in out]
    assert scores == sorted(scores, reverse=True) and out[0]["label"] == "high"
    expected = clf.predict_scores([str(path)])[0]
    assert as_dict(out) == pytest.approx(dict(zip(clf.labels, expected.tolist())), abs=1e-6)
    assert pipe(path) == out  # a pathlib.Path too
    assert pipe.labels == LABELS and pipe.sample_rate == 16000


def band_limited_tone(freq: float, rate: int, seconds: float = 1.5) -> np.ndarray:
    """The same signal at any rate: a tone plus noise low-passed below 3.6 kHz, made at 16 kHz and
    taken to ``rate`` by scipy (an independent resampler)."""
    from scipy.signal import butter, resample_poly, sosfiltfilt

    hiss = sosfiltfilt(butter(8, 3600, fs=16000, output="sos"), noise(seconds, 16000, amplitude=0.02))
    x = sine(freq, seconds, 16000) + hiss
    g = np.gcd(rate, 16000)
    return (x if rate == 16000 else resample_poly(x, rate // g, 16000 // g)).astype(np.float32)


@pytest.mark.parametrize("rate", [44100, 8000, 12000])
def test_arrays_at_other_rates_match_the_16k_clip(pipe, rate):
    # 12000 Hz is outside the usual rates: the one resampler still has a kernel for it
    for freq, label in ((300, "low"), (3000, "high")):
        reference = as_dict(pipe(band_limited_tone(freq, 16000), sampling_rate=16000, top_k=None))
        out = pipe(band_limited_tone(freq, rate), sampling_rate=rate, top_k=None)
        assert out[0]["label"] == label
        assert as_dict(out) == pytest.approx(reference, abs=RATE_ATOL)


@pytest.mark.parametrize("rate", [22222, 44099])
def test_a_rate_the_resampler_refuses_is_refused_as_in_training(pipe, rate, tmp_path):
    # one resampler everywhere: the pipeline accepts exactly the rates training accepts
    from tfaudio.data.pipeline import PipelineConfig, decode_clip

    path = write_audio(tmp_path / "odd.wav", tone(300, rate), rate)
    with pytest.raises(AudioError, match=f"{rate} Hz cannot be resampled") as by_pipeline:
        pipe(tone(300, rate), sampling_rate=rate)
    assert "sox" in str(by_pipeline.value)
    with pytest.raises(AudioError, match=f"{rate} Hz cannot be resampled"):
        decode_clip(str(path), PipelineConfig(sample_rate=16000))
    with pytest.raises(AudioError, match="odd.wav"):
        pipe(str(path))


def test_hf_dict_tuple_and_keyword_rate_are_the_same_input(pipe):
    x = tone(300, 44100)
    by_keyword = pipe(x, sampling_rate=44100)
    assert by_keyword[0]["label"] == "low"
    assert pipe({"array": x, "sampling_rate": 44100, "path": None}) == by_keyword  # datasets' Audio value
    assert pipe({"raw": x, "sampling_rate": 44100}) == by_keyword  # transformers' name
    assert pipe((x, 44100)) == by_keyword
    assert_same(pipe(x.astype(np.float64), sampling_rate=44100.0), by_keyword)


def test_int16_and_multichannel_arrays(pipe):
    x = tone(3500, 16000) * 0.9
    reference = as_dict(pipe(x, sampling_rate=16000, top_k=None))
    pcm = np.round(x * 32767).astype(np.int16)
    assert as_dict(pipe(pcm, sampling_rate=16000, top_k=None)) == pytest.approx(reference, abs=1e-3)
    pcm32 = pcm.astype(np.int32) << 16
    assert as_dict(pipe(pcm32, sampling_rate=16000, top_k=None)) == pytest.approx(reference, abs=1e-3)
    # stereo: [samples, channels] and [channels, samples] are mixed to the mean of the channels
    y = tone(300, 16000) * 0.3
    mean = as_dict(pipe((x + y) / 2, sampling_rate=16000, top_k=None))
    stereo = np.stack([x, y], axis=1)
    assert as_dict(pipe(stereo, sampling_rate=16000, top_k=None)) == pytest.approx(mean, abs=1e-5)
    assert as_dict(pipe(stereo.T, sampling_rate=16000, top_k=None)) == pytest.approx(mean, abs=1e-5)
    assert as_dict(pipe(np.stack([x, x], 1), sampling_rate=16000, top_k=None)) == pytest.approx(reference, abs=1e-5)


def test_a_batch_equals_each_input_alone(pipe, wav):
    path, _ = wav
    items = [str(path), {"array": tone(300, 8000), "sampling_rate": 8000}, (noise(1.2, 22050, seed=3), 22050),
             tone(300, 16000)]
    alone = [pipe(item, sampling_rate=16000) for item in items]
    batch = pipe(items, sampling_rate=16000)  # the keyword rate applies to the bare array only
    assert len(batch) == 4 and all(isinstance(b, list) for b in batch)
    assert [b[0]["label"] for b in batch] == ["high", "low", "hiss", "low"]
    for a, b in zip(alone, batch):
        assert as_dict(a) == pytest.approx(as_dict(b), abs=1e-5)
    assert_same(pipe(items, sampling_rate=16000, batch_size=3), batch)
    assert_same(pipe(tuple(items), sampling_rate=16000), batch)
    assert pipe([]) == []


def test_top_k(clf, wav):
    path, _ = wav
    pipe = pipeline("audio-classification", model=clf, top_k=1)
    assert len(pipe(str(path))) == 1
    assert len(pipe(str(path), top_k=2)) == 2
    every = pipe(str(path), top_k=None)
    assert len(every) == 3 and sum(r["score"] for r in every) == pytest.approx(1.0, abs=1e-5)
    assert [len(r) for r in pipe([str(path)] * 2, top_k=2)] == [2, 2]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(TfaudioError, match="top_k"):
            pipe(str(path), top_k=bad)


def test_saved_folder_loads_like_the_classifier(clf, pipe, tmp_path):
    clf.save(tmp_path / "model")
    loaded = pipeline("audio-classification", model=str(tmp_path / "model"), backbone=ToyBackbone())
    x = tone(3500, 44100)
    assert as_dict(loaded(x, sampling_rate=44100)) == pytest.approx(as_dict(pipe(x, sampling_rate=44100)), abs=1e-6)


# ---- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("item, kwargs, match", [
    (np.zeros(16000, np.float32), {}, "without a sampling rate"),
    ({"array": np.zeros(16000, np.float32)}, {}, "no 'sampling_rate'"),
    ({"audio": np.zeros(16000)}, {}, "expected 'array' and 'sampling_rate'"),
    (np.array([0.0, np.nan, 0.1], np.float32), {"sampling_rate": 16000}, "1 NaN/Inf"),
    (np.array([0.0, np.inf] * 8000), {"sampling_rate": 16000}, "8000 NaN/Inf"),
    (np.zeros(0, np.float32), {"sampling_rate": 16000}, "empty"),
    (np.zeros([2, 3, 16000], np.float32), {"sampling_rate": 16000}, "shape"),
    (np.zeros([100, 100], np.float32), {"sampling_rate": 16000}, "neither axis looks like channels"),
    (np.zeros(16000, np.complex64), {"sampling_rate": 16000}, "complex64"),
    (np.array(["a", "b"]), {"sampling_rate": 16000}, "dtype"),
    (np.zeros(16000, np.float32), {"sampling_rate": 0}, "positive whole number"),
    (np.zeros(16000, np.float32), {"sampling_rate": 44100.5}, "positive whole number"),
    ((np.zeros(16000, np.float32), -8000), {}, "positive whole number"),
    (b"RIFF....WAVE", {}, "truncated|corrupt|not"),
    (b"", {}, "empty"),
])
def test_bad_inputs_are_named_with_a_fix(pipe, item, kwargs, match):
    with pytest.raises(AudioError, match=match) as err:
        pipe(item, **kwargs)
    assert err.value.path == "<input>" and err.value.fix
    with pytest.raises(AudioError, match=match) as err:  # in a batch: its index
        pipe([(np.zeros(16000, np.float32), 16000), item], **kwargs)
    assert err.value.path == "<input #1>"


@pytest.mark.parametrize("dtype, scale", [(np.int16, 2**15), (np.int32, 2**31), (np.int64, 2**63),
                                          (np.uint8, 128), (np.float64, 1.0)])
def test_any_int_or_float_dtype_and_channel_layout_is_the_same_clip(pipe, dtype, scale):
    x = tone(300, 16000)
    reference = pipe(x, sampling_rate=16000, top_k=None)
    if np.issubdtype(dtype, np.floating):
        pcm = x.astype(dtype)
    else:
        pcm = np.round(x.astype(np.float64) * (scale - 1) + (128 if dtype == np.uint8 else 0)).astype(dtype)
    assert_same(pipe(pcm, sampling_rate=16000, top_k=None), reference, atol=2e-2 if dtype == np.uint8 else 1e-4)
    stereo = np.stack([pcm, pcm], axis=1)  # [samples, channels] and [channels, samples]: averaged
    assert_same(pipe(stereo, sampling_rate=16000, top_k=None), pipe(stereo.T, sampling_rate=16000, top_k=None))
    six = np.repeat(pcm[:, None], 6, axis=1)  # 5.1
    assert_same(pipe(six, sampling_rate=16000, top_k=None), pipe(pcm, sampling_rate=16000, top_k=None))


def test_file_bytes_are_the_file(pipe, tmp_path):
    path = write_audio(tmp_path / "low.flac", tone(300, 44100), 44100)
    assert_same(pipe(path.read_bytes()), pipe(str(path)))
    assert_same(pipe({"bytes": path.read_bytes(), "path": None}), pipe(str(path)))


def test_bad_files_are_named(pipe, tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="file not found") as err:
        pipe(str(missing))
    assert err.value.path == str(missing)
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(AudioError) as err:
        pipe([str(text)])
    assert err.value.path == str(text) and "Fix" in str(err.value)


def test_bad_tasks_and_models(clf, tmp_path):
    with pytest.raises(TfaudioError, match="unknown task 'speech-recognition'.*'audio-classification'.*'audio-tagging'"):
        pipeline("speech-recognition", model=clf)
    with pytest.raises(TfaudioError, match="needs model=.*audio-tagging"):
        pipeline("audio-classification")
    with pytest.raises(TfaudioError, match="no such model folder"):
        pipeline("audio-classification", model=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TfaudioError, match="not a model tfaudio recognises"):
        pipeline("audio-classification", model=str(tmp_path / "empty"))
    weights = tmp_path / "w2v_finetuned"
    weights.mkdir()
    (weights / "checkpoint").write_text("")
    (weights / "ckpt.index").write_bytes(b"")
    with pytest.raises(TfaudioError, match="Keras weights alone.*Fix"):
        pipeline("audio-classification", model=str(weights))
    (tmp_path / "model.tflite").write_bytes(b"TFL3")
    with pytest.raises(TfaudioError, match="TFLite file.*Fix"):
        pipeline("audio-classification", model=str(tmp_path / "model.tflite"))
    with pytest.raises(TfaudioError, match="input_rate= is for exported SavedModels"):
        pipeline("audio-classification", model=clf, input_rate=44100)
    with pytest.raises(TfaudioError, match="cannot score with a int"):
        pipeline("audio-tagging", model=42)
    with pytest.raises(TfaudioError, match="audio-tagging runs a backbone's own classes.*audio-classification"):
        pipeline("audio-tagging", model=clf)


# ---- real YAMNet: audio tagging and an exported SavedModel ---------------------------------------
@pytest.fixture(scope="module")
def tagger():
    return pipeline("audio-tagging", model=str(shared("models", "yamnet", "yamnet.h5")))


@pytest.fixture(scope="module")
def dog_clip():
    return shared("data", "esc50-subset", "audio", "1-100032-A-0.flac")  # ESC-50 "dog", 44.1 kHz


@pytest.mark.slow
def test_audio_tagging_matches_tfaudio_tag(tagger, dog_clip):
    from tfaudio.commands.tag import tag_files
    from tfaudio.io.decode import load_audio

    assert len(tagger.labels) == 521 and tagger.sample_rate == 16000
    out = tagger(str(dog_clip), top_k=5)
    tagged = tag_files(tagger.model.backbone, [str(dog_clip)], top_k=5)[0]["events"]  # what `tfaudio tag` prints
    assert [r["label"] for r in out] == [e["label"] for e in tagged]
    assert [r["score"] for r in out] == pytest.approx([e["score"] for e in tagged], abs=1e-4)
    # plausible: the clip's ESC-50 category ("dog") is one of YAMNet's top 5 AudioSet classes (the clip
    # is mostly quiet between barks, so "Silence" may rank first)
    meta = shared("data", "esc50-subset", "meta", "esc50.csv").read_text().splitlines()
    category = next(line.split(",")[3] for line in meta if line.startswith(dog_clip.name + ","))
    assert category.capitalize() in [r["label"] for r in out]
    audio, rate = load_audio(dog_clip)
    assert rate == 44100
    from_dict = tagger({"array": audio, "sampling_rate": rate}, top_k=5)
    assert [r["label"] for r in from_dict] == [r["label"] for r in out]
    assert_same(tagger([str(dog_clip), (audio, rate)], top_k=5)[1], from_dict, atol=1e-5)


@pytest.mark.slow
def test_exported_saved_model_folder(tagger, tmp_path):
    """A random head on the real YAMNet: the export folder's SavedModel scores like the classifier."""
    import tf_keras as keras

    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.heads.classification_head import build_head

    keras.utils.set_random_seed(0)
    clf = AudioClassifier(tagger.model.backbone, labels=LABELS)
    clf.head_model_ = build_head(1024, 3)
    export_saved_model(clf, tmp_path / "export" / "saved_model")
    exported = pipeline("audio-classification", model=str(tmp_path / "export"))
    direct = pipeline("audio-classification", model=clf)
    assert exported.labels == LABELS and exported.sample_rate == 16000
    clips = [tone(300, 44100, 2.0), (tone(3500, 8000, 1.0), 8000)]
    a, b = exported(clips, sampling_rate=44100, top_k=None), direct(clips, sampling_rate=44100, top_k=None)
    for x, y in zip(a, b):
        assert as_dict(x) == pytest.approx(as_dict(y), abs=1e-4)
    assert json.dumps(a)  # plain floats and strings


@pytest.mark.slow
def test_an_export_says_its_input_rate_and_every_reader_uses_it(tagger, tmp_path):
    """Exported at 44.1 kHz: the pipeline and `predict` read the rate from the export (no --input-rate),
    and an old export without metadata is refused unless its rate is given."""
    import shutil

    import tf_keras as keras

    from tfaudio.export.saved_model import export_saved_model, read_export_metadata
    from tfaudio.heads.classification_head import build_head

    keras.utils.set_random_seed(0)
    clf = AudioClassifier(tagger.model.backbone, labels=LABELS)
    clf.head_model_ = build_head(1024, 3)
    export_saved_model(clf, tmp_path / "e44" / "saved_model", input_rate=44100)
    meta = read_export_metadata(tmp_path / "e44")
    assert meta["input_rate"] == 44100 and meta["sample_rate"] == 16000 and meta["labels"] == list(LABELS)
    assert meta["backbone"]["name"] == "yamnet"
    exported = pipeline("audio-classification", model=str(tmp_path / "e44"))
    assert exported.sample_rate == 44100
    x = tone(300, 22050, 2.0)
    direct = pipeline("audio-classification", model=clf)(x, sampling_rate=22050, top_k=None)
    assert as_dict(exported(x, sampling_rate=22050, top_k=None)) == pytest.approx(as_dict(direct), abs=2e-3)
    with pytest.raises(TfaudioError, match="takes 44100 Hz.*not 16000"):
        pipeline("audio-classification", model=str(tmp_path / "e44"), input_rate=16000)
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "e44", old)
    (old / "saved_model" / "assets" / "tfaudio.json").unlink()
    with pytest.raises(TfaudioError, match="does not say which sample rate.*--input-rate"):
        pipeline("audio-classification", model=str(old))
    assert pipeline("audio-classification", model=str(old), input_rate=44100).sample_rate == 44100


# ---- a transformers audio classifier (a fine-tuned Wav2Vec2 saved with save_pretrained) -----------
@pytest.mark.slow
def test_transformers_sequence_classifier_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    import tensorflow as tf

    from tfaudio.signal.resample import resample

    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0, classifier_proj_size=8,
        num_labels=2, id2label={0: "yes", 1: "no"}, label2id={"yes": 0, "no": 1})
    tf.keras.utils.set_random_seed(0)
    model = transformers.TFWav2Vec2ForSequenceClassification(config)
    model.build_in_name_scope()
    model.save_pretrained(tmp_path)
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
    extractor.save_pretrained(tmp_path)

    pipe = pipeline("audio-classification", model=str(tmp_path), top_k=None)
    assert pipe.labels == ("yes", "no") and pipe.sample_rate == 16000
    x = noise(1.0, 44100, seed=1)
    out = pipe({"array": x, "sampling_rate": 44100})
    x16 = np.asarray(resample(x, 44100, 16000))
    expected = tf.nn.softmax(model(**extractor(x16, sampling_rate=16000, return_tensors="tf")).logits[0]).numpy()
    assert as_dict(out) == pytest.approx({"yes": float(expected[0]), "no": float(expected[1])}, abs=1e-5)
    # a bare Wav2Vec2 checkpoint has no classifier: a clear error, not random labels
    bare = tmp_path / "bare"
    plain = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id", "architectures")}
    backbone = transformers.TFWav2Vec2Model(transformers.Wav2Vec2Config(**plain))
    backbone.build_in_name_scope()
    backbone.save_pretrained(bare)
    with pytest.raises(TfaudioError, match="without a classification head"):
        pipeline("audio-classification", model=str(bare))

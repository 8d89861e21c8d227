"""Google's speech embedding model: the TFLite weight reader, the mel frontend and the network against
openWakeWord's two TFLite files on real clips, batching, TFLite conversion, and weight resolution
(search order, download with checksum, offline, missing / truncated / wrong files)."""
from __future__ import annotations

import functools
import io
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import noise, shared, sine
from tfaudio.backbones.registry import get_backbone
from tfaudio.backbones.speech_embedding import backbone as seb
from tfaudio.backbones.speech_embedding.backbone import SpeechEmbeddingBackbone
from tfaudio.backbones.speech_embedding.frontend import (
    SpeechMelConfig,
    num_mel_frames,
    slaney_mel_weight_matrix,
    speech_mel_spectrogram,
)
from tfaudio.backbones.speech_embedding.tflite_weights import TFLiteWeights
from tfaudio.errors import WeightsNotFoundError
from tfaudio.interpreter import tflite_interpreter
from tfaudio.signal.melspec import tflite_compatible

# Measured on these speech-commands-mini and fsdd-mini clips: mel ≤ 4.3e-4 dB
# (values 4..104 dB), embeddings ≤ 1e-4 (values up to ~75). The bounds leave ~5x margin.
MEL_TOL_DB = 2e-3
EMBEDDING_TOL = 5e-4


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder() -> pathlib.Path:
    return shared("models", "speech_embedding")


@pytest.fixture(scope="module")
def backbone(folder) -> SpeechEmbeddingBackbone:
    return SpeechEmbeddingBackbone.from_tflite(folder)


@functools.lru_cache(maxsize=1)
def _clips() -> list[tuple[str, np.ndarray]]:
    """Real 16 kHz speech: 6 Speech Commands clips and 3 FSDD digits resampled from 8 kHz."""
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample

    sc = shared("data", "speech-commands-mini")
    fsdd = shared("data", "fsdd-mini", "recordings")
    out = []
    for word in ("yes", "stop", "left", "_unknown_", "_silence_", "off"):
        path = sorted((sc / word).glob("*.wav"))[0]
        out.append((path.name, load_audio(path)[0]))
    for name in ("0_jackson_0.wav", "5_nicolas_0.wav", "9_theo_0.wav"):
        audio, rate = load_audio(fsdd / name)
        out.append((name, np.asarray(resample(audio, rate, 16000))))
    return out


def _reference_mel(folder, audio: np.ndarray) -> np.ndarray:
    """``melspectrogram.tflite`` of a [-1, 1] clip (fed at int16 scale, as openWakeWord does) → [F, 32]."""
    it = tflite_interpreter(folder / "melspectrogram.tflite", allocate=False)
    it.resize_tensor_input(it.get_input_details()[0]["index"], [1, len(audio)])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], (audio * 32768.0).astype(np.float32)[None])
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[0, 0]


def _reference_embeddings(folder, windows: np.ndarray) -> np.ndarray:
    """``embedding_model.tflite`` of windows [N, 76, 32] (already scaled x / 10 + 2) → [N, 96]."""
    it = tflite_interpreter(folder / "embedding_model.tflite", allocate=False)
    index = it.get_input_details()[0]["index"]
    it.resize_tensor_input(index, [len(windows), 76, 32, 1])
    it.allocate_tensors()
    it.set_tensor(index, windows[..., None].astype(np.float32))
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])[:, 0, 0, :]


def _openwakeword_embeddings(folder, audio: np.ndarray) -> np.ndarray:
    """The two TFLite files chained as openWakeWord chains them: mel, x / 10 + 2, 76-frame windows
    every 8 frames (the clip zero-padded to whole windows, as tfaudio pads it)."""
    count = SpeechEmbeddingBackbone().num_frames(len(audio))
    padded = np.zeros(12512 + (count - 1) * 1280, np.float32)
    padded[: len(audio)] = audio
    mel = _reference_mel(folder, padded) / 10 + 2
    windows = np.stack([mel[i : i + 76] for i in range(0, mel.shape[0] - 75, 8)])
    return _reference_embeddings(folder, windows)


# ---- the TFLite reader ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["melspectrogram.tflite", "embedding_model.tflite"])
def test_reader_constants_equal_the_interpreters(folder, name):
    model = TFLiteWeights.read(folder / name)
    it = tflite_interpreter(folder / name, allocate=False)
    it.resize_tensor_input(0, [1, 16000] if name.startswith("mel") else [1, 76, 32, 1])
    it.allocate_tensors()
    details = {d["index"]: d for d in it.get_tensor_details()}
    constants = 0
    for tensor in model.tensors:
        assert tensor.name == details[tensor.index]["name"]
        if model.is_constant(tensor.index):
            np.testing.assert_array_equal(model.constant(tensor.index), it.get_tensor(tensor.index))
            constants += 1
    assert constants >= 14
    assert model.input_shape() == ((-1, -1) if name.startswith("mel") else (-1, 76, 32, 1))


def test_reader_options(folder):
    mel = TFLiteWeights.read(folder / "melspectrogram.tflite")
    convs = [op for op in mel.operators if op.name == "CONV_2D"]
    assert [op.options["stride_w"] for op in convs] == [160, 160]
    emb = TFLiteWeights.read(folder / "embedding_model.tflite")
    assert emb.op_names()[:4] == ["PAD", "CONV_2D", "LEAKY_RELU", "MAXIMUM"]
    assert emb.operators[2].options["alpha"] == pytest.approx(0.2)
    pools = [op.options for op in emb.operators if op.name == "MAX_POOL_2D"]
    assert [(p["filter_height"], p["filter_width"]) for p in pools] == [(2, 2), (1, 2), (2, 2), (1, 2), (2, 2)]


@pytest.mark.parametrize("mode", ["float16", "int8 weights"])
def test_reader_dequantizes(mode):
    """A float16 model (weights behind DEQUANTIZE ops) and a dynamic-range one (int8 weights with
    per-channel scales) read back as the float weights they were made from."""
    rng = np.random.default_rng(0)
    want = rng.normal(size=(3, 3, 16, 32)).astype(np.float32)  # HWIO; > 1024 values: quantised
    module = tf.Module()
    module.kernel = tf.Variable(want)

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 16], tf.float32)])
    def conv(x):
        return tf.nn.conv2d(x, module.kernel, 1, "VALID")

    converter = tf.lite.TFLiteConverter.from_concrete_functions([conv.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    read = TFLiteWeights.from_bytes(converter.convert())
    op = next(op for op in read.operators if op.name == "CONV_2D")
    kernel = np.transpose(read.constant(op.inputs[1]), (1, 2, 3, 0))  # TFLite [out, kh, kw, in] → HWIO
    if mode == "float16":
        assert "DEQUANTIZE" in read.op_names()
        np.testing.assert_allclose(kernel, want, rtol=1e-3, atol=1e-4)
    else:
        assert read.tensors[op.inputs[1]].dtype is np.int8
        step = np.abs(want).max(axis=(0, 1, 2), keepdims=True) / 127  # per output channel
        assert np.all(np.abs(kernel - want) <= step / 2 + 1e-6)


# ---- the mel frontend ----------------------------------------------------------------------------
def test_frontend_constants_match_the_file(folder):
    mel_file = TFLiteWeights.read(folder / "melspectrogram.tflite")
    matmul = next(op for op in mel_file.operators if op.name == "BATCH_MATMUL")
    np.testing.assert_allclose(slaney_mel_weight_matrix(), mel_file.constant(matmul.inputs[1]), atol=1e-8)
    seb.check_frontend(folder / "melspectrogram.tflite")  # the STFT kernels, hop and dB floor


@pytest.mark.slow
@pytest.mark.parametrize("tflite_stft", [False, True], ids=["rfft", "dft-matmul"])
def test_mel_parity_with_the_tflite_file(folder, tflite_stft):
    worst = 0.0
    for name, audio in _clips():
        ref = _reference_mel(folder, audio)
        with tflite_compatible(tflite_stft):
            ours = tf.function(speech_mel_spectrogram, autograph=False)(tf.constant(audio)).numpy()
        assert ours.shape == ref.shape == (num_mel_frames(len(audio)), 32), name
        worst = max(worst, float(np.abs(ours - ref).max()))
    assert worst < MEL_TOL_DB


def test_mel_floor_is_per_clip():
    """The 80 dB floor comes from each clip's own loudest value (the file: the whole batch's)."""
    loud, quiet = sine(440, 1.0, 16000, 0.5), sine(440, 1.0, 16000, 0.001) + noise(1.0, 16000, amplitude=1e-4)
    batch = speech_mel_spectrogram(np.stack([loud, quiet])).numpy()
    for i, clip in enumerate((loud, quiet)):
        alone = speech_mel_spectrogram(clip).numpy()
        np.testing.assert_allclose(batch[i], alone, atol=1e-4)
        assert alone.max() - alone.min() <= SpeechMelConfig().top_db + 1e-3


# ---- the network and the backbone ---------------------------------------------------------------
def test_body_parity_with_the_tflite_file(folder, backbone):
    """The Keras body on the file's own mel windows equals embedding_model.tflite."""
    audio = _clips()[0][1]
    mel = _reference_mel(folder, audio[:12512 + 2 * 1280]) / 10 + 2  # 92 frames: 3 windows
    windows = np.stack([mel[i : i + 76] for i in (0, 8, 16)])
    ref = _reference_embeddings(folder, windows)
    per_window = backbone.embed_log_mel(tf.constant(windows)).numpy()[:, 0]  # [3, 96]
    whole = backbone.embed_log_mel(tf.constant(mel[None])).numpy()[0]  # fully convolutional: [3, 96]
    assert whole.shape == (3, 96)
    assert np.abs(per_window - ref).max() < 1e-4
    assert np.abs(whole - ref).max() < 1e-4


@pytest.mark.slow
def test_embedding_parity_with_openwakeword(folder, backbone):
    worst = 0.0
    for name, audio in _clips():
        ref = _openwakeword_embeddings(folder, audio)
        ours = backbone.frames(audio).numpy()
        assert ours.shape == ref.shape == (backbone.num_frames(len(audio)), 96), name
        worst = max(worst, float(np.abs(ours - ref).max()))
    assert worst < EMBEDDING_TOL


def test_contract(backbone):
    c = backbone.contract
    assert (c.sample_rate, c.embedding_dim, c.min_samples, c.hop_samples, c.frame_samples) == (16000, 96, 12512, 1280, 12512)
    assert c.window_samples == 16000
    assert backbone.spec() == {"name": "speech-embedding", "source": str(pathlib.Path(backbone.source))}
    assert backbone.fingerprint.startswith("speech-embedding-")
    assert len(backbone.variables) == 2 * 20


@pytest.mark.parametrize("seconds", [0.0, 0.3, 0.782, 0.8, 1.0, 1.7])
def test_frame_counts(backbone, seconds):
    n = int(round(seconds * 16000))
    emb = backbone.frames(noise(seconds, 16000, seed=1) if n else np.zeros(0, np.float32))
    assert emb.shape == (backbone.num_frames(n), 96)
    assert emb.shape[0] == (1 if n <= 12512 else 1 + -(-(n - 12512) // 1280))


def test_short_clip_is_zero_padded_to_one_window(backbone):
    clip = noise(0.3, 16000, seed=2)
    padded = np.zeros(12512, np.float32)
    padded[: len(clip)] = clip
    np.testing.assert_allclose(backbone.frames(clip), backbone.frames(padded), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_padded_batch_equals_each_clip_alone(backbone, batch):
    clips = [sine(300, 1.0, 16000) + noise(1.0, 16000, seed=3, amplitude=0.05),  # 4 windows
             noise(0.25, 16000, seed=4),  # shorter than one window: padded to one
             _clips()[1][1][:27000]][:batch]  # 1.69 s of speech: 13 windows
    lengths = np.array([len(c) for c in clips], np.int32)
    padded = np.zeros([batch, lengths.max() + 333], np.float32)  # extra padding past the longest
    for i, c in enumerate(clips):
        padded[i, : len(c)] = c
    emb, mask = (t.numpy() for t in backbone.batch_frames(padded, lengths))
    for i, c in enumerate(clips):
        alone = backbone.frames(c).numpy()
        assert mask[i].sum() == len(alone) == backbone.num_frames(len(c))
        np.testing.assert_allclose(emb[i][mask[i]], alone, atol=1e-4)
        assert not emb[i][~mask[i]].any()


def test_registry(folder, backbone):
    again = get_backbone(f"speech-embedding:{folder}")
    assert again.fingerprint == backbone.fingerprint
    assert get_backbone(again.spec()).fingerprint == backbone.fingerprint


@pytest.mark.slow
def test_graph_outputs_convert_to_tflite_builtins(backbone):
    """graph_outputs traced with unknown batch and length converts with builtin ops only and, run on
    one fixed 1 s window, gives the eager embeddings."""
    signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
    with tflite_compatible():
        fn = tf.function(backbone.graph_outputs, input_signature=signature, autograph=False)
        concrete = fn.get_concrete_function()
    module = tf.Module()
    module.weights = backbone.variables
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    data = converter.convert()
    assert not [n for n in TFLiteWeights.from_bytes(data).op_names() if n in ("CUSTOM", "DELEGATE")]
    it = tflite_interpreter(model_content=data, allocate=False)
    wave, length = sorted(it.get_input_details(), key=lambda d: len(d["shape_signature"]), reverse=True)
    it.resize_tensor_input(wave["index"], [1, 16000])
    it.resize_tensor_input(length["index"], [1])
    it.allocate_tensors()
    clip = _clips()[0][1][:16000]
    it.set_tensor(wave["index"], clip[None])
    it.set_tensor(length["index"], np.array([16000], np.int32))
    it.invoke()
    outs = {tuple(o["shape"]): it.get_tensor(o["index"]) for o in it.get_output_details()}
    emb, mask = backbone.batch_frames(clip[None])
    np.testing.assert_array_equal(outs[(1, 4)], mask.numpy())
    assert np.abs(outs[(1, 4, 96)] - emb.numpy()).max() < EMBEDDING_TOL


# ---- weight resolution and bad files -------------------------------------------------------------
def test_missing_file_and_folder(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no such file.*embedding_model.tflite"):
        SpeechEmbeddingBackbone.from_pretrained(tmp_path / "nope.tflite")
    with pytest.raises(WeightsNotFoundError, match="a folder without embedding_model.tflite"):
        SpeechEmbeddingBackbone.from_pretrained(tmp_path)


@pytest.mark.slow
def test_truncated_file(folder, tmp_path):
    data = (folder / "embedding_model.tflite").read_bytes()
    for cut in (len(data) // 2, len(data) - 1000, 100):
        bad = tmp_path / f"cut{cut}" / "embedding_model.tflite"
        bad.parent.mkdir()
        bad.write_bytes(data[:cut])
        with pytest.raises(WeightsNotFoundError, match="not a complete TFLite model|truncated"):
            SpeechEmbeddingBackbone.from_tflite(bad)


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "embedding_model.tflite"
    bad.write_text("<html>404 Not Found</html>")
    with pytest.raises(WeightsNotFoundError, match="not a TFLite model"):
        SpeechEmbeddingBackbone.from_tflite(bad)


def test_wrong_model(folder, tmp_path):
    wrong = tmp_path / "embedding_model.tflite"
    shutil.copy(folder / "melspectrogram.tflite", wrong)
    with pytest.raises(WeightsNotFoundError, match="not Google's speech embedding model.*input"):
        SpeechEmbeddingBackbone.from_tflite(wrong)


def test_wrong_frontend_file_beside_the_weights(folder, tmp_path):
    shutil.copy(folder / "embedding_model.tflite", tmp_path / "embedding_model.tflite")
    shutil.copy(folder / "embedding_model.tflite", tmp_path / "melspectrogram.tflite")
    with pytest.raises(WeightsNotFoundError, match="not the frontend"):
        SpeechEmbeddingBackbone.from_tflite(tmp_path)
    assert SpeechEmbeddingBackbone.from_tflite(tmp_path, check_frontend_file=False).fingerprint


def test_search_order_shared_then_cache(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("TFAUDIO_SHARED", str(folder.parents[1]))
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path / "cache"))
    found = SpeechEmbeddingBackbone.from_pretrained()
    assert pathlib.Path(found.source).parent == folder and found.spec()["source"] is None
    cached = tmp_path / "cache" / "models" / "speech_embedding"
    cached.mkdir(parents=True)
    shutil.copy(folder / "embedding_model.tflite", cached)
    monkeypatch.setenv("TFAUDIO_SHARED", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    assert pathlib.Path(SpeechEmbeddingBackbone.from_pretrained().source).parent == cached


def test_offline_refuses_and_says_where(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TFAUDIO_SHARED", str(tmp_path / "empty"))
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as err:
        get_backbone("speech-embedding")
    msg = str(err.value)
    assert "TFAUDIO_OFFLINE" in msg and str(tmp_path / "cache" / "models" / "speech_embedding") in msg
    assert seb.RELEASE_FILES["embedding_model.tflite"][0] in msg


class _Response(io.BytesIO):
    headers: dict = {}


def _serve(files: dict[str, pathlib.Path], monkeypatch):
    """urllib.request.urlopen answered from local files: the download path without a network."""
    import urllib.request

    def urlopen(url, timeout=None):
        return _Response(files[url].read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_download_checks_the_sha256(folder, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("TFAUDIO_SHARED", str(tmp_path / "empty"))
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "0")
    urls = {url: folder / name for name, (url, _) in seb.RELEASE_FILES.items()}
    _serve(urls, monkeypatch)
    got = SpeechEmbeddingBackbone.from_pretrained()
    cached = tmp_path / "cache" / "models" / "speech_embedding"
    assert sorted(p.name for p in cached.glob("*.tflite")) == ["embedding_model.tflite", "melspectrogram.tflite"]
    assert pathlib.Path(got.source).parent == cached
    # a changed upstream file (here: the two swapped) fails the checksum and is not kept
    shutil.rmtree(cached)
    _serve(dict(zip(urls, reversed(list(urls.values())))), monkeypatch)
    with pytest.raises(WeightsNotFoundError, match="download failed.*checksum"):
        SpeechEmbeddingBackbone.from_pretrained()
    assert not (cached / "embedding_model.tflite").exists()

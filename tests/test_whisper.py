"""Whisper encoder backbone and its log-mel frontend, on tiny random checkpoints.

Each checkpoint is written with ``save_pretrained`` (model + feature extractor) and read back through
``get_backbone("whisper:<folder>")``, the path a user's checkpoint takes. "tiny" has the released
models' real input (80 mel bins, 1500 positions = 30 s windows) with a 2-layer, 32-wide transformer;
"short" has large-v3's 128 mel bins, 250 positions (5 s windows, so long clips run in several chunks
cheaply) and no preprocessor_config.json (the settings are derived from the model's config).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import noise, pytorch_layout_weights, same_computation, sine, write_audio
from tfaudio.backbones.registry import get_backbone
from tfaudio.backbones.whisper.backbone import WhisperBackbone
from tfaudio.backbones.whisper.frontend import WhisperLogMelConfig, slaney_mel_filter_bank, whisper_log_mel
from tfaudio.errors import TfaudioError, WeightsNotFoundError
from tfaudio.signal.melspec import tflite_compatible

# transformers' TF models trip a Keras attribute-tracking deprecation warning
pytestmark = pytest.mark.filterwarnings("ignore:`seed_generator` is deprecated")

RATE = 16000
# batch vs. each clip alone, and tfaudio vs. transformers (max abs; measured < 1e-6 on frames of ~unit scale)
ATOL = 1e-4
# tfaudio's float32 log-mel vs. the feature extractor's float64 NumPy one (measured <= 1.5e-5)
LOG_MEL_ATOL = 1e-4
TINY = dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
            decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=64, max_target_positions=16,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
            dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
# name → (config overrides, WhisperFeatureExtractor settings or None for "no preprocessor file")
KINDS = {
    "tiny": (dict(num_mel_bins=80, max_source_positions=1500), dict(feature_size=80)),
    "short": (dict(num_mel_bins=128, max_source_positions=250), None),
}


def _write_checkpoint(folder, kind):
    import transformers

    overrides, fe = KINDS[kind]
    keras.utils.set_random_seed(0)
    model = transformers.TFWhisperModel(transformers.WhisperConfig(**TINY, **overrides))
    model.build_in_name_scope()
    model.save_pretrained(folder)
    if fe is not None:
        transformers.WhisperFeatureExtractor(**fe).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("whisper")
    return {kind: _write_checkpoint(root / kind, kind) for kind in KINDS}


@pytest.fixture(scope="module")
def shared(checkpoints):
    """Backbones loaded once per module through the registry, for tests that only read them."""
    cache: dict[str, WhisperBackbone] = {}

    def get(kind: str) -> WhisperBackbone:
        if kind not in cache:
            cache[kind] = get_backbone(f"whisper:{checkpoints[kind]}")
        return cache[kind]

    return get


def clip(n: int, seed: int = 0) -> np.ndarray:
    return noise(n / RATE, RATE, seed=seed, amplitude=0.2) + sine(440, n / RATE, RATE, amplitude=0.2)


def feature_extractor(config: WhisperLogMelConfig):
    import transformers

    return transformers.WhisperFeatureExtractor(
        feature_size=config.num_mel_bins, sampling_rate=config.sample_rate, hop_length=config.hop_samples,
        n_fft=config.n_fft, chunk_length=int(config.chunk_seconds))


def reference(bb: WhisperBackbone, x: np.ndarray, **kw):
    """transformers' own encoder on the feature extractor's input features of each 30 s (here: window)
    chunk of ``x``: a list of outputs, one per chunk."""
    fe = feature_extractor(bb.features)
    window = bb.features.chunk_samples
    outs = []
    for start in range(0, max(len(x), 1), window):
        feats = fe(x[start : start + window], sampling_rate=RATE, return_tensors="np")["input_features"]
        outs.append(bb.model.get_encoder()(input_features=tf.constant(feats), **kw))
    return outs


# ---- the log-mel frontend ----------------------------------------------------------------------
@pytest.mark.parametrize("mel_bins", [80, 128])
def test_mel_filter_bank_matches_transformers(mel_bins):
    from transformers.audio_utils import mel_filter_bank

    ours = slaney_mel_filter_bank(WhisperLogMelConfig(num_mel_bins=mel_bins))
    theirs = mel_filter_bank(201, mel_bins, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")
    assert ours.shape == (201, mel_bins) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-7, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("mel_bins,seconds", [(80, 30.0), (128, 5.0)])
def test_log_mel_matches_feature_extractor(mel_bins, seconds):
    """Both STFT paths (RFFT, and the DFT matmul TFLite uses) against WhisperFeatureExtractor: noise,
    a tone, silence, a clip shorter than one window, exactly one chunk and a longer clip (cut)."""
    config = WhisperLogMelConfig(num_mel_bins=mel_bins, chunk_seconds=seconds)
    fe = feature_extractor(config)
    n = config.chunk_samples
    clips = [clip(20000, seed=1), sine(440, 3.0, RATE, amplitude=0.6), np.zeros(8000, np.float32),
             clip(150, seed=2), clip(n, seed=3) * 0.3, clip(n + 7777, seed=4)]
    traced = tf.function(lambda x: whisper_log_mel(x, config), autograph=False)
    worst = {"rfft": 0.0, "dft": 0.0}
    for x in clips:
        expected = fe(x, sampling_rate=RATE, return_tensors="np")["input_features"][0].T  # [frames, mel]
        got = whisper_log_mel(x, config).numpy()
        assert got.shape == expected.shape == (config.num_frames, mel_bins)
        worst["rfft"] = max(worst["rfft"], float(np.abs(got - expected).max()))
        with tflite_compatible():
            got = traced(tf.constant(x)).numpy()
        worst["dft"] = max(worst["dft"], float(np.abs(got - expected).max()))
    assert max(worst.values()) < LOG_MEL_ATOL, worst
    # a batch: each row on its own (its own max - 8 floor)
    batch = np.zeros((2, 20000), np.float32)
    batch[0], batch[1, :8000] = clips[0], 0.01 * clips[0][:8000]
    rows = whisper_log_mel(batch, config).numpy()
    for row, x in zip(rows, [batch[0], batch[1, :8000]], strict=True):
        np.testing.assert_allclose(row, whisper_log_mel(x, config).numpy(), atol=1e-6)
    assert not np.allclose(rows[0], rows[1], atol=0.1)


# ---- loading, the contract and parity with transformers ------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tiny", "short"])
def test_contract_frames_and_transformers_parity(shared, kind):
    bb = shared(kind)
    window = bb.features.chunk_samples
    assert type(bb.model).__name__ == "TFWhisperModel" and bb.spec()["name"] == "whisper"
    assert window == {"tiny": 480000, "short": 80000}[kind] and bb.features.num_mel_bins == KINDS[kind][0]["num_mel_bins"]
    c = bb.contract
    assert (c.sample_rate, c.hop_seconds, c.embedding_dim, c.min_seconds) == (16000, 0.02, 32, 0.02)
    assert c.window_seconds == window / RATE and c.frame_seconds == 0.065
    assert [bb.num_frames(n) for n in (0, 1, 320, 321, 16000, window, window + 1)] == \
        [1, 1, 1, 2, 50, window // 320, window // 320 + 1]
    assert bb.frontend_scope == "frontend"
    # the encoder's variables only: the decoder is not exported
    assert bb.variables and not any("decoder" in v.name for v in bb.variables)
    assert len(bb.variables) == len(bb.model.get_encoder().weights)
    fe = feature_extractor(bb.features)
    for n in (150, 4321, 16000, window, 2 * window + 12345):
        x = clip(n, seed=n)
        frames = bb.frames(x).numpy()
        assert frames.shape == (bb.num_frames(n), 32)
        expected = np.concatenate([o.last_hidden_state[0].numpy() for o in reference(bb, x)])[: len(frames)]
        np.testing.assert_allclose(frames, expected, atol=ATOL)
        if n <= window:  # the frames tfaudio keeps are those transformers' attention mask marks (one per 2)
            mask = fe(x, sampling_rate=RATE, return_attention_mask=True, return_tensors="np")["attention_mask"]
            assert len(frames) == math.ceil(mask.sum() / 2)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tiny", "short"])
def test_padded_batch_equals_each_clip_alone(checkpoints, shared, kind):
    bb = shared(kind)
    window = bb.features.chunk_samples
    lengths = [16000, 9000, 2 * window + 3000, 300, 0, 4321]  # "short": the third clip has 3 chunks
    clips = [clip(n, seed=i) for i, n in enumerate(lengths)]
    batch = np.random.default_rng(9).normal(size=(len(clips), max(lengths))).astype(np.float32)  # junk past the ends
    for i, x in enumerate(clips):
        batch[i, : len(x)] = x
    emb, mask = bb.batch_frames(batch, lengths)
    emb, mask = emb.numpy(), mask.numpy()
    assert emb.shape == (6, bb.num_frames(max(lengths)), 32) and mask.dtype == bool
    worst = 0.0
    for i, x in enumerate(clips):
        n = bb.num_frames(len(x))
        assert mask[i].sum() == n and mask[i, :n].all()
        assert not emb[i, n:].any()  # frames past the audio are zero
        worst = max(worst, float(np.abs(emb[i, :n] - bb.frames(x).numpy()).max()))
    assert worst < ATOL
    # eager extraction in groups of <= chunk_batch chunks (and a 3-chunk clip in pieces) equals the
    # whole batch in one call (the same code for both kinds: checked on the cheaper one)
    for chunk_batch in (100, 1) if kind == "short" else ():
        other = WhisperBackbone(bb.model, features=bb.features, chunk_batch=chunk_batch)
        emb_other, mask_other = other.batch_frames(batch, lengths)
        np.testing.assert_array_equal(mask_other, mask)
        np.testing.assert_allclose(emb_other, emb, atol=ATOL)
    pooled = bb.pooled(batch, lengths).numpy()
    np.testing.assert_allclose(pooled[1], bb.frames(clips[1]).numpy().mean(0), atol=ATOL)


@pytest.mark.slow
def test_max_seconds_cuts(checkpoints):
    bb = get_backbone(f"whisper:{checkpoints['short']}", max_seconds=2.0)
    x = clip(3 * RATE)
    assert bb.num_frames(3 * RATE) == bb.num_frames(2 * RATE) == 100 and bb.num_chunks(10 * RATE) == 1
    np.testing.assert_allclose(bb.frames(x), bb.frames(x[: 2 * RATE]), atol=ATOL)
    assert bb.spec()["max_seconds"] == 2.0
    with pytest.raises(TfaudioError, match="max_seconds"):
        get_backbone(f"whisper:{checkpoints['short']}", max_seconds=0.01)


# ---- layers ------------------------------------------------------------------------------------
def test_layer_selection_equals_hidden_states(shared):
    bb = shared("tiny")
    x = clip(6000)
    states = reference(bb, x, output_hidden_states=True)[0].hidden_states
    assert len(states) == 3
    n = bb.num_frames(len(x))

    def frames(backbone):  # the embedder eagerly: no tf.function trace per backbone
        return backbone.embedder((tf.constant(x[None]), tf.constant([len(x)])))[0][0]

    for k in (0, 1, 2, -1):
        chosen = WhisperBackbone(bb.model, features=bb.features, layer=k)
        assert chosen.layer == ("last" if k % 3 == 2 else k % 3)
        np.testing.assert_allclose(frames(chosen), states[k][0, :n], atol=ATOL)
    assert WhisperBackbone(bb.model, features=bb.features, layer="2").fingerprint == bb.fingerprint
    with pytest.raises(TfaudioError, match="out of range"):
        WhisperBackbone(bb.model, layer=3)
    # "weighted": equal weights at first, trainable
    weighted = WhisperBackbone(bb.model, features=bb.features, layer="weighted")
    logits = weighted.embedder.layer_logits
    assert logits.trainable and logits.shape == (3,) and any(v is logits for v in weighted.variables)
    np.testing.assert_allclose(frames(weighted), np.mean([s[0, :n] for s in states], axis=0), atol=ATOL)
    with tf.GradientTape() as tape:
        emb, _ = weighted.embedder((tf.constant(x[None]), tf.constant([len(x)])), training=True)
        value = tf.reduce_mean(emb[..., 0])
    assert np.abs(tape.gradient(value, logits).numpy()).max() > 0


# ---- identity and errors ------------------------------------------------------------------------
def test_fingerprint_and_spec(checkpoints, shared):
    a = shared("tiny")
    b = WhisperBackbone.from_pretrained(checkpoints["tiny"])
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("whisper-")
    assert WhisperBackbone(b.model, features=b.features, layer=1).fingerprint != a.fingerprint
    assert shared("short").fingerprint != a.fingerprint
    spec = a.spec()
    assert spec == {"name": "whisper", "source": str(checkpoints["tiny"]), "layer": "last", "max_seconds": None}
    assert get_backbone(spec).fingerprint == a.fingerprint
    assert get_backbone({**spec, "layer": 1}).spec()["layer"] == 1


def test_missing_or_wrong_checkpoints_raise_with_what_was_tried(checkpoints, tmp_path, monkeypatch):
    import transformers

    missing = tmp_path / "no-such-model"
    with pytest.raises(WeightsNotFoundError, match="Tried: the local folder") as err:
        get_backbone(f"whisper:{missing}")
    assert str(missing) in str(err.value) and "save_pretrained" in str(err.value)
    # a hub id that is not in the (empty) cache, offline by the environment as on a machine without network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsNotFoundError, match="offline: cache only") as err:
        get_backbone("whisper:openai/whisper-tiny")
    message = str(err.value)
    assert "'openai/whisper-tiny'" in message and str(tmp_path / "hf") in message
    assert "huggingface-cli download" in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(TfaudioError, match="needs a model id or folder"):
        get_backbone("whisper")
    # a folder with a config but no weights
    transformers.WhisperConfig(**TINY).save_pretrained(tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError, match="no usable weights"):
        get_backbone(f"whisper:{tmp_path / 'empty'}")
    # another model type, in both directions
    transformers.Wav2Vec2Config(hidden_size=32).save_pretrained(tmp_path / "w2v")
    with pytest.raises(TfaudioError, match="not a Whisper model. Fix: use --backbone wav2vec2:"):
        get_backbone(f"whisper:{tmp_path / 'w2v'}")
    with pytest.raises(TfaudioError, match="whisper:"):
        get_backbone(f"wav2vec2:{checkpoints['tiny']}")


def test_feature_extractor_must_fit_the_encoder(checkpoints, tmp_path):
    import shutil

    import transformers

    for name, fe, match in (("mels", dict(feature_size=128), "makes 128 mel bins, the encoder takes 80"),
                            ("chunk", dict(feature_size=80, chunk_length=10), "pads to 10 s.*1500 positions")):
        folder = tmp_path / name
        shutil.copytree(checkpoints["tiny"], folder)
        transformers.WhisperFeatureExtractor(**fe).save_pretrained(folder)
        with pytest.raises(TfaudioError, match=match):
            get_backbone(f"whisper:{folder}")


@pytest.mark.slow
def test_pytorch_layout_and_encoder_only_checkpoints(shared, tmp_path, monkeypatch):
    """A PyTorch-layout model.safetensors (what the hub serves) loads without torch, from a folder and
    from the Hugging Face cache offline, and so does a checkpoint without the decoder; a missing encoder
    weight is an error."""
    import shutil

    from safetensors.numpy import save_file

    bb = shared("short")
    x = clip(5000)
    expected = bb.frames(x).numpy()
    weights = pytorch_layout_weights(bb.model)
    assert "model.encoder.conv1.weight" in weights and any(k.startswith("model.decoder.") for k in weights)
    for name, kept in (("pt", weights), ("encoder_only", {k: v for k, v in weights.items() if ".decoder." not in k})):
        folder = tmp_path / name
        bb.config.save_pretrained(folder)
        save_file(kept, str(folder / "model.safetensors"), metadata={"format": "pt"})
        loaded = get_backbone(f"whisper:{folder}")
        assert loaded.fingerprint == bb.fingerprint
        np.testing.assert_allclose(loaded.frames(x), expected, **same_computation(expected))
    # the same files as a hub id in the Hugging Face cache (as `huggingface-cli download` leaves them),
    # loaded offline
    snapshot = tmp_path / "hf" / "models--someone--whisper-test" / "snapshots" / ("0" * 40)
    shutil.copytree(tmp_path / "pt", snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    from_hub = get_backbone("whisper:someone/whisper-test")
    assert from_hub.fingerprint == bb.fingerprint and from_hub.spec()["source"] == "someone/whisper-test"
    folder = tmp_path / "broken"
    bb.config.save_pretrained(folder)
    save_file({k: v for k, v in weights.items() if "encoder.layers.1.fc1" not in k}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(WeightsNotFoundError, match="lacks 2 of the model's weights.*encoder.layers.1.fc1"):
        get_backbone(f"whisper:{folder}")


# ---- export ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_graph_outputs_trace_into_a_saved_model(shared, tmp_path):
    """A tf.Module with the backbone's variables and a tf.function of graph_outputs (what the
    product's export builds on) saves, reloads and gives the same outputs, with the encoder only."""
    bb = shared("short")
    module = tf.Module()
    module.backbone_variables = bb.variables
    module.outputs = tf.function(bb.graph_outputs, autograph=False, input_signature=[
        tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)])
    # the log-mel frontend is named "frontend/..." at the top level (int8 TFLite keeps those ops float)
    ops = module.outputs.get_concrete_function().graph.get_operations()
    frontend = {op.type for op in ops if op.name.startswith(bb.frontend_scope + "/")}
    assert {"RFFT", "Log", "GatherV2"} <= frontend and "Softmax" not in frontend
    assert any(op.type == "Softmax" for op in ops)
    tf.saved_model.save(module, str(tmp_path / "sm"))
    del module
    reloaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert len(reloaded.backbone_variables) == len(bb.variables)
    window = bb.features.chunk_samples
    lengths = np.array([window + 5000, 300, 0], np.int32)
    batch = np.zeros((3, lengths.max()), np.float32)
    for i, n in enumerate(lengths):
        batch[i, :n] = clip(int(n), seed=i)
    got = reloaded.outputs(tf.constant(batch), tf.constant(lengths))
    expected = bb.batch_outputs(batch, lengths)
    assert sorted(got) == ["embeddings", "mask"]
    np.testing.assert_array_equal(got["mask"], expected["mask"])
    np.testing.assert_allclose(got["embeddings"], expected["embeddings"], atol=1e-5)
    # the variables saved are the encoder's (a decoder weight would change the count above)
    names = {v.name for v in reloaded.backbone_variables}
    assert not any("decoder" in n for n in names)


# ---- with the cache and a head -------------------------------------------------------------------
@pytest.mark.slow
def test_embedding_cache_and_classifier(shared, tmp_path):
    from tests.helpers import tone_dataset
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    bb = shared("short")
    manifest = tone_dataset(tmp_path / "audio", n_per_class=3, seconds=0.5)
    cache = EmbeddingCache(bb, tmp_path / "cache")
    report = cache.extract(manifest, progress=False)
    assert report.extracted == len(manifest)
    assert cache.extract(manifest, progress=False).extracted == 0  # the second time everything is cached
    clips = cache.load(manifest, progress=False)
    assert [e.shape for e in clips.embeddings] == [(bb.num_frames(8000), 32)] * len(manifest)
    np.testing.assert_allclose(clips.embeddings[0], bb.frames(bb_audio(manifest.paths[0])), atol=ATOL)
    split = manifest.split(train=[1, 2], test=[3])
    clf = AudioClassifier(bb, labels=manifest.labels, cache=cache).fit(split.train, config=TrainConfig(epochs=30, seed=0))
    assert clf.evaluate(split.test)["clip"]["accuracy"] >= 2 / 3
    scores = clf.predict_scores([manifest.paths[0]])
    assert scores.shape == (1, 3) and np.isclose(scores.sum(), 1.0, atol=1e-5)


def bb_audio(path) -> np.ndarray:
    from tfaudio.io.decode import load_audio

    audio, rate = load_audio(path)
    assert rate == RATE
    return audio


# ---- language identification ---------------------------------------------------------------------
LANGUAGES = {
    # slow open syllables, low formants, voiced only
    "lento": dict(syllables_per_second=3.0, formants=(500.0, 1000.0), fricative=False),
    # quick syllables, high formants, a hiss (fricative) after each vowel
    "staccato": dict(syllables_per_second=7.0, formants=(750.0, 2100.0), fricative=True),
}


def utterance(language: str, pitch: float, formant_scale: float, seconds: float, seed: int) -> np.ndarray:
    """A synthetic "sentence": syllables of a harmonic voice (pitch ``pitch`` Hz with vibrato) shaped by
    two formants, at the language's rhythm; speakers differ in pitch and formant scale in both languages."""
    lang = LANGUAGES[language]
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE), np.float32)
    pos = int(rng.uniform(0.0, 0.1) * RATE)
    formants = np.array(lang["formants"]) * formant_scale
    while pos < len(out):
        dur = int(RATE / lang["syllables_per_second"] * rng.uniform(0.7, 1.2))
        t = np.arange(dur) / RATE
        f0 = pitch * rng.uniform(0.9, 1.1) * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        vowel = np.zeros(dur)
        for k in range(1, int(4000 / pitch)):
            gain = sum(np.exp(-0.5 * ((k * pitch - f) / 120.0) ** 2) for f in formants) + 0.02
            vowel += gain / k * np.sin(k * phase)
        vowel *= np.hanning(dur) * rng.uniform(0.5, 1.0)
        if lang["fricative"]:
            hiss = np.diff(rng.normal(size=dur // 3 + 1)) * 0.15 * np.hanning(dur // 3)
            vowel[-len(hiss):] += hiss
        end = min(len(out), pos + dur)
        out[pos:end] += vowel[: end - pos].astype(np.float32)
        pos += dur + int(rng.uniform(0.02, 0.12) * RATE)
    return (out / (np.abs(out).max() + 1e-9) * rng.uniform(0.2, 0.6)).astype(np.float32)


def fleurs_style_csv(root, speakers_per_language: int, clips_per_speaker: int):
    """Writes WAVs and a FLEURS-style ``lid.csv`` (``filename,language,speaker``); returns its path."""
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for language in LANGUAGES:
        for s in range(speakers_per_language):
            speaker = f"{language[:2]}{s}"
            pitch, scale = rng.uniform(100, 220), rng.uniform(0.9, 1.1)  # same ranges in both languages
            for i in range(clips_per_speaker):
                audio = utterance(language, pitch, scale, rng.uniform(1.5, 2.5), seed=int(rng.integers(1 << 30)))
                name = f"{speaker}_{i}.wav"
                write_audio(root / name, audio, RATE)
                rows.append({"filename": name, "language": language, "speaker": speaker})
    pd.DataFrame(rows).to_csv(root / "lid.csv", index=False)
    return root / "lid.csv"


@pytest.mark.slow
def test_language_identification_on_held_out_speakers(shared, tmp_path):
    """A head on Whisper encoder embeddings tells two synthetic languages apart on speakers it never
    heard: speaker-grouped folds, each held out once (chance: 50 %)."""
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    bb = shared("short")  # 5 s windows: the same pipeline as 30 s ones, 6x less encoder work
    csv = fleurs_style_csv(tmp_path / "lid", speakers_per_language=5, clips_per_speaker=3)
    manifest = Manifest.from_csv(csv, label_column="language", group_column="speaker", fold_column=None)
    manifest = manifest.assign_folds(3, seed=0)
    assert manifest.labels == ("lento", "staccato") and manifest.folds == [1, 2, 3]
    for fold in manifest.folds:  # no speaker in two folds
        speakers = set(manifest.frame[manifest.frame["fold"] == fold]["group"])
        others = set(manifest.frame[manifest.frame["fold"] != fold]["group"])
        assert speakers and not speakers & others
    cache = EmbeddingCache(bb, tmp_path / "cache")
    correct = total = 0
    for fold in manifest.folds:
        split = manifest.split(train=[f for f in manifest.folds if f != fold], test=[fold])
        clf = AudioClassifier(bb, labels=manifest.labels, cache=cache)  # the default MLP head
        clf.fit(split.train, config=TrainConfig(epochs=20, seed=fold))
        rep = clf.evaluate(split.test)["clip"]
        correct += rep["accuracy"] * len(split.test)
        total += len(split.test)
    assert total == len(manifest) == 30
    # measured 0.97; >= 23 of 30 right has probability 0.3 % by chance
    assert correct / total >= 0.75, f"held-out accuracy {correct / total:.2f} (chance 0.5)"


@pytest.mark.slow
def test_language_identification_cli(checkpoints, tmp_path):
    """The README's command: ``tfaudio train lid.csv --backbone whisper:<folder> --label-column language
    --group-column speaker`` on a FLEURS-style CSV."""
    import json

    from tfaudio.cli import main

    csv = fleurs_style_csv(tmp_path / "lid", speakers_per_language=5, clips_per_speaker=2)
    out = tmp_path / "lid_model"
    argv = ["train", str(csv), "--backbone", f"whisper:{checkpoints['tiny']}", "--label-column", "language",
            "--group-column", "speaker", "--epochs", "30", "--hidden", "64", "--cache", str(tmp_path / "cache"),
            "-o", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "tfaudio.json").read_text())
    assert config["backbone"]["name"] == "whisper" and config["labels"] == ["lento", "staccato"]
    report = json.loads((out / "test_report.json").read_text())
    assert report["accuracy"] >= 0.5

"""Wav2Vec2 / HuBERT backbones and their fine-tuning model, on tiny random checkpoints.

Each checkpoint is written with ``save_pretrained`` (model + feature extractor) and read back through
``Wav2Vec2Backbone.from_pretrained(folder)``, the path a user's checkpoint takes. The conv stack is
wav2vec2's real one (7 layers, total stride 320, receptive field 400) with 16 channels, so the 20 ms
hop and the 25 ms frame are real; the transformer has 2 layers of width 32.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import noise, same_computation, sine
from tfaudio.backbones.wav2vec2.backbone import Wav2Vec2Backbone
from tfaudio.errors import AudioError, TfaudioError, WeightsNotFoundError
from tfaudio.interpreter import tflite_interpreter
from tfaudio.tasks.wav2vec2_finetune import (
    build_finetune_model,
    build_sequence_classification_model,
    mixed_precision_support,
)

# transformers' TF models trip a Keras attribute-tracking deprecation warning while fitting
pytestmark = pytest.mark.filterwarnings("ignore:`seed_generator` is deprecated")

RATE = 16000
# batch vs. each clip alone (max abs difference; measured < 5e-6 for both norm types)
BATCH_ATOL = 1e-4
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
            hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
            final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0)
# name → (config class, config overrides, feature extractor settings or None for "no preprocessor file")
KINDS = {
    # like wav2vec2-base: GroupNorm over time in the first conv, normalised input, no attention mask
    "group": ("Wav2Vec2Config", dict(feat_extract_norm="group"), dict(do_normalize=True, return_attention_mask=False)),
    # like wav2vec2-large-lv60: LayerNorm convs, stable layer norm, attention mask
    "layer": ("Wav2Vec2Config", dict(feat_extract_norm="layer", do_stable_layer_norm=True),
              dict(do_normalize=False, return_attention_mask=True)),
    # like hubert-base; no preprocessor_config.json: the feature extractor's defaults apply
    "hubert": ("HubertConfig", dict(feat_extract_norm="group"), None),
    # like DistilHuBERT: no LayerNorm before the feature projection
    "distilhubert": ("HubertConfig", dict(feat_extract_norm="group", feat_proj_layer_norm=False), None),
}


def _write_checkpoint(folder, kind):
    import transformers

    config_name, overrides, fe = KINDS[kind]
    config = getattr(transformers, config_name)(**TINY, **overrides)
    model_cls = transformers.TFHubertModel if config.model_type == "hubert" else transformers.TFWav2Vec2Model
    tf.keras.utils.set_random_seed(0)
    model = model_cls(config)
    model.build_in_name_scope()
    model.save_pretrained(folder)
    if fe is not None:
        transformers.Wav2Vec2FeatureExtractor(**fe).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("w2v")
    return {kind: _write_checkpoint(root / kind, kind) for kind in KINDS}


def load(checkpoints, kind="group", **kw) -> Wav2Vec2Backbone:
    """A fresh backbone (for tests that change weights)."""
    return Wav2Vec2Backbone.from_pretrained(checkpoints[kind], **kw)


@pytest.fixture(scope="module")
def shared(checkpoints):
    """Backbones loaded once per module, for tests that only read them."""
    cache: dict[str, Wav2Vec2Backbone] = {}

    def get(kind: str) -> Wav2Vec2Backbone:
        if kind not in cache:
            cache[kind] = load(checkpoints, kind)
        return cache[kind]

    return get


def clip(n: int, seed: int = 0) -> np.ndarray:
    return noise(n / RATE, RATE, seed=seed) + sine(440, n / RATE, RATE, amplitude=0.2)


def reference(backbone, x: np.ndarray, **kw):
    """transformers' own model on one unpadded clip, prepared as Wav2Vec2FeatureExtractor would."""
    if backbone.do_normalize:
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    x = np.pad(x, (0, max(0, 400 - len(x))))
    return backbone.model(x[None].astype(np.float32), **kw)


# ---- loading and the contract ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["group", "layer", "hubert"])
def test_contract_num_frames_and_transformers_parity(shared, kind):
    bb = shared(kind)
    assert bb.model_type == ("hubert" if kind == "hubert" else "wav2vec2")
    assert type(bb.model).__name__ == ("TFHubertModel" if kind == "hubert" else "TFWav2Vec2Model")
    c = bb.contract
    assert (c.sample_rate, c.frame_seconds, c.hop_seconds, c.embedding_dim, c.min_seconds) == (16000, 0.025, 0.02, 32, 0.025)
    assert (c.min_samples, c.hop_samples) == (400, 320)
    assert bb.do_normalize == (kind != "layer") and bb.return_attention_mask == (kind == "layer")
    assert [bb.num_frames(n) for n in (0, 399, 400, 719, 720, 16000, 80000)] == [1, 1, 1, 1, 2, 49, 249]
    for n in (150, 400, 720, 4321, 16000):
        x = clip(n, seed=n)
        frames = bb.frames(x).numpy()
        assert frames.shape == (bb.num_frames(n), 32)
        np.testing.assert_allclose(frames, reference(bb, x).last_hidden_state[0], atol=BATCH_ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["group", "layer", "hubert"])
def test_padded_batch_equals_each_clip_alone(shared, kind):
    bb = shared(kind)
    lengths = [16000, 9000, 4321, 300, 0]
    clips = [clip(n, seed=i) for i, n in enumerate(lengths)]
    batch = np.random.default_rng(9).normal(size=(len(clips), 16000)).astype(np.float32)  # junk past the ends
    for i, x in enumerate(clips):
        batch[i, : len(x)] = x
    emb, mask = bb.batch_frames(batch, lengths)
    emb, mask = emb.numpy(), mask.numpy()
    assert emb.shape == (5, 49, 32) and mask.dtype == bool
    worst = 0.0
    for i, x in enumerate(clips):
        n = bb.num_frames(len(x))
        assert mask[i].sum() == n and mask[i, :n].all()
        assert not emb[i, n:].any()  # padded frames are zero
        worst = max(worst, float(np.abs(emb[i, :n] - bb.frames(x).numpy()).max()))
    assert worst < BATCH_ATOL
    pooled = bb.pooled(batch, lengths).numpy()
    np.testing.assert_allclose(pooled[1], bb.frames(clips[1]).numpy().mean(0), atol=BATCH_ATOL)
    if kind == "group":
        # why tfaudio masks GroupNorm statistics and attention: transformers' advice for "group" norm
        # checkpoints (zero-pad, no attention mask) moves a padded clip's embeddings far from its own
        x = np.stack([np.pad((c - c.mean()) / np.sqrt(c.var() + 1e-7), (0, 16000 - len(c))) for c in clips[:2]])
        naive = bb.model(x.astype(np.float32)).last_hidden_state[1, : bb.num_frames(9000)].numpy()
        assert np.abs(naive - bb.frames(clips[1]).numpy()).max() > 1e-2


@pytest.mark.slow
def test_xla_extraction_equals_plain(checkpoints, shared):
    bb, xla = shared("group"), load(checkpoints, "group", jit_compile=True)
    lengths = [9000, 4321, 300]  # a batch of 3 (run as 4) and a width of 9000 (run as 16000)
    batch = np.zeros((3, 9000), np.float32)
    for i, n in enumerate(lengths):
        batch[i, :n] = clip(n, seed=i)
    plain, xla_out = bb.batch_frames(batch, lengths), xla.batch_frames(batch, lengths)
    assert xla_out[0].shape == plain[0].shape == (3, 27, 32)
    np.testing.assert_array_equal(xla_out[1], plain[1])
    np.testing.assert_allclose(xla_out[0], plain[0], atol=BATCH_ATOL)


@pytest.mark.slow
def test_normalisation_uses_valid_samples_only(shared):
    bb = shared("group")
    x = clip(5000)
    waves = np.full((2, 8000), 7.0, np.float32)  # padding far from zero: must not leak into the statistics
    waves[0, :5000] = 3.0 * x + 0.5
    waves[1, :5000] = x
    prepared, n = bb.embedder.prepare(tf.constant(waves), tf.constant([5000, 5000]))
    prepared = prepared.numpy()
    np.testing.assert_allclose(prepared[0, :5000].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(prepared[0, :5000].std(), 1.0, atol=1e-4)
    assert not prepared[:, 5000:].any() and list(n.numpy()) == [5000, 5000]
    emb, _ = bb.batch_frames(waves, [5000, 5000])
    np.testing.assert_allclose(emb[0], emb[1], atol=BATCH_ATOL)  # gain and offset are normalised away
    # a do_normalize=False checkpoint feeds the waveform as is (past the end: zeros)
    raw = shared("layer")
    prepared, _ = raw.embedder.prepare(tf.constant(waves), tf.constant([5000, 5000]))
    np.testing.assert_array_equal(prepared[:, :5000], waves[:, :5000])
    assert not prepared.numpy()[:, 5000:].any()
    assert not np.allclose(raw.frames(x + 0.5).numpy(), raw.frames(x).numpy(), atol=1e-3)


@pytest.mark.slow
def test_max_seconds_truncates(checkpoints):
    bb = load(checkpoints, "group", max_seconds=0.5)
    x = clip(16000)
    assert bb.num_frames(16000) == bb.num_frames(8000) == 24
    np.testing.assert_allclose(bb.frames(x), bb.frames(x[:8000]), atol=BATCH_ATOL)
    with pytest.raises(TfaudioError, match="max_seconds"):
        load(checkpoints, "group", max_seconds=0.01)


@pytest.mark.slow
def test_distilhubert_skips_projection_layer_norm(checkpoints):
    bb = load(checkpoints, "distilhubert")
    assert not bb.embedder.projection_norm
    x = clip(4000)
    before = bb.frames(x).numpy()
    norm = bb.embedder.main.feature_projection.layer_norm  # built by the TF port, unused by the checkpoint
    norm.gamma.assign(norm.gamma * 3.0 + 1.0)
    np.testing.assert_allclose(bb.frames(x), before, **same_computation(before))


# ---- layers ------------------------------------------------------------------------------------
def test_layer_selection_equals_hidden_states(shared):
    bb = shared("layer")
    x = clip(6000)
    states = reference(bb, x, output_hidden_states=True).hidden_states
    assert len(states) == 3

    def frames(backbone):  # the embedder eagerly: no tf.function trace per backbone
        return backbone.embedder((tf.constant(x[None]), tf.constant([len(x)])))[0][0]

    for k in (0, 1, 2, -1):
        chosen = Wav2Vec2Backbone(bb.model, layer=k, do_normalize=bb.do_normalize)
        assert chosen.layer == k % 3
        np.testing.assert_allclose(frames(chosen), states[k][0], atol=BATCH_ATOL)
    np.testing.assert_allclose(frames(Wav2Vec2Backbone(bb.model, layer=-1, do_normalize=False)),
                               bb.frames(x), atol=1e-5)
    with pytest.raises(TfaudioError, match="out of range"):
        Wav2Vec2Backbone(bb.model, layer=3)


@pytest.mark.slow
def test_weighted_layer_sum_is_trainable(checkpoints):
    bb = load(checkpoints, "group", layer="weighted")
    logits = bb.embedder.layer_logits
    assert logits.trainable and logits.shape == (3,) and any(v is logits for v in bb.embedder.trainable_weights)
    x = clip(6000)
    states = reference(bb, x, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(bb.frames(x), np.mean([s[0] for s in states], axis=0), atol=BATCH_ATOL)
    with tf.GradientTape() as tape:
        emb, _ = bb.embedder((tf.constant(x[None]), tf.constant([6000])), training=True)
        value = tf.reduce_mean(emb[..., 0])
    assert np.abs(tape.gradient(value, logits).numpy()).max() > 0
    # with the transformers model frozen, the layer weights and the head still train
    model = build_finetune_model(bb, 2, freeze_backbone=True)
    assert {v.name.split("/")[-1] for v in model.trainable_variables} == {"layer_logits:0", "kernel:0", "bias:0"}
    assert len(model.trainable_variables) == 3


# ---- identity and errors ------------------------------------------------------------------------
def test_fingerprint_and_spec(checkpoints, shared):
    from tfaudio.backbones.registry import get_backbone

    a, b = shared("hubert"), load(checkpoints, "hubert")
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("hubert-")
    assert Wav2Vec2Backbone(b.model, layer=1).fingerprint != a.fingerprint
    assert shared("group").fingerprint != a.fingerprint
    spec = a.spec()
    assert spec == {"name": "hubert", "source": str(checkpoints["hubert"]), "layer": "last", "max_seconds": None}
    assert get_backbone(spec).fingerprint == a.fingerprint


def test_missing_weights_raise_with_what_was_tried(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(WeightsNotFoundError, match="Tried: the local folder") as err:
        Wav2Vec2Backbone.from_pretrained(missing)
    assert str(missing) in str(err.value) and "save_pretrained" in str(err.value)
    # a hub id that is not in the (empty) cache while offline
    with pytest.raises(WeightsNotFoundError, match="offline: cache only") as err:
        Wav2Vec2Backbone.from_pretrained("someone/not-cached", cache_dir=tmp_path / "hf", local_files_only=True)
    assert str(tmp_path / "hf") in str(err.value)
    # a folder with a config but no weights
    import transformers

    transformers.Wav2Vec2Config(**TINY).save_pretrained(tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError, match="no usable weights"):
        Wav2Vec2Backbone.from_pretrained(tmp_path / "empty")


@pytest.mark.slow
def test_pytorch_layout_safetensors_load_without_torch(checkpoints, tmp_path):
    """model.safetensors in PyTorch layout (the hub's usual file): transformers 4.57's TF loader fails on it
    with safetensors >= 0.7 ("'builtins.safe_open' object is not iterable"); tfaudio loads it itself.
    DistilHuBERT's checkpoint has no feature-projection LayerNorm, which is allowed to be missing."""
    from safetensors.numpy import save_file

    from tests.helpers import pytorch_layout_weights

    x = clip(6000)
    bb = load(checkpoints, "distilhubert")
    weights = pytorch_layout_weights(bb.model)
    assert "hubert.encoder.pos_conv_embed.conv.weight_v" in weights
    weights = {k: v for k, v in weights.items() if ".feature_projection.layer_norm." not in k}
    bb.config.save_pretrained(tmp_path)
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    np.testing.assert_allclose(Wav2Vec2Backbone.from_pretrained(tmp_path).frames(x), bb.frames(x), **same_computation(bb.frames(x)))


def test_pytorch_only_checkpoint_without_torch(tmp_path):
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here: PyTorch weights would load")
    import transformers

    transformers.Wav2Vec2Config(**TINY).save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(TfaudioError, match="pip install torch"):
        Wav2Vec2Backbone.from_pretrained(tmp_path)
    with pytest.raises(TfaudioError, match="pip install torch"):
        Wav2Vec2Backbone.from_pretrained(tmp_path, from_pt=True)


def test_wrong_sample_rate_is_refused(shared):
    bb = shared("group")
    with pytest.raises(AudioError, match="resample"):
        bb.frames(clip(8000), sample_rate=8000)
    with pytest.raises(AudioError, match="16000 Hz"):
        bb.batch_frames(clip(8000)[None], [8000], sample_rate=44100)
    assert bb.frames(clip(8000), sample_rate=16000).shape == (24, 32)


# ---- fine-tuning -------------------------------------------------------------------------------
def tone_vs_noise(n_per_class=4, seconds=0.4):
    rng = np.random.default_rng(1)
    waves, lengths, labels = [], [], []
    for i in range(n_per_class):
        waves.append(sine(float(rng.uniform(300, 600)), seconds, RATE, amplitude=0.5))
        waves.append(noise(seconds, RATE, seed=i))
        labels += [0, 1]
    width = max(len(w) for w in waves)
    batch = np.zeros((len(waves), width), np.float32)
    for i, w in enumerate(waves):
        cut = len(w) - 800 * (i % 3)  # ragged lengths
        batch[i, :cut] = w[:cut]
        lengths.append(cut)
    return {"waveform": batch, "length": np.array(lengths, np.int32)}, np.array(labels)


def compile_(model, optimizer):
    model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def logits(model, x):
    """The model called eagerly (no Keras predict trace: ~10 s each on a busy 2-core machine)."""
    return model({k: tf.constant(v) for k, v in x.items()}, training=False).numpy()


def loss(model, x, y):
    return float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits(model, x)))


@pytest.mark.slow
def test_finetune_lowers_loss_and_keeps_feature_encoder(checkpoints, tmp_path):
    keras.utils.set_random_seed(0)
    bb = load(checkpoints, "group")
    model = compile_(build_finetune_model(bb, 2, dropout=0.0), keras.optimizers.Adam(3e-3))
    assert model.mixed_precision == mixed_precision_support()[0]
    if not model.mixed_precision:
        assert model.output.dtype == tf.float32
    x, y = tone_vs_noise()
    encoder_before = [w.numpy().copy() for w in bb.embedder.feature_encoder.weights]
    body_before = bb.model.trainable_weights[-1].numpy().copy()
    fingerprint = bb.fingerprint
    start = loss(model, x, y)
    model.fit(x, y, batch_size=4, epochs=12, verbose=0)
    assert loss(model, x, y) < 0.3 * start
    for before, w in zip(encoder_before, bb.embedder.feature_encoder.weights, strict=True):
        np.testing.assert_array_equal(before, w.numpy())
    assert not np.allclose(body_before, bb.model.trainable_weights[-1].numpy())  # transformer trained
    assert bb.fingerprint != fingerprint  # the shared backbone's cache key follows its weights
    # save / load round trip of the fine-tuned weights into a model built the same way
    path = str(tmp_path / "finetuned.weights.h5")
    model.save_weights(path)
    again = build_finetune_model(load(checkpoints, "group"), 2, dropout=0.0)
    again.load_weights(path)
    np.testing.assert_allclose(logits(again, x), logits(model, x), atol=1e-4)
    # the attention-mask input gives the same logits as lengths
    by_mask = build_finetune_model(bb, 2, dropout=0.0, mask_input="attention_mask")
    by_mask.get_layer("logits").set_weights(model.get_layer("logits").get_weights())
    mask = (np.arange(x["waveform"].shape[1])[None] < x["length"][:, None]).astype(np.float32)
    np.testing.assert_allclose(logits(by_mask, {"waveform": x["waveform"], "attention_mask": mask}),
                               logits(model, x), atol=1e-5)


@pytest.mark.slow
def test_gradient_accumulation_equals_one_big_batch(checkpoints):
    x, y = tone_vs_noise(n_per_class=2)  # 4 clips
    accumulated = build_finetune_model(load(checkpoints, "layer"), 2, dropout=0.0, accumulation_steps=2,
                                       freeze_feature_encoder=False)
    big = build_finetune_model(load(checkpoints, "layer"), 2, dropout=0.0, freeze_feature_encoder=False)
    big.set_weights(accumulated.get_weights())
    start = [w.copy() for w in accumulated.get_weights()]
    compile_(accumulated, keras.optimizers.SGD(0.5))
    compile_(big, keras.optimizers.SGD(0.5))
    accumulated.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)  # 2 micro-batches → 1 update
    big.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert int(accumulated.optimizer.iterations) == 1 and int(big.optimizer.iterations) == 1
    moved = 0
    for a, b, s in zip(accumulated.get_weights(), big.get_weights(), start, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5)
        moved += not np.allclose(a, s)
    assert moved > 10
    # one more micro-batch only accumulates; the second one applies
    before = [w.copy() for w in accumulated.get_weights()]
    accumulated.train_on_batch({k: v[:2] for k, v in x.items()}, y[:2])
    assert int(accumulated.optimizer.iterations) == 1
    assert all(np.array_equal(a, b) for a, b in zip(before, accumulated.get_weights(), strict=True))
    accumulated.train_on_batch({k: v[2:] for k, v in x.items()}, y[2:])
    assert int(accumulated.optimizer.iterations) == 2
    assert not all(np.array_equal(a, b) for a, b in zip(before, accumulated.get_weights(), strict=True))


@pytest.mark.slow
def test_mixed_precision_path_where_supported(checkpoints, monkeypatch):
    """On this CPU "auto" keeps float32; the float16 path (taken on a GPU with compute capability
    >= 7.0) is forced here to check that it builds, trains with loss scaling and accumulation, and
    leaves the backbone and the global policy alone."""
    from tfaudio.tasks import wav2vec2_finetune

    bb = load(checkpoints, "group")
    if not mixed_precision_support()[0]:
        cpu = build_finetune_model(bb, 2)
        assert not cpu.mixed_precision and cpu.precision_note.startswith("float32: ")
    monkeypatch.setattr(wav2vec2_finetune, "mixed_precision_support", lambda: (True, "forced by the test"))
    before = [w.numpy().copy() for w in bb.model.weights]
    model = compile_(build_finetune_model(bb, 2, accumulation_steps=2), keras.optimizers.Adam(1e-3))
    assert model.mixed_precision and keras.mixed_precision.global_policy().name == "float32"
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    x, y = tone_vs_noise(n_per_class=2)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1]) and int(model.optimizer.iterations) == 1
    assert logits(model, x).dtype == np.float32
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, bb.model.weights, strict=True))


@pytest.mark.slow
def test_sequence_classification_path(checkpoints):
    model = build_sequence_classification_model(checkpoints["group"], 2)
    x, y = tone_vs_noise(n_per_class=2)
    assert logits(model, x).shape == (4, 2)
    with tf.GradientTape() as tape:  # eagerly: Keras' fit is tested above on the same model class
        out = model({k: tf.constant(v) for k, v in x.items()}, training=True)
        value = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, out)
    grads = tape.gradient(value, model.trainable_variables)
    assert all(g is not None for g in grads) and len(grads) > 10
    assert not any("feature_extractor" in v.name for v in model.trainable_variables)  # frozen
    with pytest.raises(TfaudioError, match="no TF sequence classifier"):
        build_sequence_classification_model(checkpoints["hubert"], 2)


# ---- export ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tflite_builtins_only(shared):
    """Current behaviour: a tf.function waveform [any length] → pooled embedding converts with
    TFLite builtins only and matches the backbone."""
    bb = shared("group")
    module = bb.pooled_module()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.pooled.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        blob = converter.convert()
    except Exception as err:  # keep the failure specific if a later TF changes this
        pytest.fail(f"TFLite builtins conversion failed: {err}")
    interpreter = tflite_interpreter(model_content=blob)
    x = clip(7000)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [len(x)])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, bb.pooled(x[None]).numpy()[0], atol=1e-4)


# ---- SavedModel / TFLite export of a classifier and of a fine-tuned model ----------------------------
# Loads SavedModels in a fresh Python that never imports tfaudio, transformers or Keras, runs
# serving_default per clip and the batch signature on the clips zero-padded (junk in one row's padding).
FRESH = '''
import json, sys
import numpy as np
import tensorflow as tf

clips = np.load(sys.argv[1])
clips = [clips[k] for k in sorted(clips.files, key=lambda k: int(k[1:]))]
res, info = {}, {}
for m, path in enumerate(sys.argv[3:]):
    model = tf.saved_model.load(path)
    info[f"m{m}"] = {name: [sorted(f.structured_input_signature[1]), sorted(f.structured_outputs)]
                     for name, f in model.signatures.items()}
    info[f"m{m}"]["labels_txt"] = open(model.labels_file.asset_path.numpy().decode()).read().split()
    for i, x in enumerate(clips):
        out = model.signatures["serving_default"](audio=tf.constant(x))
        res[f"m{m}_classifier_{i}"] = out["classifier"].numpy()
        res[f"m{m}_label_{i}"] = np.array(out["label"].numpy().decode())
        if "frame_scores" in out:
            res[f"m{m}_frames_{i}"] = out["frame_scores"].numpy()
    lengths = np.array([len(x) for x in clips], np.int32)
    batch = np.zeros([len(clips), lengths.max()], np.float32)
    for i, x in enumerate(clips):
        batch[i, : len(x)] = x
    short = int(np.argmin(lengths))
    batch[short, lengths[short]:] = 0.3  # the padding must not matter
    out = model.signatures["batch"](audio=tf.constant(batch), lengths=tf.constant(lengths))
    res[f"m{m}_batch_classifier"] = out["classifier"].numpy()
    res[f"m{m}_batch_label"] = np.array([s.decode() for s in out["label"].numpy()])
info["modules"] = sorted({m.split(".")[0] for m in sys.modules} & {"tfaudio", "transformers", "tf_keras", "torch"})
np.savez(sys.argv[2], **res)
print(json.dumps(info))
'''


def serve_fresh(saved_models, clips, tmp) -> tuple[dict, dict]:
    """Runs :data:`FRESH` on ``saved_models`` and ``clips``: (signatures and modules, outputs)."""
    import json
    import os
    import subprocess
    import sys

    tmp.mkdir(parents=True, exist_ok=True)
    np.savez(tmp / "in.npz", **{f"c{i}": np.asarray(x, np.float32) for i, x in enumerate(clips)})
    (tmp / "fresh.py").write_text(FRESH)
    # a clean serving environment: transformers sets TF_USE_LEGACY_KERAS=1 in this process, which makes
    # `import tensorflow` import tf_keras in the child
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    proc = subprocess.run([sys.executable, "fresh.py", "in.npz", "out.npz", *map(str, saved_models)], cwd=tmp,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), dict(np.load(tmp / "out.npz"))


def check_served(info, res, m, clips, expected, labels, frame_scores=False):
    """Model ``m`` of :func:`serve_fresh` gave ``expected [clips, C]`` per clip and in the batch."""
    signatures = info[f"m{m}"]
    assert signatures["serving_default"][0] == ["audio"] and signatures["batch"][0] == ["audio", "lengths"]
    assert signatures["serving_default"][1] == sorted(["classifier", "label"] + ["frame_scores", "frame_weights"] * frame_scores)
    assert signatures["labels_txt"] == list(labels)
    for i in range(len(clips)):
        np.testing.assert_allclose(res[f"m{m}_classifier_{i}"], expected[i], atol=1e-5)
        assert res[f"m{m}_label_{i}"].item() == labels[int(np.argmax(expected[i]))]
    np.testing.assert_allclose(res[f"m{m}_batch_classifier"], expected, atol=1e-5)
    assert list(res[f"m{m}_batch_label"]) == [labels[int(k)] for k in np.argmax(expected, axis=1)]


@pytest.fixture(scope="module")
def w2v_classifier(checkpoints, tmp_path_factory):
    """An AudioClassifier: the tiny "group" checkpoint + an MLP head trained on tones vs. hiss."""
    from tests.helpers import tone_dataset
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    root = tmp_path_factory.mktemp("tones")
    manifest = tone_dataset(root / "audio", n_per_class=3, seconds=0.5)
    bb = load(checkpoints, "group")
    clf = AudioClassifier(bb, labels=manifest.labels, cache=EmbeddingCache(bb, root / "cache"))
    return clf.fit(manifest, config=TrainConfig(epochs=8, seed=0))


@pytest.mark.slow
def test_classifier_and_finetuned_model_export_to_saved_model(checkpoints, w2v_classifier, tmp_path):
    """(a) backbone + head and (b) a fine-tuned model, each a SavedModel from waveform to scores, served
    in a fresh process equal to AudioClassifier.predict_scores / the Keras model's softmax."""
    from tfaudio.cli import main
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.tasks.wav2vec2_finetune import is_finetune_folder, load_finetune_model, save_finetune_model

    clips = [clip(16000, seed=1), clip(5000, seed=2), clip(300, seed=3), sine(440, 0.7, RATE)]
    clf = w2v_classifier
    classifier_sm = export_saved_model(clf, tmp_path / "classifier", frame_scores=True)

    keras.utils.set_random_seed(0)
    model = build_finetune_model(load(checkpoints, "hubert"), 2, dropout=0.0)
    x, _ = tone_vs_noise(n_per_class=2)
    # fine-tuning as tested above, in short: the transformer's weights move away from the checkpoint's
    # (so saving the checkpoint's weights instead would show), the classifier is random
    for w in model.embedder.model.trainable_weights[-4:]:
        w.assign(w * 1.5 + 0.05)
    with pytest.raises(TfaudioError, match="0 labels for a model with 2 outputs"):
        save_finetune_model(model, tmp_path / "ft")  # no labels yet
    save_finetune_model(model, tmp_path / "ft", labels=("tone", "noise"))
    assert is_finetune_folder(tmp_path / "ft") and not is_finetune_folder(tmp_path / "classifier")
    again = load_finetune_model(tmp_path / "ft")
    assert again.labels == ("tone", "noise")
    np.testing.assert_allclose(logits(again, x), logits(model, x), atol=1e-5)
    # `tfaudio export` reads the folder; asking for outputs it cannot have is a clear error
    assert main(["export", str(tmp_path / "ft"), "-o", str(tmp_path / "ft_export")]) == 0
    assert main(["export", str(tmp_path / "ft"), "-o", str(tmp_path / "bad"), "--frame-scores"]) == 2
    assert main(["export", str(tmp_path / "ft"), "-o", str(tmp_path / "bad"), "--audioset"]) == 2
    assert not (tmp_path / "bad").exists()

    info, res = serve_fresh([classifier_sm, tmp_path / "ft_export" / "saved_model"], clips, tmp_path / "fresh")
    assert info["modules"] == []  # served by TensorFlow alone
    expected = clf.predict_scores(clips)
    check_served(info, res, 0, clips, expected, clf.labels, frame_scores=True)
    for i, c in enumerate(clips):
        frames = res[f"m0_frames_{i}"]
        assert frames.shape == (clf.backbone.num_frames(len(c)), 3)  # one row per 20 ms
        np.testing.assert_allclose(frames.mean(axis=0), expected[i], **same_computation(expected[i]))
    lengths = np.array([len(c) for c in clips], np.int32)
    batch = np.zeros([len(clips), lengths.max()], np.float32)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    softmax = tf.nn.softmax(logits(model, {"waveform": batch, "length": lengths})).numpy()
    check_served(info, res, 1, clips, softmax, ("tone", "noise"))


@pytest.mark.slow
def test_classifier_exports_to_tflite(w2v_classifier, tmp_path):
    pytest.importorskip("mediapipe", reason="TFLite metadata needs mediapipe: pip install 'tfaudio[tflite]'")
    from tfaudio.export.tflite import export_tflite, read_metadata

    clf = w2v_classifier
    path = export_tflite(clf, tmp_path / "w2v.tflite", window_samples=16000)
    it = tflite_interpreter(path)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape"]) == [1, 16000] and list(out["shape"]) == [1, 3]
    ops = {op["op_name"] for op in it._get_ops_details()}
    assert not any("FLEX" in op or op == "CUSTOM" for op in ops), ops
    it.allocate_tensors()
    windows = [clip(16000, seed=5), np.pad(sine(300, 0.5, RATE), (0, 8000))]
    expected = clf.predict_scores(windows)
    for w, e in zip(windows, expected, strict=True):
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        np.testing.assert_allclose(it.get_tensor(out["index"])[0], e, atol=1e-4)
    meta = read_metadata(path)
    assert meta["associated_files"]["labels.txt"].split() == list(clf.labels)
    assert "wav2vec2 backbone + tfaudio head" in meta["description"]
    with pytest.raises(TfaudioError, match="at least 400 samples"):
        export_tflite(clf, tmp_path / "short.tflite", window_samples=399)

"""EfficientATBackbone: the checkpoint reader (no PyTorch) and its errors, weight resolution, the
frontend against a float64 numpy reference, parity of the body with the reference TFLite model on real
clips, plausible tags, batch = single, frame means = the model's pooling, and TFLite conversion."""
from __future__ import annotations

import csv
import functools
import pathlib
import shutil
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import noise, same_computation, shared, silence, sine
from tfaudio.backbones.efficientat import backbone as eb
from tfaudio.backbones.efficientat import frontend as fe
from tfaudio.backbones.efficientat.backbone import EfficientATBackbone, build_body, expected_state_shapes
from tfaudio.backbones.efficientat.params import RELEASES, EfficientATParams, make_divisible, width_from_name
from tfaudio.backbones.efficientat.torch_checkpoint import read_state_dict
from tfaudio.errors import TfaudioError, WeightsNotFoundError
from tfaudio.signal.melspec import tflite_compatible

CKPT = ("models", "efficientat", "mn04_as_mAP_432.pt")
REFERENCE = ("models", "efficientat", "mn04_as_reference.tflite")
RATE = 32000


# ---- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eat():
    shared(*CKPT)
    from tfaudio.backbones.registry import get_backbone

    return get_backbone("efficientat:mn04_as")


@pytest.fixture(scope="module")
def checkpoint():
    return shared(*CKPT)


def _load32k(path) -> np.ndarray:
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample

    audio, rate = load_audio(path)
    return np.asarray(resample(audio, rate, RATE)) if rate != RATE else audio


def _rewrite(src: pathlib.Path, dest: pathlib.Path, edits=None, drop=()) -> pathlib.Path:
    """A copy of the zip ``src`` with some entries edited (name → bytes → bytes) or left out."""
    edits = edits or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            zout.writestr(info, edits[info.filename](data) if info.filename in edits else data)
    return dest


@functools.lru_cache(maxsize=1)
def _reference_banks() -> np.ndarray:
    """Kaldi's triangles (torchaudio.compliance.kaldi.get_mel_banks, no warp) for 128 bands 0–15 kHz on
    the 512 bins of a 1024-point DFT at 32 kHz, plus a zero Nyquist row: [513, 128] float64."""

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    step = (mel(15000.0) - mel(0.0)) / 129
    banks = np.zeros((513, 128))
    for b in range(128):
        left, center, right = b * step, (b + 1) * step, (b + 2) * step
        for k in range(512):
            m = mel(k * 32000 / 1024)
            banks[k, b] = max(0.0, min((m - left) / (center - left), (right - m) / (right - center)))
    return banks


def _reference_log_mel(x: np.ndarray) -> np.ndarray:
    """EfficientAT's recipe in float64 numpy, written independently of the module under test:
    pre-emphasis, centred reflect-padded 1024-point frames with a symmetric 800-point Hann window in
    the middle, power, Kaldi mel banks 0–15 kHz (+ a zero Nyquist row), log(+1e-5), (x + 4.5) / 5."""
    x = np.asarray(x, np.float64)
    y = x[1:] - 0.97 * x[:-1]
    padded = np.pad(y, 512, mode="reflect")
    frames = 1 + len(y) // 320
    window = np.zeros(1024)
    window[112:912] = np.hanning(800)
    power = np.abs(np.fft.rfft(np.stack([padded[t * 320 : t * 320 + 1024] for t in range(frames)]) * window)) ** 2
    return (np.log(power @ _reference_banks() + 1e-5) + 4.5) / 5.0


def _logits_model(body: keras.Model) -> keras.Model:
    return keras.Model(body.inputs, body.get_layer("classifier.5").output)


# ---- architecture as data ------------------------------------------------------------------------
def test_make_divisible_and_widths():
    assert [make_divisible(c * 0.4) for c in (16, 64, 24, 72, 40, 120, 240, 80, 200, 184, 480, 112, 672, 160, 960)] \
        == [8, 24, 16, 32, 16, 48, 96, 32, 80, 72, 192, 48, 272, 64, 384]
    assert make_divisible(1280 * 0.4) == 512 and make_divisible(16 * 0.1) == 8
    mn04 = EfficientATParams(0.4)
    assert (mn04.embedding_dim, mn04.hidden_units, mn04.num_halvings) == (384, 512, 5)
    assert [b.se_channels for b in mn04.blocks if b.se_channels] == [8, 16, 16, 48, 72, 72, 96, 96]
    assert width_from_name("mn04_as_mAP_432.pt") == 0.4 and width_from_name("mn40_as_ext_mAP_487.pt") == 4.0
    assert width_from_name("mn10_as") == 1.0 and width_from_name("dymn10_as.pt") is None
    assert width_from_name("mn10_as_hop_5_mAP_475.pt") is None
    with pytest.raises(ValueError, match="width_mult"):
        EfficientATParams(0.0)


@pytest.mark.slow
@pytest.mark.parametrize("width", [0.1, 1.0])
def test_layer_table_matches_the_keras_body(width):
    """The torch layout derived from the table is exactly the Keras body's (any width)."""
    params = EfficientATParams(width)
    body = build_body(params)
    derived = {k: eb._torch_shape(v, axes) for k, (v, axes) in eb._torch_layout(body).items()}
    assert derived == expected_state_shapes(params)
    frame_emb, clip_emb, scores = body.outputs
    assert frame_emb.shape[-1] == clip_emb.shape[-1] == params.embedding_dim and scores.shape[-1] == 527


# ---- the checkpoint reader -----------------------------------------------------------------------
def test_reads_the_official_checkpoint_without_torch(checkpoint):
    state = read_state_dict(checkpoint)
    assert state["features.0.0.weight"].shape == (8, 1, 3, 3) and state["features.0.0.weight"].dtype == np.float32
    assert state["classifier.5.weight"].shape == (527, 512) and state["classifier.2.weight"].shape == (512, 384)
    assert state["features.0.1.num_batches_tracked"].dtype == np.int64
    shapes = {k: v.shape for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert shapes == expected_state_shapes(EfficientATParams(0.4))
    assert eb.infer_width(state) == 0.4
    assert all(np.isfinite(v).all() for v in state.values())
    assert all((state[k] > 0).all() for k in state if k.endswith("running_var"))


def test_reader_refuses_other_globals(checkpoint, tmp_path):
    """A pickle naming anything but the tensor rebuilders is refused, never executed."""
    bad = _rewrite(checkpoint, tmp_path / "evil.pt",
                   {"archive/data.pkl": lambda d: d.replace(b"ccollections\nOrderedDict\n", b"cos\nsystem\n")})
    with pytest.raises(WeightsNotFoundError, match=r"evil\.pt: .*os\.system.*refused"):
        read_state_dict(bad)


@pytest.mark.parametrize("damage", ["random", "no-pickle", "cut", "short-storage", "missing-storage", "bad-pickle"])
def test_damaged_files_give_clear_errors(checkpoint, tmp_path, damage):
    path = tmp_path / f"{damage}.pt"
    raw = checkpoint.read_bytes()
    if damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "cut":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "no-pickle":
        _rewrite(checkpoint, path, drop={"archive/data.pkl"})
    elif damage == "short-storage":
        _rewrite(checkpoint, path, {"archive/data/0": lambda d: d[: len(d) // 2]})
    elif damage == "missing-storage":
        _rewrite(checkpoint, path, drop={"archive/data/3"})
    else:
        _rewrite(checkpoint, path, {"archive/data.pkl": lambda d: d[: len(d) // 2]})
    with pytest.raises(WeightsNotFoundError) as err:
        EfficientATBackbone.from_pretrained(path)
    msg = str(err.value)
    assert str(path) in msg and "Fix:" in msg
    expected = {"random": "not a zip", "cut": "not a zip", "no-pickle": "without data.pkl",
                "short-storage": "truncated", "missing-storage": "missing", "bad-pickle": "truncated or damaged"}
    assert expected[damage] in msg


@pytest.mark.slow
def test_other_architecture_or_width_is_refused(checkpoint, tmp_path):
    renamed = _rewrite(checkpoint, tmp_path / "other_head.pt",
                       {"archive/data.pkl": lambda d: d.replace(b"classifier.5", b"classifier.7")})
    with pytest.raises(WeightsNotFoundError, match=r"other_head\.pt: not an EfficientAT mn model.*classifier\.5.*Fix:"):
        EfficientATBackbone.from_pretrained(renamed)
    with pytest.raises(WeightsNotFoundError, match=r"width 0\.4, not the expected 1.*Fix:"):
        EfficientATBackbone.from_checkpoint(checkpoint, width_mult=1.0)
    # a file named like another width is checked against that width
    misnamed = tmp_path / "mn10_as_mAP_471.pt"
    shutil.copy(checkpoint, misnamed)
    with pytest.raises(WeightsNotFoundError, match="width 0.4, not the expected 1"):
        EfficientATBackbone.from_pretrained(misnamed)
    # assigning into a backbone of another width names both widths
    state = read_state_dict(checkpoint)
    with pytest.raises(WeightsNotFoundError, match=r"width 0\.4, but this backbone has width 0\.5"):
        EfficientATBackbone(EfficientATParams(0.5)).assign_state_dict(state, str(checkpoint))


# ---- resolution ----------------------------------------------------------------------------------
def test_release_table():
    mn04 = RELEASES["mn04_as"]
    assert mn04.url == "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt"
    assert {r.width_mult for r in RELEASES.values()} == {0.1, 0.2, 0.4, 0.5, 1.0, 2.0, 3.0, 4.0}
    from tfaudio.datasets import sha256_of

    assert sha256_of(shared(*CKPT)) == mn04.sha256


def test_resolution_order_and_offline_error(checkpoint, tmp_path, monkeypatch):
    empty_shared, cache = tmp_path / "shared", tmp_path / "cache"
    empty_shared.mkdir()
    monkeypatch.setenv("TFAUDIO_SHARED", str(empty_shared))
    monkeypatch.setenv("TFAUDIO_CACHE", str(cache))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as err:
        eb._resolve_release("mn04_as")
    msg = str(err.value)
    cached = cache / "models" / "efficientat" / "mn04_as_mAP_432.pt"
    assert "TFAUDIO_OFFLINE=1" in msg and str(cached) in msg and RELEASES["mn04_as"].url in msg
    assert str(empty_shared / "models" / "efficientat" / "mn04_as_mAP_432.pt") in msg
    # the cache is used when ../shared lacks the file
    cached.parent.mkdir(parents=True)
    shutil.copy(checkpoint, cached)
    assert eb._resolve_release("mn04_as") == cached
    # ../shared comes first
    (empty_shared / "models" / "efficientat").mkdir(parents=True)
    first = empty_shared / "models" / "efficientat" / "mn04_as_mAP_432.pt"
    shutil.copy(checkpoint, first)
    assert eb._resolve_release("mn04_as") == first
    # a damaged copy (same size, other bytes) is refused with its hash
    raw = bytearray(checkpoint.read_bytes())
    raw[-100] ^= 0xFF
    first.write_bytes(bytes(raw))
    with pytest.raises(WeightsNotFoundError, match=r"mn04_as_mAP_432\.pt: sha256 .* damaged or replaced\. Fix"):
        eb._resolve_release("mn04_as")
    first.write_bytes(bytes(raw[:1000]))
    with pytest.raises(WeightsNotFoundError, match=r"1000 bytes, but the official .* has 4066513"):
        eb._resolve_release("mn04_as")


def test_download_and_recorded_hashes(checkpoint, tmp_path, monkeypatch):
    """Online, a release missing locally is fetched into the cache with its known SHA-256 (None:
    recorded on first download); a download that contradicts the known size/hash is deleted."""
    empty_shared, cache = tmp_path / "shared", tmp_path / "cache"
    empty_shared.mkdir()
    monkeypatch.setenv("TFAUDIO_SHARED", str(empty_shared))
    monkeypatch.setenv("TFAUDIO_CACHE", str(cache))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "0")
    calls = []

    def fake_fetch(url, dest, *, sha256=None, progress=True):  # stands in for the network
        calls.append((url, pathlib.Path(dest), sha256))
        pathlib.Path(dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(checkpoint, dest)
        if sha256 is None:
            pathlib.Path(str(dest) + ".sha256").write_text("0" * 64 + "\n")
        return pathlib.Path(dest)

    monkeypatch.setattr(eb, "fetch", fake_fetch)
    folder = cache / "models" / "efficientat"
    assert eb._resolve_release("mn04_as") == folder / "mn04_as_mAP_432.pt"
    assert calls[-1] == (RELEASES["mn04_as"].url, folder / "mn04_as_mAP_432.pt", RELEASES["mn04_as"].sha256)
    with pytest.raises(WeightsNotFoundError, match="has 19708753"):  # mn10's known size
        eb._resolve_release("mn10_as")
    assert not (folder / "mn10_as_mAP_471.pt").exists()
    # no published hash: the recorded one is checked (here it does not match)
    with pytest.raises(WeightsNotFoundError, match="damaged or replaced"):
        eb._resolve_release("mn02_as")
    assert calls[-1][2] is None and not (folder / "mn02_as_mAP_378.pt").exists()


def test_unknown_name_and_registry_dispatch(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match=r"mn99_as: neither an EfficientAT release name .*Fix"):
        EfficientATBackbone.from_pretrained("mn99_as")
    calls = []
    monkeypatch.setattr(EfficientATBackbone, "from_pretrained", classmethod(lambda cls, s=None, **k: calls.append(s)))
    from tfaudio.backbones.registry import get_backbone

    pt = tmp_path / "x.pt"
    pt.write_bytes(b"")
    for spec in ("efficientat", "efficientat:mn10_as", f"efficientat:{pt}", str(pt), {"name": "efficientat"}):
        get_backbone(spec)
    assert calls == [None, "mn10_as", str(pt), str(pt), None]


# ---- frontend ------------------------------------------------------------------------------------
def test_mel_matrix():
    m = fe.kaldi_mel_matrix()
    assert m.shape == (513, 128) and m.dtype == np.float32
    np.testing.assert_allclose(m, _reference_banks(), atol=1e-7)
    assert not m[512].any() and not m[0].any()  # Nyquist row padded; 0 Hz sits on the first band's edge
    assert not m[481:].any()  # nothing above 15 kHz (bin 480 = 15000 Hz)
    peaks = m.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all() and m.max() <= 1.0
    with pytest.raises(ValueError, match="Nyquist"):
        fe.kaldi_mel_matrix(fe.EfficientATFrontendConfig(upper_edge_hertz=17000))


@pytest.mark.parametrize("stft_path", ["rfft", "dft-matmul"])
@pytest.mark.parametrize("signal", ["silence", "noise", "sine", "real"])
def test_frontend_equals_float64_reference(signal, stft_path):
    if signal == "real":
        x = _load32k(shared("data", "animals-mp3", "dog.mp3"))[: 2 * RATE + 321]
    else:
        x = {"silence": silence(1.0, RATE), "noise": noise(1.0, RATE, seed=3),
             "sine": sine(1000, 1.0, RATE) + noise(1.0, RATE, seed=4, amplitude=1e-3)}[signal]
    with tflite_compatible(stft_path == "dft-matmul"):
        ours = fe.log_mel(x).numpy()
    ref = _reference_log_mel(x)
    assert ours.shape == ref.shape == (fe.num_frames(len(x)), 128)
    # float32 power sums: ~1e-6 relative to the loudest bin; quiet bands are near the 1e-5 floor
    err = np.abs(ours - ref).max()
    assert err < 1e-4, err
    if signal == "silence":
        np.testing.assert_allclose(ours, (np.log(1e-5) + 4.5) / 5, rtol=1e-6)


def test_frontend_batch_equals_single():
    lengths = [40000, 9000, 33000]
    x = np.zeros([3, 40000], np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = noise(n / RATE, RATE, seed=i)
    batch = fe.log_mel(x, lengths).numpy()
    assert batch.shape == (3, fe.num_frames(40000), 128)
    for i, n in enumerate(lengths):
        alone = fe.log_mel(x[i, :n]).numpy()
        assert alone.shape[0] == fe.num_frames(n) == 1 + (n - 1) // 320
        np.testing.assert_allclose(batch[i, : len(alone)], alone, atol=1e-6)
        assert not batch[i, len(alone):].any()


# ---- the model -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_contract_and_identity(eat):
    c = eat.contract
    assert (c.sample_rate, c.hop_seconds, c.frame_seconds, c.embedding_dim) == (32000, 0.32, 0.32, 384)
    assert c.min_samples == 10240 and c.window_samples == 32000
    assert eat.class_names[:2] == ["Speech", "Male speech, man speaking"] and len(eat.class_names) == 527
    assert eat.spec() == {"name": "efficientat", "source": "mn04_as"}
    assert eat.fingerprint.startswith("efficientat-") and eat.fingerprint == eat.fingerprint
    assert eat.frontend_scope == "frontend"
    assert len(eat.variables) == len(expected_state_shapes(eat.params))  # every tensor but the BN counters
    assert eat.body.count_params() == sum(int(np.prod(s)) for s in expected_state_shapes(eat.params).values())
    assert [eat.num_frames(n) for n in (0, 10240, 10241, 32000, 320000)] == [1, 1, 2, 4, 32]
    for n in (10240, 10241, 32000, 160000):  # the base class' formula agrees
        assert eat.num_frames(n) == 1 + int(np.ceil(max(0, n - c.min_samples) / c.hop_samples))
    # the same weights loaded by path: same fingerprint, the path as source
    from tfaudio.backbones.registry import get_backbone

    by_path = get_backbone(str(shared(*CKPT)), window_seconds=0.96)
    assert by_path.spec() == {"name": "efficientat", "source": str(shared(*CKPT)), "window_seconds": 0.96}
    assert by_path.contract.window_samples == 30720
    assert by_path.fingerprint == eat.fingerprint  # neither the file's location nor the window matter


def _reference_inputs(paths):
    """Log-mel inputs of the reference model: each clip at 32 kHz, cut or zero-padded to 10 s + 1
    sample (the 1001 frames its input has)."""
    out = []
    for p in paths:
        a = _load32k(p)
        x = np.zeros(10 * RATE + 1, np.float32)
        x[: min(len(a), len(x))] = a[: len(x)]
        out.append(fe.log_mel(x).numpy())
    return np.stack(out)  # [N, 1001, 128]


@pytest.mark.slow
def test_body_matches_reference_tflite(eat):
    """The Keras body on given log-mels against the third-party TFLite conversion (which outputs
    logits, not sigmoid scores) on real clips."""
    from tfaudio.interpreter import tflite_interpreter

    esc = shared("data", "esc50-subset")
    with open(esc / "meta" / "esc50.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["filename"])
    picks = [next(r for r in rows if r["category"] == c)["filename"] for c in ("dog", "rooster", "rain", "crying_baby")]
    paths = sorted(shared("data", "animals-mp3").glob("*.mp3")) + [esc / "audio" / n for n in picks]
    log_mel = _reference_inputs(paths)
    assert log_mel.shape[1:] == (1001, 128)
    it = tflite_interpreter(shared(*REFERENCE))
    inp, outp = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    ref_logits = []
    for lm in log_mel:
        it.set_tensor(inp, np.ascontiguousarray(lm.T[None, :, :, None]))
        it.invoke()
        ref_logits.append(it.get_tensor(outp)[0].copy())
    ref_logits = np.stack(ref_logits)
    counts = np.full([len(paths)], 1001, np.int32)
    logits = _logits_model(eat.body)([log_mel, counts]).numpy()
    scores = eat.body([log_mel, counts])[2].numpy()
    ref_scores = 1 / (1 + np.exp(-ref_logits.astype(np.float64)))
    # measured: 527 scores within 5.4e-7, logits within ~1e-5 (float32 summation order)
    assert np.abs(scores - ref_scores).max() < 1e-5
    assert np.abs(logits - ref_logits).max() < 1e-3
    assert (np.argsort(-scores, 1)[:, :5] == np.argsort(-ref_logits, 1)[:, :5]).all()


def _top(eat, scores, k=3):
    return [eat.class_names[i] for i in np.argsort(-np.asarray(scores))[:k]]


@pytest.mark.slow
def test_tags_real_clips_plausibly(eat):
    names = ("dog", "cow", "duck", "rooster", "sheep")
    clips = [_load32k(shared("data", "animals-mp3", f"{n}.mp3")) for n in names]
    width = max(len(c) for c in clips)
    batch = np.stack([np.pad(c, (0, width - len(c))) for c in clips])
    scores = eat.clip_scores(batch, [len(c) for c in clips]).numpy()
    tops = {n: _top(eat, s) for n, s in zip(names, scores)}
    assert {"Dog", "Bark"} & set(tops["dog"]), tops["dog"]
    assert {"Cattle, bovinae", "Moo"} & set(tops["cow"]), tops["cow"]
    assert {"Duck", "Quack"} & set(tops["duck"]), tops["duck"]
    assert {"Chicken, rooster", "Crowing, cock-a-doodle-doo"} & set(tops["rooster"]), tops["rooster"]
    assert {"Sheep", "Bleat"} & set(tops["sheep"]), tops["sheep"]
    assert scores[0, eat.class_names.index("Dog")] > 0.2
    silent = eat.clip_scores(np.zeros([1, RATE], np.float32)).numpy()[0]
    assert silent.max() < 0.5  # silence tags nothing with confidence


@pytest.mark.slow
@pytest.mark.parametrize("batch_lengths", [[50000], [70003, 3000, 41000]])
def test_padded_batch_equals_each_clip_alone(eat, batch_lengths):
    """Mixed lengths (one below min_seconds): every output of a clip in a zero-padded batch equals the
    clip alone; frames past its end are masked and zero; the frames' mean is the model's pooling."""
    width = max(batch_lengths) + 777
    x = np.zeros([len(batch_lengths), width], np.float32)
    for i, n in enumerate(batch_lengths):
        x[i, :n] = noise(n / RATE, RATE, seed=10 + i, amplitude=0.2) + sine(300 * (i + 1), n / RATE, RATE, 0.3)
    x[:, -777:] = 0.5  # junk past every length: must not leak in
    out = eat.batch_outputs(x, batch_lengths)
    assert set(out) == {"embeddings", "mask", "clip_scores", "clip_embedding"}
    for i, n in enumerate(batch_lengths):
        alone = eat.batch_outputs(x[i : i + 1, :n])
        frames = eat.num_frames(n)
        assert int(out["mask"][i].numpy().sum()) == int(alone["mask"][0].numpy().sum()) == frames
        emb = out["embeddings"][i].numpy()
        np.testing.assert_allclose(emb[:frames], alone["embeddings"][0].numpy(), atol=2e-5, rtol=1e-4)
        assert not emb[frames:].any()
        np.testing.assert_allclose(out["clip_scores"][i], alone["clip_scores"][0], atol=2e-6)
        np.testing.assert_allclose(out["clip_embedding"][i], alone["clip_embedding"][0], atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(emb[:frames].mean(0), out["clip_embedding"][i], atol=1e-5, rtol=1e-4)
        # the data pipeline's split path (log-mel per clip, body on the padded features) agrees
        feats = eat.clip_features(x[i, :n])
        split = eat.batch_features_outputs(feats[None], [feats.shape[0]])
        np.testing.assert_allclose(split["clip_scores"][0], alone["clip_scores"][0], atol=2e-6)
        # frames() of the base class gives the same frames
        np.testing.assert_allclose(eat.frames(x[i, :n]), alone["embeddings"][0][:frames], **same_computation(alone["embeddings"]))


@pytest.mark.slow
def test_frame_mean_is_the_models_pooling(eat):
    """On a real clip of 26 whole 0.32 s columns, the frames average to the body's global pool (the
    torch model's ``F.adaptive_avg_pool2d``), and the classifier on that mean gives the clip scores."""
    x = _load32k(shared("data", "animals-mp3", "owl.mp3"))[: 26 * 10240]
    out = eat.batch_outputs(x[None])
    emb = out["embeddings"][0].numpy()
    assert emb.shape == (26, 384) and out["mask"][0].numpy().all()
    np.testing.assert_allclose(emb.mean(0), out["clip_embedding"][0], atol=1e-5, rtol=1e-5)
    head = keras.Sequential([eat.body.get_layer("classifier.2"), eat.body.get_layer("classifier.3"),
                             eat.body.get_layer("classifier.5"), keras.layers.Activation("sigmoid")])
    np.testing.assert_allclose(head(emb.mean(0)[None]), out["clip_scores"], **same_computation(out["clip_scores"]))


@pytest.mark.slow
def test_graph_outputs_convert_to_tflite_builtins(eat):
    """graph_outputs traced with unknown batch and length converts with TFLITE_BUILTINS only (the DFT
    matmul frontend) and matches Keras on a fixed window."""
    from tfaudio.interpreter import tflite_interpreter

    module = tf.Module()
    module.weights = eat.variables
    spec = [tf.TensorSpec([None, None], tf.float32, name="waveforms"), tf.TensorSpec([None], tf.int32, name="lengths")]
    with tflite_compatible():
        concrete = tf.function(eat.graph_outputs, input_signature=spec, autograph=False).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    blob = converter.convert()
    it = tflite_interpreter(model_content=blob)
    window = _load32k(shared("data", "animals-mp3", "dog.mp3"))[None, RATE : RATE + eat.contract.window_samples]
    inputs = {d["name"]: d for d in it.get_input_details()}
    wave_in = next(d for n, d in inputs.items() if "waveforms" in n)
    len_in = next(d for n, d in inputs.items() if "lengths" in n)
    it.resize_tensor_input(wave_in["index"], window.shape)
    it.resize_tensor_input(len_in["index"], [1])
    it.allocate_tensors()
    it.set_tensor(wave_in["index"], np.ascontiguousarray(window, np.float32))
    it.set_tensor(len_in["index"], np.array([window.shape[1]], np.int32))
    it.invoke()
    expected = eat.batch_outputs(window)
    got = {}
    for d in it.get_output_details():
        value = it.get_tensor(d["index"])
        key = next(k for k, v in expected.items() if tuple(v.shape) == value.shape and v.dtype == tf.as_dtype(value.dtype)
                   and k not in got)
        got[key] = value
    assert set(got) == set(expected)
    np.testing.assert_array_equal(got["mask"], expected["mask"])
    np.testing.assert_allclose(got["clip_scores"], expected["clip_scores"], atol=1e-5)
    np.testing.assert_allclose(got["embeddings"], expected["embeddings"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["clip_embedding"], expected["clip_embedding"], atol=1e-4, rtol=1e-4)


def test_bad_batches_are_refused(eat):
    with pytest.raises(TfaudioError, match="batch of mono waveforms"):
        eat.batch_outputs(np.zeros([2, 3, 100], np.float32))
    with pytest.raises(TfaudioError, match="log-mel frames"):
        eat.batch_features_outputs(np.zeros([1, 10, 64], np.float32), [10])
    empty = eat.batch_outputs(np.zeros([0, 100], np.float32))
    assert empty["clip_scores"].shape == (0, 527)

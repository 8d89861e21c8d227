"""Extraction engines: the choice follows the CPU's instruction sets and falls back cleanly where an
instruction set, an interpreter or a TFLite body is missing; the embedding cache never mixes engines;
an engine's embeddings stay within cosine 0.999 of float32's."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import shared
from tfaudio.backbones import engines
from tfaudio.backbones.engines import choose_engine, cpu_features
from tfaudio.errors import TfaudioError

BF16 = frozenset({"avx512f", "avx512_vnni", "avx512_bf16"})
VNNI = frozenset({"avx512f", "avx512_vnni"})


class _YAMNetLike:
    """Only the type name matters to the choice (tflite runs YAMNet's body); enough of a backbone for a
    cache's namespace."""

    body = object()
    fingerprint = "yamnet-0123456789abcdef"

    class contract:  # noqa: N801 - stands for an InputContract
        sample_rate = 16000

    def embed_patches(self, patches):  # pragma: no cover - never called
        raise AssertionError


_YAMNetLike.__name__ = "YAMNetBackbone"


class _OtherBackbone:
    pass


class _EfficientATLike:
    def _body_outputs(self, log_mel, counts):  # pragma: no cover - never called
        raise AssertionError


_EfficientATLike.__name__ = "EfficientATBackbone"


def test_cpu_features_read_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: test\nflags\t\t: fpu avx512f avx512_vnni avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_features(info) == {"fpu", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert cpu_features(tmp_path / "missing") == frozenset()  # no /proc/cpuinfo (macOS): nothing assumed
    assert engines.bfloat16_native(cpu_features(info))
    assert not engines.bfloat16_native(VNNI)


def test_auto_follows_the_cpu_and_falls_back(monkeypatch):
    yamnet, other, eat = _YAMNetLike(), _OtherBackbone(), _EfficientATLike()
    monkeypatch.setattr(engines, "_tflite_available", lambda: True)
    assert choose_engine("auto", backbone=yamnet, features=BF16).name == "bfloat16"
    # EfficientAT ran slower in bfloat16 even natively (BENCHMARKS.md): auto runs its TFLite body, a
    # request runs bfloat16
    assert choose_engine("auto", backbone=eat, features=BF16).name == "tflite"
    assert choose_engine("auto", backbone=eat, features=VNNI).name == "tflite"
    assert choose_engine("bfloat16", backbone=eat, features=BF16).name == "bfloat16"
    assert choose_engine("auto", backbone=other, features=BF16).name == "float32"  # no engine runs it
    # VNNI only, or no /proc/cpuinfo: no emulated bfloat16; YAMNet's TFLite body instead
    assert choose_engine("auto", backbone=yamnet, features=VNNI).name == "tflite"
    assert choose_engine("auto", backbone=yamnet, features=frozenset()).name == "tflite"
    # no interpreter importable (neither LiteRT, tflite-runtime nor TensorFlow's): float32, with the reason
    monkeypatch.setattr(engines, "_tflite_available", lambda: False)
    for backbone, features in ((eat, BF16), (yamnet, VNNI)):
        choice = choose_engine("auto", backbone=backbone, features=features)
        assert choice.name == "float32" and "interpreter" in choice.reason and not choice.fell_back
    assert choose_engine("auto", backbone=yamnet, features=BF16).name == "bfloat16"  # needs no interpreter


def test_requested_engines_fall_back_with_the_reason(monkeypatch):
    yamnet, other, eat = _YAMNetLike(), _OtherBackbone(), _EfficientATLike()
    monkeypatch.setattr(engines, "_tflite_available", lambda: True)
    bf16 = choose_engine("bfloat16", backbone=eat, features=VNNI)  # emulated bfloat16: slower, refused
    assert bf16.name == "float32" and bf16.fell_back and "AVX512_BF16" in bf16.reason
    assert choose_engine("bfloat16", backbone=eat, features=BF16).name == "bfloat16"
    assert "does not run" in choose_engine("bfloat16", backbone=other, features=BF16).reason
    lite = choose_engine("tflite", backbone=other, features=BF16)
    assert lite.name == "float32" and "no TFLite body" in lite.reason
    assert choose_engine("tflite", backbone=yamnet, features=BF16).name == "tflite"
    monkeypatch.setattr(engines, "_tflite_available", lambda: False)
    missing = choose_engine("tflite", backbone=yamnet, features=BF16)
    assert missing.name == "float32" and "interpreter" in missing.reason
    assert choose_engine("float32", backbone=yamnet, features=BF16).name == "float32"
    monkeypatch.setenv("TFAUDIO_ENGINE", "float32")
    assert choose_engine(None, backbone=yamnet, features=BF16).name == "float32"
    with pytest.raises(TfaudioError, match="Fix: choose one of auto, float32"):
        choose_engine("int4", backbone=yamnet)


@pytest.fixture(autouse=True)
def _engine_models_in_tmp(tmp_path, monkeypatch):
    """Converted TFLite bodies go to a temporary cache, not ~/.cache."""
    monkeypatch.setenv("TFAUDIO_CACHE", str(tmp_path / "tfaudio-cache"))


@pytest.fixture(scope="module")
def yamnet():
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone

    return YAMNetBackbone.from_h5(shared("models", "yamnet", "yamnet.h5"))


def test_cache_namespaces_never_mix_engines(tmp_path, monkeypatch):
    from tfaudio.data.embedding_cache import EmbeddingCache

    yamnet = _YAMNetLike()
    monkeypatch.setattr(engines, "_tflite_available", lambda: True)
    monkeypatch.setattr(engines, "cpu_features", lambda path=None: BF16)
    caches = {e: EmbeddingCache(yamnet, tmp_path, engine=e) for e in ("float32", "bfloat16", "tflite")}
    assert {c.engine.name for c in caches.values()} == {"float32", "bfloat16", "tflite"}
    assert len({c.directory for c in caches.values()}) == 3
    # float32 keeps the namespace caches had before engines existed (no "engine" in its settings)
    assert "engine" not in caches["float32"].settings
    assert caches["tflite"].settings["engine"] == "tflite"
    # auto resolves before the key: the same CPU gives the namespace of the engine it picked
    assert EmbeddingCache(yamnet, tmp_path, engine="auto").directory == caches["bfloat16"].directory
    monkeypatch.setattr(engines, "cpu_features", lambda path=None: VNNI)
    assert EmbeddingCache(yamnet, tmp_path, engine="auto").directory == caches["tflite"].directory
    monkeypatch.setattr(engines, "_tflite_available", lambda: False)
    assert EmbeddingCache(yamnet, tmp_path, engine="auto").directory == caches["float32"].directory


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def _clips(seconds=(1.5, 3.0)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * max(seconds))) / 16000
    out = []
    for i, s in enumerate(seconds):
        tone = 0.3 * np.sin(2 * np.pi * (300 + 500 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t))
        out.append((tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)[: int(16000 * s)])
    return out


@pytest.mark.slow  # converting YAMNet's body to TFLite takes ~10-60 s
def test_tflite_engine_keeps_the_embeddings(yamnet):
    pytest.importorskip("tensorflow")
    clips = _clips()
    width = max(len(c) for c in clips)
    batch = np.stack([np.pad(c, (0, width - len(c))) for c in clips])
    lengths = np.array([len(c) for c in clips], np.int32)
    ref, ref_mask = yamnet.batch_frames(batch, lengths)
    frames, from_features = engines.engine_functions(yamnet, "tflite")
    emb, mask = frames(batch, lengths)
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(ref_mask))
    m = np.asarray(mask)
    assert _cosines(np.asarray(emb)[m], np.asarray(ref)[m]).min() >= 0.999
    # the cache's road: per-clip features, then the body
    feats = [np.asarray(yamnet.clip_features(c)) for c in clips]
    counts = np.array([len(f) for f in feats], np.int32)
    padded = np.stack([np.pad(f, ((0, counts.max() - len(f)), (0, 0), (0, 0))) for f in feats])
    emb2, mask2 = from_features(padded, counts)
    np.testing.assert_array_equal(np.asarray(mask2), np.asarray(ref_mask))
    assert _cosines(np.asarray(emb2)[m], np.asarray(ref)[m]).min() >= 0.999


@pytest.mark.skipif(not engines.bfloat16_native(), reason="this CPU has no native bfloat16 (AVX512_BF16/AMX)")
def test_bfloat16_engine_keeps_the_embeddings(yamnet):
    clips = _clips()
    width = max(len(c) for c in clips)
    batch = np.stack([np.pad(c, (0, width - len(c))) for c in clips])
    lengths = np.array([len(c) for c in clips], np.int32)
    ref, mask = yamnet.batch_frames(batch, lengths)
    emb, mask2 = engines.engine_functions(yamnet, "bfloat16")[0](batch, lengths)
    m = np.asarray(mask)
    np.testing.assert_array_equal(np.asarray(mask2), m)
    cos = _cosines(np.asarray(emb)[m], np.asarray(ref)[m])
    # bfloat16 really ran (not float32 again), and stays close: mean cosine >= 0.999; single frames reach
    # 0.995 on real audio (BENCHMARKS.md "Extraction engines"), which is why float32 stays the library default
    assert cos.max() < 1 - 1e-6, cos
    assert cos.mean() >= 0.999 and cos.min() >= 0.99, cos
    # the float32 road is untouched afterwards (the rewrite is scoped to the engine's own functions)
    again, _ = yamnet.batch_frames(batch, lengths)
    np.testing.assert_allclose(np.asarray(again), np.asarray(ref), atol=1e-5)


@pytest.mark.slow
def test_cache_extracts_with_its_engine(yamnet, tmp_path, monkeypatch):
    import soundfile as sf

    from tfaudio.data import embedding_cache
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest

    rows = []
    for i, clip in enumerate(_clips()):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, clip, 16000)
        rows.append({"path": str(path), "label": "a" if i == 0 else "b"})
    import pandas as pd

    manifest = Manifest(pd.DataFrame(rows), labels=("a", "b"))
    calls = []
    real = engines.engine_functions

    def spy(backbone, engine, **kwargs):
        calls.append(engine.name)
        return real(backbone, engine, **kwargs)

    monkeypatch.setattr(embedding_cache, "engine_functions", spy)  # patched where the cache calls it
    ref = EmbeddingCache(yamnet, tmp_path / "c", engine="float32").load(manifest, progress=False)
    lite = EmbeddingCache(yamnet, tmp_path / "c", engine="tflite").load(manifest, progress=False)
    assert calls == ["float32", "tflite"]  # each extracted (nothing read from the other's namespace)
    for a, b in zip(ref.embeddings, lite.embeddings, strict=True):
        assert a.shape == b.shape and _cosines(a, b).min() >= 0.999
    settings = [json.loads(p.read_text()) for p in sorted((tmp_path / "c").glob("*/settings.json"))]
    assert sorted(s.get("engine", "float32") for s in settings) == ["float32", "tflite"]
    # its converted body is on disk (where the backbone's first TFLite body keeps its models)
    assert list(yamnet.__dict__["_tfaudio_tflite_body"].directory.glob("yamnet-*.tflite"))


@pytest.mark.parametrize("command", ["train", "cv", "evaluate"])
def test_cli_engine_option_reaches_the_cache(command, tmp_path, monkeypatch):
    from tfaudio.cli import build_parser
    from tfaudio.commands._common import make_cache

    yamnet = _YAMNetLike()
    monkeypatch.setattr(engines, "cpu_features", lambda path=None: BF16)
    monkeypatch.delenv("TFAUDIO_ENGINE", raising=False)
    extra = ["model_dir"] if command == "evaluate" else []
    base = [command, *extra, "data.csv", "--cache", str(tmp_path), *([] if extra else ["--output", str(tmp_path)])]
    args = build_parser().parse_args([*base, "--engine", "float32"])
    assert make_cache(yamnet, args).engine.name == "float32"
    assert make_cache(yamnet, build_parser().parse_args(base)).engine.name == "bfloat16"  # auto by default
    monkeypatch.setenv("TFAUDIO_ENGINE", "float32")
    assert make_cache(yamnet, build_parser().parse_args(base)).engine.name == "float32"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--engine", "int4"])


def _matmul_function():
    """A fresh function (instantiated, so rewritten or not, at its first call)."""
    import tensorflow as tf

    return tf.function(lambda a, b: tf.matmul(tf.nn.relu(a), b), autograph=False)


def test_bfloat16_rewrite_stays_in_its_thread():
    """A float32 function first run in another thread while the bfloat16 rewrite is active stays float32
    (the rewrite is set in the calling thread's function options, not process-wide)."""
    import threading

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal([64, 256]).astype(np.float32), rng.standard_normal([256, 64]).astype(np.float32))
    exact = np.asarray(_matmul_function()(a, b))
    with engines.bfloat16_rewrite():
        rewritten = np.asarray(_matmul_function()(a, b))
    if np.allclose(rewritten, exact, rtol=0, atol=1e-5):
        pytest.skip("oneDNN's bfloat16 rewrite changes nothing in this TensorFlow build (oneDNN off?)")
    inside, release = threading.Event(), threading.Event()
    seen = {}

    def bfloat16_user():
        with engines.bfloat16_rewrite():
            inside.set()
            seen["bf16"] = np.asarray(_matmul_function()(a, b))
            release.wait(30)

    def float32_user():  # a new thread: its function options are built when it first calls a function
        seen["f32"] = np.asarray(_matmul_function()(a, b))

    holder = threading.Thread(target=bfloat16_user)
    holder.start()
    assert inside.wait(30)
    other = threading.Thread(target=float32_user)
    other.start()
    other.join(30)
    release.set()
    holder.join(30)
    np.testing.assert_allclose(seen["f32"], exact, rtol=0, atol=1e-5)  # float32, although bfloat16 was active
    assert not np.allclose(seen["bf16"], exact, rtol=0, atol=1e-5)  # while the other thread really ran bfloat16
    # and this thread is float32 again after the block
    np.testing.assert_allclose(np.asarray(_matmul_function()(a, b)), exact, rtol=0, atol=1e-5)

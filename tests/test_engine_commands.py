"""``--engine`` on ``tfaudio embed`` (Beam) and ``tfaudio tag``: the same option as train / cv / tune; the
Beam job writes into the namespace a local cache of the same engine uses, and its workers refuse an
engine they cannot run; tagging runs the engine it was given."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import ToyBackbone, shared
from tfaudio.backbones import engines
from tfaudio.errors import TfaudioError


def _engine_action(command: str):
    from tfaudio.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[command]
    return next(a for a in sub._actions if "--engine" in a.option_strings)


@pytest.mark.parametrize("command", ["embed", "tag"])
def test_embed_and_tag_offer_the_engine_option_of_train(command):
    train, other = _engine_action("train"), _engine_action(command)
    assert list(other.choices) == list(train.choices) == list(engines.ENGINES)
    assert other.help.startswith(train.help) and other.default is None  # None: $TFAUDIO_ENGINE or auto


def test_embed_command_passes_the_engine(monkeypatch, tmp_path):
    pytest.importorskip("apache_beam")
    from tfaudio.beam import embed
    from tfaudio.cli import main

    seen = []
    monkeypatch.setattr(embed, "run_embed", lambda *a, **kw: seen.append(kw["engine"]) or "done")
    data = str(shared("data", "esc50-subset"))
    assert main(["embed", data, "--classes", "dog", "-o", str(tmp_path), "--engine", "float32"]) == 0
    assert main(["embed", data, "--classes", "dog", "-o", str(tmp_path)]) == 0
    assert seen == ["float32", None]
    with pytest.raises(SystemExit):
        main(["embed", data, "-o", str(tmp_path), "--engine", "int4"])


def test_tag_command_passes_the_engine(monkeypatch, tmp_path):
    from tfaudio.cli import main
    from tfaudio.commands import tag

    seen = []
    monkeypatch.setattr(tag, "tag_files", lambda spec, files, k, **kw: seen.append(kw["engine"]) or [])
    assert main(["tag", "x.wav", "--engine", "bfloat16"]) == 0
    assert main(["tag", "x.wav"]) == 0
    assert seen == ["bfloat16", None]


def test_beam_worker_refuses_an_engine_it_cannot_run():
    pytest.importorskip("apache_beam")
    from tfaudio.beam.embed import BackboneModelHandler

    assert isinstance(BackboneModelHandler(ToyBackbone, None, 4).load_model(), ToyBackbone)
    # the driver planned the bfloat16 namespace; a worker that would fall back to float32 must not write into it
    with pytest.raises(TfaudioError, match="cannot run it: the bfloat16 engine does not run ToyBackbone"):
        BackboneModelHandler(ToyBackbone, None, 4, engine="bfloat16").load_model()


class _Scorer:
    """Enough of a ClipScorer for :func:`engines.scorer_engine`: a backbone and a traced ``batch``."""

    def __init__(self, backbone):
        self.backbone = backbone
        self._traced = {}

    def _graph(self, name):  # pragma: no cover - bfloat16 is never chosen for these
        raise AssertionError


def test_scorer_engine_falls_back_where_it_cannot_run(monkeypatch):
    monkeypatch.setattr(engines, "_tflite_available", lambda: True)
    toy = _Scorer(ToyBackbone())
    choice = engines.scorer_engine(toy, "bfloat16")
    assert choice.name == "float32" and choice.fell_back and toy._traced == {}
    no_backbone = _Scorer(None)  # a fine-tuned Keras model: nothing for an engine to run
    assert engines.scorer_engine(no_backbone, "auto").name == "float32" and no_backbone._traced == {}


# ---- real YAMNet ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def yamnet():
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone

    return YAMNetBackbone.from_h5(shared("models", "yamnet", "yamnet.h5"))


@pytest.fixture(scope="module")
def dog_clips():
    from tfaudio.data.manifest import Manifest

    esc = Manifest.from_source(shared("data", "esc50-subset")).select(["dog", "rooster"])
    return Manifest(esc.frame.iloc[[0, 1, -1]].reset_index(drop=True), labels=esc.labels)


def test_tag_runs_the_engine_it_is_given(yamnet, dog_clips, monkeypatch):
    from tfaudio.commands.tag import tag_files

    files = list(dog_clips.paths[:2])
    ref = tag_files(yamnet, files, top_k=5)  # the library default: float32
    # tflite runs the body only: tagging falls back to float32, exactly
    monkeypatch.setattr(engines, "_tflite_available", lambda: True)
    assert tag_files(yamnet, files, top_k=5, engine="tflite") == ref
    if not engines.bfloat16_native():
        pytest.skip("this CPU has no native bfloat16 (AVX512_BF16/AMX): the bfloat16 request falls back")
    bf16 = tag_files(yamnet, files, top_k=5, engine="bfloat16")
    for a, b in zip(ref, bf16, strict=True):
        assert [e["label"] for e in a["events"][:2]] == [e["label"] for e in b["events"][:2]]
        got = {e["label"]: e["score"] for e in b["events"]}
        assert all(abs(got[e["label"]] - e["score"]) <= 0.03 for e in a["events"] if e["label"] in got)
    # bfloat16 really ran (scores are not float32's to the 4 printed decimals everywhere)
    assert any(a["events"] != b["events"] for a, b in zip(ref, bf16, strict=True))


@pytest.mark.slow  # a Beam job on the DirectRunner (~5 s)
@pytest.mark.skipif(not engines.bfloat16_native(), reason="this CPU has no native bfloat16 (AVX512_BF16/AMX)")
def test_beam_embed_writes_the_engines_namespace(yamnet, dog_clips, tmp_path):
    pytest.importorskip("apache_beam")
    from tfaudio.beam.embed import run_embed
    from tfaudio.data.embedding_cache import EmbeddingCache

    root = tmp_path / "embeddings"
    result = run_embed(dog_clips, yamnet, root, shard_size=2, batch_size=2, engine="bfloat16")
    beam_cache = EmbeddingCache(yamnet, root, engine="bfloat16")
    assert result.directory == beam_cache.directory and str(result.engine).startswith("bfloat16")
    assert json.loads(result.job_index.read_text())["settings"]["engine"] == "bfloat16"
    assert beam_cache.missing(dog_clips) == []
    # a float32 cache on the same root finds none of them: engines never mix
    float_cache = EmbeddingCache(yamnet, root, engine="float32")
    assert float_cache.directory != beam_cache.directory and len(float_cache.missing(dog_clips)) == len(dog_clips)
    got = beam_cache.load(dog_clips, extract=False, progress=False)
    ref = float_cache.load(dog_clips, progress=False)
    for a, b in zip(got.embeddings, ref.embeddings, strict=True):
        cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
        assert a.shape == b.shape and cos.mean() >= 0.999
    assert max(float(np.abs(a - b).max()) for a, b in zip(got.embeddings, ref.embeddings, strict=True)) > 1e-4

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import ToyBackbone, noise, tone_dataset, write_audio
from tfaudio.data.embedding_cache import EmbeddingCache, decode_record, encode_record
from tfaudio.data.manifest import Manifest
from tfaudio.errors import AudioError


@pytest.fixture()
def data(tmp_path):
    return tone_dataset(tmp_path / "audio", n_per_class=4)


def cache(tmp_path, backbone=None, **kw):
    return EmbeddingCache(backbone or ToyBackbone(), tmp_path / "cache", shard_size=5, batch_size=3, **kw)


def test_extract_once_then_reuse(tmp_path, data):
    c = cache(tmp_path)
    first = c.extract(data, progress=False)
    assert (first.cached, first.extracted) == (0, len(data))
    calls = c.backbone.calls
    again = cache(tmp_path, c.backbone).extract(data, progress=False)
    assert (again.cached, again.extracted) == (len(data), 0) and c.backbone.calls == calls
    clips = c.load(data, progress=False)
    assert len(clips) == len(data) and list(clips.rows) == list(range(len(data)))
    # every clip equals the backbone run on that clip alone
    from tfaudio.io.decode import load_audio

    for i in (0, 5, 11):
        audio, _ = load_audio(data.paths[i])
        np.testing.assert_allclose(clips.embeddings[i], c.backbone.frames(audio), rtol=1e-5, atol=1e-5)
    x, y, clip = clips.frames()
    assert x.shape == (sum(len(e) for e in clips.embeddings), 8)
    assert (y == np.repeat(clips.targets, [len(e) for e in clips.embeddings])).all() and clip.max() == len(data) - 1


def test_shards_are_whole_and_indexed(tmp_path, data):
    c = cache(tmp_path)
    c.extract(data, progress=False)
    shards = sorted(c.directory.glob("shard-*.tfrecord"))
    assert len(shards) == 3  # 12 clips in shards of 5
    assert not list(c.directory.glob(".*tmp"))
    keys = [k for f in c.directory.glob("*.index.json") for k in json.loads(f.read_text())["keys"]]
    assert sorted(keys) == sorted(c.keys(data))
    settings = json.loads((c.directory / "settings.json").read_text())
    assert settings["fingerprint"] == "toy-toy-8" and settings["sample_rate"] == 16000


def test_changed_file_invalidates_only_that_clip(tmp_path, data):
    c = cache(tmp_path)
    c.extract(data, progress=False)
    write_audio(data.paths[2], noise(1.5, 16000, seed=99), 16000)
    assert c.missing(data) == [2]
    rep = c.extract(data, progress=False)
    assert (rep.cached, rep.extracted) == (len(data) - 1, 1)


def test_other_weights_or_settings_use_another_namespace(tmp_path, data):
    a = cache(tmp_path)
    a.extract(data, progress=False)
    b = cache(tmp_path, ToyBackbone(tag="other-weights"))
    c = cache(tmp_path, pipeline=__import__("tfaudio.data.pipeline", fromlist=["x"]).PipelineConfig(duration_seconds=1.0))
    assert len({a.directory, b.directory, c.directory}) == 3
    assert b.missing(data) == list(range(len(data)))
    assert a.missing(data) == []


class Interrupt(Exception):
    pass


def test_interrupted_extraction_resumes_from_last_whole_shard(tmp_path, data):
    bb = ToyBackbone()
    real = bb.batch_frames

    def flaky(w, n):
        if bb.calls >= 3:  # dies in the 4th batch of 3 clips: one whole shard of 5 clips is on disk
            raise Interrupt()
        return real(w, n)

    bb.batch_frames = flaky
    c = cache(tmp_path, bb)
    with pytest.raises(Interrupt):
        c.extract(data, progress=False)
    assert not list(c.directory.glob(".*tmp")), "the partial shard must be removed"
    done = len(data) - len(c.missing(data))
    assert done == 5
    bb.batch_frames = real
    rep = c.extract(data, progress=False)
    assert rep.cached == done and rep.extracted == len(data) - done


def test_untrusted_shard_without_index_is_ignored(tmp_path, data):
    c = cache(tmp_path)
    c.extract(data, progress=False)
    victim = sorted(c.directory.glob("*.index.json"))[0]
    n = len(json.loads(victim.read_text())["keys"])
    victim.unlink()
    assert len(c.missing(data)) == n


def test_bad_files_raise_or_are_skipped_and_reported(tmp_path, data):
    bad = tmp_path / "audio" / "low" / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    frame = pd.concat([data.frame, pd.DataFrame([{"path": str(bad), "label": "low", "fold": 1}])])
    m = Manifest(frame, labels=data.labels)
    with pytest.raises(AudioError, match="broken.wav"):
        cache(tmp_path).extract(m, progress=False)
    rep = cache(tmp_path).extract(m, on_error="skip", progress=False)
    assert [p for p, _ in rep.skipped] == [str(bad)] and "1 skipped" in str(rep)
    with pytest.warns(UserWarning, match="broken.wav"):
        clips = cache(tmp_path).load(m, on_error="skip", progress=False)
    assert len(clips) == len(data) and len(m) - 1 not in clips.rows


def test_streaming_frames_match_loaded_frames(tmp_path, data):
    c = cache(tmp_path)
    clips = c.load(data, progress=False)
    x, y, _ = clips.frames()
    rows = list(c.frames_dataset(data).as_numpy_iterator())
    got = np.stack([r["embedding"] for r in rows])
    order = np.lexsort(got.T[::-1])
    ref = np.lexsort(x.T[::-1])
    np.testing.assert_allclose(got[order], x[ref])
    np.testing.assert_array_equal(np.array([r["label"] for r in rows])[order], y[ref])


def test_record_round_trip():
    emb = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    key, back = decode_record(encode_record("abc", emb))
    assert key == "abc" and np.array_equal(back, emb)

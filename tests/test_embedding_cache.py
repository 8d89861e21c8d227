import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tests.helpers import ROOT, ToyBackbone, noise, tone_dataset, warns, write_audio
from tfaudio.data.embedding_cache import (
    PART_PREFIX,
    EmbeddingCache,
    complete_shards,
    decode_record,
    encode_record,
)
from tfaudio.data.manifest import Manifest
from tfaudio.errors import AudioError


@pytest.fixture()
def data(tmp_path):
    return tone_dataset(tmp_path / "audio", n_per_class=4)


def cache(tmp_path, backbone=None, **kw):
    return EmbeddingCache(backbone or ToyBackbone(), tmp_path / "cache", shard_size=5, batch_size=3, **kw)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_interrupted_extraction_loses_at_most_the_batch_in_flight(tmp_path, data):
    bb = ToyBackbone()
    real = bb.batch_frames

    def flaky(w, n):
        if bb.calls >= 3:  # dies in the 4th batch of 3 clips: the 3 batches before are committed
            raise Interrupt()
        return real(w, n)

    bb.batch_frames = flaky
    c = cache(tmp_path, bb)
    with pytest.raises(Interrupt):
        c.extract(data, progress=False)
    assert not list(c.directory.glob(".*tmp")), "the partial shard must be removed"
    done = len(data) - len(c.missing(data))
    assert done == 9
    assert len(complete_shards(c.directory)) == 3, "one part per batch, not merged: the run did not complete"
    bb.batch_frames = real
    rep = c.extract(data, progress=False)
    assert rep.cached == done and rep.extracted == len(data) - done
    # the completed run merged the parts into shards of shard_size (5) clips
    sizes = sorted(len(s["keys"]) for s in complete_shards(c.directory).values())
    assert sizes == [2, 5, 5] and all(not s.startswith(PART_PREFIX) for s in complete_shards(c.directory))


def test_untrusted_shard_without_index_is_ignored(tmp_path, data):
    c = cache(tmp_path)
    c.extract(data, progress=False)
    victim = sorted(c.directory.glob("*.index.json"))[0]
    n = len(json.loads(victim.read_text())["keys"])
    victim.unlink()
    assert len(c.missing(data)) == n


@pytest.mark.slow
def test_bad_files_raise_or_are_skipped_and_reported(tmp_path, data, caplog):
    bad = tmp_path / "audio" / "low" / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    frame = pd.concat([data.frame, pd.DataFrame([{"path": str(bad), "label": "low", "fold": 1}])])
    m = Manifest(frame, labels=data.labels)
    with pytest.raises(AudioError, match="broken.wav"):
        cache(tmp_path).extract(m, progress=False)
    rep = cache(tmp_path).extract(m, on_error="skip", progress=False)
    assert [p for p, _ in rep.skipped] == [str(bad)] and "1 skipped" in str(rep)
    with warns(caplog, "broken.wav"):
        clips = cache(tmp_path).load(m, on_error="skip", progress=False)
    assert len(clips) == len(data) and len(m) - 1 not in clips.rows


@pytest.mark.slow
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


def test_record_offsets_find_each_record_and_refuse_a_truncated_file(tmp_path):
    from tfaudio.data.shards import ShardError, record_offsets, shard_bytes

    records = [encode_record(f"k{i}", np.full((i + 1, 4), i, np.float32)) for i in range(3)]
    path = tmp_path / "shard.tfrecord"
    path.write_bytes(shard_bytes(records))
    data = path.read_bytes()
    assert [data[start : start + n] for start, n in record_offsets(path)] == records
    path.write_bytes(data[:-10])  # the last record cut
    with pytest.raises(ShardError, match="record 2 runs past the end"):
        record_offsets(path)
    path.write_bytes(data + b"\x01\x02")  # a header cut off after the last record
    with pytest.raises(ShardError, match="header at byte"):
        record_offsets(path)


# ---- damaged caches: a warning and the re-extraction of the damaged shard's clips, never an error ----
class ClipCounter(ToyBackbone):
    """Counts the clips it embeds (``clips``), besides the backbone calls."""

    clips = 0

    def batch_frames(self, waveforms, lengths):
        self.clips += len(lengths)
        return super().batch_frames(waveforms, lengths)


def _truncate(records, index):
    records.write_bytes(records.read_bytes()[: records.stat().st_size // 2])


def _garble(records, index):
    raw = bytearray(records.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 16] = bytes(16)  # same size, other bytes
    records.write_bytes(bytes(raw))


def _delete(records, index):
    records.unlink()


def _corrupt_index(records, index):
    index.write_text('{"format": 1, "keys": ["abc", ')  # half-written JSON


def _garbage_index(records, index):
    index.write_bytes(os.urandom(64))


@pytest.mark.parametrize("damage", [_truncate, _garble, _delete, _corrupt_index, _garbage_index],
                         ids=lambda f: f.__name__.strip("_"))
@pytest.mark.slow
def test_damaged_shard_warns_and_reextracts_only_its_clips(tmp_path, data, damage, caplog):
    bb = ClipCounter()
    before = cache(tmp_path, bb).load(data, progress=False)
    victim, index = sorted(complete_shards(cache(tmp_path, bb).directory).items())[1]
    d = cache(tmp_path, bb).directory
    damage(d / f"shard-{victim}.tfrecord", d / f"shard-{victim}.index.json")
    bb.clips = 0
    with warns(caplog, rf"shard .*shard-{victim}\.tfrecord (is|has)") as caught:
        after = cache(tmp_path, bb).load(data, progress=False)
    assert len([w for w in caught if "shard-" in w]) == 1
    assert "\n" not in caught[0]
    assert bb.clips == len(index["keys"]), "only the damaged shard's clips are extracted again"
    assert list(after.rows) == list(before.rows)
    for a, b in zip(after.embeddings, before.embeddings):
        np.testing.assert_array_equal(a, b)
    bb.clips = 0
    caplog.clear()
    again = cache(tmp_path, bb).load(data, progress=False)  # repaired: no more warnings, nothing to extract
    assert not [r for r in caplog.records if r.name == "tfaudio"]
    assert bb.clips == 0 and len(again) == len(data)


@pytest.mark.parametrize("damage", [_garble, _corrupt_index], ids=["records", "index"])
def test_damaged_shard_is_extracted_again_in_the_same_run_without_extraction(tmp_path, data, caplog, damage):
    """What `tfaudio cv` / `tune` do (extract, then load(extract=False)): the warning promises that the
    damaged shard's clips are extracted again, and the same call keeps that promise."""
    bb = ClipCounter()
    c = cache(tmp_path, bb)
    c.extract(data, progress=False)
    victim, index = sorted(complete_shards(c.directory).items())[0]
    damage(c.directory / f"shard-{victim}.tfrecord", c.directory / f"shard-{victim}.index.json")
    bb.clips = 0
    with warns(caplog, "extracted again"):
        clips = cache(tmp_path, bb).load(data, extract=False, progress=False)
    assert len(clips) == len(data) and bb.clips == len(index["keys"])
    assert cache(tmp_path, bb).missing(data) == []


@pytest.mark.slow
def test_streaming_dataset_checks_the_shards_it_reads(tmp_path, data, caplog):
    bb = ClipCounter()
    c = cache(tmp_path, bb)
    x, _, _ = c.load(data, progress=False).frames()
    victim, index = sorted(complete_shards(c.directory).items())[0]
    _truncate(c.directory / f"shard-{victim}.tfrecord", None)
    bb.clips = 0
    with warns(caplog, "is truncated"):
        ds = cache(tmp_path, bb).frames_dataset(data)
    got = np.stack([r["embedding"] for r in ds.as_numpy_iterator()])
    assert bb.clips == len(index["keys"]) and got.shape == x.shape


@pytest.mark.slow
def test_shards_without_checksum_are_still_read_and_checked(tmp_path, data, caplog):
    """Shards written before the checksums were recorded: TFRecord's own CRCs catch damage."""
    c = cache(tmp_path)
    before = c.load(data, progress=False)
    for f in c.directory.glob("*.index.json"):
        index = json.loads(f.read_text())
        del index["sha256"], index["bytes"]
        f.write_text(json.dumps(index))
    clips = cache(tmp_path).load(data, extract=False, progress=False)
    for a, b in zip(clips.embeddings, before.embeddings):
        np.testing.assert_array_equal(a, b)
    legacy = sorted(s for s, idx in complete_shards(c.directory).items() if "sha256" not in idx)
    _garble(c.directory / f"shard-{legacy[0]}.tfrecord", None)
    with warns(caplog, f"shard-{legacy[0]}.tfrecord is damaged"):
        assert len(cache(tmp_path).load(data, progress=False)) == len(data)
    _garble(c.directory / f"shard-{legacy[1]}.tfrecord", None)
    with warns(caplog, f"shard-{legacy[1]}.tfrecord is damaged"):
        rows = list(cache(tmp_path).frames_dataset(data).as_numpy_iterator())
    assert len(rows) == sum(len(e) for e in before.embeddings)


# ---- temporaries of killed writers ------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_extraction_sweeps_what_dead_writers_left_and_keeps_live_ones(tmp_path, data):
    from tfaudio.io.atomic import _host

    c = cache(tmp_path)
    c.extract(data, progress=False)
    d = c.directory
    dead = d / f".shard-{'a' * 16}.tfrecord.{_dead_pid()}@{_host()}.0123abcd.tmp"
    live = d / f".shard-{'b' * 16}.tfrecord.{os.getpid()}@{_host()}.0123abcd.tmp"
    young_orphan, old_orphan = d / f"shard-{'c' * 16}.tfrecord", d / f"shard-{'d' * 16}.tfrecord"
    for f in (dead, live, young_orphan, old_orphan):
        f.write_bytes(b"records")
    os.utime(old_orphan, (time.time() - 2 * 3600,) * 2)  # records without index for two hours
    write_audio(data.paths[0], noise(1.0, 16000, seed=7), 16000)  # something to extract
    assert cache(tmp_path).extract(data, progress=False).extracted == 1
    assert not dead.exists() and not old_orphan.exists()
    assert live.exists() and young_orphan.exists(), "a live writer's files are never removed"


@pytest.mark.slow
def test_killed_extraction_resumes_after_its_last_batch(tmp_path, data):
    """A subprocess killed (SIGKILL) while writing its 3rd batch: 2 batches are kept, its temporary
    is swept, and the next run extracts only the rest."""
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(ROOT)!r})
from tests import helpers
from tfaudio.data import embedding_cache as ec
from tfaudio.data.manifest import Manifest
import pandas as pd
class ToyBackbone(helpers.ToyBackbone):  # same class name: same cache namespace
    def batch_frames(self, w, n):
        self.calls += 1
        if self.calls == 3:  # dies with the 3rd batch's temporary file open
            ec.ShardWriter.close = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        self.calls -= 1
        return super().batch_frames(w, n)
m = Manifest(pd.read_csv(sys.argv[1]), labels={data.labels!r})
ec.EmbeddingCache(ToyBackbone(), sys.argv[2], shard_size=5, batch_size=3).extract(m, progress=False)
"""
    csv = tmp_path / "clips.csv"
    data.frame.to_csv(csv, index=False)
    proc = subprocess.run([sys.executable, "-c", code, str(csv), str(tmp_path / "cache")], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == -9, proc.stderr[-2000:]
    c = cache(tmp_path)
    assert len(list(c.directory.glob(".shard-*.tmp"))) == 1, "the killed batch left its temporary"
    rep = c.extract(data, progress=False)
    assert (rep.cached, rep.extracted) == (6, len(data) - 6)
    assert not list(c.directory.glob(".*tmp")), "the dead writer's temporary is swept"


@pytest.mark.slow
def test_a_damaged_shard_that_cannot_be_removed_is_ignored(tmp_path, data, monkeypatch, caplog):
    """A read-only cache folder: the damaged shard stays on disk, this cache object stops reading it."""
    import pathlib

    bb = ClipCounter()
    c = cache(tmp_path, bb)
    before = c.load(data, progress=False)
    victim, index = sorted(complete_shards(c.directory).items())[0]
    _garble(c.directory / f"shard-{victim}.tfrecord", None)
    real_unlink = pathlib.Path.unlink

    def unlink(self, *a, **k):
        if victim in self.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    bb.clips = 0
    with warns(caplog, f"shard-{victim}"):
        after = c.load(data, progress=False)
    assert (c.directory / f"shard-{victim}.tfrecord").exists() and bb.clips == len(index["keys"])
    for a, b in zip(after.embeddings, before.embeddings):
        np.testing.assert_array_equal(a, b)
    caplog.clear()
    assert len(c.load(data, progress=False)) == len(data)
    assert not [r for r in caplog.records if r.name == "tfaudio"]

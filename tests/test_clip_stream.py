"""ClipStream, the embedding cache's long-lived pipeline: the same elements as AudioDataset (resampled,
with features and frame energies), batch after batch and call after call; bad files raise or are
skipped without breaking the pipeline; an abandoned call leaves nothing for the next; a process
using it exits cleanly."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.helpers import ROOT, noise, sine, write_audio
from tfaudio.data import clip_stream as cs
from tfaudio.data.clip_stream import ClipStream, clip_stream
from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import AudioDataset, PipelineConfig
from tfaudio.errors import AudioError
from tfaudio.signal import melspec

FRAME_ENERGY = (15360, 7680)  # YAMNet's frames


def log_mel(audio):
    """A pure-TF per-clip step, as a backbone's clip_features."""
    return melspec.log_mel_spectrogram(melspec.pad_waveform(audio))


@pytest.fixture()
def files(tmp_path):
    """Clips at 44.1, 16 and 48 kHz (resampled in the graph) and 11.025 kHz (resampled while decoding:
    not in the stream's STREAM_RATES)."""
    specs = [(44100, 1.3), (16000, 0.5), (11025, 0.9), (48000, 2.1), (16000, 1.7)]
    return [write_audio(tmp_path / f"c{i}.wav", noise(s, r, seed=i) + sine(300 * (i + 1), s, r, 0.2), r)
            for i, (r, s) in enumerate(specs)]


def stream(**kwargs) -> ClipStream:
    return ClipStream(PipelineConfig(sample_rate=16000), log_mel, FRAME_ENERGY, **kwargs)


@pytest.mark.slow  # ~3 s: two pipelines built and run
def test_batches_equal_audio_dataset(files):
    manifest = Manifest(pd.DataFrame({"path": [str(p) for p in files], "label": ["a"] * len(files)}))
    want = list(AudioDataset(manifest, sample_rate=16000, features=log_mel, keep_audio=True,
                             frame_energy=FRAME_ENERGY).iterate(batch_size=2))
    s = stream()
    for _ in range(2):  # the second call runs on the same pipeline
        got = list(s.batches([str(p) for p in files], 2))
        assert len(got) == len(want) == 3
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g["index"], w["index"])
            for key in ("length", "feature_count", "frame_db_count"):
                np.testing.assert_array_equal(g[key], w[key], err_msg=key)
            for key in ("features", "frame_db", "audio"):
                assert g[key].shape == w[key].shape, key
                np.testing.assert_allclose(g[key], w[key], atol=1e-5, err_msg=key)
    # another order, another call: positions follow the paths given
    got = list(s.clips([str(files[3]), str(files[0])]))
    assert [i for i, _ in got] == [0, 1]
    assert [int(e["length"]) for _, e in got] == [int(want[1]["length"][1]), int(want[0]["length"][0])]


def test_bad_files_raise_or_are_skipped_and_the_stream_goes_on(files, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    paths = [str(files[0]), str(bad), str(files[1])]
    s = stream(keep_audio=False)
    with pytest.raises(AudioError, match="bad.wav"):
        list(s.batches(paths, 4))
    kept = list(s.clips(paths, on_error="skip"))
    assert [i for i, _ in kept] == [0, 2]
    assert len(s.skipped) == 1 and s.skipped[0][0] == str(bad)
    assert [i for i, _ in s.clips([str(files[2])])] == [0]  # and it still runs


@pytest.mark.parametrize("closed", [True, False])
def test_an_abandoned_call_leaves_nothing_for_the_next(files, closed):
    s = stream(keep_audio=False)
    calls = s.clips([str(p) for p in files])
    next(calls)
    if closed:
        calls.close()  # the consumer stopped after one clip (a break)
    # else: left open, as an exception's traceback keeps it: the next call of this thread takes over
    got = list(s.clips([str(files[4]), str(files[2])]))
    lengths = [int(e["length"]) for _, e in got]
    assert [i for i, _ in got] == [0, 1] and lengths == [int(1.7 * 16000), int(0.9 * 16000)]
    assert list(calls) == []  # the abandoned call, resumed, ends at once


def test_one_stream_per_setting(monkeypatch):
    monkeypatch.setattr(cs, "_STREAMS", {})
    monkeypatch.setattr(cs, "MAX_STREAMS", 2)
    a = clip_stream(PipelineConfig(sample_rate=16000), log_mel, FRAME_ENERGY, False)
    assert clip_stream(PipelineConfig(sample_rate=16000, on_error="skip"), log_mel, FRAME_ENERGY, False) is a
    b = clip_stream(PipelineConfig(sample_rate=32000), log_mel, FRAME_ENERGY, False)
    assert b is not a
    clip_stream(PipelineConfig(sample_rate=16000, duration_seconds=1.0), log_mel, FRAME_ENERGY, False)
    assert len(cs._STREAMS) == 2 and a not in cs._STREAMS.values()  # the oldest was closed and dropped


@pytest.mark.slow  # a fresh Python with TensorFlow: ~5 s
def test_a_process_that_used_a_stream_exits(files):
    # one whole call, then one abandoned after a clip: its elements are in flight when the process ends
    # (deleting the live iterator at exit used to wait for its threads, which waited for the GIL: a hang)
    code = ("import sys; from tfaudio.data.clip_stream import clip_stream; "
            "from tfaudio.data.pipeline import PipelineConfig; "
            "s = clip_stream(PipelineConfig(sample_rate=16000)); "
            "print(len(list(s.clips(sys.argv[1:])))); left = s.clips(sys.argv[1:]); next(left)")
    done = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith(str(len(files)))

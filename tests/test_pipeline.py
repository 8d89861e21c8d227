import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tests.helpers import noise, shared, sine, snr_db, write_audio
from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import AudioDataset
from tfaudio.errors import AudioError


def manifest_of(paths, labels=None):
    labels = labels or ["a"] * len(paths)
    return Manifest(pd.DataFrame({"path": [str(p) for p in paths], "label": labels}))


@pytest.fixture()
def mixed(tmp_path):
    """Clips at 44.1, 16 and 8 kHz, stereo and mono, of different lengths."""
    specs = [(44100, 1.0, 1), (16000, 0.5, 1), (8000, 0.75, 2), (48000, 0.3, 1)]
    paths = []
    for i, (rate, secs, ch) in enumerate(specs):
        tone = sine(440, secs, rate)
        audio = np.stack([tone] * ch, axis=1) if ch > 1 else tone
        paths.append(write_audio(tmp_path / f"c{i}.wav", audio, rate, subtype="PCM_16"))
    return manifest_of(paths), specs


def test_clips_are_resampled_to_the_target_rate(mixed):
    m, specs = mixed
    clips = list(AudioDataset(m, sample_rate=16000).iterate())
    assert [c["index"] for c in clips] == [0, 1, 2, 3]
    for c, (rate, secs, _) in zip(clips, specs):
        assert c["length"] == int(np.ceil(round(secs * rate) * 16000 / rate))
        ref = sine(440, secs, 16000)[: c["length"]]
        mid = slice(200, c["length"] - 200)
        assert np.max(np.abs(c["audio"][mid] - ref[mid])) < 0.01


@pytest.mark.slow
def test_batches_pad_with_a_length_mask_and_equal_single_clips(mixed):
    m, _ = mixed
    ds = AudioDataset(m, sample_rate=16000)
    singles = list(ds.iterate())
    batch = next(iter(ds.iterate(batch_size=4)))
    assert batch["audio"].shape[0] == 4 and batch["mask"].shape == batch["audio"].shape
    for i, s in enumerate(singles):
        n = s["length"]
        assert batch["mask"][i].sum() == n and not batch["mask"][i, n:].any()
        np.testing.assert_array_equal(batch["audio"][i, :n], s["audio"])
        assert (batch["audio"][i, n:] == 0).all()


@pytest.mark.slow
def test_fixed_duration_crops_and_pads(mixed):
    m, _ = mixed
    clips = list(AudioDataset(m, sample_rate=16000, duration_seconds=0.6).iterate())
    assert {len(c["audio"]) for c in clips} == {9600}
    assert [int(c["length"]) for c in clips] == [9600, 8000, 9600, 4800]


@pytest.mark.slow
def test_nothing_is_read_until_iterated(tmp_path):
    m = manifest_of([tmp_path / "missing.wav"])
    with pytest.raises(ValueError, match="comes from the backbone"):
        AudioDataset(m)  # no rate: never guessed
    ds = AudioDataset(m, sample_rate=16000).clips()  # building the pipeline touches no file
    assert isinstance(ds, tf.data.Dataset)
    with pytest.raises(AudioError, match="missing.wav"):
        list(AudioDataset(m, sample_rate=16000).iterate())


@pytest.mark.slow
def test_deterministic_order_under_parallel_decoding(tmp_path):
    paths = [write_audio(tmp_path / f"n{i}.wav", noise(0.2 + 0.05 * (i % 3), 16000, seed=i), 16000) for i in range(12)]
    m = manifest_of(paths)
    a = [c["index"] for c in AudioDataset(m, sample_rate=16000).iterate()]
    b = [c["index"] for c in AudioDataset(m, sample_rate=16000).iterate()]
    assert a == b == list(range(12))
    s1 = [c["index"] for c in AudioDataset(m, sample_rate=16000).iterate(shuffle=True, seed=1)]
    assert sorted(s1) == list(range(12))


BAD = {
    "missing.wav": None,
    "empty.wav": b"",
    "text.wav": b"this is not audio at all, just some text\n" * 4,
    "truncated.flac": "truncate",
}


def make_bad(tmp_path, name, content):
    p = tmp_path / name
    if content == "truncate":
        good = write_audio(tmp_path / "good.flac", noise(1.0, 16000), 16000)
        p.write_bytes(good.read_bytes()[:200])
    elif content is not None:
        p.write_bytes(content)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_raises_naming_it_or_is_skipped_and_counted(tmp_path, name):
    good = [write_audio(tmp_path / f"ok{i}.wav", noise(0.3, 16000, seed=i), 16000) for i in range(2)]
    bad = make_bad(tmp_path, name, BAD[name])
    m = manifest_of([good[0], bad, good[1]])
    with pytest.raises(AudioError, match=name.replace(".", r"\.")):
        list(AudioDataset(m, sample_rate=16000).iterate())
    ds = AudioDataset(m, sample_rate=16000, on_error="skip")
    clips = list(ds.iterate())
    assert [c["index"] for c in clips] == [0, 2]
    assert [p for p, _ in ds.skipped] == [str(bad)]
    assert "1 of 3 clips skipped" in ds.report() and name in ds.report()


def test_nan_samples_and_unsupported_rate(tmp_path):
    audio = noise(0.2, 16000)
    audio[100] = np.nan
    nan = write_audio(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    odd = write_audio(tmp_path / "odd.wav", noise(0.2, 12345), 12345)
    ds = AudioDataset(manifest_of([nan, odd]), sample_rate=16000, on_error="skip")
    assert list(ds.iterate()) == []
    reasons = dict(ds.skipped)
    assert "NaN" in reasons[str(nan)] or "nan" in reasons[str(nan)].lower()
    assert "12345" in reasons[str(odd)] and "sox" in reasons[str(odd)]


def test_real_mixed_rate_esc50_clips():
    m = Manifest.from_csv(shared("data", "esc50-subset", "meta", "esc50.csv"))
    m = Manifest(pd.concat([m.frame[m.frame.label == "cat"][:2], m.frame[m.frame.label == "dog"][:2]]), labels=m.labels)
    clips = list(AudioDataset(m, sample_rate=16000).iterate())
    assert len(clips) == 4
    for c in clips:
        assert c["length"] == 80000 and np.isfinite(c["audio"]).all() and np.abs(c["audio"]).max() <= 1.0


def test_rate_outside_the_listed_ones_is_resampled(tmp_path):
    from tfaudio.signal.resample import SUPPORTED_RATES

    assert 12000 not in SUPPORTED_RATES
    tone = write_audio(tmp_path / "tone12k.wav", sine(1000, 0.5, 12000), 12000)
    (clip,) = list(AudioDataset(manifest_of([tone]), sample_rate=16000).iterate())
    assert clip["length"] == 8000  # ceil(6000 * 16000 / 12000)
    expected = sine(1000, 0.5, 16000)
    assert snr_db(expected[200:-200], clip["audio"][200:-200]) < -60  # error in dB; the edges see the zero padding


@pytest.mark.slow
def test_in_graph_and_python_resampling_give_decode_clips_samples(tmp_path):
    """Rates in GRAPH_RATES are resampled in the tf.data graph, others in the decode step: same samples."""
    from tfaudio.data.pipeline import GRAPH_RATES, PipelineConfig, decode_clip

    rates = [44100, 48000, 22050, 8000, 32000, 16000]
    assert {44100, 48000} <= set(GRAPH_RATES) and not {8000, 32000} & set(GRAPH_RATES)
    paths = [write_audio(tmp_path / f"r{r}.flac", noise(0.4, r, seed=i), r) for i, r in enumerate(rates)]
    clips = list(AudioDataset(manifest_of(paths), sample_rate=16000).iterate())
    assert [c["index"] for c in clips] == list(range(len(rates)))
    for c, p in zip(clips, paths):
        expected = decode_clip(str(p), PipelineConfig(sample_rate=16000))
        assert c["length"] == len(expected) == 6400
        # same filter; only the float summation order may differ (~1e-6, far below a 16-bit step)
        np.testing.assert_allclose(c["audio"], expected, rtol=0, atol=1e-5)


def test_target_rate_the_resampler_refuses_names_the_file(tmp_path):
    """No graph branch for a pair the resampler refuses: the file fails in Python, named, as before."""
    tone = write_audio(tmp_path / "tone44k.wav", sine(440, 0.2, 44100), 44100)
    with pytest.raises(AudioError, match=r"tone44k\.wav.*44100 Hz cannot be resampled to 16001 Hz"):
        list(AudioDataset(manifest_of([tone]), sample_rate=16001).iterate())
    ds = AudioDataset(manifest_of([tone]), sample_rate=16001, on_error="skip")
    assert list(ds.iterate()) == [] and "sox" in ds.skipped[0][1]


def _frames_of_100(audio):
    """A stand-in for a backbone's clip_features: rows of 100 samples (one row at least)."""
    n = tf.maximum(tf.shape(audio)[0] // 100, 1)
    return tf.reshape(tf.pad(audio, [[0, 100]])[: n * 100], [n, 100])


@pytest.mark.slow
def test_features_step_runs_per_clip_after_resampling(mixed, tmp_path):
    m, _ = mixed
    plain = list(AudioDataset(m, sample_rate=16000).iterate())
    batch = next(iter(AudioDataset(m, sample_rate=16000, features=_frames_of_100).iterate(batch_size=4)))
    assert "audio" in batch and "mask" in batch  # keep_audio by default
    for i, clip in enumerate(plain):
        want = _frames_of_100(tf.constant(clip["audio"])).numpy()
        assert batch["feature_count"][i] == len(want)
        np.testing.assert_array_equal(batch["features"][i, : len(want)], want)
        assert not batch["features"][i, len(want):].any()  # zero-padded rows
    only = next(iter(AudioDataset(m, sample_rate=16000, features=_frames_of_100, keep_audio=False).iterate(4)))
    assert "audio" not in only and "mask" not in only
    np.testing.assert_array_equal(only["features"], batch["features"])
    with pytest.raises(ValueError, match="features step"):
        AudioDataset(m, sample_rate=16000, keep_audio=False)
    # a bad file is still named or skipped and counted with a features step
    bad = make_bad(tmp_path, "empty.wav", BAD["empty.wav"])
    m2 = manifest_of([*m.paths[:2], bad])
    with pytest.raises(AudioError, match="empty"):
        list(AudioDataset(m2, sample_rate=16000, features=_frames_of_100).iterate(batch_size=2))
    ds = AudioDataset(m2, sample_rate=16000, features=_frames_of_100, on_error="skip")
    assert sum(len(b["index"]) for b in ds.iterate(batch_size=2)) == 2 and [p for p, _ in ds.skipped] == [str(bad)]

"""The one front door: every input road gives the same float32 mono samples at the backbone's rate."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.helpers import noise, sine, write_audio
from tfaudio.data.audio_converter import AudioConverter, pad_batch
from tfaudio.errors import AudioError


@pytest.fixture(scope="module")
def convert():
    return AudioConverter(16000, min_samples=15600)


def test_file_bytes_array_dict_and_tuple_are_one_clip(convert, tmp_path):
    x = sine(440, 2.0, 44100) + noise(2.0, 44100, amplitude=0.05)
    path = write_audio(tmp_path / "a.wav", x, 44100, subtype="FLOAT")
    from_path = convert(path)
    assert from_path.dtype == np.float32 and from_path.ndim == 1 and len(from_path) == 32000
    for other in (convert(path.read_bytes()), convert(x, 44100), convert((x, 44100)),
                  convert({"array": x, "sampling_rate": 44100}), convert({"path": str(path)}),
                  convert({"bytes": path.read_bytes(), "path": None})):
        np.testing.assert_allclose(other, from_path, atol=1e-6)


def test_the_one_resampler_is_the_training_pipelines(convert, tmp_path):
    from tfaudio.data.pipeline import PipelineConfig, decode_clip

    x = sine(1000, 1.3, 48000)
    path = write_audio(tmp_path / "b.flac", x, 48000)
    np.testing.assert_array_equal(convert(path), decode_clip(str(path), PipelineConfig(sample_rate=16000)))


@pytest.mark.parametrize("layout", ["samples_channels", "channels_samples"])
def test_many_channels_are_averaged_in_either_layout(convert, layout):
    rng = np.random.default_rng(0)
    channels = rng.uniform(-0.5, 0.5, (16000, 12)).astype(np.float32)
    x = channels if layout == "samples_channels" else channels.T
    np.testing.assert_allclose(convert(x, 16000), channels.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("dtype, full_scale, offset", [(np.int8, 2**7, 0), (np.int16, 2**15, 0), (np.int32, 2**31, 0),
                                                       (np.int64, 2**63, 0), (np.uint8, 2**7, 128),
                                                       (np.uint16, 2**15, 2**15)])
def test_integer_pcm_of_any_width_is_scaled(convert, dtype, full_scale, offset):
    pcm = np.array([0, full_scale // 2, -(full_scale // 2)] * 6000, np.int64) + offset
    out = convert(pcm.astype(dtype), 16000)
    np.testing.assert_allclose(out[:3], [0.0, 0.5, -0.5], atol=1e-6)


def test_short_clips_are_left_to_the_model_to_pad_and_it_says_so(convert, caplog):
    # the backbone pads in its graph (exports too): padding here would change e.g. Wav2Vec2's normalisation
    with caplog.at_level(logging.WARNING, logger="tfaudio"):
        out = convert(np.ones(100, np.float32), 16000, where="tiny.wav")
    assert len(out) == 100
    assert "tiny.wav" in caplog.text and "zero-pads it" in caplog.text


@pytest.mark.parametrize("item, rate, match", [
    (np.array([0.1, np.nan, 0.2], np.float32), 16000, "NaN/Inf"),
    (np.zeros(0, np.float32), 16000, "empty"),
    (np.zeros([3, 4, 5], np.float32), 16000, "shape"),
    (np.zeros([100, 100], np.float32), 16000, "neither axis looks like channels"),
    (np.zeros(10, bool), 16000, "dtype"),
    (np.zeros(10, np.float32), None, "without a sampling rate"),
    (np.zeros(10, np.float32), 44099, "cannot be resampled"),
    (b"", None, "empty"),
    (b"this is not audio at all, just text" * 10, None, "not an audio file"),
])
def test_bad_inputs_name_themselves_and_the_fix(convert, item, rate, match):
    with pytest.raises(AudioError, match=match) as err:
        convert(item, rate)
    assert err.value.path == "<input>" and err.value.fix


def test_convert_many_skips_and_lists_bad_inputs(convert, tmp_path):
    good = write_audio(tmp_path / "good.wav", sine(300, 1.0, 16000), 16000)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    items = [str(good), str(bad), str(tmp_path / "missing.wav"), str(good)]
    out = convert.convert_many(items, on_error="skip")
    assert out.index == [0, 3] and len(out.waves) == 2
    assert [name for name, _ in out.skipped] == [str(bad), str(tmp_path / "missing.wav")]
    with pytest.raises(AudioError, match="bad.wav"):
        convert.convert_many(items)


def test_pad_batch():
    batch, lengths = pad_batch([np.ones(3, np.float32), np.ones(5, np.float32)])
    assert batch.shape == (2, 5) and list(lengths) == [3, 5] and batch[0, 3:].sum() == 0
    empty, n = pad_batch([])
    assert empty.shape == (0, 1) and n.shape == (0,)

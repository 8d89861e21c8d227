"""16-bit FLAC through miniaudio (tfaudio.io.flac_fast): soundfile's samples exactly (mono, stereo),
taken only where it applies (16 bits, a plain STREAMINFO header, the whole length decoded), and
soundfile decodes (with its errors) whatever it does not take, or when miniaudio is absent."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers import noise, sine, write_audio
from tfaudio.errors import AudioError
from tfaudio.io import flac_fast
from tfaudio.io.decode import load_audio

sf = pytest.importorskip("soundfile")
pytest.importorskip("miniaudio", reason="the fast FLAC path needs miniaudio (pip install tfaudio[flac])")


@pytest.fixture()
def spy(monkeypatch):
    """Counts the calls that miniaudio's decoder really served."""
    import miniaudio

    calls = []
    real = miniaudio.flac_read_file_s16
    monkeypatch.setattr(miniaudio, "flac_read_file_s16", lambda p: calls.append(p) or real(p))
    return calls


@pytest.mark.parametrize("channels", [1, 2])
def test_16_bit_flac_gives_soundfiles_samples(tmp_path, spy, channels):
    clip = np.stack([noise(0.7, 44100, seed=c) + sine(300.0 * (c + 1), 0.7, 44100, 0.3) for c in range(channels)], 1)
    clip[:5] = [[-1.0] * channels, [1.0 - 2 ** -15] * channels, [0.0] * channels, [2 ** -15] * channels,
                [-(2 ** -15)] * channels]  # the extremes and the smallest steps
    path = write_audio(tmp_path / "a.flac", clip, 44100, format="FLAC", subtype="PCM_16")
    want, rate = sf.read(str(path), dtype="float32", always_2d=True)
    got = flac_fast.read_flac16(str(path))
    assert got is not None and got[1] == rate == 44100
    assert got[0].dtype == np.float32 and got[0].shape == want.shape == (len(clip), channels)
    np.testing.assert_array_equal(got[0], want)
    audio, rate = load_audio(path)  # the auto backend takes this path, then mixes to mono as before
    assert spy and rate == 44100
    np.testing.assert_array_equal(audio, load_audio(path, backend="soundfile")[0])


def test_what_it_does_not_take_goes_to_soundfile(tmp_path, spy, monkeypatch):
    clip = noise(0.5, 16000, seed=1)
    deep = write_audio(tmp_path / "deep.flac", clip, 16000, format="FLAC", subtype="PCM_24")
    assert flac_fast.read_flac16(str(deep)) is None and not spy  # 24 bits: not even decoded
    np.testing.assert_array_equal(load_audio(deep)[0], sf.read(str(deep), dtype="float32")[0])
    # fewer samples than the header announces: soundfile names the truncation, as before
    cut = write_audio(tmp_path / "cut.flac", noise(3.0, 16000, seed=2), 16000, format="FLAC", subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    assert flac_fast.read_flac16(str(cut)) is None
    with pytest.raises(AudioError, match="cut.flac"):
        load_audio(cut)
    # no miniaudio: soundfile alone, the same samples
    ok = write_audio(tmp_path / "ok.flac", clip, 16000, format="FLAC", subtype="PCM_16")
    monkeypatch.setitem(sys.modules, "miniaudio", None)
    assert flac_fast.read_flac16(str(ok)) is None
    np.testing.assert_array_equal(load_audio(ok)[0], sf.read(str(ok), dtype="float32")[0])


def test_streaminfo_is_read_from_the_header(tmp_path):
    path = write_audio(tmp_path / "s.flac", np.zeros([1234, 2], np.float32), 22050, format="FLAC", subtype="PCM_16")
    assert flac_fast._streaminfo(str(path)) == (22050, 2, 16, 1234)
    other = tmp_path / "x.flac"
    other.write_bytes(b"ID3\x04" + bytes(60))  # a tag in front: not this reader's
    assert flac_fast._streaminfo(str(other)) is None

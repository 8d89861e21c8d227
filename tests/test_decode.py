"""tfaudio.io.decode: pure-TF WAV decoding, load_audio's backends and its errors, audio_info."""

from __future__ import annotations

import ast
import csv
import dataclasses
import pathlib
import struct
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tests.helpers import noise, shared, sine, write_audio
from tfaudio.errors import AudioError
from tfaudio.io.decode import AudioInfo, audio_info, decode_wav, load_audio, mix_to_mono

RATE = 8000

# Largest allowed |decoded - written| per WAV subtype: one quantisation step of the stored format.
STEP = {"PCM_U8": 2**-7, "PCM_16": 2**-15, "PCM_24": 2**-23, "PCM_32": 2**-24, "FLOAT": 0.0, "DOUBLE": 0.0}


def _noise(frames: int, channels: int, seed: int = 0, amplitude: float = 0.9) -> np.ndarray:
    return np.stack([noise(frames / RATE, RATE, seed + c, amplitude) for c in range(channels)], 1)


# --- hand-made WAV bytes ---------------------------------------------------------------------------


def _chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    size = len(body) if size is None else size
    return chunk_id + struct.pack("<I", size) + body + (b"\0" if len(body) % 2 else b"")


def _fmt(channels: int = 2, bits: int = 16, tag: int = 1, rate: int = RATE) -> bytes:
    block = channels * bits // 8
    return _chunk(b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits))


def _riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


PCM = (_noise(300, 2, seed=3) * 32767).astype("<i2")  # [300, 2] int16
PCM_FLOAT = PCM / np.float32(32768)


def _decode(contents: bytes) -> tuple[np.ndarray, int]:
    audio, rate = decode_wav(tf.constant(contents))
    return audio.numpy(), int(rate.numpy())


# --- decode_wav ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", list(STEP))
def test_decode_wav_matches_written_samples(tmp_path, subtype, channels):
    written = _noise(400, channels)
    container = "WAVEX" if channels == 6 else "WAV"  # 6 channels: WAVE_FORMAT_EXTENSIBLE
    path = write_audio(tmp_path / "x.wav", written, RATE, subtype=subtype, format=container)
    if container == "WAVEX":
        assert path.read_bytes()[20:22] == b"\xfe\xff"

    audio, rate = _decode(path.read_bytes())
    assert rate == RATE and audio.dtype == np.float32 and audio.shape == (400, channels)
    np.testing.assert_allclose(audio, written, rtol=0, atol=STEP[subtype] + 1e-7)
    np.testing.assert_array_equal(audio, sf.read(path, dtype="float32", always_2d=True)[0])
    assert np.abs(audio).max() <= 1.0
    # load_audio's traced tf.function gives the same samples as the eager call.
    np.testing.assert_array_equal(load_audio(path, mono=False)[0], audio)


@pytest.mark.parametrize(
    "layout",
    [
        # LIST with an odd size (5) is followed by a pad byte; fact sits before data.
        _riff(
            _fmt(),
            _chunk(b"LIST", b"INFOx"),
            _chunk(b"fact", struct.pack("<I", 300)),
            _chunk(b"data", PCM.tobytes()),
        ),
        _riff(_chunk(b"JUNK", bytes(27)), _fmt(), _chunk(b"data", PCM.tobytes()), _chunk(b"LIST", b"tail")),
        _riff(_fmt(), _chunk(b"data", PCM.tobytes(), size=0xFFFFFFFF)),  # streamed: size unknown
        _riff(_fmt(), _chunk(b"data", PCM.tobytes() + b"\1\2\3")),  # a partial last frame is dropped
    ],
    ids=["list-odd-before-data", "junk-before-fmt", "streamed-size", "partial-frame"],
)
def test_decode_wav_walks_chunks(tmp_path, layout):
    audio, rate = _decode(layout)
    assert rate == RATE
    np.testing.assert_array_equal(audio, PCM_FLOAT)
    path = tmp_path / "chunks.wav"
    path.write_bytes(layout)
    np.testing.assert_array_equal(load_audio(path, mono=False)[0], PCM_FLOAT)
    assert audio_info(path) == AudioInfo(RATE, 2, 300, "WAV")


@pytest.mark.parametrize(
    "contents, message",
    [
        (b"just some text, not a wav file", "not a RIFF/WAVE"),
        (b"RIFF", "not a RIFF/WAVE"),
        (_riff(_chunk(b"data", PCM.tobytes())), "no 'fmt ' chunk"),
        (_riff(_fmt()), "no 'data' chunk"),
        (_riff(_fmt(1, bits=8, tag=6), _chunk(b"data", b"\x55" * 100)), "unsupported WAV encoding"),  # A-law
        (_riff(_fmt(1, bits=12), _chunk(b"data", bytes(100))), "unsupported WAV encoding"),
        (_riff(_fmt(), _chunk(b"data", PCM.tobytes()))[:-100], "truncated WAV file"),
        (_riff(_fmt(1, 32, tag=3), _chunk(b"data", np.array([0.1, np.nan], "<f4").tobytes())), "NaN or Inf"),
    ],
    ids=["text", "short", "no-fmt", "no-data", "alaw", "12-bit", "truncated", "nan"],
)
def test_decode_wav_rejects_invalid_input(contents, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _decode(contents)


@pytest.mark.slow
def test_decode_wav_in_tf_function_and_tf_data(tmp_path):
    paths = [
        str(write_audio(tmp_path / f"{c}.wav", _noise(200 + c, c, seed=c), RATE, subtype=s))
        for c, s in [(1, "PCM_16"), (2, "PCM_24"), (6, "FLOAT")]
    ]
    ds = tf.data.Dataset.from_tensor_slices(paths).map(lambda p: decode_wav(tf.io.read_file(p)))
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[0].shape.rank == 2
    for path, (audio, rate) in zip(paths, ds, strict=True):
        assert int(rate) == RATE
        np.testing.assert_array_equal(audio.numpy(), sf.read(path, dtype="float32", always_2d=True)[0])

    graph_decode = tf.function(decode_wav)
    audio, _ = graph_decode(
        tf.constant(_riff(_fmt(), _chunk(b"LIST", b"INFOx"), _chunk(b"data", PCM.tobytes())))
    )
    np.testing.assert_array_equal(audio.numpy(), PCM_FLOAT)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a RIFF/WAVE"):
        graph_decode(tf.constant(b"\x89PNG\r\n\x1a\n and the rest of an image"))


# --- mono mixing -----------------------------------------------------------------------------------


def test_mix_to_mono(tmp_path):
    tone = sine(440, 0.1, RATE)
    opposite = write_audio(tmp_path / "lr.wav", np.stack([tone, -tone], 1), RATE, subtype="FLOAT")
    same = write_audio(tmp_path / "ll.wav", np.stack([tone, tone], 1), RATE, subtype="FLOAT")
    levels = np.tile(np.arange(6, dtype=np.float32) / 10, (50, 1))  # channel k holds k / 10
    six = write_audio(tmp_path / "six.wav", levels, RATE, subtype="FLOAT")

    np.testing.assert_allclose(load_audio(opposite)[0], 0.0, atol=1e-7)
    np.testing.assert_allclose(load_audio(same)[0], tone, atol=1e-7)
    mono, _ = load_audio(six)
    assert mono.shape == (50,)
    np.testing.assert_allclose(mono, 0.25, atol=1e-6)
    np.testing.assert_allclose(mix_to_mono(tf.constant(levels)).numpy(), mono, atol=1e-7)
    assert mix_to_mono(tf.zeros([3, 10, 2])).shape == (3, 10)  # batched
    with pytest.raises(ValueError, match="samples, channels"):
        mix_to_mono(tf.zeros([10]))


# --- compressed formats ----------------------------------------------------------------------------

LOSSY_RATE = 22050
COMPRESSED = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """One stereo second per compressed format: L = 440 Hz sine + noise, R = 660 Hz sine."""
    left = sine(440, 1.0, LOSSY_RATE, 0.4) + noise(1.0, LOSSY_RATE, seed=1, amplitude=0.05)
    stereo = np.stack([left, sine(660, 1.0, LOSSY_RATE, 0.4)], 1)
    folder = tmp_path_factory.mktemp("compressed")
    # No extensions: the format must come from the content.
    files = {
        k: write_audio(folder / f"clip_{k}", stereo, LOSSY_RATE, subtype=s, format=f)
        for k, (f, s) in COMPRESSED.items()
    }
    return stereo, files


def _best_correlation(reference: np.ndarray, estimate: np.ndarray, max_lag: int = 2048) -> float:
    """Peak normalised cross-correlation within ±max_lag samples (lossy codecs may add delay)."""
    n = len(reference) + len(estimate)
    xc = np.fft.irfft(np.fft.rfft(estimate, n) * np.conj(np.fft.rfft(reference, n)), n)
    peak = np.max(np.abs(np.concatenate([xc[: max_lag + 1], xc[-max_lag:]])))
    return float(peak / (np.linalg.norm(reference) * np.linalg.norm(estimate)))


@pytest.mark.parametrize("fmt", list(COMPRESSED))
def test_compressed_formats(compressed, fmt):
    stereo, files = compressed
    audio, rate = load_audio(files[fmt], mono=False)
    assert rate == LOSSY_RATE and audio.dtype == np.float32 and audio.shape[1] == 2
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    if fmt == "flac":
        np.testing.assert_allclose(audio, stereo, atol=2**-15)
    else:
        assert abs(len(audio) - len(stereo)) < 3000
        for ch in range(2):
            assert _best_correlation(stereo[:, ch], audio[:, ch]) > 0.95
            energy = np.mean(audio[:, ch] ** 2) / np.mean(stereo[:, ch] ** 2)
            assert 0.8 < energy < 1.2
    mono, _ = load_audio(files[fmt])
    np.testing.assert_allclose(mono, audio.mean(1), atol=1e-7)
    info = audio_info(files[fmt])
    assert (info.sample_rate, info.channels, info.format) == (LOSSY_RATE, 2, fmt.upper())
    assert info.num_samples == len(audio) and info.duration == pytest.approx(len(audio) / LOSSY_RATE)


@pytest.mark.parametrize("fmt", list(COMPRESSED))
def test_tfio_and_soundfile_backends_agree(compressed, fmt):
    pytest.importorskip("tensorflow_io")
    _, files = compressed
    via_tfio, rate_tfio = load_audio(files[fmt], mono=False, backend="tfio")
    via_sf, rate_sf = load_audio(files[fmt], mono=False, backend="soundfile")
    assert rate_tfio == rate_sf == LOSSY_RATE and via_tfio.shape == via_sf.shape
    if fmt == "flac":
        np.testing.assert_array_equal(via_tfio, via_sf)
    else:
        np.testing.assert_allclose(via_tfio, via_sf, atol=1e-5)


def test_auto_falls_back_to_tfio_when_soundfile_fails(compressed, tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_io")
    _, files = compressed
    expected, _ = load_audio(files["flac"], backend="soundfile")

    def broken_read(*args, **kwargs):
        raise sf.LibsndfileError(0, prefix="simulated failure: ")

    monkeypatch.setattr(sf, "read", broken_read)
    np.testing.assert_array_equal(load_audio(files["flac"])[0], expected)
    with pytest.raises(AudioError, match="by soundfile"):
        load_audio(files["flac"], backend="soundfile")
    monkeypatch.undo()

    cut = tmp_path / "cut.flac"
    cut.write_bytes(files["flac"].read_bytes()[:2000])
    with pytest.raises(AudioError, match="cut.flac.*by tfio.*truncated or corrupt"):
        load_audio(cut, backend="tfio")


def test_optional_backends_missing(compressed, tmp_path, monkeypatch):
    _, files = compressed
    wav = write_audio(tmp_path / "ok.wav", _noise(100, 1), RATE, subtype="PCM_16")
    ulaw = write_audio(tmp_path / "ulaw.wav", _noise(100, 1), RATE, subtype="ULAW")

    try:
        import tensorflow_io as tfio
    except ImportError:
        tfio = None
    monkeypatch.setitem(sys.modules, "tensorflow_io", None)  # makes `import tensorflow_io` fail
    with pytest.raises(ImportError, match="pip install tensorflow-io"):
        load_audio(files["flac"], backend="tfio")
    assert load_audio(files["flac"])[1] == LOSSY_RATE  # auto: soundfile

    monkeypatch.setitem(sys.modules, "soundfile", None)
    assert load_audio(wav)[0].shape == (100,)  # WAV needs neither
    assert audio_info(wav).num_samples == 100
    with pytest.raises(ImportError, match="pip install soundfile"):
        load_audio(files["flac"])
    with pytest.raises(AudioError, match="ulaw.wav.*unsupported WAV encoding.*pip install soundfile"):
        load_audio(ulaw)

    if tfio is not None:
        monkeypatch.setitem(sys.modules, "tensorflow_io", tfio)
        assert load_audio(files["ogg"])[1] == LOSSY_RATE  # auto without soundfile: tensorflow-io


def test_optional_backends_are_imported_lazily():
    source = pathlib.Path(sys.modules[load_audio.__module__].__file__).read_text()
    top_level = [n for n in ast.parse(source).body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in top_level for a in n.names} | {
        n.module for n in top_level if isinstance(n, ast.ImportFrom)
    }
    assert not names & {"tensorflow_io", "soundfile"}


def test_wav_encodings_beyond_decode_wav_fall_back_to_soundfile(tmp_path):
    written = _noise(200, 1)
    path = write_audio(tmp_path / "ulaw.wav", written, RATE, subtype="ULAW")
    audio, rate = load_audio(path)
    assert rate == RATE
    np.testing.assert_allclose(audio, written[:, 0], atol=0.03)  # μ-law: ~2% error at full scale
    with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported WAV encoding"):
        _decode(path.read_bytes())


def test_path_types_and_backend_argument(tmp_path):
    path = write_audio(tmp_path / "p.wav", _noise(100, 2), RATE, subtype="PCM_16")
    expected, _ = load_audio(str(path))
    for variant in (path, str(path).encode(), tf.constant(str(path))):
        np.testing.assert_array_equal(load_audio(variant)[0], expected)
    with pytest.raises(ValueError, match="backend must be one of"):
        load_audio(path, backend="ffmpeg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        audio_info(path).sample_rate = 1


# --- bad input -------------------------------------------------------------------------------------


def _cut(path: pathlib.Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _make_bad(case: str, folder: pathlib.Path) -> pathlib.Path:
    path = folder / f"bad_{case}.wav"
    clip = _noise(RATE, 1)  # one second
    if case == "missing":
        return path
    if case == "empty":
        path.write_bytes(b"")
    elif case == "zero-length-wav":
        write_audio(path, np.zeros((0, 1), np.float32), RATE, subtype="PCM_16")
    elif case == "zero-length-ogg":  # (libsndfile writes nothing at all for a 0-sample FLAC or MP3)
        write_audio(path, np.zeros((0, 1), np.float32), RATE, format="OGG", subtype="VORBIS")
    elif case == "flac-unknown-length":  # STREAMINFO total samples = 0, as streaming encoders leave it
        write_audio(path, clip, RATE, format="FLAC", subtype="PCM_16")
        data = bytearray(path.read_bytes())
        data[21] &= 0xF0
        data[22:26] = bytes(4)
        path.write_bytes(bytes(data))
    elif case == "truncated-wav":
        write_audio(path, clip, RATE, subtype="PCM_16")
        _cut(path, 0.6)
    elif case.startswith("truncated-"):
        fmt, subtype = COMPRESSED[case.split("-")[1]]
        # 3 s (MP3: at 22.05 kHz, which its encoder supports), then half of the file is cut off.
        write_audio(path, noise(3.0, LOSSY_RATE, seed=2)[:, None], LOSSY_RATE, format=fmt, subtype=subtype)
        _cut(path, 0.5)
    elif case == "corrupt-flac-header":
        path.write_bytes(b"fLaC" + np.random.default_rng(0).bytes(4000))
    elif case == "corrupt-flac-frames":  # a valid header, then garbage
        write_audio(path, clip, RATE, format="FLAC", subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:42] + np.random.default_rng(0).bytes(4000))
    elif case == "corrupt-wav":
        path.write_bytes(b"RIFF\x10\x00\x00\x00WAVE" + np.random.default_rng(0).bytes(4000))
    elif case == "text":
        path.write_text("filename,label\nclip1.wav,dog\n")
    elif case == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    elif case == "nan":
        write_audio(path, np.array([[0.1], [np.nan], [0.2]], np.float32), RATE, subtype="FLOAT")
    elif case == "inf":
        write_audio(path, np.array([[0.1], [np.inf], [0.2]], np.float64), RATE, subtype="DOUBLE")
    elif case == "nan-rf64":  # RF64 goes through soundfile, so load_audio's own finiteness check
        write_audio(path, np.array([[0.1], [np.nan]], np.float32), RATE, format="RF64", subtype="FLOAT")
    elif case == "unsupported":
        path.write_bytes(_riff(_fmt(1, bits=16, tag=0x1234), _chunk(b"data", bytes(200))))
    return path


# case → (words the message must contain, whether audio_info finds it from the header alone)
BAD_INPUT = {
    "missing": ("not found", True),
    "empty": ("empty file", True),
    "zero-length-wav": ("0 samples", True),
    "zero-length-ogg": ("0 samples", True),
    "flac-unknown-length": ("does not state the length", True),
    "truncated-wav": ("truncated WAV", True),
    "truncated-flac": ("truncated or corrupt", False),
    "truncated-ogg": ("truncated", True),
    "truncated-mp3": ("truncated MP3", False),
    "corrupt-flac-header": ("corrupt FLAC", True),
    "corrupt-flac-frames": ("truncated or corrupt", False),
    "corrupt-wav": ("no 'fmt ' chunk", True),
    "text": ("not an audio file: its content looks like text", True),
    "png": ("PNG image", True),
    "nan": ("NaN or Inf", False),
    "inf": ("NaN or Inf", False),
    "nan-rf64": ("NaN or Inf", False),
    "unsupported": ("unsupported WAV encoding", False),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_raises_audio_error(tmp_path, case):
    path = _make_bad(case, tmp_path)
    words, header_shows_it = BAD_INPUT[case]
    with pytest.raises(AudioError) as caught:
        load_audio(path)
    message = str(caught.value)
    assert path.name in message and words in message and "Fix:" in message
    if header_shows_it:
        with pytest.raises(AudioError, match=words):
            audio_info(path)


# --- real recordings in ../shared ------------------------------------------------------------------


def _esc50_clip(category: str) -> pathlib.Path:
    root = shared("data", "esc50-subset")
    with open(root / "meta" / "esc50.csv", newline="") as f:
        name = next(row["filename"] for row in csv.DictReader(f) if row["category"] == category)
    return root / "audio" / name


REAL = {
    "esc50-flac-44k": (lambda: _esc50_clip("dog"), 44100),
    "esc50-flac-16k": (lambda: _esc50_clip("cat"), 16000),
    "speech-commands-wav": (
        lambda: next(iter(sorted(shared("data", "speech-commands-mini", "yes").glob("*.wav")))),
        16000,
    ),
    "fsdd-wav-8k": (lambda: shared("data", "fsdd-mini", "recordings", "0_jackson_0.wav"), 8000),
    "animals-mp3": (lambda: shared("data", "animals-mp3", "cat.mp3"), 48000),
}


@pytest.mark.parametrize("clip", list(REAL))
def test_real_clips(clip):
    find, expected_rate = REAL[clip]
    path = find()
    audio, rate = load_audio(path)
    assert rate == expected_rate == sf.info(path).samplerate
    assert audio.ndim == 1 and audio.size > 0.5 * rate
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0 and np.abs(audio).max() > 0
    info = audio_info(path)
    assert info.sample_rate == rate and info.num_samples == len(audio)
    if path.suffix in (".wav", ".flac"):
        np.testing.assert_array_equal(audio, sf.read(path, dtype="float32", always_2d=True)[0].mean(1))

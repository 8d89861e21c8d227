"""Audio decoding: WAV in pure TensorFlow, FLAC/OGG/MP3 through soundfile or tensorflow-io.

``decode_wav`` and ``mix_to_mono`` are graph-safe (``tf.function``, ``tf.data`` maps, exported models).
``load_audio`` and ``audio_info`` are the Python-level entry points: they detect the format from the
file's content (never its extension) and turn every bad input into an ``AudioError`` that names the
file, the problem and the fix.

Backends for the compressed formats, measured in this stack (tensorflow 2.16.2, tensorflow-io 0.37.1,
soundfile 0.14 / libsndfile 1.2.2, one CPU core, audio-seconds decoded per wall-second; FLAC: 100
ESC-50 clips of 5 s at 44.1 kHz; OGG: 5 s of noise; MP3: the 10 animal clips):

=========  ===========  ==============================================
format     soundfile    tensorflow-io (decode_* op or AudioIOTensor)
=========  ===========  ==============================================
FLAC       ~1400        ~145  (works, bit-identical, 10x slower)
OGG        ~1000        ~155  (works, equal within 2e-7, 6x slower)
MP3        ~1000        ~225  (works, equal within 1e-6, 4.5x slower)
=========  ===========  ==============================================

With ``backend="auto"``, 16-bit FLAC goes through miniaudio's dr_flac first when it is installed
(``tfaudio[flac]``): the same samples as soundfile, ~1.5x as fast (:mod:`tfaudio.io.flac_fast`); anything
it does not take goes to soundfile (and its errors) as before.

tensorflow-io decodes all three correctly but is much slower (and abandoned upstream), so
``backend="auto"`` prefers soundfile for every format and uses tensorflow-io only when soundfile is
not installed or fails on a file. Neither can read a FLAC whose header leaves the length unset
(tensorflow-io returns 0 samples), so that is reported as an error.

WAV always goes through ``decode_wav``, so training, ``tf.data`` and exported graphs share one
decoder. In a ``tf.data`` map it costs about as much as ``tf.audio.decode_wav`` (which only reads
16-bit PCM); through ``load_audio`` a 1 s 16 kHz clip takes ~1 ms (mostly ``tf.function`` dispatch)
against ~0.2 ms for soundfile, i.e. ~800 audio-seconds per second.
"""
from __future__ import annotations

import re

import numpy as np
import tensorflow as tf

from tfaudio.errors import AudioError
from tfaudio.io.audio_info import (
    _SOUNDFILE_HINT,
    AudioInfo,
    _import_soundfile,
    _import_tfio,
    audio_info,
)
from tfaudio.io.flac_fast import read_flac16
from tfaudio.io.samples import pcm_to_float, to_mono
from tfaudio.io.sniff import (
    _CONVERT_FIX,
    _CORRUPT_FIX,
    _FORMAT_NAMES,
    _inspect,
    _open_checked,
    _path_str,
    _WavHeader,
)
from tfaudio.io.wav_decoder import _decode_wav_graph, decode_wav, mix_to_mono

__all__ = ["AudioInfo", "audio_info", "decode_wav", "load_audio", "mix_to_mono"]

BACKENDS = ("auto", "tfio", "soundfile")

# Preferred decoder per compressed format for backend="auto" (fastest first; see the module docstring).
_AUTO_ORDER = {
    "flac": ("soundfile", "tfio"),
    "ogg": ("soundfile", "tfio"),
    "mp3": ("soundfile", "tfio"),
}


def _read_soundfile(path: str, fmt: str) -> tuple[np.ndarray, int]:
    sf = _import_soundfile(path, _FORMAT_NAMES[fmt])
    info = sf.info(path)
    # float32 straight from libsndfile. Measured on the ESC-50 FLACs: reading 16-bit files as int16
    # and scaling in numpy gives the same samples but no speed-up (~1-2 % slower), and one
    # sf.SoundFile for header and samples instead of sf.info + sf.read saves ~2 %, within the noise:
    # sf.read itself (libFLAC through libsndfile) is ~93 % of load_audio's time on a FLAC clip.
    audio, rate = sf.read(path, dtype="float32", always_2d=True)  # [samples, channels]
    expected = info.frames
    missing = expected - audio.shape[0]
    # libsndfile reads until the stream ends; compare with the length the header promised. MP3
    # lengths are estimates (a frame or two off on valid VBR files), hence the slack.
    slack = max(8 * 1152, expected // 50) if fmt == "mp3" else 0
    if expected > 0 and missing > slack:
        raise AudioError(
            path,
            f"truncated {_FORMAT_NAMES[fmt]} file: decoded {audio.shape[0]} of the {expected} samples "
            "its header announces.",
            _CORRUPT_FIX,
        )
    return audio, int(rate)


def _read_tfio(path: str, fmt: str) -> tuple[np.ndarray, int]:
    tfio = _import_tfio(path, _FORMAT_NAMES[fmt])
    # AudioIOTensor gives the rate and native dtype; decode_flac/mp3/vorbis give neither. Same speed.
    stream = tfio.audio.AudioIOTensor(path)
    audio = stream.to_tensor().numpy()  # [samples, channels]
    rate = int(stream.rate.numpy())
    # native samples: 8-bit FLAC comes back offset-binary (uint8), others left-justified in int8/16/32
    return pcm_to_float(audio, path), rate


_READERS = {"soundfile": _read_soundfile, "tfio": _read_tfio}


def _soundfile_present() -> bool:
    """Whether soundfile imports: the fast FLAC path stands in for it (the same samples), never for its
    absence, so what a machine without soundfile can decode stays what it was."""
    try:
        _import_soundfile("", "FLAC")
    except ImportError:
        return False
    return True


def _decode_compressed(path: str, fmt: str, backend: str) -> tuple[np.ndarray, int]:
    """Tries the backends in order; ``AudioError`` when the file is bad, ``ImportError`` when none is installed."""
    if backend == "auto" and fmt == "flac" and _soundfile_present():
        fast = read_flac16(path)  # soundfile's samples of a 16-bit FLAC, ~1.5x as fast (tfaudio.io.flac_fast)
        if fast is not None:
            return fast
    order = _AUTO_ORDER.get(fmt, ("soundfile",)) if backend == "auto" else (backend,)
    first_error = None
    for name in order:
        try:
            return _READERS[name](path, fmt)
        except ImportError:
            if backend != "auto":
                raise
        except AudioError:
            raise  # a finding about the file (truncation), not a decoder failure
        except (RuntimeError, ValueError, OSError, tf.errors.OpError) as e:
            # soundfile.LibsndfileError is a RuntimeError; tfio raises tf.errors.*.
            first_error = first_error or (name, e)
    if first_error is None:  # auto, and no backend installed
        raise ImportError(f"{path}: decoding {_FORMAT_NAMES[fmt]} needs soundfile: {_SOUNDFILE_HINT}.")
    name, e = first_error
    detail = " ".join(str(e).split())[:300]
    raise AudioError(
        path,
        f"cannot be decoded as {_FORMAT_NAMES[fmt]} by {name} ({detail}): the file is truncated or corrupt.",
        _CORRUPT_FIX,
    ) from e


def _tf_error_problem(error: tf.errors.OpError) -> str:
    found = re.search(r"assertion failed: (.*?)\n", str(error) + "\n")
    text = found.group(1) if found else str(error).splitlines()[0]
    return text.replace("] [", " ").strip("[]").replace("decode_wav: ", "")


def _decode_wav_file(path: str, f, header: _WavHeader) -> tuple[np.ndarray, int]:
    if not header.tf_decodable:
        # A-law, μ-law, ADPCM, 12/20-bit, ... : libsndfile knows more WAV encodings than decode_wav.
        what = f"WAV encoding (format tag {header.format_tag:#06x}, {header.bits} bits)"
        try:
            sf = _import_soundfile(path, what)
        except ImportError as e:
            raise AudioError(path, f"unsupported {what}.", f"{_SOUNDFILE_HINT}, or {_CONVERT_FIX}") from e
        try:
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as e:
            raise AudioError(path, f"unsupported {what} ({e}).", _CONVERT_FIX) from e
        return audio, int(rate)
    f.seek(0)
    contents = f.read()
    try:
        audio, rate = _decode_wav_graph(tf.constant(contents))
    except tf.errors.InvalidArgumentError as e:
        problem = _tf_error_problem(e)
        fix = (
            "remove or replace the clip; non-finite samples cannot be used."
            if "NaN" in problem
            else _CORRUPT_FIX
        )
        raise AudioError(path, problem + ".", fix) from e
    return audio.numpy(), int(rate.numpy())


def load_audio(path, *, mono: bool = True, backend: str = "auto") -> tuple[np.ndarray, int]:
    """Reads a WAV, FLAC, OGG/Vorbis or MP3 file into float32 samples at the file's own rate.

    The format is detected from the content (magic bytes), never from the extension. WAV goes
    through :func:`decode_wav` (traced once); WAV encodings it does not know (A-law, μ-law, ADPCM, ...)
    and RIFX/RF64 files go to soundfile. FLAC/OGG/MP3 go to soundfile or tensorflow-io, see ``backend``.

    Every unusable file raises :class:`~tfaudio.errors.AudioError` naming the file, the problem and
    the fix: missing, empty (0 bytes), not audio (e.g. text or an image renamed ``.wav``), truncated
    or corrupt, no samples, NaN/Inf samples, unsupported encoding. Nothing is returned silently wrong.

    Args:
        path: ``str`` / ``os.PathLike`` / ``bytes``, or a scalar string tensor (as inside
            ``tf.py_function``).
        mono: average the channels (``[samples]``); ``False`` keeps ``[samples, channels]``.
        backend: for FLAC/OGG/MP3. ``"soundfile"`` or ``"tfio"`` (tensorflow-io) force one;
            ``"auto"`` uses soundfile (5-10x faster here) and falls back to tensorflow-io when
            soundfile is not installed or fails on the file. A cut-off MP3 is detected by comparing
            with the length soundfile reads from the header; tensorflow-io alone cannot tell.

    Returns:
        ``(audio, sample_rate)``: float32 ``[samples]`` (or ``[samples, channels]``), normally within
        [-1, 1] (float files are returned as stored), and the rate in Hz.

    Raises:
        AudioError: the file cannot be used (see above).
        ImportError: the decoder the file needs is not installed (with the ``pip install`` line).
        ValueError: an unknown ``backend``.

    Example:
        >>> audio, rate = load_audio("dog.flac")  # doctest: +SKIP
        >>> audio.shape, rate  # doctest: +SKIP
        ((220500,), 44100)
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    path = _path_str(path)
    with _open_checked(path) as f:
        fmt, header = _inspect(path, f)
        if header is not None:
            audio, rate = _decode_wav_file(path, f, header)
        elif fmt == "wav":  # RIFX (big-endian) / RF64 (> 4 GB)
            audio, rate = _decode_compressed(path, fmt, "soundfile")
        else:
            audio, rate = _decode_compressed(path, fmt, backend)
    if audio.shape[0] == 0:
        raise AudioError(path, "contains no audio: a valid header but 0 samples.", _CORRUPT_FIX)
    if not np.isfinite(audio).all():
        raise AudioError(path, "contains NaN or Inf samples.", "remove or replace the clip.")
    return (to_mono(audio) if mono else np.ascontiguousarray(audio, np.float32)), rate

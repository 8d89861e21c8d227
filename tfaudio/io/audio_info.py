"""What a file's header says about its audio (rate, channels, length, format), without decoding."""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfaudio.errors import AudioError
from tfaudio.io.sniff import _CONVERT_FIX, _CORRUPT_FIX, _FORMAT_NAMES, _inspect, _open_checked, _path_str

__all__ = ["AudioInfo", "audio_info"]

_SOUNDFILE_HINT = "install soundfile (`pip install soundfile`) to decode FLAC, OGG/Vorbis and MP3"
_TFIO_HINT = "install tensorflow-io (`pip install tensorflow-io`), or use backend='soundfile' or 'auto'"


def _import_soundfile(path: str, what: str):
    try:
        import soundfile
    except ImportError as e:  # also covers a missing libsndfile
        raise ImportError(f"{path}: decoding {what} needs soundfile: {_SOUNDFILE_HINT}.") from e
    return soundfile


def _import_tfio(path: str, what: str):
    try:
        import tensorflow_io
    except (ImportError, tf.errors.NotFoundError) as e:  # NotFoundError: a tfio built for another TF
        raise ImportError(f"{path}: backend='tfio' for {what} needs tensorflow-io: {_TFIO_HINT}.") from e
    return tensorflow_io


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about its audio.

    Args:
        sample_rate: Hz.
        channels: number of channels.
        num_samples: samples per channel (frames). For MP3 it is libsndfile's estimate.
        format: ``"WAV"``, ``"FLAC"``, ``"OGG"`` or ``"MP3"``.
    """

    sample_rate: int
    channels: int
    num_samples: int
    format: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sample_rate


def audio_info(path) -> AudioInfo:
    """Reads only the header: sample rate, channels, length and format, without decoding.

    Raises the same ``AudioError`` as :func:`load_audio` for what the header reveals: missing, empty,
    not audio, no samples, truncated WAV or OGG, corrupt header. NaN samples and a cut-off FLAC/MP3
    show up only when decoding (``load_audio``).

    Args:
        path: ``str`` / ``os.PathLike`` / ``bytes`` or a scalar string tensor.

    Returns:
        :class:`AudioInfo`.

    Example:
        >>> audio_info("dog.flac")  # doctest: +SKIP
        AudioInfo(sample_rate=44100, channels=1, num_samples=220500, format='FLAC')
    """
    path = _path_str(path)
    with _open_checked(path) as f:
        fmt, header = _inspect(path, f)
    if header is not None and header.tf_decodable:
        info = AudioInfo(header.sample_rate, header.channels, header.num_samples, "WAV")
    else:
        info = _info_from_backend(path, fmt)
    if info.num_samples == 0:
        raise AudioError(path, "contains no audio: a valid header but 0 samples.", _CORRUPT_FIX)
    return info


def _info_from_backend(path: str, fmt: str) -> AudioInfo:
    name = _FORMAT_NAMES[fmt]
    try:
        sf = _import_soundfile(path, name)
    except ImportError:
        if fmt == "wav":
            raise
        sf = None
    if sf is not None:
        try:
            i = sf.info(path)
        except (RuntimeError, ValueError) as e:
            raise AudioError(path, f"cannot read the {name} header ({e}).", _CORRUPT_FIX) from e
        if i.frames >= 2**62:  # libsndfile's "unknown length"
            raise AudioError(path, f"the {name} header does not state the length.", _CONVERT_FIX)
        return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames), name)
    try:
        tfio = _import_tfio(path, name)
    except ImportError as e:
        raise ImportError(f"{path}: reading {name} needs soundfile: {_SOUNDFILE_HINT}.") from e
    try:
        stream = tfio.audio.AudioIOTensor(path)
        frames, channels = (int(v) for v in stream.shape.numpy())
        return AudioInfo(int(stream.rate.numpy()), channels, frames, name)
    except tf.errors.OpError as e:
        raise AudioError(path, f"cannot read the {name} header ({e.message}).", _CORRUPT_FIX) from e

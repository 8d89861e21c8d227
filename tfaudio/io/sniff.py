"""What a file is, before decoding it: format sniffing from the content (never the extension), WAV
header parsing and completeness checks, each bad case an ``AudioError`` naming the file and the fix."""
from __future__ import annotations

import dataclasses
import os

from tfaudio.errors import AudioError
from tfaudio.io.wav_decoder import _SIZE_UNKNOWN, _TF_WAV_ENCODINGS, _WAVE_FORMAT_EXTENSIBLE

_FORMAT_NAMES = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}
_CONVERT_FIX = "convert it to 16-bit PCM WAV or FLAC, e.g. `ffmpeg -i <file> -c:a pcm_s16le out.wav`"
_CORRUPT_FIX = "re-download or re-encode the file, or drop it from the manifest"


@dataclasses.dataclass(frozen=True)
class _WavHeader:
    format_tag: int  # the sub-format for WAVE_FORMAT_EXTENSIBLE
    channels: int
    sample_rate: int
    bits: int
    data_size: int  # declared size, 0xFFFFFFFF resolved to "rest of the file"
    data_available: int  # bytes of the data chunk actually present

    @property
    def tf_decodable(self) -> bool:
        return (self.format_tag, self.bits) in _TF_WAV_ENCODINGS

    @property
    def num_samples(self) -> int:
        return self.data_size // max(self.channels * self.bits // 8, 1)


def _path_str(path) -> str:
    if hasattr(path, "numpy"):  # a string tensor, e.g. inside tf.py_function
        path = path.numpy()
    return os.fsdecode(path)


def _open_checked(path: str):
    """Opens ``path`` for reading after the missing / not-a-file / empty checks."""
    if not os.path.exists(path):
        raise AudioError(path, "file not found.", "check the path (and the manifest's root directory).")
    if not os.path.isfile(path):
        raise AudioError(path, "is not a regular file (a directory?).", "pass the path of an audio file.")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes).", _CORRUPT_FIX)
    return open(path, "rb")


_NOT_AUDIO_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"<", "HTML/XML (an error page saved instead of the download?)"),
)


def _is_mpeg_frame(b: bytes) -> bool:
    """An MPEG-1/2/2.5 layer I/II/III frame header (11 sync bits, no reserved fields)."""
    return (
        len(b) >= 4
        and b[0] == 0xFF
        and (b[1] & 0xE0) == 0xE0
        and (b[1] >> 3) & 3 != 1  # version 01 is reserved
        and (b[1] >> 1) & 3 != 0  # layer 00 is reserved (and ADTS AAC)
        and (b[2] >> 4) != 0xF  # bad bitrate index
        and (b[2] >> 2) & 3 != 3  # reserved sample rate
    )


def _describe_non_audio(head: bytes) -> str:
    for magic, what in _NOT_AUDIO_MAGIC:
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "an MP4/M4A container (AAC and other MP4 audio are not supported)"
    if head[:4] in (b"FORM", b"caff", b".snd"):
        return "AIFF/CAF/AU audio (not supported)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unknown binary data (first bytes {head[:8]!r})"
    if all(c.isprintable() or c.isspace() for c in text):
        return f"text ({head[:24].decode('utf-8', 'replace')!r}...)"
    return f"unknown data (first bytes {head[:8]!r})"


def _sniff(path: str, f) -> tuple[str, int]:
    """The container from magic bytes ("wav", "flac", "ogg" or "mp3") and where its stream starts.

    Raises AudioError for anything else.
    """
    f.seek(0)
    head = f.read(64)
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav", 0
    if head[:4] == b"fLaC":
        return "flac", 0
    if head[:4] == b"OggS":
        return "ogg", 0
    if head[:3] == b"ID3" and len(head) >= 10:
        # An ID3v2 tag (size: four 7-bit "syncsafe" bytes) usually prefixes MP3, sometimes FLAC.
        tag_size = 10 + sum((head[6 + i] & 0x7F) << (7 * (3 - i)) for i in range(4))
        tag_size += 10 if head[5] & 0x10 else 0  # footer
        f.seek(tag_size)
        return ("flac" if f.read(4) == b"fLaC" else "mp3"), tag_size
    if _is_mpeg_frame(head):
        return "mp3", 0
    raise AudioError(
        path,
        f"not an audio file: its content looks like {_describe_non_audio(head)}. tfaudio reads WAV, "
        "FLAC, OGG/Vorbis and MP3, recognised by their content, not by the file extension.",
        "check that the file is really audio (a failed download or a renamed file?); "
        + _CONVERT_FIX.replace("convert it", "convert other audio"),
    )


def _parse_wav_header(path: str, f, file_size: int) -> _WavHeader:
    """Reads a RIFF/WAVE header by seeking from chunk to chunk (the sample data is not read).

    Follows the same rules as ``decode_wav``, but raises ``AudioError``.
    """
    f.seek(0)
    head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(path, "not a RIFF/WAVE file.", _CONVERT_FIX)
    pos, fmt, data = 12, None, None
    while pos + 8 <= file_size and (fmt is None or data is None):
        f.seek(pos)
        chunk_id = f.read(4)
        size = int.from_bytes(f.read(4), "little")
        if chunk_id == b"fmt " and fmt is None:
            fmt = f.read(min(size, 40))
            if size < 16:
                raise AudioError(
                    path, f"corrupt WAV header: 'fmt ' chunk of {size} bytes (< 16).", _CORRUPT_FIX
                )
        elif chunk_id == b"data" and data is None:
            if size == _SIZE_UNKNOWN:
                size = file_size - pos - 8
            data = (pos + 8, size)
        pos += 8 + size + size % 2
    if fmt is None:
        raise AudioError(path, "corrupt or truncated WAV file: no 'fmt ' chunk.", _CORRUPT_FIX)
    if data is None:
        raise AudioError(path, "corrupt or truncated WAV file: no 'data' chunk.", _CORRUPT_FIX)
    tag, channels, rate = (int.from_bytes(fmt[i : i + n], "little") for i, n in ((0, 2), (2, 2), (4, 4)))
    bits = int.from_bytes(fmt[14:16], "little")
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 40:
        tag = int.from_bytes(fmt[24:26], "little")
    if channels < 1 or rate < 1:
        raise AudioError(path, f"corrupt WAV header: {channels} channels at {rate} Hz.", _CORRUPT_FIX)
    data_pos, data_size = data
    available = max(min(data_size, file_size - data_pos), 0)
    return _WavHeader(tag, channels, rate, bits, data_size, available)


def _check_wav_complete(path: str, header: _WavHeader) -> None:
    if header.data_available < header.data_size:
        raise AudioError(
            path,
            f"truncated WAV file: the data chunk declares {header.data_size} bytes but the file holds "
            f"only {header.data_available}.",
            _CORRUPT_FIX,
        )


def _ogg_is_complete(f, file_size: int) -> bool:
    """True when the file ends exactly with a whole Ogg page carrying the end-of-stream flag.

    Vorbis has no total length in its header, so a cut-off file would otherwise decode silently
    shorter. A page is at most 27 + 255 + 255 * 255 bytes, so the tail below always holds the last one.
    """
    start = max(0, file_size - 65_600)
    f.seek(start)
    tail = f.read()
    end = len(tail)
    p = tail.rfind(b"OggS")
    while p >= 0:  # the capture pattern may also occur inside packet data: find the real last page
        if p + 27 <= end and tail[p + 4] == 0:
            n_segments = tail[p + 26]
            if p + 27 + n_segments <= end:
                page_end = p + 27 + n_segments + sum(tail[p + 27 : p + 27 + n_segments])
                if page_end == end:
                    return bool(tail[p + 5] & 0x04)
        p = tail.rfind(b"OggS", 0, p)
    return False


def _check_ogg_complete(path: str, f, file_size: int) -> None:
    if not _ogg_is_complete(f, file_size):
        raise AudioError(
            path,
            "truncated or corrupt OGG file: it does not end with a complete end-of-stream page.",
            _CORRUPT_FIX,
        )


def _check_flac_header(path: str, f, start: int) -> None:
    f.seek(start + 4)
    block = f.read(38)  # metadata block header + STREAMINFO
    if len(block) < 38 or block[0] & 0x7F != 0 or int.from_bytes(block[1:4], "big") != 34:
        raise AudioError(path, "corrupt FLAC file: no STREAMINFO block after 'fLaC'.", _CORRUPT_FIX)
    info = block[4:]
    total_samples = ((info[13] & 0x0F) << 32) | int.from_bytes(info[14:18], "big")
    if total_samples == 0:
        # Streaming encoders may leave the length unset. libsndfile cannot read such files and
        # tensorflow-io returns 0 samples for them, so say so instead of failing obscurely.
        raise AudioError(
            path,
            "FLAC header does not state the length (STREAMINFO total samples = 0, as left by streaming "
            "encoders); soundfile and tensorflow-io cannot decode such files.",
            "re-encode it, e.g. `ffmpeg -i <file> fixed.flac` or `flac --decode` then `flac`.",
        )


def _inspect(path: str, f) -> tuple[str, _WavHeader | None]:
    """Format detection plus every check the header allows; returns (format, WAV header or None).

    The WAV header is returned only for RIFF files (RIFX / RF64 go to soundfile).
    """
    file_size = os.fstat(f.fileno()).st_size
    fmt, start = _sniff(path, f)
    header = None
    if fmt == "wav" and _peek(f, 4) == b"RIFF":
        header = _parse_wav_header(path, f, file_size)
        _check_wav_complete(path, header)
    elif fmt == "ogg":
        _check_ogg_complete(path, f, file_size)
    elif fmt == "flac":
        _check_flac_header(path, f, start)
    return fmt, header


def _peek(f, n: int) -> bytes:
    f.seek(0)
    return f.read(n)

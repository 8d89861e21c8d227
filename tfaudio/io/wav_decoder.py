"""WAV decoding in pure TensorFlow: graph-safe (``tf.function``, ``tf.data`` maps, exported models).

``decode_wav`` reads 8/16/24/32-bit PCM and 32/64-bit float WAV with any number of channels;
``mix_to_mono`` averages the channels. Python-level loading with checks is :func:`tfaudio.io.decode.load_audio`.
"""
from __future__ import annotations

import tensorflow as tf

from tfaudio.io.samples import full_scale

__all__ = ["decode_wav", "mix_to_mono"]

_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# A data (or RIFF) size of 0xFFFFFFFF is what streaming writers (e.g. ffmpeg to a pipe) leave when
# the length is unknown: it means "up to the end of the file".
_SIZE_UNKNOWN = 0xFFFFFFFF
# (format tag, bits per sample) pairs that decode_wav understands, in switch_case branch order.
_TF_WAV_ENCODINGS = (
    (_WAVE_FORMAT_PCM, 8),
    (_WAVE_FORMAT_PCM, 16),
    (_WAVE_FORMAT_PCM, 24),
    (_WAVE_FORMAT_PCM, 32),
    (_WAVE_FORMAT_IEEE_FLOAT, 32),
    (_WAVE_FORMAT_IEEE_FLOAT, 64),
)

_NAN_MESSAGE = "decode_wav: float samples contain NaN or Inf"


def _read_bytes(contents: tf.Tensor, size: tf.Tensor, pos: tf.Tensor, nbytes: int) -> tf.Tensor:
    """``nbytes`` bytes at ``pos`` as int64 ``[nbytes]``; bytes past the end read as 0.

    Never fails, so the chunk walk stays safe on garbage and the asserts give the error message.
    """
    raw = tf.io.decode_raw(tf.strings.substr(contents, tf.clip_by_value(pos, 0, size), nbytes), tf.uint8)
    raw = tf.pad(raw, [[0, nbytes - tf.shape(raw, out_type=tf.int64)[0]]])
    return tf.cast(tf.reshape(raw, [nbytes]), tf.int64)


def _le(b: tf.Tensor) -> tf.Tensor:
    """Little-endian unsigned value of int64 bytes ``[n]``."""
    n = b.shape[0]
    return tf.reduce_sum(b * tf.constant([1 << (8 * i) for i in range(n)], tf.int64))


def _fourcc(text: str) -> int:
    return int.from_bytes(text.encode("ascii"), "little")


def _find_chunks(contents: tf.Tensor, size: tf.Tensor):
    """Walks the RIFF chunks after the 12-byte header; returns (fmt_pos, fmt_size, data_pos, data_size).

    Positions are of the chunk bodies, -1 when the chunk is absent. Odd-sized chunks are followed by
    one pad byte (RIFF rule). Every step advances at least 8 bytes, so the loop ends on any input.
    """
    minus_one = tf.constant(-1, tf.int64)

    def cond(pos, fmt_pos, fmt_size, data_pos, data_size):
        return (pos + 8 <= size) & ((fmt_pos < 0) | (data_pos < 0))

    def body(pos, fmt_pos, fmt_size, data_pos, data_size):
        header = _read_bytes(contents, size, pos, 8)  # chunk id, chunk size
        chunk_id, chunk_size = _le(header[:4]), _le(header[4:])
        is_fmt = tf.equal(chunk_id, _fourcc("fmt ")) & (fmt_pos < 0)
        is_data = tf.equal(chunk_id, _fourcc("data")) & (data_pos < 0)
        fmt_pos = tf.where(is_fmt, pos + 8, fmt_pos)
        fmt_size = tf.where(is_fmt, chunk_size, fmt_size)
        body_size = tf.where(is_data & (chunk_size == _SIZE_UNKNOWN), size - pos - 8, chunk_size)
        data_pos = tf.where(is_data, pos + 8, data_pos)
        data_size = tf.where(is_data, body_size, data_size)
        return pos + 8 + body_size + body_size % 2, fmt_pos, fmt_size, data_pos, data_size

    start = tf.constant(12, tf.int64)
    _, fmt_pos, fmt_size, data_pos, data_size = tf.while_loop(
        cond, body, (start, minus_one, minus_one, minus_one, minus_one)
    )
    return fmt_pos, fmt_size, data_pos, data_size


def pcm_to_float_tf(samples: tf.Tensor, bits: int, *, unsigned: bool = False) -> tf.Tensor:
    """:func:`pcm_to_float` in the graph: integer ``samples`` of ``bits``-bit PCM → float32."""
    x = tf.cast(samples, tf.float32)
    scale = full_scale(bits)
    return (x - scale) / scale if unsigned else x / scale


def _pcm24_to_float(raw: tf.Tensor) -> tf.Tensor:
    b = tf.cast(tf.reshape(tf.io.decode_raw(raw, tf.uint8), [-1, 3]), tf.int32)  # [n, 3] little-endian
    x = tf.bitwise.bitwise_or(
        tf.bitwise.bitwise_or(b[:, 0], tf.bitwise.left_shift(b[:, 1], 8)), tf.bitwise.left_shift(b[:, 2], 16)
    )
    # Sign-extend bit 23: move it to bit 31, then arithmetic shift back.
    x = tf.bitwise.right_shift(tf.bitwise.left_shift(x, 8), 8)
    return pcm_to_float_tf(x, 24)


def _checked_float(x: tf.Tensor) -> tf.Tensor:
    ok = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(x)), [_NAN_MESSAGE])
    with tf.control_dependencies([ok]):
        return tf.identity(x)


def _decode_samples(raw: tf.Tensor, branch: tf.Tensor) -> tf.Tensor:
    """Interleaved sample bytes → flat float32 samples; ``branch`` indexes ``_TF_WAV_ENCODINGS``."""
    branches = [
        lambda: pcm_to_float_tf(tf.io.decode_raw(raw, tf.uint8), 8, unsigned=True),  # 8-bit WAV is unsigned
        lambda: pcm_to_float_tf(tf.io.decode_raw(raw, tf.int16, little_endian=True), 16),
        lambda: _pcm24_to_float(raw),
        lambda: pcm_to_float_tf(tf.io.decode_raw(raw, tf.int32, little_endian=True), 32),
        lambda: _checked_float(tf.io.decode_raw(raw, tf.float32, little_endian=True)),
        lambda: _checked_float(tf.cast(tf.io.decode_raw(raw, tf.float64, little_endian=True), tf.float32)),
    ]
    return tf.switch_case(tf.cast(branch, tf.int32), branches)


def decode_wav(contents: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Decodes a whole WAV file held in a string tensor, with TensorFlow ops only.

    Works eagerly, inside ``tf.function``, in ``tf.data`` maps and in exported graphs (no
    ``py_function``). Chunks other than ``fmt `` and ``data`` (LIST, fact, cue, ...) are skipped.

    Supported encodings: PCM unsigned 8-bit (``(x - 128) / 128``), signed 16-, 24- and 32-bit
    (divided by 2^(bits-1)), IEEE float 32 and 64 (returned as stored, so they may exceed ±1 when
    the file does; NaN/Inf fail), WAVE_FORMAT_EXTENSIBLE with a PCM or float sub-format; any number
    of channels. A data size of 0xFFFFFFFF (streamed WAV) means "to the end of the file"; a trailing
    partial frame is dropped.

    Invalid input fails with ``tf.errors.InvalidArgumentError`` whose message says what is wrong:
    not RIFF/WAVE, no ``fmt `` or ``data`` chunk, unsupported format tag or bit depth (A-law, μ-law,
    ADPCM, 12/20-bit, ...; ``load_audio`` hands those to soundfile), zero channels or rate, NaN/Inf
    in float data, and a **truncated** file (data chunk declaring more bytes than the file holds).
    Truncation is an error, not a silent partial decode, so a half-downloaded clip is noticed.

    Args:
        contents: scalar ``tf.string``, the bytes of a WAV file (e.g. ``tf.io.read_file(path)``).

    Returns:
        ``(audio, sample_rate)``: float32 ``[samples, channels]`` and an int32 scalar in Hz.

    Example:
        >>> audio, rate = decode_wav(tf.io.read_file("clip.wav"))  # doctest: +SKIP
        >>> ds = tf.data.Dataset.from_tensor_slices(paths).map(
        ...     lambda p: decode_wav(tf.io.read_file(p))[0])  # doctest: +SKIP
    """
    contents = tf.convert_to_tensor(contents, tf.string)
    size = tf.cast(tf.strings.length(contents), tf.int64)

    riff = _read_bytes(contents, size, tf.constant(0, tf.int64), 12)
    is_wave = (
        (size >= 12) & tf.equal(_le(riff[:4]), _fourcc("RIFF")) & tf.equal(_le(riff[8:]), _fourcc("WAVE"))
    )
    checks = [
        tf.debugging.Assert(
            is_wave, ["decode_wav: not a RIFF/WAVE file (the first 12 bytes are not 'RIFF....WAVE')"]
        )
    ]

    fmt_pos, fmt_size, data_pos, data_size = _find_chunks(contents, size)
    checks.append(tf.debugging.Assert(fmt_pos >= 0, ["decode_wav: no 'fmt ' chunk in the WAV file"]))
    checks.append(
        tf.debugging.Assert(fmt_size >= 16, ["decode_wav: 'fmt ' chunk is shorter than 16 bytes:", fmt_size])
    )
    checks.append(tf.debugging.Assert(data_pos >= 0, ["decode_wav: no 'data' chunk in the WAV file"]))

    fmt = _read_bytes(contents, size, fmt_pos, 26)  # the fields up to the extensible sub-format
    format_tag, channels, sample_rate, bits = _le(fmt[0:2]), _le(fmt[2:4]), _le(fmt[4:8]), _le(fmt[14:16])
    # WAVE_FORMAT_EXTENSIBLE: the real encoding is the first two bytes of the sub-format GUID.
    extensible = tf.equal(format_tag, _WAVE_FORMAT_EXTENSIBLE) & (fmt_size >= 40)
    format_tag = tf.where(extensible, _le(fmt[24:26]), format_tag)

    keys = tf.constant([tag * 1000 + b for tag, b in _TF_WAV_ENCODINGS], tf.int64)
    matches = tf.equal(keys, format_tag * 1000 + bits)
    checks.append(
        tf.debugging.Assert(
            tf.reduce_any(matches),
            [
                "decode_wav: unsupported WAV encoding (supported: PCM 8/16/24/32-bit, float 32/64-bit); "
                "format tag and bits per sample are:",
                format_tag,
                bits,
            ],
        )
    )
    checks.append(tf.debugging.Assert(channels >= 1, ["decode_wav: the WAV header says 0 channels"]))
    checks.append(tf.debugging.Assert(sample_rate >= 1, ["decode_wav: the WAV header says 0 Hz"]))
    checks.append(
        tf.debugging.Assert(
            data_pos + data_size <= size,
            [
                "decode_wav: truncated WAV file: the data chunk declares (bytes)",
                data_size,
                "but the file holds",
                size - data_pos,
            ],
        )
    )

    with tf.control_dependencies(checks):
        frame_bytes = tf.maximum(channels * (bits // 8), 1)
        num_frames = data_size // frame_bytes
        raw = tf.strings.substr(contents, tf.clip_by_value(data_pos, 0, size), num_frames * frame_bytes)
        flat = _decode_samples(raw, tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int64))
        audio = tf.reshape(flat, tf.stack([num_frames, channels]))  # [samples, channels]
    return audio, tf.cast(sample_rate, tf.int32)


def mix_to_mono(audio: tf.Tensor) -> tf.Tensor:
    """:func:`to_mono` in the graph: ``[..., samples, channels]`` → ``[..., samples]``.

    Example:
        >>> mix_to_mono(tf.constant([[0.5, -0.5], [1.0, 0.0]])).numpy()  # doctest: +SKIP
        array([0. , 0.5], dtype=float32)
    """
    audio = tf.convert_to_tensor(audio)
    if audio.shape.rank is not None and audio.shape.rank < 2:
        raise ValueError(
            f"mix_to_mono expects [samples, channels] audio, got shape {audio.shape}; "
            "audio that is already mono needs no mixing."
        )
    return tf.reduce_mean(audio, axis=-1)


# Traced once: load_audio calls it for every WAV (often from tf.py_function inside tf.data).
# autograph off: decode_wav has no Python control flow on tensors, and converting it cost ~2-4 s at the
# first WAV of every process (`tfaudio predict`, `tag`)
_decode_wav_graph = tf.function(decode_wav, input_signature=(tf.TensorSpec([], tf.string),), autograph=False)

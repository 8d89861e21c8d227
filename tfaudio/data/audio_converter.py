"""The one front door for audio: whatever a user has → float32 mono samples at a backbone's rate.

Like keras-hub's audio converters, one object prepares every input the same way, whichever road it
came by (training's ``tf.data`` pipeline, :meth:`AudioClassifier.predict`, ``tfaudio.pipeline``,
``tfaudio tag`` / ``predict``, the Gradio demo, Beam):

- a file path (WAV, FLAC, OGG, MP3; format sniffed from the content) or the bytes of such a file;
- a numpy / TensorFlow array of any int or float dtype (integer PCM is scaled to [-1, 1]), mono
  ``[samples]`` or multi-channel ``[samples, channels]`` / ``[channels, samples]`` (averaged);
- a ``(samples, rate)`` tuple, or a dict ``{"array" | "raw", "sampling_rate"}`` (Hugging Face
  datasets) or ``{"path"}``;

then the checks (empty, NaN/Inf, shape, dtype, rate) and the one resampler
(:func:`tfaudio.signal.resample.clip_resampler`, the same filter the exported graphs run). A clip
shorter than the backbone's shortest input gets a warning saying that the model zero-pads it (the
backbone pads inside its graph, the same in every road and in exports). Every bad
input raises :class:`~tfaudio.errors.AudioError` naming it (the file, or ``<input #i>``) and the fix.

Example:
    >>> convert = AudioConverter.for_backbone(backbone)
    >>> wave = convert("bark.mp3")                            # float32 [samples] at the backbone's rate
    >>> wave = convert(pcm_int16_stereo, sampling_rate=44100)
    >>> batch, lengths = pad_batch([wave, convert("meow.wav")])
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import pathlib
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.errors import AudioError
from tfaudio.io.decode import load_audio
from tfaudio.io.samples import pcm_to_float, to_mono
from tfaudio.log import warn
from tfaudio.signal.resample import clip_resampler

__all__ = ["AudioConverter", "Converted", "pad_batch", "MAX_CHANNELS"]

#: Most channels a 2-D array may have; the longer axis is taken as the samples.
MAX_CHANNELS = 64


@dataclasses.dataclass
class Converted:
    """What :meth:`AudioConverter.convert_many` returns.

    Attributes:
        waves: float32 ``[samples]`` at the converter's rate, one per good input, in input order.
        index: the position of each wave among the inputs.
        names: how each input is named in messages (its path, or ``<input #i>``), all inputs.
        skipped: ``(name, reason)`` of each input that could not be used (``on_error="skip"``).
    """

    waves: list[np.ndarray]
    index: list[int]
    names: list[str]
    skipped: list[tuple[str, str]]


class AudioConverter:
    """Prepares audio for a backbone: decode → mono → checks → resample (→ a warning for a clip shorter
    than one frame).

    Args:
        sample_rate: the rate to deliver, in Hz (a backbone's ``contract.sample_rate``).
        min_samples: clips shorter than this get a warning that the model pads them (a backbone's
            ``contract.min_samples``; 0: no warning).
        backend: decoder for compressed formats (``"auto"``, ``"soundfile"``, ``"tfio"``).
    """

    def __init__(self, sample_rate: int, *, min_samples: int = 0, backend: str = "auto"):
        self.sample_rate = _check_rate(sample_rate, "sample_rate")
        self.min_samples = int(min_samples)
        self.backend = backend

    @classmethod
    def for_backbone(cls, backbone: Any, **kwargs: Any) -> AudioConverter:
        """A converter to ``backbone.contract``'s rate that pads to its shortest input."""
        c = backbone.contract
        return cls(c.sample_rate, min_samples=c.min_samples, **kwargs)

    def __repr__(self) -> str:
        return f"AudioConverter(sample_rate={self.sample_rate}, min_samples={self.min_samples})"

    # ---- the two steps every road shares -------------------------------------------------------
    def decode_file(self, path: str | os.PathLike) -> tuple[np.ndarray, int]:
        """A file → (float32 mono ``[samples]``, its rate); an unexpected decoder failure is wrapped in
        an :class:`AudioError` naming the file."""

        try:
            return load_audio(path, backend=self.backend)
        except AudioError:
            raise
        except Exception as err:  # a decoder bug must still name the file
            raise AudioError(os.fspath(path), f"could not be decoded ({type(err).__name__}: {err}).",
                             "check the file (e.g. open it in an audio editor) or convert it to WAV.") from err

    def to_rate(self, audio: np.ndarray, rate: int, where: str = "<input>") -> np.ndarray:
        """``audio`` at ``rate`` → :attr:`sample_rate` with the one resampler (traced once per rate)."""
        if int(rate) == self.sample_rate:
            return np.ascontiguousarray(audio, np.float32)

        try:
            resampler = clip_resampler(int(rate), self.sample_rate)
        except ValueError as err:
            raise AudioError(where, f"sample rate {rate} Hz cannot be resampled to {self.sample_rate} Hz ({err}).",
                             f"convert it to {self.sample_rate} Hz first (e.g. `sox in.wav -r {self.sample_rate} "
                             "out.wav`).") from err
        return np.ascontiguousarray(resampler(tf.constant(audio, tf.float32)).numpy(), np.float32)

    # ---- one input ----------------------------------------------------------------------------
    def __call__(self, item: Any, sampling_rate: int | None = None, *, where: str | None = None) -> np.ndarray:
        """One input → float32 mono ``[samples]`` at :attr:`sample_rate` (see the module docstring).

        Args:
            item: a path, file bytes, an array (with ``sampling_rate``), a ``(samples, rate)`` tuple or
                an audio dict.
            sampling_rate: the rate of a bare array (paths, bytes, tuples and dicts carry their own).
            where: how to name the input in errors (default: its path, or ``<input>``).

        Raises:
            AudioError: the input cannot be used; the message names it and the fix.
        """
        where = where or describe(item)
        audio, rate = self._samples(item, sampling_rate, where)
        audio = self.to_rate(audio, rate, where)
        if len(audio) < self.min_samples:
            # The backbone pads (in its graph, as the export does: padding here could change what it
            # computes, e.g. Wav2Vec2's per-clip normalisation); the converter says so.
            warn(f"{where}: {len(audio) / self.sample_rate:.3f} s is shorter than the model's shortest input "
                 f"({self.min_samples / self.sample_rate:g} s); the model zero-pads it to one frame.")
        return audio

    def _samples(self, item: Any, rate: Any, where: str) -> tuple[np.ndarray, int]:
        if isinstance(item, (bytes, bytearray, memoryview)):
            return self._decode_bytes(bytes(item), where)
        if isinstance(item, (str, os.PathLike)):
            return self.decode_file(item)
        if isinstance(item, dict):
            key = next((k for k in ("array", "raw") if k in item), None)
            if key is None:
                if item.get("path"):
                    return self.decode_file(item["path"])
                if item.get("bytes"):
                    return self._decode_bytes(item["bytes"], where)
                raise AudioError(where, f"is a dict with keys {sorted(item)}; expected 'array' and 'sampling_rate'.",
                                 "pass {'array': samples, 'sampling_rate': rate} (a Hugging Face datasets audio "
                                 "value) or a file path.")
            if "sampling_rate" not in item:
                raise AudioError(where, f"has {key!r} but no 'sampling_rate'.",
                                 f"add the rate, e.g. {{'{key}': samples, 'sampling_rate': 16000}}.")
            item, rate = item[key], item["sampling_rate"]
        elif is_pair(item):
            item, rate = item
        if rate is None:
            raise AudioError(where, "is an array of samples without a sampling rate, so it cannot be resampled to "
                             f"the model's {self.sample_rate} Hz.",
                             f"pass sampling_rate=RATE (e.g. sampling_rate={self.sample_rate}), a (samples, rate) "
                             "tuple, or {'array': samples, 'sampling_rate': rate}.")
        return as_mono_float(item, where), _check_rate(rate, where)

    def _decode_bytes(self, data: bytes, where: str) -> tuple[np.ndarray, int]:
        if not data:
            raise AudioError(where, "is empty (0 bytes).", "pass the bytes of an audio file (WAV, FLAC, OGG, MP3).")
        with tempfile.TemporaryDirectory(prefix="tfaudio-bytes-") as tmp:
            path = pathlib.Path(tmp) / "audio"
            path.write_bytes(data)
            try:
                return self.decode_file(path)
            except AudioError as err:  # name the input, not the scratch file
                raise AudioError(where, err.problem, err.fix) from None

    # ---- many inputs --------------------------------------------------------------------------
    def convert_many(self, items: Sequence[Any], sampling_rate: int | None = None, *,
                     on_error: str = "raise", names: Sequence[str] | None = None) -> Converted:
        """Every input of ``items``; with ``on_error="skip"`` bad ones are left out and listed.

        Raises:
            AudioError: the first bad input (``on_error="raise"``).
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        items = list(items)
        names = list(names) if names is not None else [describe(x, i, len(items) == 1) for i, x in enumerate(items)]
        out = Converted([], [], names, [])
        for i, item in enumerate(items):
            try:
                out.waves.append(self(item, sampling_rate, where=names[i]))
                out.index.append(i)
            except AudioError as err:
                if on_error == "raise":
                    raise
                out.skipped.append((names[i], f"{err.problem} {err.fix}".strip()))
        return out


# ---- helpers shared with the rest of the package ------------------------------------------------
def describe(item: Any, index: int = 0, single: bool = True) -> str:
    """How an input is named in messages: its path, or ``<input>`` / ``<input #i>``."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, dict) and item.get("path") and not any(k in item for k in ("array", "raw")):
        return str(item["path"])
    return "<input>" if single else f"<input #{index}>"


def is_pair(item: Any) -> bool:
    """``(samples, rate)``: a tuple of an array-like and a number."""
    return (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], numbers.Real)
            and not isinstance(item[1], bool) and not isinstance(item[0], (str, os.PathLike, numbers.Real)))


def _check_rate(rate: Any, where: str) -> int:
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) \
            or rate <= 0 or int(rate) != rate:
        raise AudioError(where, f"sampling_rate must be a positive whole number of Hz, got {rate!r}.",
                         "pass the rate the samples were recorded at, e.g. sampling_rate=16000.")
    return int(rate)


def as_mono_float(array: Any, where: str = "<input>") -> np.ndarray:
    """Any array-like of samples → float32 mono ``[samples]``; integer PCM scaled to [-1, 1].

    Raises:
        AudioError: not numeric, empty, NaN/Inf, more than 2 dimensions, no axis that looks like
            channels.
    """
    if hasattr(array, "numpy") and not isinstance(array, np.ndarray):
        array = array.numpy()
    try:
        a = np.asarray(array)
    except (TypeError, ValueError) as err:
        raise AudioError(where, f"cannot be read as an array of samples ({err}).",
                         "pass a 1-D numpy array of float samples, or [samples, channels].") from None
    if a.dtype.kind == "O" and a.size:
        raise AudioError(where, "is a ragged / object array, not samples.",
                         "pass one clip as a 1-D float array; pass several clips as a list of arrays.")
    if a.dtype.kind not in "iuf" and a.size:
        raise AudioError(where, f"has samples of dtype {a.dtype}.",
                         "pass float samples in [-1, 1] (float32) or integer PCM (int16 / int32).")
    if a.ndim == 0 or a.ndim > 2:
        raise AudioError(where, f"has shape {a.shape}; expected [samples] or [samples, channels].",
                         "pass one clip per item (a list of arrays for a batch).")
    if a.size == 0:
        raise AudioError(where, f"is empty (shape {a.shape}, no samples).", "pass a clip with at least one sample.")
    if a.ndim == 2:
        rows, cols = a.shape
        if cols <= MAX_CHANNELS and rows >= cols:
            pass  # [samples, channels] (soundfile's layout)
        elif rows <= MAX_CHANNELS and cols > rows:
            a = a.T  # [channels, samples] (torchaudio's layout)
        else:
            raise AudioError(where, f"has shape {a.shape}: neither axis looks like channels (at most "
                             f"{MAX_CHANNELS}).", "pass [samples] or [samples, channels]; a batch as a list of clips.")
    if a.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise AudioError(where, f"has {bad} NaN/Inf sample(s) of {a.size}.",
                             "fix or drop the clip (e.g. np.nan_to_num(samples)) before classifying it.")
    return to_mono(pcm_to_float(a, where))


def pad_batch(waves: Sequence[np.ndarray], lengths: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clips → zero-padded float32 ``[batch, samples]`` and int32 ``[batch]`` lengths (the layout of
    every batched call: backbones, the clip scorer, the exported ``batch`` signature, Beam).

    Args:
        waves: float32 ``[samples]`` arrays.
        lengths: the valid samples of each (default: all; a clip zero-padded to a fixed duration has
            fewer valid samples than its array).
    """
    lengths = np.array([len(w) for w in waves] if lengths is None else list(lengths), np.int32)
    width = max([len(w) for w in waves], default=0)
    batch = np.zeros([len(waves), max(width, 1)], np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths

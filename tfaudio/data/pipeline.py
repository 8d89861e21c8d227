"""Lazy ``tf.data`` pipelines over a manifest: decode → mono → resample → crop/pad → batch with masks.

Nothing is read until the data set is iterated. Decoding and resampling run in parallel (AUTOTUNE);
resampling is the pure-TF resampler that exported models use too, traced once per source rate and
run right after each file is decoded (the file's rate is known there, so no in-graph switch on it). Bad files either stop the run with an error that
names the file, or (``on_error="skip"``) are dropped, counted and listed in :attr:`AudioDataset.skipped`.
"""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.data.manifest import Manifest
from tfaudio.errors import AudioError


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How clips are prepared. Times in seconds.

    Args:
        sample_rate: output rate in Hz (take it from the backbone's contract).
        duration_seconds: crop or zero-pad every clip to this length; None keeps clip lengths.
        align: where a crop starts, "start" or "center".
        on_error: "raise" (default: stop at the first bad file, naming it) or "skip" (drop, count
            and list bad files in ``AudioDataset.skipped``).
        deterministic: keep manifest order under parallel decoding.
        backend: decoder backend for compressed formats ("auto", "tfio", "soundfile").
    """

    sample_rate: int = 16000
    duration_seconds: float | None = None
    align: str = "start"
    on_error: str = "raise"
    deterministic: bool = True
    backend: str = "auto"

    def __post_init__(self):
        if self.on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")
        if self.align not in ("start", "center"):
            raise ValueError(f"align must be 'start' or 'center', got {self.align!r}")


def decode_clip(path: str, config: PipelineConfig) -> np.ndarray:
    """One file decoded, mixed to mono and resampled to ``config.sample_rate`` (float32 ``[samples]``).

    The step every pipeline shares (the ``tf.data`` one, the Beam jobs): ``load_audio``, then the
    pure-TF resampler traced once per source rate (:func:`~tfaudio.signal.resample.clip_resampler`).

    Raises:
        AudioError: the file cannot be used (naming it, the problem and the fix); an unexpected
            decoder failure is wrapped in one too, so the file is always named.
    """
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import clip_resampler

    target = config.sample_rate
    try:
        audio, rate = load_audio(path, backend=config.backend)
    except AudioError:
        raise
    except Exception as err:  # a decoder bug must still name the file
        raise AudioError(path, f"could not be decoded ({type(err).__name__}: {err}).", "check the file.") from err
    if rate != target:
        try:
            resampler = clip_resampler(rate, target)
        except ValueError as err:
            raise AudioError(
                path,
                f"sample rate {rate} Hz cannot be resampled to {target} Hz ({err}).",
                f"convert the file to {target} Hz (e.g. `sox in.wav -r {target} out.wav`).",
            ) from err
        audio = resampler(tf.constant(audio, tf.float32)).numpy()
    return np.ascontiguousarray(audio, np.float32)


def _is_ok(element):
    return element["ok"]


def _drop_ok(element):
    return {k: v for k, v in element.items() if k != "ok"}


class AudioDataset:
    """Streams the clips of a manifest as ``tf.data``.

    Elements are dicts: ``audio`` float32 [samples] at ``config.sample_rate``, ``length`` int32 (valid
    samples), ``label`` int32 (index in ``manifest.labels``), ``fold`` int32 (-1 when none), ``index``
    int32 (row in the manifest) and ``path`` string. Batches add ``mask`` bool [batch, samples].

    Args:
        manifest: the clips.
        config: a PipelineConfig; keyword arguments override its fields.

    Example:
        >>> ds = AudioDataset(manifest, sample_rate=16000, on_error="skip")
        >>> for batch in ds.batches(16): ...
        >>> print(ds.report())
    """

    def __init__(self, manifest: Manifest, config: PipelineConfig | None = None, **overrides: Any):
        self.manifest = manifest
        self.config = dataclasses.replace(config or PipelineConfig(), **overrides)
        self._paths = manifest.paths
        self._lock = threading.Lock()
        self._skipped: dict[int, AudioError] = {}

    @classmethod
    def for_backbone(cls, manifest: Manifest, backbone, **overrides: Any) -> AudioDataset:
        """A pipeline at the rate the backbone's contract asks for."""
        return cls(manifest, sample_rate=backbone.contract.sample_rate, **overrides)

    # ---- bad files ----------------------------------------------------------------------------
    @property
    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file dropped so far, in manifest order."""
        with self._lock:
            return [(e.path, f"{e.problem} {e.fix}".strip()) for _, e in sorted(self._skipped.items())]

    @property
    def errors(self) -> list[AudioError]:
        with self._lock:
            return [e for _, e in sorted(self._skipped.items())]

    def report(self) -> str:
        """A human summary: how many clips were skipped and why."""
        skipped = self.skipped
        if not skipped:
            return f"{len(self.manifest)} clips, none skipped"
        lines = [f"{len(skipped)} of {len(self.manifest)} clips skipped (bad audio):"]
        lines += [f"  {p}: {why}" for p, why in skipped]
        return "\n".join(lines)

    # ---- decoding -----------------------------------------------------------------------------
    def _decode_py(self, index: tf.Tensor):
        """:func:`decode_clip` of clip ``index``, recording a bad file (runs in a ``tf.py_function``)."""
        i = int(index.numpy())
        try:
            return decode_clip(self._paths[i], self.config), True, ""
        except AudioError as err:
            with self._lock:
                self._skipped[i] = err
            return np.zeros([0], np.float32), False, str(err)

    def _load(self, index: tf.Tensor) -> dict[str, tf.Tensor]:
        from tfaudio.signal.framing import pad_or_crop

        cfg = self.config
        audio, ok, message = tf.py_function(
            self._decode_py, [index], [tf.float32, tf.bool, tf.string], name="decode_audio"
        )
        audio.set_shape([None])  # at cfg.sample_rate
        ok.set_shape([])
        if cfg.on_error == "raise":
            with tf.control_dependencies([tf.debugging.Assert(ok, [message], summarize=1)]):
                audio = tf.identity(audio)
        length = tf.shape(audio)[0]
        if cfg.duration_seconds is not None:
            audio = pad_or_crop(audio, cfg.duration_seconds, cfg.sample_rate, align=cfg.align)
            length = tf.minimum(length, tf.shape(audio)[0])
        return {"audio": audio, "length": tf.cast(length, tf.int32), "ok": ok}

    def clips(self, *, shuffle: bool = False, seed: int | None = None) -> tf.data.Dataset:
        """Unbatched elements, one per (good) clip."""
        m = self.manifest
        meta = {
            "index": np.arange(len(m), dtype=np.int32),
            "label": m.targets,
            "fold": m.frame["fold"].fillna(-1).to_numpy(np.int32),
            "path": np.asarray(m.paths, dtype=object).astype(bytes),
        }
        ds = tf.data.Dataset.from_tensor_slices(meta)
        if shuffle:
            ds = ds.shuffle(len(m), seed=seed, reshuffle_each_iteration=True)

        def load(row):
            out = self._load(row["index"])
            return {**row, **out}

        opts = tf.data.Options()
        opts.deterministic = self.config.deterministic
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=self.config.deterministic)
        ds = ds.filter(_is_ok).map(_drop_ok)
        return ds.with_options(opts)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int | None = None, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        """Zero-padded batches of variable-length clips with ``mask`` [batch, samples], prefetched."""
        ds = self.clips(shuffle=shuffle, seed=seed).padded_batch(batch_size, drop_remainder=drop_remainder)

        def add_mask(b):
            return {**b, "mask": tf.sequence_mask(b["length"], tf.shape(b["audio"])[1])}

        return ds.map(add_mask, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def iterate(self, batch_size: int | None = None, **kwargs: Any) -> Iterator[dict[str, np.ndarray]]:
        """Numpy elements (or batches); a bad file raises its :class:`AudioError` (not a TF error)."""
        ds = self.batches(batch_size, **kwargs) if batch_size else self.clips(**kwargs)
        try:
            yield from ds.as_numpy_iterator()
        except tf.errors.OpError:
            errors = self.errors
            if errors:
                raise errors[0] from None
            raise

    def __iter__(self):
        return self.iterate()

    def __len__(self) -> int:
        return len(self.manifest)

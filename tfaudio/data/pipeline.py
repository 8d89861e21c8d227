"""Lazy ``tf.data`` pipelines over a manifest: decode → mono → resample → crop/pad → batch with masks.

Nothing is read until the data set is iterated. Decoding and resampling run in parallel (AUTOTUNE),
in two ``tf.data`` maps: a ``tf.numpy_function`` decodes each file (soundfile releases the GIL), then
the pure-TF resampler that exported models use too runs in the ``tf.data`` graph, picked by the
file's rate among the common source rates (:data:`GRAPH_RATES`). Other rates are resampled right
after decoding, in Python, by the same resampler (traced once per rate). Bad files either stop the
run with an error that names the file, or (``on_error="skip"``) are dropped, counted and listed in
:attr:`AudioDataset.skipped`.

Why two maps (measured on the 440 ESC-50 clips, 44.1 → 16 kHz, on 2 cores; ``benchmarks/pipeline.py``):
the resampler called from Python inside the decode step took 1.25-2x the CPU time it takes in a
``tf.data`` map, where each call's ops run on one thread instead of being handed between TF's
inter- and intra-op thread pools; decode and resample in one map holding the Python call also ran
slower than two maps. Together with ``tf.numpy_function`` (cheaper than ``tf.py_function``) this cut
the pipeline's CPU time per pass by ~25-35 % and brought it to the sum of its two components.
Each rate in the table adds ~0.03-0.1 s of set-up per iterator (its kernels are built when the
iterator starts), hence a table of the common recording rates rather than every rate.
"""
from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.data.audio_converter import AudioConverter
from tfaudio.data.manifest import Manifest
from tfaudio.errors import AudioError
from tfaudio.signal import melspec
from tfaudio.signal.frame_energy import frame_energy_db
from tfaudio.signal.framing import pad_or_crop
from tfaudio.signal.resample import resamplable_rates, switch_rates


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How clips are prepared. Times in seconds.

    Args:
        sample_rate: output rate in Hz. None (the default) until whoever knows the backbone fills it in
            from its contract (:meth:`AudioDataset.for_backbone`, the embedding cache); never guessed.
        duration_seconds: crop or zero-pad every clip to this length; None keeps clip lengths.
        align: where a crop starts, "start" or "center".
        on_error: "raise" (default: stop at the first bad file, naming it) or "skip" (drop, count
            and list bad files in ``AudioDataset.skipped``).
        deterministic: keep manifest order under parallel decoding.
        backend: decoder backend for compressed formats ("auto", "tfio", "soundfile").
    """

    sample_rate: int | None = None
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


#: Source rates resampled inside the ``tf.data`` graph (the usual recording rates). Files at any
#: other rate are resampled in the decode step by the same traced resampler (:func:`decode_clip`).
#: Both run the same filter; the samples agree within ~1e-6 (0.04 of a 16-bit step), the rounding of
#: the convolution's summation order, which depends on how many threads TF gives it.
GRAPH_RATES: tuple[int, ...] = (44100, 48000, 22050)


@functools.lru_cache(maxsize=16)
def _converter(sample_rate: int, backend: str) -> AudioConverter:
    """The front door's two steps (decode, resample) for one output rate and decoder backend: one
    converter shared by every clip."""
    if sample_rate is None:
        raise ValueError("the pipeline has no sample_rate: it comes from the backbone. Fix: "
                         "PipelineConfig(sample_rate=backbone.contract.sample_rate).")
    return AudioConverter(sample_rate, backend=backend)


def decode_clip(path: str, config: PipelineConfig) -> np.ndarray:
    """One file decoded, mixed to mono and resampled to ``config.sample_rate`` (float32 ``[samples]``).

    The step every pipeline shares (the ``tf.data`` one, the Beam jobs): the front door
    (:class:`~tfaudio.data.audio_converter.AudioConverter`: ``load_audio``, then the pure-TF resampler
    traced once per source rate). :class:`AudioDataset` runs the same two steps, the resampler for
    :data:`GRAPH_RATES` inside its ``tf.data`` graph (same samples).

    Raises:
        AudioError: the file cannot be used (naming it, the problem and the fix); an unexpected
            decoder failure is wrapped in one too, so the file is always named.
    """
    converter = _converter(config.sample_rate, config.backend)
    audio, rate = converter.decode_file(path)
    return converter.to_rate(audio, rate, path)


def decode_for_graph(path: str, config: PipelineConfig, graph_rates: tuple[int, ...]) -> tuple[np.ndarray, np.int32]:
    """(audio, branch) of one file for :func:`_clip_step`: ``branch`` selects the in-graph resampler of the
    file's rate among ``graph_rates`` (1-based), or is 0 when the audio was resampled here already (a
    rate not in the table). Raises :class:`AudioError` for a bad file."""
    converter = _converter(config.sample_rate, config.backend)
    audio, rate = converter.decode_file(path)
    if rate in graph_rates:
        return audio, np.int32(graph_rates.index(rate) + 1)
    return converter.to_rate(audio, rate, path), np.int32(0)


@functools.lru_cache(maxsize=8)
def _clip_step(graph_rates: tuple[int, ...], sample_rate: int, duration_seconds: float | None, align: str,
               features: Callable[[tf.Tensor], tf.Tensor] | None, frame_energy: tuple[int, int] | None,
               keep_audio: bool):
    """The pure-TF part of a clip's preparation (resample, crop/pad, features, frame energy) as one
    ``tf.function``, traced once per process and setting rather than once per data set.

    Why: ``Dataset.map`` traces (and autograph-converts) its Python function each time a data set is
    built; the embedding cache builds one per ``extract`` call, and tracing these steps cost ~0.25 s
    of every call (~15 % of extracting 128 clips of 5 s). A map that calls this traced function only
    adds a call to it.
    """

    def step(audio, branch):
        if graph_rates:
            audio = switch_rates(audio, branch, graph_rates, sample_rate)
        length = tf.shape(audio)[0]
        if duration_seconds is not None:
            audio = pad_or_crop(audio, duration_seconds, sample_rate, align=align)
            length = tf.minimum(length, tf.shape(audio)[0])
        out = {"length": tf.cast(length, tf.int32)}
        if features is not None:
            # In the data set's worker, on one thread, beside the model (a backbone's clip_features step),
            # traced with the frontends' faster TF kernels (the same numbers to float32 rounding).
            with melspec.fast_kernels():
                feats = features(audio)
            out.update(features=feats, feature_count=tf.shape(feats)[0])
        if frame_energy is not None:
            frame, hop = frame_energy
            count = tf.maximum(1, (tf.cast(length, tf.int32) + hop - 1) // hop)  # frames that start in the clip
            db = frame_energy_db(audio[None], tf.reshape(tf.cast(length, tf.int32), [1]), frame, hop, count)[0]
            out.update(frame_db=db, frame_db_count=count)
        if keep_audio:
            out["audio"] = audio
        return out

    signature = [tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)]
    return tf.function(step, input_signature=signature, autograph=False)


def _is_ok(element):
    return element["ok"]


def _drop_ok(element):
    return {k: v for k, v in element.items() if k != "ok"}


class AudioDataset:
    """Streams the clips of a manifest as ``tf.data``.

    Elements are dicts: ``audio`` float32 [samples] at ``config.sample_rate``, ``length`` int32 (valid
    samples), ``label`` int32 (index in ``manifest.labels``), ``fold`` int32 (-1 when none), ``index``
    int32 (row in the manifest) and ``path`` string. Batches add ``mask`` bool [batch, samples].
    With a ``features`` step, elements also hold ``features`` (its output for the clip, zero-padded
    along the first axis in batches) and ``feature_count`` int32 (its real rows).

    Args:
        manifest: the clips.
        config: a PipelineConfig; keyword arguments override its fields.
        features: a pure-TF function of one clip ``[samples]`` (after resampling and crop/pad), e.g.
            a backbone's ``clip_features`` (YAMNet: log-mel patches). It runs in the pipeline's
            workers, one thread per clip, in parallel with whatever consumes the batches.
        keep_audio: also keep ``audio`` (and the batches' ``mask``); False (with ``features``) saves
            batching the waveforms when only the features are used.
        frame_energy: ``(frame_samples, hop_samples)`` of a backbone: also give ``frame_db``, the mean
            power in dB of each frame that starts in the clip
            (:func:`~tfaudio.signal.frame_energy.frame_energy_db`), and ``frame_db_count``.

    Example:
        >>> ds = AudioDataset(manifest, sample_rate=16000, on_error="skip")
        >>> for batch in ds.batches(16): ...
        >>> print(ds.report())
    """

    def __init__(self, manifest: Manifest, config: PipelineConfig | None = None, *,
                 features: Callable[[tf.Tensor], tf.Tensor] | None = None, keep_audio: bool = True,
                 frame_energy: tuple[int, int] | None = None, **overrides: Any):
        if features is None and not keep_audio:
            raise ValueError("keep_audio=False needs a features step (e.g. features=backbone.clip_features).")
        self.manifest = manifest
        self.config = dataclasses.replace(config or PipelineConfig(), **overrides)
        if self.config.sample_rate is None:
            raise ValueError("AudioDataset needs the rate to resample to, and it comes from the backbone. Fix: "
                             "AudioDataset.for_backbone(manifest, backbone), or sample_rate=backbone.contract.sample_rate.")
        self.features = features
        self.keep_audio = keep_audio
        self.frame_energy = frame_energy
        self._paths = manifest.paths
        self._lock = threading.Lock()
        self._skipped: dict[int, AudioError] = {}

    @functools.cached_property
    def _graph_rates(self) -> tuple[int, ...]:
        """The :data:`GRAPH_RATES` this dataset resamples in its graph (those the resampler takes)."""
        return resamplable_rates(GRAPH_RATES, self.config.sample_rate)

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

    # ---- decoding ----------------------------------------------------------------------------
    def _decode_np(self, index: np.ndarray):
        """Decodes clip ``index`` (runs in a ``tf.numpy_function``); returns (audio, branch, ok, message).

        ``branch`` selects the in-graph resampler (:func:`~tfaudio.signal.resample.switch_rates`): 0 when ``audio`` is
        already at the target rate (resampled here when its rate is not in the graph's table).
        A bad file is recorded and comes back as (empty, 0, False, the error).
        """
        i = int(index)
        path = self._paths[i]
        try:
            audio, branch = decode_for_graph(path, self.config, self._graph_rates)
            return audio, branch, True, ""
        except AudioError as err:
            with self._lock:
                self._skipped[i] = err
            return np.zeros([0], np.float32), np.int32(0), False, str(err)

    def _decode(self, index: tf.Tensor):
        audio, branch, ok, message = tf.numpy_function(
            self._decode_np, [index], [tf.float32, tf.int32, tf.bool, tf.string], stateful=True, name="decode_audio"
        )
        audio.set_shape([None])  # at the file's rate, or resampled already (branch 0)
        branch.set_shape([])
        ok.set_shape([])
        if self.config.on_error == "raise":
            with tf.control_dependencies([tf.debugging.Assert(ok, [message], summarize=1)]):
                audio = tf.identity(audio)
        return audio, branch, ok

    def _resample(self, audio: tf.Tensor, branch: tf.Tensor, ok: tf.Tensor) -> dict[str, tf.Tensor]:
        cfg = self.config
        step = _clip_step(self._graph_rates, cfg.sample_rate, cfg.duration_seconds, cfg.align, self.features,
                          self.frame_energy, self.keep_audio)
        return {**step(audio, branch), "ok": ok}

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

        def decode(row):
            return row, self._decode(row["index"])

        def resample(row, decoded):
            return {**row, **self._resample(*decoded)}

        det = self.config.deterministic
        opts = tf.data.Options()
        opts.deterministic = det
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=det)
        ds = ds.map(resample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=det)
        ds = ds.filter(_is_ok).map(_drop_ok)
        return ds.with_options(opts)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int | None = None, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        """Zero-padded batches of variable-length clips with ``mask`` [batch, samples], prefetched."""
        ds = self.clips(shuffle=shuffle, seed=seed).padded_batch(batch_size, drop_remainder=drop_remainder)

        def add_mask(b):
            return {**b, "mask": tf.sequence_mask(b["length"], tf.shape(b["audio"])[1])}

        if self.keep_audio:
            ds = ds.map(add_mask, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

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

"""One long-lived ``tf.data`` pipeline per process and setting, fed file paths call after call: what
the embedding cache extracts with.

:class:`~tfaudio.data.pipeline.AudioDataset` builds a data set per manifest; iterating it builds and
instantiates its functions (the decoder call, the resampler's ``switch_case`` over the graph rates, the
backbone's frontend), ~0.2-0.3 s of CPU every time, measured: ~20 % of extracting 128 clips of 5 s
(the cache made one per ``extract`` call, and cross-validation, ``tune`` and the demos call it often).
A :class:`ClipStream` builds its pipeline once: a generator hands the ``tf.data`` graph the paths of
each call from a queue, the same two maps as :class:`AudioDataset` (decode in a
``tf.numpy_function``, then the traced per-clip step of :func:`tfaudio.data.pipeline._clip_step`) run
on them in parallel (AUTOTUNE, in order), and :meth:`ClipStream.batches` zero-pads them into batches
in NumPy. The numbers are the same as :class:`AudioDataset`'s: the same functions run, but for files
at the rates only the stream resamples in its graph (:data:`STREAM_RATES`), whose samples agree with
the decode step's resampling within ~1e-6 (the summation order, see ``GRAPH_RATES``).

Why a wider table of in-graph rates than :class:`AudioDataset`'s: a rate outside the table is resampled
inside the decode step's ``tf.numpy_function``, where the resampler's graph runs on TensorFlow's
inter-op pool beside the pipeline's own threads. Measured (lead's profile, mn04 on the 440 esc50-subset
clips): the 32 clips at 16 kHz cost ~0.3 s of CPU that way, ~10x what they cost in the graph. A
stream is built once per process, so the table's set-up (a branch traced per rate) is paid once.

Every element carries its job number, so elements of a call that was interrupted (an exception in
the consumer) are recognised and dropped by the next call. Bad files never stop the pipeline: the
decoder records them and the caller raises or skips (``on_error``) in Python.
"""
from __future__ import annotations

import atexit
import dataclasses
import itertools
import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfaudio.data.pipeline import GRAPH_RATES, PipelineConfig, _clip_step, decode_for_graph
from tfaudio.errors import AudioError
from tfaudio.signal.resample import resamplable_rates

__all__ = ["ClipStream", "clip_stream", "STREAM_RATES"]

#: Source rates a stream resamples in its graph: :data:`~tfaudio.data.pipeline.GRAPH_RATES` and the
#: usual speech rates (16 kHz: Speech Commands, ESC-50's cat clips here; 8 kHz: telephone, FSDD).
STREAM_RATES: tuple[int, ...] = (*GRAPH_RATES, 16000, 8000)


class ClipStream:
    """A persistent pipeline: paths in, prepared clips out, in order.

    Args:
        config: the pipeline settings (``sample_rate`` set; ``on_error`` and ``deterministic`` are not
            used: every call is in order, and the caller decides about bad files).
        features: a pure-TF function of one clip (a backbone's ``clip_features``), or None.
        frame_energy: ``(frame_samples, hop_samples)`` for ``frame_db`` (see :class:`AudioDataset`).
        keep_audio: also give each clip's ``audio``.
    """

    def __init__(self, config: PipelineConfig, features=None, frame_energy: tuple[int, int] | None = None,
                 keep_audio: bool = True):
        if config.sample_rate is None:
            raise ValueError("ClipStream needs config.sample_rate (the backbone's contract gives it).")
        self.config = config
        self.rates = resamplable_rates(STREAM_RATES, config.sample_rate)
        self._step = _clip_step(self.rates, config.sample_rate, config.duration_seconds, config.align, features,
                                frame_energy, keep_audio)
        self._queue: queue.Queue = queue.Queue()
        self._errors: dict[int, AudioError] = {}
        self._jobs = itertools.count()
        # one call at a time: a call owns the stream until it ends; a new call of the same thread takes
        # over from one it abandoned (a generator left unfinished by an exception, not yet collected)
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._call = 0
        self._iterator = None
        self.skipped: list[tuple[str, str]] = []

    # ---- the pipeline ---------------------------------------------------------------------------
    def _paths(self) -> Iterator[tuple[int, bytes]]:
        while True:
            item = self._queue.get()
            if item is None:  # close()
                return
            yield item

    def _decode_np(self, job, path):
        """(audio, branch, ok) of one file (see ``AudioDataset._decode_np``); a bad file is recorded."""
        job, path = int(job), path.decode()
        try:
            return (*decode_for_graph(path, self.config, self.rates), True)
        except AudioError as err:
            self._errors[job] = err
            return np.zeros([0], np.float32), np.int32(0), False

    def _build(self):
        signature = (tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string))
        ds = tf.data.Dataset.from_generator(self._paths, output_signature=signature)

        def decode(job, path):
            audio, branch, ok = tf.numpy_function(self._decode_np, [job, path], [tf.float32, tf.int32, tf.bool],
                                                  stateful=True, name="decode_audio")
            audio.set_shape([None])
            branch.set_shape([])
            ok.set_shape([])
            return job, audio, branch, ok

        def prepare(job, audio, branch, ok):
            return {**self._step(audio, branch), "job": job, "ok": ok}

        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return iter(ds.prefetch(tf.data.AUTOTUNE))

    # ---- calls ----------------------------------------------------------------------------------
    def clips(self, paths: Sequence[str], on_error: str = "raise") -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(position in paths, element)`` of each good file, in order; a bad file raises its
        :class:`AudioError` (``on_error="raise"``) or is left out (``"skip"``: see :attr:`skipped`)."""
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        call = self._claim()
        try:
            self.skipped = []
            while True:  # jobs of an abandoned call that the pipeline has not taken yet
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            if self._iterator is None:
                self._iterator = self._build()
            first = next(self._jobs)
            jobs = [first] + [next(self._jobs) for _ in paths[1:]]
            for job, path in zip(jobs, paths):
                self._queue.put((job, str(path).encode()))
            done = 0
            while done < len(paths) and self._call == call:  # (taken over: stop)
                element = next(self._iterator)
                job = int(element.pop("job"))
                if job < first:
                    continue  # an element of an abandoned call
                done += 1
                position = job - first
                if not element.pop("ok"):
                    err = self._errors.pop(job)
                    if on_error == "raise":
                        raise err
                    self.skipped.append((err.path, f"{err.problem} {err.fix}".strip()))
                    continue
                yield position, {k: v.numpy() for k, v in element.items()}
        finally:
            self._release(call)

    def _claim(self, timeout: float | None = None) -> int:
        me = threading.get_ident()
        with self._cond:
            self._cond.wait_for(lambda: self._owner in (None, me), timeout)  # on time-out: take it anyway
            self._owner = me
            self._call += 1
            return self._call

    def _release(self, call: int) -> None:
        with self._cond:
            if self._call == call:
                self._owner = None
                self._cond.notify_all()

    def batches(self, paths: Sequence[str], batch_size: int, on_error: str = "raise") -> Iterator[dict[str, np.ndarray]]:
        """:meth:`clips` in batches: ``index`` (positions in ``paths``) and every field zero-padded
        along its first axis to the batch's longest (as ``padded_batch``)."""
        batch: list[tuple[int, dict[str, np.ndarray]]] = []
        for item in self.clips(paths, on_error):
            batch.append(item)
            if len(batch) == batch_size:
                yield _pad(batch)
                batch = []
        if batch:
            yield _pad(batch)

    def close(self) -> None:
        """Ends the pipeline: its generator returns and the iterator is run to its end, then dropped.

        Why run it to the end: the iterator's threads wait in the generator (on the queue) for the next
        call. Deleting a live iterator (at exit, in the thread that holds the GIL) waits for those threads,
        which need the GIL to return: the process hung at exit. Run to its end, the generator has
        returned (and been finalised) in ``next``, which releases the GIL, and the threads are idle.
        """
        call = self._claim(timeout=30.0)  # at exit, a call in another thread may never end
        try:
            self._queue.put(None)
            iterator, self._iterator = self._iterator, None
            if iterator is not None:
                for _ in iterator:  # elements of an abandoned call, if any, then the end
                    pass
        finally:
            self._release(call)


def _pad(items: list[tuple[int, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    out = {"index": np.array([i for i, _ in items], np.int32)}
    for key in items[0][1]:
        arrays = [e[key] for _, e in items]
        if arrays[0].ndim == 0:
            out[key] = np.stack(arrays)
            continue
        longest = max(a.shape[0] for a in arrays)
        padded = np.zeros((len(arrays), longest) + arrays[0].shape[1:], arrays[0].dtype)
        for j, a in enumerate(arrays):
            padded[j, : a.shape[0]] = a
        out[key] = padded
    return out


_STREAMS: dict[tuple, ClipStream] = {}
_STREAMS_LOCK = threading.Lock()
#: Streams kept per process (each holds a live pipeline); the oldest is closed past that.
MAX_STREAMS = 4


def clip_stream(config: PipelineConfig, features=None, frame_energy: tuple[int, int] | None = None,
                keep_audio: bool = True) -> ClipStream:
    """The process's stream for these settings (built on first use and kept; at most
    :data:`MAX_STREAMS`, the oldest closed past that)."""
    config = dataclasses.replace(config, on_error="raise", deterministic=True)
    key = (config, features, frame_energy, keep_audio)
    with _STREAMS_LOCK:
        stream = _STREAMS.get(key)
        if stream is None:
            if len(_STREAMS) >= MAX_STREAMS:
                _STREAMS.pop(next(iter(_STREAMS))).close()
            stream = _STREAMS[key] = ClipStream(config, features, frame_energy, keep_audio)
            atexit.register(stream.close)
        return stream

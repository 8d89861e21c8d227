"""Sound events in recordings of any length: stream → frame scores → events.

::

    file (any length, any rate)
      → tfaudio.io.audio_stream: blocks of ~60 s at the model's rate (never the whole file)
      → chunks of N frames on the model's own frame grid (start i * hop, the previous chunk's tail
        carried over, so frame i is the same as in a whole-file run)
      → the model's scorer: frame scores [N, C] (a head on every frame, or a tagger's own frame
        scores; an export written with --frame-scores: its serving_default's ``frame_scores`` on the grid
        its tfaudio.json states); for a model without frame scores (EfficientAT's clip scores, an export, a
        fine-tuned model), one window of ``window_seconds`` every ``hop_seconds`` scored as a clip
      → tfaudio.tasks.events.EventDetector (median filter → hysteresis → merging), block by block
      → list[Event]

Memory is a block of audio, one chunk of frames and the events: flat in the file's length.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tfaudio.errors import TfaudioError
from tfaudio.inference.loader import LoadedModel, load_model
from tfaudio.io.audio_info import audio_info
from tfaudio.io.audio_stream import stream_audio
from tfaudio.io.strong_labels import Event
from tfaudio.tasks.events import EventConfig, EventDetector

__all__ = ["Detection", "EventDetectionModel", "detect_events"]


@dataclasses.dataclass
class Detection:
    """The events of one recording.

    Attributes:
        file: the recording.
        events: ``list[Event]`` sorted by onset.
        duration: its length in seconds.
        frames: how many frames (windows) were scored.
        hop_seconds, window_seconds: the frame grid.
        labels: the model's classes.
        activity: per class, the highest raw score in each of up to ~2000 bins over the
            file ``[bins, C]`` (for the timeline figure; bounded whatever the length), bins of
            ``activity_seconds``.
    """

    file: str
    events: list[Event]
    duration: float
    frames: int
    hop_seconds: float
    window_seconds: float
    labels: tuple[str, ...]
    activity: np.ndarray | None = None
    activity_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"file": self.file, "duration": round(self.duration, 3), "frames": self.frames,
                "hop_seconds": self.hop_seconds, "window_seconds": self.window_seconds,
                "events": [e.as_dict() for e in self.events]}


class EventDetectionModel:
    """A loaded model seen as a frame scorer: ``chunk [samples] → scores [frames, C]`` on a fixed grid.

    Args:
        model: anything :func:`tfaudio.inference.loader.load_model` takes (a folder saved by ``tfaudio
            train``, an export, ``"yamnet"``, an AudioClassifier, a backbone with classes), a
            :class:`~tfaudio.inference.loader.LoadedModel`, or a :class:`~tfaudio.tasks.clip_scorer.ClipScorer`.
        window_seconds, hop_seconds: score windows of this span every hop as clips, instead of the
            model's own frames (default: the model's frames where it has frame scores, else windows of
            its input window with half of it as hop).
    """

    def __init__(self, model: Any, *, window_seconds: float | None = None, hop_seconds: float | None = None):
        if isinstance(model, LoadedModel):
            loaded = model
        elif hasattr(model, "batch") and hasattr(model, "contract") and hasattr(model, "labels"):  # a ClipScorer
            loaded = LoadedModel(model.kind, model, model, tuple(model.labels), int(model.sample_rate),
                                 getattr(model, "description", "scorer"))
        else:
            loaded = load_model(model, tagging=isinstance(model, str))
        if loaded.scorer is None:
            raise TfaudioError(f"{loaded.source}: a backbone without classes cannot detect events. Fix: train a head "
                               "on it (`tfaudio train`) and pass that model folder, or use 'yamnet'.")
        self.loaded = loaded
        self.scorer = loaded.scorer
        self.labels = tuple(loaded.labels)
        self.sample_rate = int(loaded.sample_rate)
        contract = getattr(self.scorer, "contract", None)
        meta = loaded.metadata or {}
        native = bool(getattr(self.scorer, "frame_scores", False)) and contract is not None
        export_frames = (loaded.kind == "export" and "frame_scores" in (meta.get("outputs") or ())
                         and meta.get("hop_seconds") and hasattr(loaded.model, "signatures"))
        if window_seconds is not None or hop_seconds is not None:
            native = export_frames = False
        if export_frames:  # an export with frame scores: its serving_default, on the grid its tfaudio.json states
            self.mode = "export_frames"
            self.chunk_samples = max(1, int(loaded.min_samples))
            self.hop_samples = max(1, int(round(float(meta["hop_seconds"]) * self.sample_rate)))
            self.window_seconds = float(meta.get("frame_seconds") or meta["hop_seconds"])
        elif native:
            self.mode = "frames"
            self.chunk_samples = int(contract.min_samples)  # samples for one frame
            self.hop_samples = int(contract.hop_samples)
            self.window_seconds = float(contract.frame_seconds)
        else:
            self.mode = "windows"
            if window_seconds is None:
                window_seconds = (contract.window_samples / contract.sample_rate if contract is not None
                                  else meta.get("window_samples", 0) / max(1, meta.get("sample_rate") or self.sample_rate)
                                  or 1.0)
            hop_seconds = hop_seconds if hop_seconds is not None else window_seconds / 2
            if not (window_seconds > 0 and hop_seconds > 0):
                raise TfaudioError(f"window ({window_seconds} s) and hop ({hop_seconds} s) must be > 0.")
            self.chunk_samples = max(1, int(round(window_seconds * self.sample_rate)), int(loaded.min_samples))
            self.hop_samples = max(1, int(round(hop_seconds * self.sample_rate)))
            self.window_seconds = float(window_seconds)
        self.hop_seconds = self.hop_samples / self.sample_rate

    def num_frames(self, samples: int) -> int:
        """Frames (windows) of a recording of ``samples`` samples at :attr:`sample_rate`."""
        return 1 + math.ceil(max(0, samples - self.chunk_samples) / self.hop_samples) if samples > 0 else 0

    def score_chunk(self, chunk: np.ndarray) -> np.ndarray:
        """Scores ``[frames, C]`` of the frames that start in ``chunk`` (its first sample on the grid)."""
        expected = self.num_frames(len(chunk))
        if self.mode == "export_frames":
            out = self.loaded.model.signatures["serving_default"](audio=tf.constant(chunk, tf.float32))
            scores = np.asarray(out["frame_scores"], np.float32)
            if len(scores) < expected:
                raise TfaudioError(f"{self.loaded.source}: {len(scores)} frame scores for a chunk that has {expected} "
                                   "frames on the grid its tfaudio.json states (min_samples, hop_seconds).")
            return scores[:expected]
        if self.mode == "frames":
            out = self.scorer.outputs([chunk])[0]
            if "frame_scores" in out:
                scores = np.asarray(out["frame_scores"], np.float32)
                if len(scores) < expected:
                    raise TfaudioError(f"{self.loaded.source}: {len(scores)} frame scores for a chunk that has "
                                       f"{expected} frames; the model's frame grid is not its contract's.")
                return scores[:expected]
            self.mode = "windows"  # this model pools whole clips after all: score windows
            self.window_seconds = self.chunk_samples / self.sample_rate
        windows = [chunk[i * self.hop_samples : i * self.hop_samples + self.chunk_samples] for i in range(expected)]
        return np.asarray(self.scorer.scores(windows), np.float32)


def _chunks(blocks: Iterator[np.ndarray], chunk_samples: int, hop: int, frames: int) -> Iterator[np.ndarray]:
    """Chunks of ``frames`` frames (``(frames - 1) * hop + chunk_samples`` samples, advancing ``frames
    * hop``) from consecutive sample blocks; the last chunk holds what is left (its frames start on
    the grid)."""
    size, advance = (frames - 1) * hop + chunk_samples, frames * hop
    buf = np.zeros(0, np.float32)
    started = False
    for block in blocks:
        buf = np.concatenate([buf, block])
        while len(buf) >= size:
            yield buf[:size]
            started = True
            buf = buf[advance:]
    # what is left has a frame of its own when it reaches past the last yielded frame's window
    if len(buf) > max(0, size - advance) or (len(buf) and not started):
        yield buf


class _Activity:
    """A per-class maximum over fixed time bins (a bounded summary of the scores for the figure)."""

    def __init__(self, duration: float, hop: float, window: float, num_classes: int, bins: int = 2000):
        self.hop, self.lead = hop, max(0.0, (window - hop) / 2)  # where a frame starts standing
        self.bin_seconds = max(hop, duration / bins)
        self.values = np.zeros([int(math.ceil(duration / self.bin_seconds)) + 1, num_classes], np.float32)

    def add(self, first: int, scores: np.ndarray) -> None:
        idx = np.minimum((((first + np.arange(len(scores))) * self.hop + self.lead) / self.bin_seconds).astype(int),
                         len(self.values) - 1)
        np.maximum.at(self.values, idx, scores)


def detect_events(files: str | os.PathLike | Sequence[str | os.PathLike], model: Any, *,
                  config: EventConfig | None = None, window_seconds: float | None = None,
                  hop_seconds: float | None = None, block_seconds: float = 60.0, labels: Sequence[str] | None = None,
                  progress: bool = False, on_block: Callable[[str, float, float], None] | None = None) -> list[Detection]:
    """Sound events (onset, offset, label, score) in recordings of any length.

    Args:
        files: one path or several (WAV, FLAC, OGG, MP3; any rate, any length).
        model: see :class:`EventDetectionModel` (or one already built, reused across calls).
        config: thresholds, median filter and merging (:class:`~tfaudio.tasks.events.EventConfig`).
        window_seconds, hop_seconds: score windows instead of the model's frames.
        block_seconds: audio read and scored per step (memory: about this much audio and its frames).
        labels: report only these classes (default: all).
        progress: a progress bar per file (audio seconds).
        on_block: called as ``on_block(file, seconds_done, seconds_total)`` after each chunk.

    Returns:
        one :class:`Detection` per file, in order.

    Raises:
        AudioError: a file is missing or cannot be streamed. TfaudioError: an unknown label.

    Example:
        >>> [d] = detect_events("night.flac", "saved_models/birds")  # doctest: +SKIP
        >>> [(e.onset, e.offset, e.label) for e in d.events]  # doctest: +SKIP
    """

    paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    det_model = model if isinstance(model, EventDetectionModel) else EventDetectionModel(
        model, window_seconds=window_seconds, hop_seconds=hop_seconds)
    columns = list(range(len(det_model.labels)))
    if labels is not None:
        unknown = [x for x in labels if x not in det_model.labels]
        if unknown:
            raise TfaudioError(f"unknown label(s) {unknown}; the model's classes are "
                               f"{list(det_model.labels)[:20]}{' …' if len(det_model.labels) > 20 else ''}. Fix: pick "
                               "from those (--labels).")
        columns = [det_model.labels.index(x) for x in labels]
    chosen = tuple(det_model.labels[c] for c in columns)
    infos = [(os.fspath(p), audio_info(p)) for p in paths]  # every file checked before the first model call
    results = []
    for path, info in infos:
        duration = info.duration
        detector = EventDetector(chosen, det_model.hop_seconds, det_model.window_seconds, config, file=path)
        activity = _Activity(duration, det_model.hop_seconds, det_model.window_seconds, len(columns))
        # ~block_seconds of frames per chunk: one model call each
        frames = max(1, int(round(block_seconds * det_model.sample_rate / det_model.hop_samples)))
        blocks = stream_audio(path, det_model.sample_rate, block_seconds=block_seconds)
        events: list[Event] = []
        done = 0
        with tqdm(total=round(duration, 1), unit="s", desc=os.path.basename(path), disable=not progress,
                  leave=False) as bar:
            for chunk in _chunks(blocks, det_model.chunk_samples, det_model.hop_samples, frames):
                scores = det_model.score_chunk(chunk)[:, columns]
                activity.add(done, scores)
                events += detector.feed(scores)
                done += len(scores)
                seconds = min(duration, done * det_model.hop_seconds)
                bar.update(round(seconds - bar.n, 1))
                if on_block is not None:
                    on_block(path, seconds, duration)
        events += detector.finish(duration)
        events.sort(key=lambda e: (e.onset, e.label))
        results.append(Detection(path, events, duration, done, det_model.hop_seconds, det_model.window_seconds,
                                 chosen, activity.values, activity.bin_seconds))
    return results

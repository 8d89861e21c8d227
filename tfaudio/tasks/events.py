"""Frame or window scores → sound events with onset and offset (post-processing).

Three steps, per class, as in DCASE sound event detection systems::

    scores [T, C] (one row per frame: start i * hop, span window)
      → median filter over ``median_seconds`` (odd number of frames; edges repeat the end frames)
      → hysteresis: an event starts where the score reaches ``high`` and lasts while it stays >= ``low``
      → merging: events of one class less than ``min_gap_seconds`` apart become one; events shorter than
        ``min_duration_seconds`` are dropped

A frame stands for the ``hop`` of time around its centre (``i * hop + window / 2 ± hop / 2``; the
first starts at 0, the last ends at the file's end), so an event's onset and offset fall on that
grid. An event's score is the highest filtered score inside it.

:class:`EventDetector` runs the steps on scores that arrive block by block (a stream of any length
in memory bounded by the block, the median window and one open event per class):
:func:`events_from_scores` is the same on one array.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tfaudio.errors import TfaudioError
from tfaudio.io.strong_labels import Event

__all__ = ["Event", "EventConfig", "EventDetector", "events_from_scores", "median_filter"]


@dataclasses.dataclass(frozen=True)
class EventConfig:
    """How scores become events (times in seconds).

    Args:
        high: a class's score must reach this for an event to start (one float, or one per class).
        low: an event lasts while the score stays at or above this (``<= high``; default ``high``:
            plain thresholding).
        median_seconds: span of the median filter (rounded to an odd number of frames; <= one hop:
            off).
        min_gap_seconds: events of one class closer than this are merged.
        min_duration_seconds: shorter events (after merging) are dropped.
    """

    high: float | Sequence[float] = 0.5
    low: float | Sequence[float] | None = 0.3
    median_seconds: float = 0.5
    min_gap_seconds: float = 0.5
    min_duration_seconds: float = 0.0

    def __post_init__(self):
        for name in ("median_seconds", "min_gap_seconds", "min_duration_seconds"):
            if not getattr(self, name) >= 0:
                raise TfaudioError(f"{name} must be >= 0 seconds, got {getattr(self, name)}.")

    def thresholds(self, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """``(high [C], low [C])``, checked."""
        high = np.broadcast_to(np.asarray(self.high, np.float32), [num_classes]).copy()
        low = high.copy() if self.low is None else np.broadcast_to(np.asarray(self.low, np.float32), [num_classes]).copy()
        if np.any(low > high):
            raise TfaudioError(f"the low threshold ({self.low}) must not exceed the high one ({self.high}): an event "
                               "starts at high and lasts while the score stays >= low. Fix: lower --low or raise --high.")
        return high, low

    def median_frames(self, hop_seconds: float) -> int:
        """The median window in frames (odd, >= 1)."""
        n = max(1, int(round(self.median_seconds / hop_seconds)))
        return n if n % 2 else n + 1 if n > 1 else 1


def median_filter(scores: np.ndarray, frames: int) -> np.ndarray:
    """Median over ``frames`` (odd) consecutive rows of ``scores [T, C]``, the ends repeated."""
    scores = np.asarray(scores, np.float32)
    r = frames // 2
    if r == 0 or not len(scores):
        return scores.copy()
    padded = np.concatenate([np.repeat(scores[:1], r, 0), scores, np.repeat(scores[-1:], r, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, frames, axis=0)  # [T, C, frames]
    return np.median(windows, axis=-1).astype(np.float32)


@dataclasses.dataclass
class _Open:
    """A class's run of frames >= low that has not ended yet (or a closed event waiting for a merge)."""

    start: int
    end: int  # exclusive
    high: bool
    peak: float


class EventDetector:
    """Streaming post-processing: feed frame scores block by block, get events as they end.

    Args:
        labels: class names, one per score column.
        hop_seconds: time between frame starts.
        window_seconds: span of one frame (its centre is ``start + window / 2``).
        config: the thresholds, median filter and merging (:class:`EventConfig`).
        file: the recording's name, stamped on every event.

    Example:
        >>> det = EventDetector(["dog"], hop_seconds=0.5, window_seconds=1.0)
        >>> det.feed(np.array([[0.1], [0.9], [0.9]]))
        []
        >>> det.finish(duration=2.0)
        [Event(onset=0.5, offset=2.0, label='dog', score=0.9..., file='')]
    """

    def __init__(self, labels: Sequence[str], hop_seconds: float, window_seconds: float,
                 config: EventConfig | None = None, *, file: str = ""):
        if not hop_seconds > 0:
            raise TfaudioError(f"hop_seconds must be > 0, got {hop_seconds}.")
        self.labels = list(labels)
        self.hop_seconds = float(hop_seconds)
        self.window_seconds = float(window_seconds)
        self.config = config or EventConfig()
        self.file = file
        self._high, self._low = self.config.thresholds(len(self.labels))
        self._k = self.config.median_frames(self.hop_seconds)
        self._r = self._k // 2
        self._gap = int(np.floor(self.config.min_gap_seconds / self.hop_seconds + 1e-9))  # frames between events
        self._buf = np.zeros([0, len(self.labels)], np.float32)  # raw frames from _buf_start on
        self._buf_start = 0
        self._next = 0  # first frame not filtered yet
        self._runs: dict[int, _Open] = {}  # class → open run
        self._pending: dict[int, _Open] = {}  # class → closed event that a later one may still merge with
        self._done: list[tuple[int, _Open]] = []
        self._duration: float | None = None

    @property
    def frames(self) -> int:
        """Frames fed so far."""
        return self._buf_start + len(self._buf)

    # ---- frame ↔ time ------------------------------------------------------------------------
    def frame_start(self, i: int) -> float:
        return 0.0 if i == 0 else max(0.0, i * self.hop_seconds + (self.window_seconds - self.hop_seconds) / 2)

    def frame_end(self, i: int) -> float:
        end = i * self.hop_seconds + (self.window_seconds + self.hop_seconds) / 2
        return min(end, self._duration) if self._duration is not None else end

    # ---- streaming ---------------------------------------------------------------------------
    def feed(self, scores: np.ndarray) -> list[Event]:
        """Adds frame scores ``[n, C]`` (the next frames in time); returns the events that ended."""
        scores = np.asarray(scores, np.float32)
        if scores.ndim != 2 or scores.shape[1] != len(self.labels):
            raise TfaudioError(f"scores must be [frames, {len(self.labels)}] (one column per label), got {scores.shape}.")
        self._buf = np.concatenate([self._buf, scores])
        self._drain(final=False)
        return self._take()

    def finish(self, duration: float | None = None) -> list[Event]:
        """Ends the stream (``duration``: the recording's length in seconds, where the last event ends
        at the latest); returns the remaining events."""
        self._duration = duration
        if self.frames:
            self._drain(final=True)
        for c, run in sorted(self._runs.items()):
            self._close(c, run)
        self._runs.clear()
        for c, ev in sorted(self._pending.items()):
            self._done.append((c, ev))
        self._pending.clear()
        return self._take()

    def _drain(self, final: bool) -> None:
        r, buf, start = self._r, self._buf, self._buf_start
        end = start + len(buf)
        stop = end if final else end - r
        if stop <= self._next:
            return
        left = max(0, r - (self._next - start))  # only at the stream's start
        right = max(0, stop + r - end)  # only at its end
        x = np.concatenate([np.repeat(buf[:1], left, 0), buf, np.repeat(buf[-1:], right, 0)])
        if r:
            windows = np.lib.stride_tricks.sliding_window_view(x, self._k, axis=0)  # [n, C, k]
            j0 = self._next - start + left - r
            filtered = np.median(windows[j0 : j0 + stop - self._next], axis=-1)
        else:
            filtered = x[self._next - start : stop - start]
        self._hysteresis(filtered, self._next)
        self._next = stop
        keep = max(start, stop - r)
        self._buf, self._buf_start = buf[keep - start :], keep

    def _hysteresis(self, scores: np.ndarray, first: int) -> None:
        n = len(scores)
        above_low = scores >= self._low  # [n, C]
        above_high = scores >= self._high
        active = np.flatnonzero(above_low.any(axis=0))
        for c in sorted(set(active.tolist()) | set(self._runs)):
            col = above_low[:, c]
            edges = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            run = self._runs.pop(c, None)
            if run is not None and (not len(starts) or starts[0] > 0):
                self._close(c, run)  # the open run ended at the block's start
                run = None
            for s, e in zip(starts, ends, strict=True):
                seg = scores[s:e, c]
                high, peak = bool(above_high[s:e, c].any()), float(seg.max())
                if run is not None and s == 0:  # continues the open run
                    run.end, run.high, run.peak = first + e, run.high or high, max(run.peak, peak)
                else:
                    if run is not None:
                        self._close(c, run)
                    run = _Open(first + s, first + e, high, peak)
                if e < n:
                    self._close(c, run)
                    run = None
            if run is not None:
                self._runs[c] = run
        for c in sorted(self._pending):
            if c not in self._runs and first + n - self._pending[c].end > self._gap:
                self._done.append((c, self._pending.pop(c)))  # no later event can merge with it

    def _close(self, c: int, run: _Open) -> None:
        if not run.high:
            return  # never reached the high threshold: no event
        pending = self._pending.get(c)
        if pending is not None and run.start - pending.end <= self._gap:
            pending.end, pending.peak = run.end, max(pending.peak, run.peak)
            return
        if pending is not None:
            self._done.append((c, pending))
        self._pending[c] = run

    def _take(self) -> list[Event]:
        out = []
        for c, ev in self._done:
            onset, offset = self.frame_start(ev.start), self.frame_end(ev.end - 1)
            if offset - onset + 1e-9 >= self.config.min_duration_seconds:
                out.append(Event(round(onset, 4), round(offset, 4), self.labels[c], float(ev.peak), self.file))
        self._done.clear()
        return sorted(out, key=lambda e: (e.onset, e.label))


def events_from_scores(scores: np.ndarray, labels: Sequence[str], hop_seconds: float, window_seconds: float,
                       config: EventConfig | None = None, *, duration: float | None = None,
                       file: str = "") -> list[Event]:
    """Events of one recording's frame scores ``[T, C]`` (see the module docstring).

    Args:
        scores: float ``[frames, classes]``; row ``i`` covers ``[i * hop, i * hop + window]`` seconds.
        labels: class names (``C``).
        hop_seconds, window_seconds: the frame grid.
        config: thresholds, median filter, merging.
        duration: the recording's length in seconds (the last event ends there at the latest).
        file: name stamped on the events.

    Returns:
        ``list[Event]`` sorted by onset.
    """
    det = EventDetector(labels, hop_seconds, window_seconds, config, file=file)
    events = det.feed(scores) + det.finish(duration)
    return sorted(events, key=lambda e: (e.onset, e.label))

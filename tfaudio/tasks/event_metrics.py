"""Sound event detection metrics, as sed_eval (Mesaros, Heittola & Virtanen, 2016) and HEAR define them.

Event-based: an estimated event is a true positive when it has the reference event's label, its onset
is within ``t_collar`` (200 ms) of the reference onset and its offset within
``max(t_collar, percentage_of_length * reference length)`` (20 %) of the reference offset. Each
reference and each estimated event counts at most once (a maximum matching per file and class, as
sed_eval's ``event_matching_type="optimal"``). F1 = 2 TP / (2 TP + FP + FN), overall (micro) and
averaged over classes (macro).

Segment-based: each file is cut into ``segment_seconds`` (1 s) segments; a class is active in a segment
when an event of it overlaps the segment (``floor(onset / s) <= k < ceil(offset / s)``). Per segment,
with FN and FP counted over the classes, substitutions S = min(FN, FP), deletions D = max(0, FN - FP),
insertions I = max(0, FP - FN); the error rate is ``(ΣS + ΣD + ΣI) / ΣN_ref`` (N_ref: active reference
classes per segment). A file has ``ceil(max(duration, last offset) / segment_seconds)`` segments.

Checked once against sed_eval 0.2.1 itself (``EventBasedMetrics(t_collar=0.2, percentage_of_length=0.2)``,
``SegmentBasedMetrics(time_resolution=1.0)``) on the 3 x 10-minute soundscapes of ``benchmarks/detect.py``:
overall and class-averaged F1 and the segment error rate agree to 1e-15. sed_eval is not a
dependency; the tests check hand-computed cases.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tfaudio.io.strong_labels import Event

__all__ = ["event_based_metrics", "segment_based_metrics", "sed_report"]

#: sed_eval's and HEAR's defaults.
T_COLLAR = 0.2
PERCENTAGE_OF_LENGTH = 0.2
SEGMENT_SECONDS = 1.0


def _prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn}


def _labels(reference: Sequence[Event], estimated: Sequence[Event], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        return list(labels)
    return sorted({e.label for e in reference} | {e.label for e in estimated})


def _group(events: Iterable[Event]) -> dict[tuple[str, str], list[Event]]:
    out: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in events:
        out[(e.file, e.label)].append(e)
    return out


def _max_matching(ok: np.ndarray) -> int:
    """Size of a maximum matching in the bipartite graph ``ok [n_ref, n_est]`` (augmenting paths)."""
    match_est = [-1] * ok.shape[1]

    def augment(i: int, seen: list[bool]) -> bool:
        for j in np.flatnonzero(ok[i]):
            if not seen[j]:
                seen[j] = True
                if match_est[j] < 0 or augment(match_est[j], seen):
                    match_est[j] = i
                    return True
        return False

    return sum(augment(i, [False] * ok.shape[1]) for i in range(ok.shape[0]))


def event_based_metrics(reference: Sequence[Event], estimated: Sequence[Event], *, labels: Sequence[str] | None = None,
                        t_collar: float = T_COLLAR, percentage_of_length: float = PERCENTAGE_OF_LENGTH) -> dict:
    """Event-based precision, recall and F1 (see the module docstring).

    Args:
        reference, estimated: events (``file`` tells the recordings apart).
        labels: the classes to score (default: every label seen).
        t_collar: onset collar in seconds.
        percentage_of_length: offset collar as a fraction of the reference event's length (at least
            ``t_collar``).

    Returns:
        ``{"overall": {"f1", "precision", "recall", "tp", "fp", "fn"}, "macro_f1", "class_wise":
        {label: {...}}, "t_collar", "percentage_of_length"}``.
    """
    labels = _labels(reference, estimated, labels)
    keep = set(labels)
    ref, est = _group(e for e in reference if e.label in keep), _group(e for e in estimated if e.label in keep)
    counts = {label: [0, 0, 0] for label in labels}  # tp, fp, fn
    for key in set(ref) | set(est):
        r, e = ref.get(key, []), est.get(key, [])
        tp = 0
        if r and e:
            r_on = np.array([x.onset for x in r])[:, None]
            r_off = np.array([x.offset for x in r])[:, None]
            e_on = np.array([x.onset for x in e])[None]
            e_off = np.array([x.offset for x in e])[None]
            off_collar = np.maximum(t_collar, percentage_of_length * (r_off - r_on))
            ok = (np.abs(r_on - e_on) <= t_collar + 1e-9) & (np.abs(r_off - e_off) <= off_collar + 1e-9)
            tp = _max_matching(ok)
        c = counts[key[1]]
        c[0] += tp
        c[1] += len(e) - tp
        c[2] += len(r) - tp
    class_wise = {label: _prf(*counts[label]) for label in labels}
    total = np.sum([counts[label] for label in labels], axis=0) if labels else [0, 0, 0]
    return {
        "overall": _prf(*(int(x) for x in total)),
        "macro_f1": float(np.mean([class_wise[label]["f1"] for label in labels])) if labels else 0.0,
        "class_wise": class_wise,
        "t_collar": t_collar,
        "percentage_of_length": percentage_of_length,
    }


def _roll(events: Sequence[Event], labels: list[str], segments: int, seconds: float) -> np.ndarray:
    roll = np.zeros([segments, len(labels)], bool)
    index = {label: i for i, label in enumerate(labels)}
    for e in events:
        if e.label not in index:
            continue
        first = int(math.floor(e.onset / seconds + 1e-9))
        last = int(math.ceil(e.offset / seconds - 1e-9))
        roll[first : max(last, first + 1), index[e.label]] = True
    return roll


def segment_based_metrics(reference: Sequence[Event], estimated: Sequence[Event], *, labels: Sequence[str] | None = None,
                          segment_seconds: float = SEGMENT_SECONDS,
                          durations: Mapping[str, float] | None = None) -> dict:
    """Segment-based F1 and error rate (see the module docstring).

    Args:
        reference, estimated: events (``file`` tells the recordings apart).
        labels: the classes to score (default: every label seen).
        segment_seconds: segment length.
        durations: each file's length in seconds (default: its last offset, reference or estimate).
            Files without events count when they are listed here.

    Returns:
        ``{"overall": {"f1", "precision", "recall", "tp", "fp", "fn", "error_rate", "substitution_rate",
        "deletion_rate", "insertion_rate", "n_ref", "segments"}, "macro_f1", "class_wise": {label:
        {"f1", ..., "error_rate"}}, "segment_seconds"}``.
    """
    labels = _labels(reference, estimated, labels)
    durations = dict(durations or {})
    ref, est = defaultdict(list), defaultdict(list)
    for e in reference:
        ref[e.file].append(e)
    for e in estimated:
        est[e.file].append(e)
    tp = fp = fn = s = d = i = n_ref = segments = 0
    per_class = np.zeros([len(labels), 4], np.int64)  # tp, fp, fn, n_ref
    for f in sorted(set(ref) | set(est) | set(durations)):
        end = max([durations.get(f, 0.0)] + [e.offset for e in ref[f]] + [e.offset for e in est[f]])
        n = max(1, int(math.ceil(end / segment_seconds - 1e-9)))
        r, e = _roll(ref[f], labels, n, segment_seconds), _roll(est[f], labels, n, segment_seconds)
        seg_tp, seg_fp, seg_fn = (r & e).sum(1), (~r & e).sum(1), (r & ~e).sum(1)
        tp, fp, fn = tp + int(seg_tp.sum()), fp + int(seg_fp.sum()), fn + int(seg_fn.sum())
        s += int(np.minimum(seg_fn, seg_fp).sum())
        d += int(np.maximum(0, seg_fn - seg_fp).sum())
        i += int(np.maximum(0, seg_fp - seg_fn).sum())
        n_ref += int(r.sum())
        segments += n
        per_class += np.stack([(r & e).sum(0), (~r & e).sum(0), (r & ~e).sum(0), r.sum(0)], 1)
    overall = _prf(tp, fp, fn)
    rate = (lambda x: x / n_ref) if n_ref else (lambda x: float(x > 0))
    overall.update(error_rate=rate(s + d + i), substitution_rate=rate(s), deletion_rate=rate(d),
                   insertion_rate=rate(i), n_ref=n_ref, segments=segments)
    class_wise = {}
    for label, (ctp, cfp, cfn, cref) in zip(labels, per_class.tolist(), strict=True):
        row = _prf(ctp, cfp, cfn)
        row["error_rate"] = (cfn + cfp) / cref if cref else float(cfp > 0)
        row["n_ref"] = cref
        class_wise[label] = row
    return {
        "overall": overall,
        "macro_f1": float(np.mean([class_wise[label]["f1"] for label in labels])) if labels else 0.0,
        "class_wise": class_wise,
        "segment_seconds": segment_seconds,
    }


def sed_report(reference: Sequence[Event], estimated: Sequence[Event], *, labels: Sequence[str] | None = None,
               durations: Mapping[str, float] | None = None) -> dict:
    """Both metrics with sed_eval's / HEAR's defaults: ``{"event_based", "segment_based", "labels"}``."""
    labels = _labels(reference, estimated, labels)
    return {
        "labels": labels,
        "event_based": event_based_metrics(reference, estimated, labels=labels),
        "segment_based": segment_based_metrics(reference, estimated, labels=labels, durations=durations),
    }

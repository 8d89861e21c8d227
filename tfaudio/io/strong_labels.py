"""Strong labels: sound events with onset and offset, in the DCASE / DESED table form.

One event per row, tab-separated (DESED's ``.tsv``; commas accepted too), times in seconds::

    filename	onset	offset	event_label
    Y00pbt8cg.wav	0.0	2.3	Dog
    Y00pbt8cg.wav	1.1	9.8	Rain

A header naming the columns is optional (without one the first four columns are taken in this
order); a ``score`` column is kept when present (what ``tfaudio detect`` writes). Rows of a file
with no event of any class (DESED writes the filename alone, or empty onset/offset/label) record the
file's existence and carry no event.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
from collections.abc import Iterable, Sequence

from tfaudio.errors import ManifestError

__all__ = ["Event", "StrongLabelError", "read_strong_labels", "format_strong_labels", "COLUMNS"]

#: The DCASE / DESED column names, in order.
COLUMNS = ("filename", "onset", "offset", "event_label")


class StrongLabelError(ManifestError):
    """A strong-label table that cannot be read (the message names the file, the line and the fix)."""


@dataclasses.dataclass(frozen=True)
class Event:
    """One sound event.

    Args:
        onset: start in seconds from the beginning of the file.
        offset: end in seconds (``>= onset``).
        label: the class name.
        score: the detector's confidence (1.0 for reference labels).
        file: the recording it belongs to (as the table names it).
    """

    onset: float
    offset: float
    label: str
    score: float = 1.0
    file: str = ""

    @property
    def duration(self) -> float:
        return self.offset - self.onset

    def as_dict(self) -> dict:
        return {"filename": self.file, "onset": round(self.onset, 3), "offset": round(self.offset, 3),
                "event_label": self.label, "score": round(self.score, 4)}


def _delimiter(first_line: str) -> str:
    return "\t" if "\t" in first_line or "," not in first_line else ","


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StrongLabelError(f"{where}: {what} {text!r} is not a number of seconds. Fix: write times in "
                               "seconds, e.g. 1.25.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise StrongLabelError(f"{where}: {what} is {text!r}. Fix: write a finite time in seconds.")
    return value


def read_strong_labels(path: str | os.PathLike, *, with_files: bool = False):
    """Reads a strong-label table.

    Args:
        path: a ``.tsv`` (or ``.csv``) file with ``filename, onset, offset, event_label`` rows.
        with_files: also return every file the table names (files with no event included).

    Returns:
        ``list[Event]`` in table order (and the list of file names, with ``with_files``).

    Raises:
        StrongLabelError: a missing file, a header without the needed columns, a row with too few
            fields, a time that is not a number, a negative onset or an offset before its onset (the
            message names the file and line).

    Example:
        >>> events = read_strong_labels("metadata/eval/public.tsv")  # doctest: +SKIP
        >>> events[0].onset, events[0].label  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise StrongLabelError(f"{path}: no such strong-label file. Fix: pass a TSV with the columns "
                               f"{' '.join(COLUMNS)} (DCASE / DESED form).")
    text = path.read_text(encoding="utf-8-sig")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise StrongLabelError(f"{path}: the file is empty. Fix: write one event per line: "
                               f"{' '.join(COLUMNS)}.")
    delimiter = _delimiter(lines[0][1])
    rows = list(csv.reader([line for _, line in lines], delimiter=delimiter))
    header = [h.strip().lower() for h in rows[0]]
    if "onset" in header or "filename" in header or "event_label" in header:
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise StrongLabelError(f"{path}: the header {rows[0]} lacks the column(s) {missing}. Fix: name the columns "
                                   f"{' '.join(COLUMNS)} (tab-separated).")
        index = [header.index(c) for c in COLUMNS]
        score_at = header.index("score") if "score" in header else None
        body = list(zip([n for n, _ in lines[1:]], rows[1:], strict=True))
    else:
        index, score_at = [0, 1, 2, 3], None
        body = list(zip([n for n, _ in lines], rows, strict=True))
    events: list[Event] = []
    files: dict[str, None] = {}
    for number, row in body:
        where = f"{path}:{number}"
        fields = [f.strip() for f in row]
        name = fields[index[0]] if len(fields) > index[0] else ""
        if not name:
            raise StrongLabelError(f"{where}: the row has no filename. Fix: start each row with the audio file's name.")
        files.setdefault(name)
        rest = [fields[i] if i < len(fields) else "" for i in index[1:]]
        if not any(rest):
            continue  # a file without events (DESED's way of listing it)
        if len(fields) <= max(index) or not all(rest):
            raise StrongLabelError(f"{where}: expected {len(COLUMNS)} fields ({', '.join(COLUMNS)}) separated by "
                                   f"{'tabs' if delimiter == chr(9) else 'commas'}, got {row}. Fix: give the onset, "
                                   "offset and label of the event, or the filename alone for a file without events.")
        onset = _number(rest[0], "onset", where)
        offset = _number(rest[1], "offset", where)
        if onset < 0:
            raise StrongLabelError(f"{where}: onset {onset} is negative. Fix: times count from the start of the file (>= 0).")
        if offset < onset:
            raise StrongLabelError(f"{where}: offset {offset} is before onset {onset}. Fix: swap them or correct the row.")
        score = 1.0
        if score_at is not None and score_at < len(fields) and fields[score_at]:
            score = _number(fields[score_at], "score", where)
        events.append(Event(onset, offset, rest[2], score, name))
    return (events, list(files)) if with_files else events


def format_strong_labels(events: Iterable[Event], *, scores: bool = True, files: Sequence[str] = ()) -> str:
    """Events as a DCASE / DESED TSV (with a ``score`` column unless ``scores=False``); ``files``
    without events get a row with the filename alone."""
    header = list(COLUMNS) + (["score"] if scores else [])
    out = ["\t".join(header)]
    seen = set()
    for e in events:
        seen.add(e.file)
        row = [e.file, f"{e.onset:.3f}", f"{e.offset:.3f}", e.label] + ([f"{e.score:.4f}"] if scores else [])
        out.append("\t".join(row))
    out += [f for f in files if f not in seen]
    return "\n".join(out) + "\n"

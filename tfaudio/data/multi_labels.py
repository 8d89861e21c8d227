"""Several labels per clip in one CSV column: parsing, the vocabulary and multi-hot targets.

A cell holds one label or several separated by ``;`` or ``,`` (FSD50K's ``dev.csv`` writes
``"Bark,Dog,Domestic_animals_and_pets"``); spaces around labels are dropped. A vocabulary is the
labels' order: FSD50K's ``vocabulary.csv`` (``index,label,mid`` rows without a header), a list, or
the sorted set of labels seen. Single-label data is the case of one label per cell.
"""
from __future__ import annotations

import csv
import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from tfaudio.errors import ManifestError

__all__ = ["split_labels", "is_multi_label", "read_vocabulary", "vocabulary_of", "multi_hot"]

SEPARATORS = (";", ",")


def split_labels(cell: str, where: str = "", separators: Sequence[str] = SEPARATORS) -> tuple[str, ...]:
    """``"Bark; Dog"`` → ``("Bark", "Dog")`` (the first of ``separators`` the cell holds: ``;`` before
    ``,``); duplicates dropped, order kept.

    Raises:
        ManifestError: an empty cell or an empty label between separators.
    """
    text = str(cell).strip()
    sep = next((s for s in separators if s in text), None)
    parts = [p.strip() for p in text.split(sep)] if sep else [text]
    if not text or any(not p for p in parts):
        raise ManifestError(f"{where + ': ' if where else ''}empty label in {cell!r}. Fix: separate labels with ';' "
                            "(or ','), e.g. 'dog;rain', and leave no label empty.")
    return tuple(dict.fromkeys(parts))


def is_multi_label(cells: Iterable[str]) -> bool:
    """Whether any cell holds more than one label."""
    return any(len(split_labels(c)) > 1 for c in cells)


def read_vocabulary(path: str | os.PathLike) -> list[str]:
    """FSD50K's ``vocabulary.csv`` (``index,label,mid`` without a header) or a file with one label per line."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such vocabulary file. Fix: pass FSD50K's vocabulary.csv or one label per line.")
    rows = [r for r in csv.reader(path.read_text(encoding="utf-8-sig").splitlines()) if r and any(x.strip() for x in r)]
    if rows and len(rows[0]) >= 2 and rows[0][0].strip().isdigit():
        order = sorted(rows, key=lambda r: int(r[0]))
        labels = [r[1].strip() for r in order]
    else:
        labels = [r[0].strip() for r in rows]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ManifestError(f"{path}: labels listed twice: {dupes[:5]}. Fix: one row per label.")
    return labels


def vocabulary_of(label_sets: Iterable[Sequence[str]]) -> list[str]:
    """The sorted set of labels seen."""
    return sorted({x for labels in label_sets for x in labels})


def multi_hot(label_sets: Sequence[Sequence[str]], vocabulary: Sequence[str], where: str = "") -> np.ndarray:
    """Multi-hot targets ``[clips, classes]`` (float32).

    Raises:
        ManifestError: a label that is not in the vocabulary (the message names it and the row).
    """
    index = {label: i for i, label in enumerate(vocabulary)}
    y = np.zeros([len(label_sets), len(vocabulary)], np.float32)
    for row, labels in enumerate(label_sets):
        for label in labels:
            if label not in index:
                raise ManifestError(f"{where + ': ' if where else ''}row {row + 1}: label {label!r} is not in the "
                                    f"vocabulary ({len(vocabulary)} labels). Fix: add it to the vocabulary or correct "
                                    "the row.")
            y[row, index[label]] = 1.0
    return y

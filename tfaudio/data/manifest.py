"""A manifest: one row per clip (path, label, fold, group), built from a CSV, a folder or a DataFrame.

The label list is stable: it is sorted (or given) once and saved with every model, so class index
``i`` means the same class in training, evaluation and export.

One file of ~500 lines on purpose: reading CSVs and folders, the row-named validation errors and fold
assignment are one data structure's construction.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfaudio.data.multi_labels import multi_hot, split_labels, vocabulary_of
from tfaudio.errors import ManifestError

#: File endings tfaudio looks for when it scans a folder.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3")

COLUMNS = ("path", "label", "fold", "group")

#: The class of out-of-set clips (``tfaudio train --background-dir``): trained like the others, and
#: mapped to "none of these" at prediction (:func:`tfaudio.heads.decode.decide`).
BACKGROUND = "__background__"

_ESC50 = re.compile(r"^(?P<fold>\d+)-(?P<clip>[^-]+)-(?P<take>[A-Za-z]+)-(?P<target>\d+)\.\w+$")
# `_unknown_` clips are named `<word>_<speaker>_nohash_<n>.wav.wav`, so search, not match.
_SPEECH_COMMANDS = re.compile(r"(?:^|_)(?P<speaker>[0-9a-f]{8})_nohash_(?P<n>\d+)")
_FSDD = re.compile(r"^(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.\w+$")


def esc50_clip_id(filename: str) -> str | None:
    """ESC-50 ``<fold>-<clip>-<take>-<target>.wav`` → the source clip id (takes of one clip group)."""
    m = _ESC50.match(os.path.basename(filename))
    return m["clip"] if m else None


def speech_commands_speaker(filename: str) -> str | None:
    """Speech Commands ``<speaker>_nohash_<n>.wav`` → the speaker hash."""
    m = _SPEECH_COMMANDS.search(os.path.basename(filename))
    return m["speaker"] if m else None


def fsdd_speaker(filename: str) -> str | None:
    """Free Spoken Digit ``<digit>_<speaker>_<take>.wav`` → the speaker name."""
    m = _FSDD.match(os.path.basename(filename))
    return m["speaker"] if m else None


GROUP_RULES: dict[str, Callable[[str], str | None]] = {
    "esc50": esc50_clip_id,
    "speech_commands": speech_commands_speaker,
    "fsdd": fsdd_speaker,
}


def infer_groups(paths: Sequence[str]) -> pd.Series | None:
    """Groups from file names when most names follow one known scheme, else None.

    Files that do not follow the scheme (e.g. Speech Commands' ``_silence_/1024.wav``) form a group
    of their own, so they can never leak across folds with anyone else's clips.
    """
    for rule in GROUP_RULES.values():
        groups = [rule(p) for p in paths]
        if paths and sum(g is not None for g in groups) >= 0.5 * len(paths):
            return pd.Series([g if g is not None else f"file:{p}" for g, p in zip(groups, paths)], dtype=object)
    return None


class _RowNames:
    """How rows are named in messages: CSV line numbers (header = line 1) or DataFrame rows."""

    def __init__(self, source: str | None, first_line: int | None):
        self.where = source or "the manifest"
        self.first_line = first_line

    def of(self, index: Iterable[int], limit: int = 5) -> str:
        index = [int(i) for i in index]
        shown = [str(i + self.first_line) for i in index[:limit]] if self.first_line is not None else \
            [str(i) for i in index[:limit]]
        more = f" and {len(index) - limit} more" if len(index) > limit else ""
        return ("line" if self.first_line is not None else "row") + ("s " if len(index) > 1 else " ") + \
            ", ".join(shown) + more


def _checked_text(column: pd.Series, what: str, rows: _RowNames, fix: str, *, strip: bool = True) -> pd.Series:
    """Strings without blanks; blank (empty, whitespace, NaN) cells are an error naming their rows.
    ``strip``: drop surrounding white space (file names); labels keep theirs, so a model's labels are
    exactly the CSV's."""
    text = column.astype(object)
    blank = text.isna() | text.map(lambda v: not str(v).strip())
    if blank.any():
        raise ManifestError(f"{rows.where}: blank {what} at {rows.of(np.flatnonzero(blank.to_numpy()))}. Fix: {fix}.")
    return text.map(lambda v: str(v).strip() if isinstance(v, str) and strip else str(v))


def _checked_folds(column: pd.Series | None, rows: _RowNames) -> pd.Series:
    """Whole-number folds (Int64), all rows or none; anything else is an error naming its rows."""
    if column is None:
        return pd.Series(pd.NA, index=pd.RangeIndex(0), dtype="Int64")
    column = column.reset_index(drop=True)
    blank = column.isna() | column.astype(object).map(lambda v: isinstance(v, str) and not v.strip())
    if blank.all():
        return pd.Series([pd.NA] * len(column), dtype="Int64")
    if blank.any():
        raise ManifestError(
            f"{rows.where}: blank fold at {rows.of(np.flatnonzero(blank.to_numpy()))} while other rows have folds. "
            "Fix: give every row a fold, or leave the whole fold column empty (then folds are assigned).")
    numbers = pd.to_numeric(column.astype(object).map(lambda v: str(v).strip() if isinstance(v, str) else v),
                            errors="coerce")
    bad = numbers.isna() | (numbers != np.floor(numbers)) | (numbers < 0)
    if bad.any():
        idx = np.flatnonzero(bad.to_numpy())
        shown = ", ".join(repr(column.iloc[i]) for i in idx[:5])
        raise ManifestError(f"{rows.where}: folds must be whole numbers >= 0; got {shown} at {rows.of(idx)}. Fix: use "
                            "fold numbers such as 1..5, or drop the fold column (--fold-column) to assign folds.")
    return numbers.astype("int64").astype("Int64")


class Manifest:
    """One row per clip: ``path`` (str), ``label`` (str), ``fold`` (int or <NA>), ``group`` (str or None).

    Args:
        frame: a DataFrame with at least ``path`` and ``label``; ``fold`` and ``group`` are optional.
        labels: the class list in index order. Default: the sorted unique labels of ``frame``.
            Rows whose label is not in ``labels`` raise a ManifestError naming them, unless
            ``on_unknown="skip"`` (they are then dropped, counted in ``self.skipped``).
        on_unknown: "raise" or "skip".
        duplicates: a file listed twice: "raise" (default: an error naming the rows), "drop" (keep the
            first, the others counted in ``self.skipped``) or "keep".
        source, first_line: how rows are named in errors (a CSV path and the line of the first row).
        multi_label: several labels per clip, ``;``-separated in ``label`` (:mod:`tfaudio.data.multi_labels`);
            None: when any label cell holds a ``;``. ``targets`` are then multi-hot ``[rows, classes]``.

    Blank file names or labels, folds that are not whole numbers, and a fold column filled for only
    some rows are errors naming the rows.

    Example:
        >>> m = Manifest.from_csv("ESC-50/meta/esc50.csv").select(["dog", "cat"])
        >>> train, val, test = m.split(train=[1, 2, 3], val=[4], test=[5])
    """

    def __init__(self, frame: pd.DataFrame, labels: Sequence[str] | None = None, on_unknown: str = "raise", *,
                 duplicates: str = "raise", source: str | None = None, first_line: int | None = None,
                 multi_label: bool | None = None):
        missing = {"path", "label"} - set(frame.columns)
        if missing:
            raise ManifestError(f"a manifest needs the columns 'path' and 'label'; missing {sorted(missing)}")
        if duplicates not in ("raise", "drop", "keep"):
            raise ManifestError(f"duplicates must be 'raise', 'drop' or 'keep', got {duplicates!r}")
        frame = frame.copy().reset_index(drop=True)
        rows = _RowNames(source, first_line)
        frame["path"] = _checked_text(frame["path"], "file name", rows, "fill in the file name or delete the row")
        frame["label"] = _checked_text(frame["label"], "label", rows, "fill in the class name or delete the row",
                                       strip=False)
        frame["fold"] = _checked_folds(frame["fold"] if "fold" in frame else None, rows)
        if "group" not in frame:
            frame["group"] = None
        self.skipped: list[tuple[str, str]] = []
        dup = frame["path"].duplicated(keep="first")
        if dup.any() and duplicates != "keep":
            if duplicates == "raise":
                first = frame["path"].duplicated(keep=False)
                listing = "; ".join(f"{p} ({rows.of(frame.index[frame['path'] == p])})"
                                    for p in frame.loc[dup, "path"].unique()[:5])
                raise ManifestError(
                    f"{rows.where}: {int(dup.sum())} duplicate row(s) of {int(first.sum() - dup.sum())} file(s): "
                    f"{listing}. A file listed twice may land in both the training and the test folds. Fix: "
                    "delete the extra rows, or keep the first of each (duplicates='drop'; on the command line "
                    "--duplicates drop)."
                )
            self.skipped += [(p, "duplicate row (first kept)") for p in frame.loc[dup, "path"]]
            frame = frame[~dup].reset_index(drop=True)
        self.multi_label = bool(frame["label"].str.contains(";", regex=False).any()) if multi_label is None \
            else bool(multi_label)
        if self.multi_label:
            return self._init_multi(frame, labels, on_unknown, rows)
        if labels is None:
            labels = sorted(frame["label"].unique())
        labels = [str(x) for x in labels]
        if len(set(labels)) != len(labels):
            raise ManifestError(f"the label list has duplicates: {labels}")
        unknown = ~frame["label"].isin(labels)
        if unknown.any():
            bad = frame[unknown]
            listing = ", ".join(f"{p} ({lab!r})" for p, lab in zip(bad.path[:5], bad.label[:5]))
            if on_unknown == "skip":
                self.skipped += [(p, f"unknown label {lab!r}") for p, lab in zip(bad.path, bad.label)]
                frame = frame[~unknown].reset_index(drop=True)
            else:
                raise ManifestError(
                    f"{int(unknown.sum())} clip(s) have a label that is not in the label list {labels}: "
                    f"{listing}. Fix: select those classes (--classes), relabel them, or pass on_unknown='skip'."
                )
        self.frame = frame[list(COLUMNS) + [c for c in frame.columns if c not in COLUMNS]]
        self.labels: tuple[str, ...] = tuple(labels)

    def _init_multi(self, frame: pd.DataFrame, labels: Sequence[str] | None, on_unknown: str, rows: _RowNames) -> None:
        """Several labels per row: cells split and normalised to ``a;b``; unknown labels as for one label."""
        sets = [split_labels(cell, f"{rows.where} {rows.of([i], 1)}", separators=(";",))
                for i, cell in enumerate(frame["label"])]
        labels = vocabulary_of(sets) if labels is None else [str(x) for x in labels]
        if len(set(labels)) != len(labels):
            raise ManifestError(f"the label list has duplicates: {labels}")
        known = set(labels)
        unknown = np.array([not set(x) <= known for x in sets], bool)
        if unknown.any():
            bad = [(p, ";".join(x)) for p, x, u in zip(frame["path"], sets, unknown) if u]
            if on_unknown == "skip":
                self.skipped += [(p, f"unknown label in {lab!r}") for p, lab in bad]
            else:
                raise ManifestError(
                    f"{int(unknown.sum())} clip(s) have a label that is not in the label list {labels}: "
                    f"{', '.join(f'{p} ({lab!r})' for p, lab in bad[:5])}. Fix: select those classes (--classes), "
                    "relabel them, or pass on_unknown='skip'.")
        frame = frame.assign(label=[";".join(x) for x in sets])[~unknown].reset_index(drop=True)
        self.frame = frame[list(COLUMNS) + [c for c in frame.columns if c not in COLUMNS]]
        self.labels = tuple(labels)

    def label_sets(self) -> list[tuple[str, ...]]:
        """The labels of every row (one each for single-label data)."""
        return [tuple(x.split(";")) if self.multi_label else (x,) for x in self.frame["label"]]

    # ---- constructors -------------------------------------------------------------------------
    @classmethod
    def from_csv(
        cls,
        csv_path: str | os.PathLike,
        audio_dir: str | os.PathLike | None = None,
        *,
        path_column: str = "filename",
        label_column: str = "category",
        fold_column: str | None = "fold",
        group_column: str | None = "auto",
        labels: Sequence[str] | None = None,
        duplicates: str = "raise",
        label_separator: str | None = None,
    ) -> Manifest:
        """An ESC-50-style CSV (``filename, fold, target, category``).

        Args:
            csv_path: the CSV file.
            audio_dir: folder the file names are relative to. Default: ``<csv dir>/../audio`` when
                it exists (the ESC-50 layout), else the CSV's folder.
            path_column, label_column: column names.
            fold_column: the fold column; the default ``"fold"`` may be absent (no folds: assign them
                with :meth:`assign_folds`); None ignores folds; another name must exist.
            group_column: a column to group by, "auto" (infer from ESC-50 / Speech Commands / FSDD
                file names) or None.
            duplicates: see :class:`Manifest`.
            label_separator: the label column holds several labels per clip separated by this (``","``
                for FSD50K's ``dev.csv``); ``;``-separated cells are recognised without it.
            labels: the class list, e.g. FSD50K's ``vocabulary.csv`` read with
                :func:`tfaudio.data.multi_labels.read_vocabulary`.

        Raises:
            ManifestError: no such file, not a CSV, a missing column, or bad cells (named by line).
        """
        csv_path = pathlib.Path(csv_path)
        if not csv_path.is_file():
            raise ManifestError(f"{csv_path}: no such CSV file. Fix: pass the path of the metadata CSV.")
        try:
            table = pd.read_csv(csv_path, dtype=object, skipinitialspace=True)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
            problem = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise ManifestError(f"{csv_path}: cannot be read as a CSV ({problem}). Fix: save it as comma-separated "
                                f"UTF-8 text with a header row ({path_column},{label_column},...).") from None
        if fold_column == "fold" and "fold" not in table.columns:
            fold_column = None  # the default: a CSV without folds gets folds assigned later
        for col in (path_column, label_column) + ((fold_column,) if fold_column else ()) + (
                (group_column,) if group_column not in (None, "auto") else ()):
            if col not in table.columns:
                raise ManifestError(
                    f"{csv_path}: no column {col!r} (columns: {list(table.columns)}). "
                    f"Fix: name the columns with path_column=, label_column=, fold_column=, group_column= (on the "
                    f"command line --path-column, --label-column, --fold-column, --group-column)."
                )
        if audio_dir is None:
            esc_layout = csv_path.parent.parent / "audio"
            audio_dir = esc_layout if esc_layout.is_dir() else csv_path.parent
        audio_dir = pathlib.Path(audio_dir)
        names = _checked_text(table[path_column], "file name", _RowNames(str(csv_path), 2),
                              "fill in the file name or delete the row")
        frame = pd.DataFrame(
            {
                "path": [str(audio_dir / f) for f in names],
                "label": table[label_column],
                "fold": table[fold_column] if fold_column else pd.NA,
            }
        )
        if group_column == "auto":
            frame["group"] = infer_groups(list(names))
        elif group_column:
            frame["group"] = table[group_column].astype(str)
        extra = [c for c in table.columns if c not in {path_column, label_column, fold_column, group_column}]
        for c in extra:  # other metadata (ESC-50: target, esc10, src_file, take), numbers where they are
            try:
                frame[c] = pd.to_numeric(table[c])
            except (ValueError, TypeError):
                frame[c] = table[c]
        multi = None
        if label_separator:
            multi = True
            frame["label"] = [";".join(split_labels(c, f"{csv_path}:{i + 2}", separators=(label_separator,)))
                              if isinstance(c, str) and c.strip() else c for i, c in enumerate(frame["label"])]
        return cls(frame, labels=labels, duplicates=duplicates, source=str(csv_path), first_line=2, multi_label=multi)

    @classmethod
    def from_folder(
        cls,
        root: str | os.PathLike,
        *,
        extensions: Iterable[str] = AUDIO_EXTENSIONS,
        labels: Sequence[str] | None = None,
        duplicates: str = "raise",
    ) -> Manifest:
        """A folder per class: ``root/<label>/<file>``; the group is inferred from the file names
        (``duplicates`` is accepted for :meth:`from_source`; a folder lists each file once)."""
        root = pathlib.Path(root)
        if not root.is_dir():
            raise ManifestError(f"{root}: no such folder. Fix: pass a folder with one sub-folder per class.")
        exts = {e.lower() for e in extensions}
        rows = []
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for f in sorted(class_dir.rglob("*")):
                if f.is_file() and f.suffix.lower() in exts:
                    rows.append((str(f), class_dir.name))
        if not rows:
            raise ManifestError(
                f"{root}: found no audio files ({', '.join(sorted(exts))}) in class sub-folders. "
                f"Fix: arrange the data as {root}/<class>/<file>."
            )
        frame = pd.DataFrame(rows, columns=["path", "label"])
        frame["group"] = infer_groups(list(frame["path"]))
        return cls(frame, labels=labels, source=str(root))

    @classmethod
    def from_dataframe(
        cls,
        frame: pd.DataFrame,
        *,
        path_column: str = "path",
        label_column: str = "label",
        fold_column: str | None = "fold",
        group_column: str | None = "group",
        labels: Sequence[str] | None = None,
        duplicates: str = "raise",
    ) -> Manifest:
        """Any DataFrame; missing fold/group columns are allowed (rows are named by position in errors)."""
        out = pd.DataFrame({"path": frame[path_column], "label": frame[label_column]})
        if fold_column and fold_column in frame:
            out["fold"] = frame[fold_column].to_numpy()
        if group_column and group_column in frame:
            out["group"] = frame[group_column].astype(str).to_numpy()
        else:
            out["group"] = infer_groups(list(out["path"]))
        return cls(out, labels=labels, duplicates=duplicates, source="the DataFrame", first_line=0)

    @classmethod
    def from_source(cls, source: str | os.PathLike, **kwargs: Any) -> Manifest:
        """A CSV file or a folder per class, whichever ``source`` is."""
        source = pathlib.Path(source)
        if source.is_dir() and (source / "meta" / "esc50.csv").is_file():
            source = source / "meta" / "esc50.csv"
        if source.is_file():
            return cls.from_csv(source, **kwargs)
        return cls.from_folder(source, **kwargs)

    # ---- views --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.frame.to_dict("records"))

    def __repr__(self) -> str:
        folds = self.folds or "none"
        return f"Manifest({len(self)} clips, {len(self.labels)} classes, folds {folds})"

    @property
    def paths(self) -> list[str]:
        return list(self.frame["path"])

    @property
    def targets(self) -> np.ndarray:
        """Class index of every row, int32 [rows], in ``labels`` order (multi-label data: multi-hot
        float32 [rows, classes])."""
        if self.multi_label:
            return multi_hot(self.label_sets(), self.labels)
        index = {lab: i for i, lab in enumerate(self.labels)}
        return self.frame["label"].map(index).to_numpy(np.int32)

    @property
    def folds(self) -> list[int]:
        f = self.frame["fold"].dropna()
        return sorted(int(x) for x in f.unique())

    @property
    def has_folds(self) -> bool:
        return not self.frame["fold"].isna().any()

    def with_background(self, folder: str | os.PathLike) -> Manifest:
        """This manifest plus every audio file under ``folder`` (clips outside the label set) as the
        class :data:`BACKGROUND`, spread over the folds in turn (sorted by path) so that every split
        trains and tests on some.

        Raises:
            ManifestError: no audio in ``folder``, multi-label data (its "none of these" is an empty
                label set), a manifest without folds, or a label already named :data:`BACKGROUND`.
        """
        folder = pathlib.Path(folder)
        files = sorted(str(f) for f in folder.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS) \
            if folder.is_dir() else []
        if not files:
            raise ManifestError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder. Fix: pass "
                                "a folder of clips that belong to none of the classes.")
        if self.multi_label:
            raise ManifestError(f"{folder}: a background class is for single-label data; multi-label data says "
                                "'none of these' by leaving every label below its threshold. Fix: drop --background-dir.")
        if BACKGROUND in self.labels:
            raise ManifestError(f"the data already has a class named {BACKGROUND!r}. Fix: rename it in the CSV.")
        if not self.has_folds:
            raise ManifestError("the background clips are spread over the folds, and this manifest has none. "
                                "Fix: assign folds first (Manifest.assign_folds).")
        folds = self.folds
        extra = pd.DataFrame({"path": files, "label": BACKGROUND, "group": None,
                              "fold": [folds[i % len(folds)] for i in range(len(files))]})
        out = Manifest(pd.concat([self.frame, extra], ignore_index=True), labels=[*self.labels, BACKGROUND],
                       multi_label=False)
        out.skipped = list(self.skipped)
        return out

    def class_counts(self) -> dict[str, int]:
        if self.multi_label:
            n = self.targets.sum(axis=0)
            return {lab: int(n[i]) for i, lab in enumerate(self.labels)}
        counts = self.frame["label"].value_counts()
        return {lab: int(counts.get(lab, 0)) for lab in self.labels}

    def _with(self, frame: pd.DataFrame, labels: Sequence[str] | None = None) -> Manifest:
        out = Manifest(frame, labels=self.labels if labels is None else labels, multi_label=self.multi_label)
        out.skipped = list(self.skipped)
        return out

    # ---- class selection ----------------------------------------------------------------------
    def select(
        self, classes: Sequence[str], relabel: Mapping[str, str] | Sequence[str] | None = None
    ) -> Manifest:
        """Keep only ``classes`` (in that order); optionally rename them.

        Args:
            classes: class names to keep. The new label list follows this order.
            relabel: new names, as a mapping old → new or a list parallel to ``classes``. Several old
                classes may map to one new name (merging).

        Example: ``m.select(["dog", "cat"])`` gives labels ("dog", "cat") → targets 0 and 1.
        """
        classes = [str(c) for c in classes]
        unknown = [c for c in classes if c not in self.labels]
        if unknown:
            raise ManifestError(
                f"class(es) {unknown} do not exist in this data set. Available classes: {list(self.labels)}."
            )
        if self.multi_label:  # keep the rows with any of the classes, and only those of their labels
            if relabel is not None:
                raise ManifestError("relabel is not supported for multi-label data. Fix: rename the labels in the CSV.")
            keep = [";".join(x for x in labels if x in classes) for labels in self.label_sets()]
            frame = self.frame.assign(label=keep)
            return self._with(frame[frame["label"] != ""], labels=classes)
        frame = self.frame[self.frame["label"].isin(classes)]
        if relabel is None:
            return self._with(frame, labels=classes)
        if not isinstance(relabel, Mapping):
            if len(relabel) != len(classes):
                raise ManifestError(f"relabel has {len(relabel)} names for {len(classes)} classes")
            relabel = dict(zip(classes, relabel))
        mapping = {c: str(relabel.get(c, c)) for c in classes}
        frame = frame.assign(label=frame["label"].map(mapping))
        new_labels = list(dict.fromkeys(mapping[c] for c in classes))
        return self._with(frame, labels=new_labels)

    def with_labels(self, labels: Sequence[str], on_unknown: str = "raise") -> Manifest:
        """The same rows indexed by another label list (e.g. the one saved with a trained model)."""
        out = Manifest(self.frame, labels=labels, on_unknown=on_unknown, multi_label=self.multi_label)
        out.skipped = list(self.skipped) + out.skipped
        return out

    def save_labels(self, path: str | os.PathLike) -> None:
        """Write the label list as JSON (a list of strings, index order)."""
        pathlib.Path(path).write_text(json.dumps(list(self.labels), indent=1))

    # ---- folds and splits ---------------------------------------------------------------------
    def filter_folds(self, folds: Iterable[int]) -> Manifest:
        folds = [int(f) for f in folds]
        missing = [f for f in folds if f not in self.folds]
        if missing:
            raise ManifestError(
                f"fold(s) {missing} have no data; this manifest has folds {self.folds}. "
                f"Fix: choose existing folds (--folds), or assign folds (Manifest.assign_folds(k); on the "
                f"command line, folds are assigned when the data has none)."
            )
        return self._with(self.frame[self.frame["fold"].isin(folds)])

    def assign_folds(self, k: int = 5, *, seed: int = 0, group: str | None = "auto", overwrite: bool = False) -> Manifest:
        """Deterministic k folds (1..k), stratified by label, never splitting a group across folds.

        Args:
            k: number of folds.
            seed: tie-breaking seed; the same data and seed give the same folds on every machine.
            group: "auto" uses the ``group`` column when it is filled (speaker, source clip), None
                ignores groups.
            overwrite: replace existing folds (by default a manifest that has folds keeps them).
        """
        if self.has_folds and not overwrite:
            return self
        if k < 2:
            raise ManifestError(f"assign_folds needs k >= 2, got {k}")
        groups = self.frame["group"]
        if group is None or groups.isna().any():
            groups = pd.Series([f"__row{i}" for i in range(len(self))])
        folds = stratified_group_folds(self.frame["label"].to_numpy(), groups.to_numpy(), k, seed)
        return self._with(self.frame.assign(fold=folds))

    def split(self, train: Iterable[int], val: Iterable[int] = (), test: Iterable[int] = ()) -> Split:
        """Explicit folds, e.g. ``split(train=[1, 2, 3], val=[4], test=[5])`` (the YAMNet tutorial)."""
        train, val, test = list(train), list(val), list(test)
        overlap = (set(train) & set(val)) | (set(train) & set(test)) | (set(val) & set(test))
        if overlap:
            raise ManifestError(f"fold(s) {sorted(overlap)} are in more than one of train/val/test")
        return Split(
            self.filter_folds(train),
            self.filter_folds(val) if val else None,
            self.filter_folds(test) if test else None,
        )

    def kfold(self, *, validation: bool = True) -> Iterator[tuple[int, Split]]:
        """Each fold the test set once; with ``validation`` the next fold (cyclically) validates.

        Yields:
            (test fold, Split)
        """
        folds = self.folds
        if len(folds) < (3 if validation else 2):
            raise ManifestError(
                f"cross-validation needs at least {3 if validation else 2} folds; this manifest has {folds}. "
                f"Fix: use data with more folds, or assign folds (Manifest.assign_folds(k=5); on the command "
                f"line `tfaudio cv DATA --folds 5` with --fold-column omitted)."
            )
        for i, f in enumerate(folds):
            v = [folds[(i + 1) % len(folds)]] if validation else []
            yield f, self.split(train=[x for x in folds if x != f and x not in v], val=v, test=[f])


class Split:
    """Train / validation / test manifests (validation and test may be None)."""

    def __init__(self, train: Manifest, val: Manifest | None, test: Manifest | None):
        self.train, self.val, self.test = train, val, test

    def __iter__(self):
        return iter((self.train, self.val, self.test))

    def __repr__(self) -> str:
        return f"Split(train={self.train!r}, val={self.val!r}, test={self.test!r})"


def stratified_group_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Assign folds 1..k: groups stay whole, each label spread evenly, deterministic for a seed.

    Greedy: groups, largest first (ties in a seeded order), go to the fold where their labels are
    rarest so far (then the smallest fold).
    """
    frame = pd.DataFrame({"label": labels, "group": groups})
    label_names = sorted(frame["label"].unique())
    counts_by_group = pd.crosstab(frame["group"], frame["label"]).reindex(columns=label_names, fill_value=0)
    rng = np.random.default_rng(seed)
    order_key = rng.permutation(len(counts_by_group))
    sizes = counts_by_group.sum(axis=1).to_numpy()
    order = np.lexsort((order_key, -sizes))
    fold_counts = np.zeros((k, len(label_names)))
    fold_sizes = np.zeros(k)
    totals = counts_by_group.sum(axis=0).to_numpy().astype(float)
    assignment = {}
    group_names = counts_by_group.index.to_numpy()
    values = counts_by_group.to_numpy().astype(float)
    for gi in order:
        c = values[gi]
        share = (fold_counts + c) / np.maximum(totals, 1)
        cost = (share * (c > 0)).sum(axis=1)
        best = np.lexsort((np.arange(k), fold_sizes, cost))[0]
        fold_counts[best] += c
        fold_sizes[best] += c.sum()
        assignment[group_names[gi]] = best + 1
    return frame["group"].map(assignment).to_numpy(np.int64)

"""Arguments and helpers shared by the sub-commands."""
from __future__ import annotations

import argparse
import json
import pathlib
from typing import Any

from tfaudio.errors import ManifestError


def add_data_args(p: argparse.ArgumentParser, *, folds_help: str) -> None:
    p.add_argument("data", help="an ESC-50-style CSV (filename, fold, target, category), an ESC-50 folder, "
                                "or a folder with one sub-folder per class")
    p.add_argument("--audio-dir", help="folder the CSV's file names are relative to (default: ../audio or the CSV's folder)")
    p.add_argument("--path-column", default="filename", help="CSV column with the audio file names (default: filename)")
    p.add_argument("--label-column", default="category", help="CSV column with the class names (default: category)")
    p.add_argument("--fold-column", help="CSV column with fold numbers (default: fold, when the CSV has one; "
                                         "without folds, speaker/clip-grouped stratified folds are assigned)")
    p.add_argument("--group-column", help="CSV column grouping clips that must stay in one fold (e.g. speaker; "
                                          "default: inferred from ESC-50 / Speech Commands / FSDD file names)")
    p.add_argument("--classes", nargs="+", help="keep only these classes (in this order)")
    p.add_argument("--folds", help=folds_help)
    p.add_argument("--duplicates", choices=["error", "drop"], default="error",
                   help="a file listed twice: stop with the rows named (default) or keep the first row")
    add_on_error_arg(p)


def add_on_error_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help="bad audio files: stop at the first (default) or skip, count and report them")


def report_skipped(skipped: list[tuple[str, str]], total: int, *, what: str = "files") -> int:
    """Print the skipped inputs (one warning line each) and return the exit status: 0 when some input
    was usable, 1 when every one was skipped."""
    from tfaudio.log import warn

    if skipped:
        warn(f"skipped {len(skipped)} of {total} {what} (bad audio):\n" + "\n".join(f"  {p}: {why}" for p, why in skipped))
    return 1 if total and len(skipped) == total else 0


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="yamnet",
                   help="yamnet (default), yamnet:/path/yamnet.h5, wav2vec2:<model id or folder>, hubert:<...>")
    p.add_argument("--head", choices=["mlp", "linear"], default="mlp", help="tutorial MLP (Dense 512) or linear probe")
    p.add_argument("--hidden", type=int, nargs="*", help="hidden layer sizes of the MLP head (default 512)")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="embedding cache folder (default $TFAUDIO_CACHE or ~/.cache/tfaudio)")
    p.add_argument("--output", "-o", required=True, help="folder for the model and its reports")


def load_manifest(args: argparse.Namespace):
    from tfaudio.data.manifest import Manifest

    source = pathlib.Path(args.data)
    kwargs: dict[str, Any] = {"audio_dir": args.audio_dir} if getattr(args, "audio_dir", None) else {}
    if source.is_file():  # a CSV: its column names (a CSV without a fold column gets folds assigned)
        kwargs.update(path_column=getattr(args, "path_column", "filename"),
                      label_column=getattr(args, "label_column", "category"),
                      fold_column=getattr(args, "fold_column", None) or "fold",
                      group_column=getattr(args, "group_column", None) or "auto")
    kwargs["duplicates"] = {"error": "raise", "drop": "drop"}[getattr(args, "duplicates", "error")]
    m = Manifest.from_source(source, **kwargs)
    if args.classes:
        m = m.select(args.classes)
    return m


def parse_split(spec: str | None, manifest) -> tuple[list[int], list[int], list[int]]:
    """``"1,2,3:4:5"`` → train [1,2,3], val [4], test [5]; None → all but the last two folds / the
    second last / the last."""
    folds = manifest.folds
    if spec is None:
        if len(folds) < 3:
            raise ManifestError(f"need at least 3 folds for train/val/test, the data has {folds}. Fix: --folds.")
        return folds[:-2], [folds[-2]], [folds[-1]]
    parts = spec.split(":")
    if len(parts) > 3:
        raise ManifestError(f"--folds {spec!r}: use TRAIN[:VAL[:TEST]], e.g. 1,2,3:4:5")
    try:
        lists = [[int(x) for x in part.split(",") if x.strip()] for part in parts]
    except ValueError:
        raise ManifestError(f"--folds {spec!r}: fold numbers must be integers, e.g. 1,2,3:4:5") from None
    while len(lists) < 3:
        lists.append([])
    return lists[0], lists[1], lists[2]


def parse_fold_list(spec: str) -> list[int]:
    """``"1,2"`` → [1, 2] (``--folds`` of evaluate)."""
    try:
        folds = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        folds = []
    if not folds:
        raise ManifestError(f"--folds {spec!r}: give fold numbers separated by commas, e.g. --folds 4,5")
    return folds


def parse_fold_count(spec: str | None, default: int = 5) -> int:
    """``--folds K`` of cv: how many folds to assign when the data has none."""
    try:
        k = int(spec) if spec is not None else default
    except ValueError:
        k = 0
    if k < 2:
        raise ManifestError(f"--folds {spec!r}: the number of folds to assign must be a whole number >= 2, e.g. "
                            "--folds 5 (the data's own folds are used when it has a fold column).")
    return k


def head_config(args: argparse.Namespace):
    from tfaudio.heads.classification_head import HeadConfig

    hidden = () if args.head == "linear" else tuple(args.hidden) if args.hidden else (512,)
    return HeadConfig(hidden_units=hidden, dropout=args.dropout, l2=args.l2)


def train_config(args: argparse.Namespace):
    from tfaudio.tasks.audio_classifier import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                       seed=args.seed, verbose=2)


def embed_once(clf, manifest, args: argparse.Namespace):
    """Every clip of ``manifest`` embedded once (extracted into the cache where missing) →
    (ClipEmbeddings of the usable clips, [(file, reason)] of the skipped ones)."""
    report = clf.cache.extract(manifest, on_error=getattr(args, "on_error", "raise"))
    if len(report.skipped) == len(manifest):
        from tfaudio.errors import ManifestError

        raise ManifestError(f"none of the {len(manifest)} clips could be used; the first: {report.skipped[0][0]}: "
                            f"{report.skipped[0][1]}")
    return clf.cache.load(manifest, extract=False), list(report.skipped)


def skipped_in(skipped: list[tuple[str, str]], manifest) -> list[dict[str, str]]:
    """The skipped files that belong to ``manifest``, for its report."""
    paths = set(manifest.paths) if manifest is not None else set()
    return [{"file": f, "reason": why} for f, why in skipped if f in paths]


def make_cache(backbone, args: argparse.Namespace):
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.pipeline import PipelineConfig

    root = pathlib.Path(args.cache) / "embeddings" if getattr(args, "cache", None) else None
    return EmbeddingCache(backbone, root, pipeline=PipelineConfig(on_error=getattr(args, "on_error", "raise")))


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=str))

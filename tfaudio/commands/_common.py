"""Arguments and helpers shared by the sub-commands."""
from __future__ import annotations

import argparse
import pathlib
from typing import Any

from tfaudio.backbones import registry
from tfaudio.commands._engine_arg import add_engine_arg
from tfaudio.errors import ManifestError


def add_data_args(p: argparse.ArgumentParser, *, folds_help: str) -> None:
    p.add_argument("data", help="an ESC-50-style CSV (filename, fold, target, category), an ESC-50 folder, "
                                "or a folder with one sub-folder per class")
    p.add_argument("--audio-dir", help="folder the CSV's file names are relative to (default: ../audio or the CSV's folder)")
    p.add_argument("--path-column", default="filename", help="CSV column with the audio file names (default: filename)")
    p.add_argument("--label-column", default="category", help="CSV column with the class names (default: category)")
    p.add_argument("--label-separator", help="the label column holds several labels per clip separated by this (e.g. "
                                             "',' for FSD50K); ';'-separated cells are recognised without it")
    p.add_argument("--fold-column", help="CSV column with fold numbers (default: fold, when the CSV has one; "
                                         "without folds, speaker/clip-grouped stratified folds are assigned)")
    p.add_argument("--group-column", help="CSV column grouping clips that must stay in one fold (e.g. speaker; "
                                          "default: inferred from ESC-50 / Speech Commands / FSDD file names)")
    p.add_argument("--classes", nargs="+", help="keep only these classes (in this order)")
    p.add_argument("--folds", help=folds_help)
    p.add_argument("--duplicates", choices=["error", "drop"], default="error",
                   help="a file listed twice: stop with the rows named (default) or keep the first row")
    add_on_error_arg(p)
    add_engine_arg(p)


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


def add_backbone_arg(p: argparse.ArgumentParser, *, tags_only: bool = False, default: str = "yamnet",
                     extra: str = "") -> None:
    """``--backbone``, its help listing every registered backbone (or only those with classes of their own)."""
    p.add_argument("--backbone", default=default,
                   help=registry.help_text(tags_only=tags_only, default=default) + extra)


def add_model_args(p: argparse.ArgumentParser) -> None:
    add_backbone_arg(p)
    r = p.add_argument_group("recipe (how the head is trained; options given here override the recipe's)")
    r.add_argument("--recipe", default="default",
                   help="default (regularised head, all training folds, silence gate), tutorial (the TF Hub "
                        "tutorial's), or a JSON file written by `tfaudio tune`")
    r.add_argument("--head", choices=["mlp", "linear"], help="an MLP (the recipe's hidden layers) or a linear probe")
    r.add_argument("--hidden", type=int, nargs="*", help="hidden layer sizes of the MLP head")
    r.add_argument("--dropout", type=float, help="dropout before the hidden layers after the first and the output")
    r.add_argument("--input-dropout", type=float, help="dropout on the embeddings")
    r.add_argument("--l2", type=float, help="L2 weight penalty")
    r.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardise embeddings by the training frames' statistics (inside the head)")
    r.add_argument("--pooling", choices=["mean", "attention", "stats", "embedding_mean"],
                   help="clip score: mean of frame scores, attention-weighted mean, or a head on mean/std "
                        "(stats) or mean (embedding_mean) pooled embeddings")
    r.add_argument("--silence-gate", action=argparse.BooleanOptionalAction, default=None,
                   help="leave silent frames out of training and of clip scores")
    r.add_argument("--ensemble", type=int, help="average the scores of this many heads (different seeds)")
    r.add_argument("--epochs", type=int)
    r.add_argument("--batch-size", type=int)
    r.add_argument("--learning-rate", type=float)
    r.add_argument("--schedule", choices=["cosine", "constant"], help="learning-rate schedule")
    r.add_argument("--label-smoothing", type=float)
    r.add_argument("--mixup", type=float, help="mixup alpha on frame pairs (0: off)")
    r.add_argument("--patience", type=int, help="early-stopping patience in epochs (with validation)")
    r.add_argument("--validation", choices=["none", "fold"],
                   help="none: fit on every training fold with the fixed schedule; fold: hold one out for early "
                        "stopping")
    r.add_argument("--min-clips-per-class", type=int, help="refuse classes with fewer training clips (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="embedding cache folder (default $TFAUDIO_CACHE or ~/.cache/tfaudio)")
    p.add_argument("--output", "-o", required=True, help="folder for the model and its reports")


_HEAD_OPTIONS = {"dropout": "dropout", "input_dropout": "input_dropout", "l2": "l2", "standardize": "standardize",
                 "pooling": "pooling", "silence_gate": "silence_gate", "ensemble": "ensemble"}
_TRAIN_OPTIONS = {"epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate",
                  "schedule": "schedule", "label_smoothing": "label_smoothing", "mixup": "mixup",
                  "patience": "patience", "min_clips_per_class": "min_clips_per_class"}


def add_recipe_args(p: argparse.ArgumentParser, *, default: str) -> None:
    """The recipe options of commands that train the backbone (``tfaudio finetune``): the recipe and its
    schedule, plus ``--seed``, ``--cache`` and ``--output``."""
    r = p.add_argument_group("recipe (options given here override the recipe's)")
    r.add_argument("--recipe", default=default,
                   help=f"{default} (the fine-tuning recipe), or a JSON recipe file with a \"finetune\" section")
    r.add_argument("--epochs", type=int)
    r.add_argument("--batch-size", type=int)
    r.add_argument("--learning-rate", type=float, help="the head's peak learning rate")
    r.add_argument("--schedule", choices=["cosine", "constant"], help="learning-rate schedule")
    r.add_argument("--label-smoothing", type=float)
    r.add_argument("--mixup", type=float, help="mixup alpha on pairs of clips (0: off)")
    r.add_argument("--silence-gate", action=argparse.BooleanOptionalAction, default=None,
                   help="leave silent frames out of the head's mean, in training and in clip scores")
    r.add_argument("--min-clips-per-class", type=int, help="refuse classes with fewer training clips (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="cache folder (default $TFAUDIO_CACHE or ~/.cache/tfaudio)")
    p.add_argument("--output", "-o", required=True, help="folder for the model and its reports")


def add_finetune_args(p: argparse.ArgumentParser) -> None:
    """The options of fine-tuning (``tfaudio finetune``, ``tfaudio cv --finetune``); given ones override the
    recipe's ``finetune`` settings."""
    f = p.add_argument_group("fine-tuning (the backbone trains too; options given here override the recipe's)")
    f.add_argument("--crop-seconds", type=float, help="training window: longer clips cropped at random, shorter "
                                                      "padded (default: 95th percentile of the clips, at most 10 s)")
    f.add_argument("--freeze-blocks", type=int, help="keep the first N blocks of the backbone frozen (-1: all)")
    f.add_argument("--batchnorm", choices=["frozen", "train"], help="batch norm: pretrained statistics (frozen) or "
                                                                    "batch statistics while training")
    f.add_argument("--backbone-learning-rate", type=float, help="the top block's learning rate, as a share of the "
                                                                "head's")
    f.add_argument("--layer-decay", type=float, help="each block below the top learns this much slower")
    f.add_argument("--weight-decay", type=float, help="AdamW weight decay")
    f.add_argument("--warmup-epochs", type=float, help="epochs of learning-rate warm-up")
    f.add_argument("--head-epochs", type=int, help="epochs at the start in which only the head trains")
    f.add_argument("--probe-epochs", type=int, help="linear probing first (LP-FT): the head trained this many "
                                                    "epochs on the pretrained backbone's clip embeddings (0: off)")
    f.add_argument("--refit-head", action=argparse.BooleanOptionalAction, default=None,
                   help="after fine-tuning, train the head again as the frozen default does (frame head, mean of "
                        "frame scores, silence gate) on the fine-tuned backbone's embeddings of the training clips")
    f.add_argument("--interpolate", type=_alpha, metavar="ALPHA",
                   help="weight-space ensemble (WiSE-FT): the backbone's weights ALPHA of the way from the "
                        "pretrained to the fine-tuned ones, the head then refit on them (1: off; auto: chosen "
                        "on the validation folds of tfaudio finetune --folds TRAIN:VAL:TEST)")
    f.add_argument("--speed", type=float, help="speed perturbation: clips played up to this share faster or "
                                               "slower, e.g. 0.1 (0: off)")
    f.add_argument("--gain-db", type=float, help="random gain, up to this many dB (0: off)")
    f.add_argument("--shift-seconds", type=float, help="random time shift, up to this many seconds (0: off)")
    f.add_argument("--freq-mask", type=float, help="SpecAugment: share of mel bands masked (0: off)")
    f.add_argument("--time-mask", type=float, help="SpecAugment: share of frames masked (0: off)")
    f.add_argument("--no-augment", action="store_true", help="no mixup, speed, gain, shift or masking")
    f.add_argument("--precision", choices=["auto", "float32", "bfloat16", "float16"],
                   help="bfloat16: oneDNN's automatic bfloat16 on CPUs that have it natively; float16: mixed "
                        "precision with loss scaling on GPUs with compute capability >= 7.0 (auto picks it there)")
    f.add_argument("--micro-batch", type=int, help="clips per forward/backward pass, gradients summed over the "
                                                    "batch (less memory; default: the batch, or what fits)")
    f.add_argument("--distribute", choices=["none", "mirrored"], default="none",
                   help="mirrored: tf.distribute.MirroredStrategy over every GPU (or CPU devices) of this machine")


def _alpha(text: str) -> float | str:
    """``--interpolate``: ``auto`` or a number."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or 'auto', got {text!r}") from None


_FINETUNE_OPTIONS = ("crop_seconds", "freeze_blocks", "batchnorm", "backbone_learning_rate", "layer_decay",
                     "weight_decay", "warmup_epochs", "head_epochs", "probe_epochs", "speed", "gain_db",
                     "shift_seconds", "freq_mask", "time_mask", "precision", "micro_batch", "refit_head",
                     "interpolate")


def finetune_recipe_from_args(args: argparse.Namespace):
    """:func:`recipe_from_args` with the fine-tuning options applied (recipe ``finetune`` unless --recipe)."""
    if getattr(args, "recipe", None) in (None, "default"):
        args.recipe = "finetune"
    if (getattr(args, "ensemble", None) or 1) > 1:
        raise ManifestError("--ensemble does not apply to fine-tuning: it trains one backbone with one head. Fix: "
                            "drop --ensemble, or train an ensemble of heads on frozen embeddings (tfaudio train / "
                            "cv without --finetune).")
    recipe = recipe_from_args(args)
    tuned = {k: getattr(args, k) for k in _FINETUNE_OPTIONS if getattr(args, k, None) is not None}
    if getattr(args, "no_augment", False):
        tuned.update(speed=0.0, gain_db=0.0, shift_seconds=0.0, freq_mask=0.0, time_mask=0.0)
        recipe = recipe.replace(train={"mixup": 0.0})
    try:
        return recipe.replace(finetune=tuned)
    except ValueError as err:
        raise ManifestError(f"the fine-tuning options do not fit together: {err}. Fix: check --crop-seconds, "
                            "--layer-decay and the other fine-tuning options.") from None


def distribution_strategy(args: argparse.Namespace):
    """``--distribute``: None (the default strategy) or a MirroredStrategy over this machine's devices."""
    if getattr(args, "distribute", "none") != "mirrored":
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy()


def recipe_from_args(args: argparse.Namespace):
    """The recipe named by ``--recipe`` with the options given on the command line applied."""
    from tfaudio.tasks.recipe import get_recipe

    recipe = get_recipe(getattr(args, "recipe", None) or "default")
    head = {field: getattr(args, opt) for opt, field in _HEAD_OPTIONS.items() if getattr(args, opt, None) is not None}
    if getattr(args, "head", None) == "linear":
        head["hidden_units"] = ()
    elif getattr(args, "hidden", None):
        head["hidden_units"] = tuple(args.hidden)
    train = {field: getattr(args, opt) for opt, field in _TRAIN_OPTIONS.items() if getattr(args, opt, None) is not None}
    train["seed"] = getattr(args, "seed", 0)
    train["verbose"] = 2
    fields = {}
    if getattr(args, "validation", None):
        fields["validation"] = args.validation
    if getattr(args, "no_validation", False):
        fields["validation"] = "none"
    try:
        return recipe.replace(head=head, train=train, **fields)
    except ValueError as err:
        raise ManifestError(f"the recipe's options do not fit together: {err}. Fix: check --dropout, --pooling, "
                            "--epochs and the other recipe options.") from None


def load_manifest(args: argparse.Namespace):
    from tfaudio.data.manifest import Manifest

    source = pathlib.Path(args.data)
    kwargs: dict[str, Any] = {"audio_dir": args.audio_dir} if getattr(args, "audio_dir", None) else {}
    if source.is_file():  # a CSV: its column names (a CSV without a fold column gets folds assigned)
        kwargs.update(path_column=getattr(args, "path_column", "filename"),
                      label_column=getattr(args, "label_column", "category"),
                      fold_column=getattr(args, "fold_column", None) or "fold",
                      group_column=getattr(args, "group_column", None) or "auto",
                      label_separator=getattr(args, "label_separator", None))
    kwargs["duplicates"] = {"error": "raise", "drop": "drop"}[getattr(args, "duplicates", "error")]
    m = Manifest.from_source(source, **kwargs)
    if args.classes:
        m = m.select(args.classes)
    return m


def parse_split(spec: str | None, manifest, *, validation: bool = True) -> tuple[list[int], list[int], list[int]]:
    """``"1,2,3:4:5"`` → train [1,2,3], val [4], test [5]; None → all but the last two folds / the
    second last / the last (``validation``), or all but the last / none / the last."""
    folds = manifest.folds
    if spec is None:
        need = 3 if validation else 2
        if len(folds) < need:
            raise ManifestError(f"need at least {need} folds for train{'/val' if validation else ''}/test, the data has "
                                f"{folds}. Fix: --folds.")
        if validation:
            return folds[:-2], [folds[-2]], [folds[-1]]
        return folds[:-1], [], [folds[-1]]
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
    return EmbeddingCache(backbone, root, pipeline=PipelineConfig(on_error=getattr(args, "on_error", "raise")),
                          engine=getattr(args, "engine", None))

"""k-fold cross-validation over a manifest's folds, reusing one embedding extraction for all folds."""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tfaudio.data.embedding_cache import ClipEmbeddings, EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.heads.classification_head import HeadConfig
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.recipe import Recipe, TrainConfig, get_recipe
from tfaudio.tasks.report import summarize_folds, write_cv_report, write_report


def cross_validate(
    manifest: Manifest,
    backbone: Any = "yamnet",
    recipe: Recipe | str | None = None,
    *,
    head: HeadConfig | None = None,
    train: TrainConfig | None = None,
    cache: EmbeddingCache | None = None,
    validation: bool | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
    clips: ClipEmbeddings | None = None,
) -> dict[str, Any]:
    """Each fold is the test set once; the others train (with a recipe that validates, the fold after
    the test fold is held out for early stopping).

    Embeddings are extracted once for the whole manifest and sliced per fold in memory.

    Args:
        manifest: clips with folds (use ``manifest.assign_folds(k)`` first when it has none).
        backbone: a Backbone or a name for :func:`tfaudio.backbones.get_backbone`.
        recipe: a :class:`~tfaudio.tasks.recipe.Recipe`, its name or a JSON file (default ``"default"``).
        head, train: override the recipe's head and training settings.
        cache: the embedding cache (default: the backbone's in ``$TFAUDIO_CACHE``).
        validation: override the recipe's use of a validation fold (True: hold one out).
        output_dir: where per-fold reports and the summary (JSON + PNG) are written.
        clips: the manifest's embeddings, when already loaded (``tfaudio tune`` reuses them).

    Returns:
        The summary of :func:`tfaudio.tasks.report.summarize_folds` at clip level, with
        ``frame_level`` (the same at frame level), ``folds`` (each fold's full report and per-epoch
        ``history``), ``clips`` (each clip's file, label, group, fold and whether it was used) and
        ``skipped`` (the files that could not be used, with the reason).

    Example:
        >>> summary = cross_validate(Manifest.from_csv("esc50.csv"), "yamnet", output_dir="runs/cv")
        >>> print(format_cv(summary))     # accuracy 0.95 ± 0.02 over 5 folds
    """

    recipe = get_recipe(recipe)
    head = head or recipe.head
    train = train or recipe.train
    validation = recipe.validation == "fold" if validation is None else bool(validation)
    proto = AudioClassifier(backbone, labels=manifest.labels, head=head, cache=cache, recipe=recipe)
    if clips is None:
        extraction = proto.cache.extract(manifest, progress=progress)
        clips = proto.cache.load(manifest, extract=False)
        skipped = extraction.skipped
    else:
        skipped = []
    out = pathlib.Path(output_dir) if output_dir is not None else None
    per_fold, clip_reports, frame_reports = [], [], []
    splits = list(manifest.kfold(validation=validation))
    for fold, split in tqdm(splits, desc="cross-validation", unit="fold", disable=not progress):
        def part(m):
            return clips.subset(np.isin(clips.folds, m.folds)) if m is not None else None

        clf = AudioClassifier(proto.backbone, labels=manifest.labels, head=head, cache=proto.cache, recipe=recipe)
        clf.fit(part(split.train), part(split.val), train)
        rep = clf.evaluate(part(split.test))
        rep["clip"]["fold"] = int(fold)
        rep["clip"]["epochs"] = len(clf.history_.get("loss", []))
        clip_reports.append(rep["clip"])
        if rep["frame"] is not None:
            rep["frame"]["fold"] = int(fold)
            frame_reports.append(rep["frame"])
        per_fold.append({"fold": int(fold), "train_folds": split.train.folds,
                         "val_folds": split.val.folds if split.val else [], "history": clf.history_, **rep})
        if out is not None:
            write_report(rep["clip"], out / f"fold{fold}", name="report", history=clf.history_)
    summary = summarize_folds(clip_reports)
    summary["frame_level"] = summarize_folds(frame_reports) if frame_reports else None
    summary["labels"] = list(manifest.labels)
    summary["head"] = head.to_dict()
    summary["recipe"] = recipe.replace(head=head.to_dict(), train=dataclasses.asdict(train),
                                       validation="fold" if validation else "none").to_dict()
    summary["folds"] = per_fold
    used = set(int(r) for r in clips.rows)
    frame = manifest.frame
    # Which clip (and group) was in which fold, and which were left out: the run can be audited.
    summary["clips"] = [{"file": p, "label": lab, "group": None if g is None or g != g else str(g), "fold": int(f),
                         "used": i in used}
                        for i, (p, lab, g, f) in enumerate(zip(frame.path, frame.label, frame.group, frame.fold))]
    summary["skipped"] = [{"file": f, "reason": why} for f, why in skipped]
    if out is not None:
        write_cv_report(summary, out, name="cv")
    return summary

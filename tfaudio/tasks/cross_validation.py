"""k-fold cross-validation over a manifest's folds: heads on frozen embeddings (one extraction for all
folds) and fine-tuning (one decoding for all folds)."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tfaudio.backbones.registry import get_backbone
from tfaudio.data.embedding_cache import ClipEmbeddings, EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.data.waveform_cache import WaveformCache
from tfaudio.errors import ManifestError
from tfaudio.heads.classification_head import HeadConfig
from tfaudio.io.atomic import atomic_write_text
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.finetune import FineTuneRun, evaluate_waveforms, run_digest
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


def cross_validate_finetune(manifest: Manifest, backbone: Any = "yamnet", recipe: Recipe | str | None = None, *,
                            cache: WaveformCache | None = None, output_dir: str | os.PathLike | None = None,
                            strategy: tf.distribute.Strategy | None = None, on_error: str | None = None,
                            progress: bool = True) -> dict[str, Any]:
    """k-fold cross-validation of fine-tuning: each fold is the test set once and the backbone starts from
    its pretrained weights every time. Clips are decoded once for all folds (the waveform cache).

    With ``output_dir``, each fold writes its report (JSON + PNG) to ``fold<k>/`` and checkpoints to
    ``fold<k>/checkpoints`` while it trains: a run started again skips the folds it finished and resumes
    the one it was in. Returns the summary of :func:`~tfaudio.tasks.metrics.summarize_folds` with
    ``folds``, ``labels``, ``recipe`` and ``skipped`` (like :func:`~tfaudio.tasks.cross_validation.cross_validate`).
    """
    recipe = get_recipe(recipe or "finetune")
    if recipe.finetune is not None and recipe.finetune.interpolate == "auto":
        raise ManifestError("interpolate 'auto' chooses the weights by the accuracy on validation clips, and "
                            "cross-validation of fine-tuning keeps none. Fix: give a number (--interpolate 0.5), "
                            "or use tfaudio finetune --folds TRAIN:VAL:TEST.")
    pretrained = get_backbone(backbone)
    start = [v.numpy() for v in pretrained.variables]
    cache = cache if cache is not None else WaveformCache(pretrained.sample_rate)
    extraction = cache.extract(manifest, on_error=on_error, progress=progress)
    out = pathlib.Path(output_dir) if output_dir is not None else None
    signature = run_digest({"recipe": recipe.to_dict(), "backbone": pretrained.fingerprint,
                         "clips": sorted(str(p) for p in manifest.paths), "labels": list(manifest.labels)})
    reports, per_fold = [], []
    for fold, split in manifest.kfold(validation=False):
        done = out / f"fold{fold}" / "finetune_fold.json" if out is not None else None
        if done is not None and done.is_file():
            saved = json.loads(done.read_text())
            if saved.get("signature") == signature:
                print(f"fold {fold}: done in an earlier run ({done})")
                reports.append(saved["report"])
                per_fold.append(saved["fold"])
                continue
        pretrained.assign_variables(start, source="the pretrained weights")
        run = FineTuneRun(pretrained, manifest.labels, recipe, cache=cache, strategy=strategy,
                          checkpoint_dir=out / f"fold{fold}" / "checkpoints" if out is not None else None)
        print(f"fold {fold}: fine-tuning on folds {split.train.folds}, testing on {split.test.folds}")
        run.fit(split.train, progress=progress, on_error=on_error)
        clf = run.classifier()
        rep = evaluate_waveforms(clf, cache, split.test)
        rep["fold"] = int(fold)
        rep["epochs"] = len(clf.history_.get("loss", []))
        record = {"fold": int(fold), "train_folds": split.train.folds, "val_folds": [], "history": clf.history_,
                  "clip": rep, "frame": None}
        reports.append(rep)
        per_fold.append(record)
        if out is not None:
            write_report(rep, out / f"fold{fold}", name="report", history=clf.history_)
            atomic_write_text(done, json.dumps({"signature": signature, "report": rep, "fold": record}, default=float))
            run.remove_checkpoints()
    pretrained.assign_variables(start, source="the pretrained weights")
    summary = summarize_folds(reports)
    summary["frame_level"] = None
    summary["labels"] = list(manifest.labels)
    summary["recipe"] = recipe.to_dict()
    summary["folds"] = per_fold
    summary["skipped"] = [{"file": f, "reason": why} for f, why in extraction.skipped]
    if out is not None:
        write_cv_report(summary, out, name="cv")
    return summary

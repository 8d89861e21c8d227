"""``tfaudio tune``: choose a head recipe by nested cross-validation, and an honest estimate of it.

For each outer fold (the test fold), every candidate recipe is scored by cross-validation over the
*other* folds only (inner folds: each training fold is the inner test fold once); the candidate with
the best mean inner clip accuracy is then trained on all the outer training folds and tested once on
the outer fold. The mean of those outer accuracies estimates what choosing a recipe this way gives on
new data (the inner scores of the winners are optimistic: they were picked for being high). The recipe
written out is the one picked most often over the outer folds (ties: the better mean inner score).

Embeddings are extracted once (the embedding cache); tuning costs head training only:
``outer folds × candidates × inner folds`` fits.

Example:
    >>> result = tune(Manifest.from_csv("esc50.csv"), "yamnet", output_dir="runs/tune")
    >>> result["outer"]["mean"], result["recipe"]["name"]      # then: tfaudio cv ... --recipe runs/tune/recipe.json
"""
from __future__ import annotations

import collections
import json
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tfaudio.backbones.registry import get_backbone
from tfaudio.data.embedding_cache import ClipEmbeddings, EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.errors import ManifestError
from tfaudio.io.atomic import atomic_write_text
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.multilabel_metrics import average_precision
from tfaudio.tasks.recipe import Recipe, get_recipe

__all__ = ["tune", "candidate_grid", "GRIDS"]

#: Named candidate grids (variations of the default recipe, and the tutorial's).
GRIDS = ("small", "full")


def candidate_grid(name: str = "small") -> list[Recipe]:
    """The candidate recipes of a named grid.

    ``small`` (6): the default recipe, the tutorial's, and the default with less dropout, without
    mixup, with attention pooling, with mean/std-pooled embeddings. ``full`` (10) adds a narrower head,
    an L2 penalty, half the epochs and a seed ensemble of 3 heads.
    """
    if name not in GRIDS:
        raise ManifestError(f"unknown grid {name!r}. Fix: use one of {', '.join(GRIDS)}.")
    d = get_recipe("default")
    grid = [
        d,
        get_recipe("tutorial"),
        d.replace(name="default, dropout 0.3", head={"dropout": 0.3}),
        d.replace(name="default, no mixup", train={"mixup": 0.0}),
        d.replace(name="default, attention pooling", head={"pooling": "attention"}),
        d.replace(name="default, mean/std pooling", head={"pooling": "stats"}),
    ]
    if name == "full":
        grid += [
            d.replace(name="default, hidden 512", head={"hidden_units": (512,)}),
            d.replace(name="default, L2 1e-4", head={"l2": 1e-4}),
            d.replace(name="default, 20 epochs", train={"epochs": 20}),
            d.replace(name="default, ensemble of 3", head={"ensemble": 3}),
        ]
    return grid


def _fit_score(backbone, labels, recipe: Recipe, clips: ClipEmbeddings, train_folds: Sequence[int],
               test_fold: int, cache: EmbeddingCache) -> float:
    """Clip accuracy (multi-label data: macro mAP, see :func:`_metric`) of ``recipe`` trained on
    ``train_folds`` (one held out first when it validates) and tested on ``test_fold``."""

    train_folds = sorted(train_folds)
    val = []
    if recipe.validation == "fold" and len(train_folds) > 1:
        later = [f for f in train_folds if f > test_fold]
        val = [later[0] if later else train_folds[0]]  # the fold after the test fold, as cross_validate
    fit = [f for f in train_folds if f not in val]

    def part(folds):
        return clips.subset(np.isin(clips.folds, folds))

    clf = AudioClassifier(backbone, labels=labels, cache=cache, recipe=recipe)
    clf.fit(part(fit), part(val) if val else None, recipe.train)
    test = part([test_fold])
    scores = clf.clip_scores(test)
    if np.asarray(test.targets).ndim == 2:  # multi-label data: macro mAP instead of accuracy
        return float(np.nanmean(average_precision(test.targets, scores)))
    return float(np.mean(np.argmax(scores, axis=1) == test.targets))


def _metric(manifest: Manifest) -> str:
    """The figure candidates are compared by: clip ``"accuracy"``, or ``"mAP"`` for multi-label data."""
    return "mAP" if manifest.multi_label else "accuracy"


def tune(
    manifest: Manifest,
    backbone: Any = "yamnet",
    *,
    grid: str | Sequence[Recipe | str] = "small",
    inner_folds: int | None = None,
    cache: EmbeddingCache | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Nested cross-validation of candidate recipes (see the module docstring).

    Args:
        manifest: clips with folds (at least 3).
        backbone: a Backbone or a name for :func:`tfaudio.backbones.get_backbone`.
        grid: a grid name (:data:`GRIDS`) or a list of recipes / recipe names / JSON files.
        inner_folds: use at most this many of each outer training set's folds as inner test folds
            (default all; fewer is faster, noisier).
        cache: the embedding cache (default: the backbone's in ``$TFAUDIO_CACHE``).
        output_dir: where ``tune.json`` (every score) and ``recipe.json`` (the winner) are written.

    Returns:
        ``{"outer": {"per_fold", "mean", "std", "chosen"}, "inner": {outer fold: {recipe: mean inner
        accuracy}}, "recipe": the winner's dict, "candidates": [names], "metric", "seconds"}``;
        ``metric`` names the figure: ``"accuracy"``, or ``"mAP"`` (macro) for multi-label data.
    """

    t0 = time.perf_counter()
    candidates = candidate_grid(grid) if isinstance(grid, str) else [get_recipe(r) for r in grid]
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ManifestError(f"the candidate recipes need distinct names, got {names}.")
    folds = manifest.folds
    if len(folds) < 3:
        raise ManifestError(f"nested cross-validation needs at least 3 folds; the data has {folds}. Fix: assign "
                            "folds (`tfaudio tune DATA --folds 5` for data without a fold column).")
    backbone = get_backbone(backbone)
    proto = AudioClassifier(backbone, labels=manifest.labels, cache=cache)
    extraction = proto.cache.extract(manifest, progress=progress)
    clips = proto.cache.load(manifest, extract=False)
    labels = manifest.labels
    inner_count = min(inner_folds or len(folds) - 1, len(folds) - 1)
    total = len(folds) * (len(candidates) * inner_count + 1)
    bar = tqdm(total=total, desc="tune", unit="fit", disable=not progress)
    inner: dict[int, dict[str, float]] = {}
    outer: list[float] = []
    chosen: list[str] = []
    try:
        for f in folds:
            train_folds = [g for g in folds if g != f]
            tests = train_folds[:inner_count]
            inner[f] = {}
            for recipe in candidates:
                accs = []
                for g in tests:
                    accs.append(_fit_score(backbone, labels, recipe, clips, [h for h in train_folds if h != g], g,
                                           proto.cache))
                    bar.update(1)
                inner[f][recipe.name] = float(np.mean(accs))
            best = max(candidates, key=lambda r: (inner[f][r.name], -names.index(r.name)))
            chosen.append(best.name)
            outer.append(_fit_score(backbone, labels, best, clips, train_folds, f, proto.cache))
            bar.update(1)
    finally:
        bar.close()
    votes = collections.Counter(chosen)
    mean_inner = {n: float(np.mean([inner[f][n] for f in folds])) for n in names}
    winner_name = max(names, key=lambda n: (votes[n], mean_inner[n]))
    winner = candidates[names.index(winner_name)]
    result = {
        "outer": {"per_fold": outer, "mean": float(np.mean(outer)), "std": float(np.std(outer)),
                  "chosen": dict(zip(map(str, folds), chosen)), "folds": folds},
        "inner": {str(f): scores for f, scores in inner.items()},
        "mean_inner": mean_inner,
        "candidates": names,
        "metric": _metric(manifest),
        "recipe": winner.to_dict(),
        "inner_folds": inner_count,
        "skipped": [{"file": p, "reason": why} for p, why in extraction.skipped],
        "clips": len(clips),
        "seconds": time.perf_counter() - t0,
    }
    if output_dir is not None:
        out = pathlib.Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "tune.json", json.dumps(result, indent=1) + "\n")
        winner.save(out / "recipe.json")
    return result


def format_tune(result: dict[str, Any]) -> str:
    """The result of :func:`tune` as terminal text."""
    metric = result.get("metric", "accuracy")  # tune.json written before multi-label data had none
    head = f"mean inner {metric}"
    lines = [f"nested cross-validation over {len(result['outer']['folds'])} outer folds "
             f"({result['inner_folds']} inner folds each, {len(result['candidates'])} candidates, "
             f"{result['seconds']:.0f} s):",
             f"  honest estimate (outer test folds, recipe chosen on inner folds), {metric}: "
             f"{result['outer']['mean']:.3f} ± {result['outer']['std']:.3f}"]
    width = max(len(n) for n in result["candidates"])
    lines.append(f"  {'candidate':<{width}}  {head}  chosen for outer folds")
    for n in result["candidates"]:
        picked = [f for f, c in result["outer"]["chosen"].items() if c == n]
        lines.append(f"  {n:<{width}}  {result['mean_inner'][n]:<{len(head)}.3f}  {', '.join(picked) or '-'}")
    lines.append(f"  winner: {result['recipe']['name']}")
    return "\n".join(lines)

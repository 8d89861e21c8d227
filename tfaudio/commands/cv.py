"""tfaudio cv: k-fold cross-validation (each fold the test set once), mean ± std over folds."""
from __future__ import annotations

from tfaudio.commands._common import (
    add_data_args,
    add_finetune_args,
    add_model_args,
    distribution_strategy,
    finetune_recipe_from_args,
    load_manifest,
    make_cache,
    parse_fold_count,
    recipe_from_args,
    report_skipped,
)


def add_parser(sub):
    p = sub.add_parser("cv", help="cross-validate over all folds, report mean ± std", description=__doc__)
    add_data_args(p, folds_help="number of folds to assign when the data has none (default 5; stratified by "
                                "class, grouped by speaker / source clip)")
    add_model_args(p)
    p.add_argument("--no-validation", action="store_true", help="same as --validation none")
    p.add_argument("--finetune", action="store_true", help="fine-tune the backbone in every fold (recipe finetune "
                                                           "unless --recipe; see tfaudio finetune)")
    add_finetune_args(p)
    return p


def _describe(recipe) -> str:
    h, t = recipe.head, recipe.train
    parts = [f"head {'x'.join(map(str, h.hidden_units)) or 'linear'}", f"pooling {h.pooling}"]
    parts += [f"{k} {v}" for k, v in (("dropout", h.dropout), ("input dropout", h.input_dropout),
                                      ("mixup", t.mixup), ("label smoothing", t.label_smoothing)) if v]
    parts += [f"{t.epochs} epochs {t.schedule}", f"validation {recipe.validation}"]
    if h.silence_gate:
        parts.append("silence gate")
    if h.ensemble > 1:
        parts.append(f"ensemble of {h.ensemble}")
    return ", ".join(parts)


def run(args) -> int:
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.tasks.cross_validation import cross_validate
    from tfaudio.tasks.report import format_cv

    k = parse_fold_count(args.folds)
    manifest = load_manifest(args)
    if not manifest.has_folds:
        manifest = manifest.assign_folds(k, seed=args.seed)
    if args.finetune:
        import pathlib

        from tfaudio.data.pipeline import PipelineConfig
        from tfaudio.data.waveform_cache import WaveformCache
        from tfaudio.tasks.cross_validation import cross_validate_finetune

        recipe = finetune_recipe_from_args(args)
        backbone = get_backbone(args.backbone)
        root = pathlib.Path(args.cache) / "embeddings" if args.cache else None
        cache = WaveformCache(backbone.sample_rate, root, pipeline=PipelineConfig(on_error=args.on_error))
        print(f"recipe {recipe.name}: fine-tuning {args.backbone}, {recipe.train.epochs} epochs")
        summary = cross_validate_finetune(manifest, backbone, recipe, cache=cache, output_dir=args.output,
                                          strategy=distribution_strategy(args), on_error=args.on_error)
        print(format_cv(summary))
        print(f"reports in {args.output}")
        return report_skipped([(s["file"], s["reason"]) for s in summary["skipped"]], len(manifest), what="clips")
    backbone = get_backbone(args.backbone)
    recipe = recipe_from_args(args)
    print(f"recipe {recipe.name}: {_describe(recipe)}")
    summary = cross_validate(manifest, backbone, recipe, cache=make_cache(backbone, args), output_dir=args.output)
    print(format_cv(summary))
    print(f"reports in {args.output}")
    return report_skipped([(s["file"], s["reason"]) for s in summary["skipped"]], len(manifest), what="clips")

"""tfaudio cv: k-fold cross-validation (each fold the test set once), mean ± std over folds."""
from __future__ import annotations

from tfaudio.commands._common import (
    add_data_args,
    add_model_args,
    head_config,
    load_manifest,
    make_cache,
    parse_fold_count,
    report_skipped,
    train_config,
)


def add_parser(sub):
    p = sub.add_parser("cv", help="cross-validate over all folds, report mean ± std", description=__doc__)
    add_data_args(p, folds_help="number of folds to assign when the data has none (default 5; stratified by "
                                "class, grouped by speaker / source clip)")
    add_model_args(p)
    p.add_argument("--no-validation", action="store_true", help="train on all other folds, no early stopping")
    return p


def run(args) -> int:
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.tasks.cross_validation import cross_validate
    from tfaudio.tasks.report import format_cv

    k = parse_fold_count(args.folds)
    manifest = load_manifest(args)
    if not manifest.has_folds:
        manifest = manifest.assign_folds(k, seed=args.seed)
    backbone = get_backbone(args.backbone)
    summary = cross_validate(manifest, backbone, head=head_config(args), train=train_config(args),
                             cache=make_cache(backbone, args), validation=not args.no_validation,
                             output_dir=args.output)
    print(format_cv(summary))
    print(f"reports in {args.output}")
    return report_skipped([(s["file"], s["reason"]) for s in summary["skipped"]], len(manifest), what="clips")

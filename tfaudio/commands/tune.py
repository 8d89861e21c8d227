"""tfaudio tune: choose a head recipe by nested cross-validation (recipes compared on the training folds
of each outer fold only), report the chosen recipes' accuracy on the outer test folds (an honest
estimate) and write the winner, for `tfaudio train` / `cv` --recipe OUTPUT/recipe.json. Embeddings come
from the cache: tuning costs head training only."""
from __future__ import annotations

from tfaudio.commands._common import (
    add_backbone_arg,
    add_data_args,
    load_manifest,
    make_cache,
    parse_fold_count,
    report_skipped,
)


def add_parser(sub):
    p = sub.add_parser("tune", help="choose a head recipe by nested cross-validation", description=__doc__)
    add_data_args(p, folds_help="number of folds to assign when the data has none (default 5)")
    add_backbone_arg(p)
    p.add_argument("--grid", default="small",
                   help="small (6 candidates: default, tutorial and 4 variations), full (10), or recipe names / "
                        "JSON files separated by commas")
    p.add_argument("--inner-folds", type=int, help="inner test folds per outer fold (default: all; fewer is faster)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", help="embedding cache folder (default $TFAUDIO_CACHE or ~/.cache/tfaudio)")
    p.add_argument("--output", "-o", required=True, help="folder for tune.json and the winning recipe.json")
    return p


def run(args) -> int:
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.errors import TfaudioError
    from tfaudio.tasks.tuning import GRIDS, format_tune, tune

    k = parse_fold_count(args.folds)
    if args.inner_folds is not None and args.inner_folds < 1:
        raise TfaudioError(f"--inner-folds must be >= 1, got {args.inner_folds}.")
    grid = args.grid if args.grid in GRIDS else [g.strip() for g in args.grid.split(",") if g.strip()]
    manifest = load_manifest(args)
    if not manifest.has_folds:
        manifest = manifest.assign_folds(k, seed=args.seed)
    backbone = get_backbone(args.backbone)
    result = tune(manifest, backbone, grid=grid, inner_folds=args.inner_folds, cache=make_cache(backbone, args),
                  output_dir=args.output)
    print(format_tune(result))
    print(f"wrote {args.output}/tune.json and {args.output}/recipe.json (use: --recipe {args.output}/recipe.json)")
    return report_skipped([(s["file"], s["reason"]) for s in result["skipped"]], len(manifest), what="clips")

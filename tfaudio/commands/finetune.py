"""tfaudio finetune: train the backbone itself with a new head on fixed folds; save the model and its reports.

The clips are decoded and resampled once into the waveform cache (shared by every fold, epoch and run),
then the backbone and head train end to end with the recipe ``finetune`` (mixup, SpecAugment masks,
random gain and shift; layer-wise learning-rate decay, warm-up then cosine). A checkpoint is written
after every epoch into OUTPUT/checkpoints: run the same command again after an interruption and it
resumes there (--restart starts over). The saved model is an ordinary tfaudio model folder: evaluate,
predict, demo, info and export take it as they take a trained head."""
from __future__ import annotations

import pathlib
import shutil

from tfaudio.commands._common import (
    add_backbone_arg,
    add_data_args,
    add_finetune_args,
    add_recipe_args,
    distribution_strategy,
    finetune_recipe_from_args,
    load_manifest,
    parse_split,
    report_skipped,
    skipped_in,
)


def add_parser(sub):
    p = sub.add_parser("finetune", help="fine-tune the backbone with a new head on fixed folds",
                       description=__doc__)
    add_data_args(p, folds_help="TRAIN[:VAL[:TEST]] folds, e.g. 1,2,3:4:5 (default: all but the last : none : "
                                "last); the validation folds are scored after every epoch, and used to choose only by --interpolate auto")
    add_backbone_arg(p, default="efficientat:mn04_as")
    add_recipe_args(p, default="finetune")
    add_finetune_args(p)
    p.add_argument("--restart", action="store_true", help="discard the checkpoints of an earlier run in OUTPUT")
    return p


def run(args) -> int:
    from tfaudio.data.pipeline import PipelineConfig
    from tfaudio.data.waveform_cache import WaveformCache
    from tfaudio.tasks.finetune import FineTuneRun, evaluate_waveforms
    from tfaudio.tasks.report import format_report, write_report

    manifest = load_manifest(args)
    if not manifest.has_folds:
        manifest = manifest.assign_folds(5, seed=args.seed)
    recipe = finetune_recipe_from_args(args)
    tr, va, te = parse_split(args.folds, manifest, validation=False)
    split = manifest.split(train=tr, val=va, test=te)
    out = pathlib.Path(args.output)
    checkpoints = out / "checkpoints"
    if args.restart and checkpoints.exists():
        shutil.rmtree(checkpoints)
    run_ = FineTuneRun(args.backbone, manifest.labels, recipe, checkpoint_dir=checkpoints,
                       strategy=distribution_strategy(args))
    root = pathlib.Path(args.cache) / "embeddings" if args.cache else None
    run_.cache = WaveformCache(run_.backbone.sample_rate, root, pipeline=PipelineConfig(on_error=args.on_error))
    print(f"fine-tuning {args.backbone} on folds {tr} ({len(split.train)} clips)"
          + (f", validating on {va}" if va else "") + (f", testing on {te}" if te else ""))
    run_.fit(split.train, split.val, on_error=args.on_error)
    chosen = run_.interpolation_scores_
    if chosen:
        print("interpolate auto, validation accuracy per alpha: "
              + ", ".join(f"{a:g}: {v:.3f}" for a, v in chosen.items())
              + f"; chosen: {run_.alpha_:g} (so the validation report below is not an unbiased estimate)")
    clf = run_.classifier()
    clf.save(out)
    for name, m in (("val", split.val), ("test", split.test)):
        if m is None:
            continue
        rep = evaluate_waveforms(clf, run_.cache, m)
        rep["skipped"] = skipped_in(run_.skipped, m)
        write_report(rep, out, name=f"{name}_report", history=clf.history_ if name == "test" else None)
        print(f"\n{name} (folds {m.folds}), clip level:\n{format_report(rep)}")
    run_.remove_checkpoints()
    print(f"\nsaved to {out}")
    return report_skipped(run_.skipped, len(manifest.filter_folds(tr + va + te)), what="clips")

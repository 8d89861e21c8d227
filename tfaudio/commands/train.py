"""tfaudio train: fit a head on fixed train/validation/test folds, save the model and its reports."""
from __future__ import annotations

import pathlib

from tfaudio.commands._common import (
    add_data_args,
    add_model_args,
    embed_once,
    load_manifest,
    make_cache,
    parse_split,
    recipe_from_args,
    report_skipped,
    skipped_in,
)


def add_parser(sub):
    p = sub.add_parser("train", help="train a classifier on fixed folds (e.g. train 1-3, validate 4, test 5)",
                       description=__doc__)
    add_data_args(p, folds_help="TRAIN[:VAL[:TEST]] folds, e.g. 1,2,3,4::5 or 1,2,3:4:5 (default: all but the "
                                "last : none : last; with a recipe that validates, all but the last two : second "
                                "last : last)")
    add_model_args(p)
    return p


def run(args) -> int:
    import numpy as np

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.report import format_report, write_report

    manifest = load_manifest(args)
    if not manifest.has_folds:
        manifest = manifest.assign_folds(5, seed=args.seed)
    recipe = recipe_from_args(args)
    tr, va, te = parse_split(args.folds, manifest, validation=recipe.validation == "fold")
    split = manifest.split(train=tr, val=va, test=te)
    backbone = get_backbone(args.backbone)
    clf = AudioClassifier(backbone, labels=manifest.labels, cache=make_cache(backbone, args), recipe=recipe)
    used = manifest.filter_folds(tr + va + te)
    clips, skipped = embed_once(clf, used, args)  # each file once, whichever fold it is in

    def part(m):
        return clips.subset(np.isin(clips.folds, m.folds)) if m is not None else None

    train, val, test = part(split.train), part(split.val), part(split.test)

    def count(c, m):
        n = len(m) - len(c)
        return f"{len(c)} clips" + (f", {n} skipped" if n else "")

    print(f"training on folds {tr} ({count(train, split.train)}), validating on {va}"
          + (f" ({count(val, split.val)})" if val is not None else "") + f", testing on {te}"
          + (f" ({count(test, split.test)})" if test is not None else ""))
    # a recipe without validation fits on the training folds with its fixed schedule (a given
    # validation fold is then reported, not used to stop)
    clf.fit(train, val if recipe.validation == "fold" else None)
    out = pathlib.Path(args.output)
    clf.save(out)
    for name, m, c in (("val", split.val, val), ("test", split.test, test)):
        if c is None:
            continue
        rep = clf.evaluate(c)
        for level in ("clip", "frame"):
            if rep[level] is not None:
                rep[level]["skipped"] = skipped_in(skipped, m)
        write_report(rep["clip"], out, name=f"{name}_report", history=clf.history_ if name == "test" else None)
        if rep["frame"] is not None:
            write_report(rep["frame"], out, name=f"{name}_frame_report")
        print(f"\n{name} (folds {m.folds}), clip level:\n{format_report(rep['clip'])}")
    print(f"\nsaved to {out}")
    return report_skipped(skipped, len(used), what="clips")

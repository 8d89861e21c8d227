"""tfaudio train: fit a head on fixed train/validation/test folds, save the model and its reports.

--background-dir DIR adds the audio files under DIR (clips outside the label set) as one more class,
__background__, spread over the folds and trained like the others; at prediction it means "none of
these". The test report then gives the false accepts: the share of the test folds' background clips
that get an in-set label."""
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
    p.add_argument("--background-dir", help="folder of clips that belong to none of the classes: trained as the "
                                            "class __background__, reported as 'none of these'")
    return p


def false_accepts(clf, clips, label_index: int) -> dict:
    """How the out-of-set clips among ``clips`` (class ``label_index``, the background) fare: how many,
    and the share given an in-set label by the model's decision (:func:`tfaudio.heads.decode.decide`,
    with its rejection threshold when it has one)."""
    # here, not at the top: the CLI imports this module to build its parser, without TensorFlow
    from tfaudio.heads.decode import decide

    out = clips.subset(clips.targets == label_index)
    said = [decide(s, clf.labels, rejection_threshold=clf.rejection_threshold_) for s in clf.clip_scores(out)]
    accepted = sum(not d["none_of_these"] for d in said)
    return {"clips": len(out), "false_accepts": accepted / len(out) if len(out) else None}


def run(args) -> int:
    import numpy as np

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.manifest import BACKGROUND
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.report import format_report, write_report

    manifest = load_manifest(args)
    if not manifest.has_folds:
        manifest = manifest.assign_folds(5, seed=args.seed)
    if args.background_dir:
        manifest = manifest.with_background(args.background_dir)
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
        if args.background_dir:
            rep["clip"]["background"] = bg = false_accepts(clf, c, list(clf.labels).index(BACKGROUND))
            if bg["clips"]:
                print(f"{name}: {bg['false_accepts']:.1%} of {bg['clips']} out-of-set (background) clips got an "
                      "in-set label (false accepts)")
        for level in ("clip", "frame"):
            if rep[level] is not None:
                rep[level]["skipped"] = skipped_in(skipped, m)
        write_report(rep["clip"], out, name=f"{name}_report", history=clf.history_ if name == "test" else None)
        if rep["frame"] is not None:
            write_report(rep["frame"], out, name=f"{name}_frame_report")
        print(f"\n{name} (folds {m.folds}), clip level:\n{format_report(rep['clip'])}")
    print(f"\nsaved to {out}")
    return report_skipped(skipped, len(used), what="clips")

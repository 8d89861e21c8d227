"""tfaudio evaluate: score a saved classifier on a data set (optionally some folds) and write a report."""
from __future__ import annotations

import pathlib

from tfaudio.commands._common import (
    add_data_args,
    embed_once,
    load_manifest,
    make_cache,
    parse_fold_list,
    report_skipped,
    skipped_in,
)


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a saved classifier on labelled data", description=__doc__)
    p.add_argument("model", help="folder of a model saved by `tfaudio train`")
    add_data_args(p, folds_help="comma-separated folds to evaluate on (default: all)")
    p.add_argument("--cache", help="embedding cache folder")
    p.add_argument("--output", "-o", help="folder for the report (default: the model folder)")
    return p


def run(args) -> int:
    from tfaudio.errors import TfaudioError
    from tfaudio.inference.loader import load_model
    from tfaudio.tasks.report import format_report, write_report

    folds = parse_fold_list(args.folds) if args.folds else None
    manifest = load_manifest(args)
    if folds:
        manifest = manifest.filter_folds(folds)
    loaded = load_model(args.model)
    if loaded.kind != "classifier":
        raise TfaudioError(f"{args.model} is {'an' if loaded.kind[0] in 'ae' else 'a'} {loaded.kind}; evaluate scores a "
                           "classifier saved by `tfaudio train` on cached embeddings. Fix: pass that model folder.")
    clf = loaded.model
    clf.cache = make_cache(clf.backbone, args)
    manifest = manifest.with_labels(clf.labels)
    clips, skipped = embed_once(clf, manifest, args)
    rep = clf.evaluate(clips)
    for level in ("clip", "frame"):
        if rep[level] is not None:
            rep[level]["skipped"] = skipped_in(skipped, manifest)
    out = pathlib.Path(args.output or args.model)
    write_report(rep["clip"], out, name="eval_report")
    if rep["frame"] is not None:
        write_report(rep["frame"], out, name="eval_frame_report")
    print(format_report(rep["clip"]))
    return report_skipped(skipped, len(manifest), what="clips")

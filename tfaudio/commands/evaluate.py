"""tfaudio evaluate: score a saved classifier on a data set (optionally some folds) and write a report."""
from __future__ import annotations

import pathlib

from tfaudio.commands._common import add_data_args, load_manifest, make_cache


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a saved classifier on labelled data", description=__doc__)
    p.add_argument("model", help="folder of a model saved by `tfaudio train`")
    add_data_args(p, folds_help="comma-separated folds to evaluate on (default: all)")
    p.add_argument("--cache", help="embedding cache folder")
    p.add_argument("--output", "-o", help="folder for the report (default: the model folder)")
    return p


def run(args) -> int:
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.report import format_report, write_report

    clf = AudioClassifier.load(args.model)
    clf.cache = make_cache(clf.backbone, args)
    manifest = load_manifest(args)
    if args.folds:
        manifest = manifest.filter_folds([int(f) for f in args.folds.split(",")])
    manifest = manifest.with_labels(clf.labels)
    rep = clf.evaluate(manifest)
    out = pathlib.Path(args.output or args.model)
    write_report(rep["clip"], out, name="eval_report")
    write_report(rep["frame"], out, name="eval_frame_report")
    print(format_report(rep["clip"]))
    return 0

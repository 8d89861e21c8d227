"""tfaudio evaluate: score a saved classifier on a data set (optionally some folds) and write a report.

Given strong labels (a DCASE / DESED .tsv: filename, onset, offset, event_label) instead, it detects
events in each listed recording (as `tfaudio detect`; MODEL may also be a detections table written by
it) and reports event-based F1 (200 ms onset collar) and segment-based F1 and error rate (1 s)."""
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
from tfaudio.commands.detect import add_event_args


def add_parser(sub):
    p = sub.add_parser("evaluate", help="evaluate a saved classifier on labelled data", description=__doc__)
    p.add_argument("model", help="folder of a model saved by `tfaudio train`")
    add_data_args(p, folds_help="comma-separated folds to evaluate on (default: all)")
    p.add_argument("--cache", help="embedding cache folder")
    p.add_argument("--output", "-o", help="folder for the report (default: the model folder)")
    add_event_args(p)
    return p


def run(args) -> int:
    if str(args.data).lower().endswith(".tsv"):  # strong labels: events with onset and offset
        from tfaudio.commands.evaluate_events import run_events

        return run_events(args)
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

"""``tfaudio evaluate MODEL labels.tsv``: events detected in the recordings a strong-label table lists,
scored against it (event-based and segment-based metrics). MODEL may also be an events table written
by ``tfaudio detect`` (events.tsv / events.csv), scored without running a model."""
from __future__ import annotations

import dataclasses
import json
import pathlib

from tfaudio.errors import ManifestError


def _audio_paths(table: pathlib.Path, names: list[str], audio_dir: str | None) -> list[pathlib.Path]:
    base = pathlib.Path(audio_dir) if audio_dir else table.parent
    paths = [pathlib.Path(n) if pathlib.Path(n).is_absolute() else base / n for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ManifestError(f"{table}: {len(missing)} of the {len(paths)} recordings it lists are not there, e.g. "
                            f"{missing[0]}. Fix: pass --audio-dir with the folder the filenames are relative to.")
    return paths


def format_sed_report(report: dict) -> str:
    ev, seg = report["event_based"], report["segment_based"]
    lines = [f"event-based (onset collar {ev['t_collar'] * 1000:.0f} ms, offset max(200 ms, "
             f"{ev['percentage_of_length']:.0%})): F1 {ev['overall']['f1']:.3f} (P {ev['overall']['precision']:.3f}, "
             f"R {ev['overall']['recall']:.3f}), class-average F1 {ev['macro_f1']:.3f}",
             f"segment-based ({seg['segment_seconds']:g} s): F1 {seg['overall']['f1']:.3f}, error rate "
             f"{seg['overall']['error_rate']:.3f} (S {seg['overall']['substitution_rate']:.3f}, D "
             f"{seg['overall']['deletion_rate']:.3f}, I {seg['overall']['insertion_rate']:.3f}), class-average F1 "
             f"{seg['macro_f1']:.3f}"]
    for label in report["labels"]:
        lines.append(f"  {label:<24} event F1 {ev['class_wise'][label]['f1']:.3f}   segment F1 "
                     f"{seg['class_wise'][label]['f1']:.3f}")
    return "\n".join(lines)


def run_events(args) -> int:
    from tfaudio.commands.detect import event_config
    from tfaudio.io.atomic import atomic_write_text
    from tfaudio.io.strong_labels import read_strong_labels
    from tfaudio.tasks.event_metrics import sed_report
    from tfaudio.tasks.event_outputs import event_report_figure

    table = pathlib.Path(args.data)
    reference, names = read_strong_labels(table, with_files=True)
    labels = list(args.labels) if args.labels else sorted({e.label for e in reference})
    model_path = pathlib.Path(args.model)
    durations = None
    if model_path.is_file() and model_path.suffix.lower() in (".tsv", ".csv"):
        estimated = [e for e in read_strong_labels(model_path) if e.label in labels]
        known = set(names)
        by_name = {pathlib.Path(n).name: n for n in names}
        estimated = [e if e.file in known else dataclasses.replace(e, file=by_name.get(pathlib.Path(e.file).name, e.file))
                     for e in estimated]
        out_dir = pathlib.Path(args.output) if args.output else model_path.parent
    else:
        from tfaudio.inference.detection import EventDetectionModel, detect_events

        paths = _audio_paths(table, names, args.audio_dir)
        model = EventDetectionModel(args.model, window_seconds=args.window, hop_seconds=args.hop)
        missing = [x for x in labels if x not in model.labels]
        if missing:
            raise ManifestError(f"{table}: the label(s) {missing} are not classes of {args.model} "
                                f"({list(model.labels)[:12]}{' …' if len(model.labels) > 12 else ''}). Fix: evaluate on "
                                "the model's classes (--labels), or relabel the table.")
        detections = detect_events([str(p) for p in paths], model, config=event_config(args),
                                   block_seconds=args.block, labels=labels, progress=True)
        estimated = [dataclasses.replace(e, file=name) for d, name in zip(detections, names, strict=True)
                     for e in d.events]
        durations = {name: d.duration for d, name in zip(detections, names, strict=True)}
        out_dir = pathlib.Path(args.output) if args.output else (model_path if model_path.is_dir() else None)
    report = sed_report(reference, estimated, labels=labels, durations=durations)
    report.update(reference=str(table), model=str(args.model), files=len(names), estimated_events=len(estimated),
                  reference_events=len([e for e in reference if e.label in labels]))
    print(format_sed_report(report))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "event_report.json", json.dumps(report, indent=1, ensure_ascii=False))
        event_report_figure(report, out_dir / "event_report.png")
        print(f"wrote {out_dir / 'event_report.json'} and event_report.png")
    return 0

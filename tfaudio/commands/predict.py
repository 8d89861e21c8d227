"""tfaudio predict: top-k labels of audio files (or a CSV / folder of them) with a saved classifier or an
export (which states its own input rate); several models (--ensemble) average their scores. With
--on-error skip, unusable files are listed and every good file is still scored.

Batch scoring on Apache Beam: give an exported model (`tfaudio export ... -o EXPORT`) and --output, or
--runner. The job writes one row per file (JSON lines, or CSV when OUTPUT ends in .csv) and bad files to
OUTPUT's stem + .dead_letters.jsonl; options this command does not know pass through to Beam, e.g.
`tfaudio predict EXPORT clips.csv -o scores.jsonl --direct_num_workers=2 --direct_running_mode=multi_processing`.
"""
from __future__ import annotations

import json
import pathlib

from tfaudio.commands._common import add_on_error_arg, report_skipped


def add_parser(sub):
    p = sub.add_parser("predict", help="predict labels of audio files with a saved classifier", description=__doc__)
    p.add_argument("model", help="folder of a model saved by `tfaudio train`, or of one exported by `tfaudio export` "
                                 "(scored on Beam with --output / --runner)")
    p.add_argument("inputs", nargs="+", help="audio files, a CSV manifest or a folder")
    p.add_argument("--ensemble", nargs="+", default=[], help="more model folders whose scores are averaged in")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    beam = p.add_argument_group("batch scoring on Apache Beam (an exported SavedModel)")
    beam.add_argument("--runner", help="Beam runner (DirectRunner, DataflowRunner, FlinkRunner, ...); implied for a "
                                       "SavedModel")
    beam.add_argument("--output", "-o", help="JSONL or CSV file to write (required on Beam)")
    beam.add_argument("--input-rate", type=int,
                      help="only for an export made before exports stated their rate: the rate it takes")
    beam.add_argument("--batch-size", type=int, default=16, help="clips per model call (default 16)")
    add_on_error_arg(p)
    p.set_defaults(_pipeline_args=True)
    return p


def _run_beam(args) -> int:
    from tfaudio.beam._common import quiet_workers
    from tfaudio.beam.predict import run_predict
    from tfaudio.errors import TfaudioError

    if args.ensemble:
        raise TfaudioError("--ensemble works with models saved by `tfaudio train`, not on Beam. Fix: drop "
                           "--ensemble, or score each export separately.")
    if (pathlib.Path(args.model) / "tfaudio.json").is_file():
        raise TfaudioError(f"{args.model} is a model saved by `tfaudio train`; the Beam job scores exported "
                           f"SavedModels. Fix: `tfaudio export {args.model} -o EXPORT` and pass EXPORT.")
    if not args.output:
        raise TfaudioError("scoring on Beam writes a file. Fix: add --output scores.jsonl (or scores.csv).")
    result = run_predict(args.model, _expand(args.inputs), args.output, top_k=args.top_k,
                         input_rate=args.input_rate, batch_size=args.batch_size, runner=args.runner,
                         options=quiet_workers(args.pipeline_args or []))
    print(result)
    return 0


def _expand(inputs: list[str]) -> list[str]:
    from tfaudio.data.manifest import AUDIO_EXTENSIONS, Manifest

    files = []
    for item in inputs:
        path = pathlib.Path(item)
        if path.suffix.lower() == ".csv":
            files += Manifest.from_csv(path).paths
        elif path.is_dir():
            files += sorted(str(f) for f in path.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            files.append(str(path))
    return files


def run(args) -> int:
    import numpy as np

    from tfaudio.errors import TfaudioError
    from tfaudio.heads.decode import top_k
    from tfaudio.inference.loader import load_model

    if args.top_k < 1:
        raise TfaudioError(f"--top-k must be >= 1, got {args.top_k}.")
    if args.runner or args.output:
        return _run_beam(args)
    extra = getattr(args, "pipeline_args", None)
    if extra:
        raise TfaudioError(f"unrecognized arguments: {' '.join(extra)} (options pass through to Beam only when "
                           "scoring an exported model with --runner / --output).")
    models = [load_model(m, input_rate=args.input_rate if i == 0 else None)
              for i, m in enumerate([args.model, *args.ensemble])]
    labels = models[0].labels
    for m in models[1:]:
        if m.labels != labels:
            raise TfaudioError(f"{m.source} has labels {list(m.labels)}, {args.model} has {list(labels)}: an ensemble "
                               f"needs the same labels in the same order.")
    files = _expand(args.inputs)
    good: list[int] | None = None
    skipped: dict[str, str] = {}
    scores = []
    for m in models:  # each model gets its inputs at its own rate, from the one front door
        converted = m.converter().convert_many(files, on_error=args.on_error, names=files)
        skipped.update(converted.skipped)
        good = converted.index if good is None else [i for i in good if i in set(converted.index)]
        scores.append(dict(zip(converted.index, m.scorer.scores(converted.waves, batch_size=args.batch_size))))
    for i in good or []:
        f = files[i]
        mean = np.mean([s[i] for s in scores], axis=0)
        top = top_k(mean, labels, args.top_k)
        # the first model's rule: a multi-label model's labels above its thresholds, or "none of these"
        decision = models[0].decide(mean)
        if args.json:
            print(json.dumps({"file": f, "predictions": top, **(decision or {})}, ensure_ascii=False))
        else:
            print(f + "\t" + "  ".join(f"{t['label']} {t['score']:.3f}" for t in top)
                  + (f"\t→ {';'.join(decision['labels']) or 'none of these'}" if decision else ""))
    return report_skipped(sorted(skipped.items()), len(files))

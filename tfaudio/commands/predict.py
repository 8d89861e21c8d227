"""tfaudio predict: top-k labels of audio files (or a CSV / folder of them) with a saved classifier;
several models (--ensemble) average their scores.

Batch scoring on Apache Beam: give an exported model (`tfaudio export ... -o EXPORT`) and --output, or
--runner. The job writes one row per file (JSON lines, or CSV when OUTPUT ends in .csv) and bad files to
OUTPUT's stem + .dead_letters.jsonl; options this command does not know pass through to Beam, e.g.
`tfaudio predict EXPORT clips.csv -o scores.jsonl --direct_num_workers=2 --direct_running_mode=multi_processing`.
"""
from __future__ import annotations

import json
import pathlib


def add_parser(sub):
    p = sub.add_parser("predict", help="predict labels of audio files with a saved classifier", description=__doc__)
    p.add_argument("model", help="folder of a model saved by `tfaudio train`, or of one exported by `tfaudio export` "
                                 "(a SavedModel: scored on Beam)")
    p.add_argument("inputs", nargs="+", help="audio files, a CSV manifest or a folder")
    p.add_argument("--ensemble", nargs="+", default=[], help="more model folders whose scores are averaged in")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    beam = p.add_argument_group("batch scoring on Apache Beam (an exported SavedModel)")
    beam.add_argument("--runner", help="Beam runner (DirectRunner, DataflowRunner, FlinkRunner, ...); implied for a "
                                       "SavedModel")
    beam.add_argument("--output", "-o", help="JSONL or CSV file to write (required on Beam)")
    beam.add_argument("--input-rate", type=int, default=16000,
                      help="the rate the SavedModel takes (what `tfaudio export --input-rate` set; default 16000)")
    beam.add_argument("--batch-size", type=int, default=16, help="clips per model call (default 16)")
    p.set_defaults(_pipeline_args=True)
    return p


def _is_saved_model(path: str) -> bool:
    folder = pathlib.Path(path)
    return not (folder / "tfaudio.json").is_file() and any(
        (f / "saved_model.pb").is_file() for f in (folder, folder / "saved_model"))


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
    if args.runner or _is_saved_model(args.model):
        return _run_beam(args)
    import numpy as np

    from tfaudio.errors import TfaudioError
    from tfaudio.tasks.audio_classifier import AudioClassifier, top_k_labels

    extra = getattr(args, "pipeline_args", None)
    if extra:
        raise TfaudioError(f"unrecognized arguments: {' '.join(extra)} (options pass through to Beam only when "
                           "scoring an exported model with --runner).")
    if args.output:
        raise TfaudioError("--output is for batch scoring on Beam (an exported model or --runner). Fix: drop it; "
                           "the predictions are printed.")

    models = [AudioClassifier.load(m) for m in [args.model, *args.ensemble]]
    labels = models[0].labels
    for m, path in zip(models[1:], args.ensemble):
        if m.labels != labels:
            raise TfaudioError(f"{path} has labels {list(m.labels)}, {args.model} has {list(labels)}: an ensemble "
                               f"needs the same labels in the same order.")
    files = _expand(args.inputs)
    scores = np.mean([m.predict_scores(files) for m in models], axis=0)
    for f, s in zip(files, scores):
        top = top_k_labels(s, labels, args.top_k)
        if args.json:
            print(json.dumps({"file": f, "predictions": top}))
        else:
            print(f + "\t" + "  ".join(f"{t['label']} {t['score']:.3f}" for t in top))
    return 0

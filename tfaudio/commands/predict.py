"""tfaudio predict: top-k labels of audio files (or a CSV / folder of them) with a saved classifier;
several models (--ensemble) average their scores."""
from __future__ import annotations

import json
import pathlib


def add_parser(sub):
    p = sub.add_parser("predict", help="predict labels of audio files with a saved classifier", description=__doc__)
    p.add_argument("model", help="folder of a model saved by `tfaudio train`")
    p.add_argument("inputs", nargs="+", help="audio files, a CSV manifest or a folder")
    p.add_argument("--ensemble", nargs="+", default=[], help="more model folders whose scores are averaged in")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    return p


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
    from tfaudio.tasks.audio_classifier import AudioClassifier, top_k_labels

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

"""tfaudio export: write a classifier saved by `tfaudio train` (any backbone), a fine-tuned Wav2Vec2 / HuBERT
model saved by save_finetune_model, or a backbone's own tagger (yamnet, efficientat:mn04_as) as a SavedModel
(TF Serving: raw waveform in, scores and label out; it states its input rate, labels and backbone in
assets/tfaudio.json) and, on request, TFLite files for Android (MediaPipe Tasks / TFLite Task Library)."""
from __future__ import annotations

import pathlib

from tfaudio.errors import TfaudioError

VARIANTS = ("float32", "float16", "dynamic", "int8", "int8_full")


def add_parser(sub):
    p = sub.add_parser("export", help="export a trained classifier as a SavedModel and TFLite files",
                       description=__doc__)
    p.add_argument("model", help="folder of a classifier saved by `tfaudio train`, of a fine-tuned model saved by "
                                 "tfaudio.tasks.wav2vec2_finetune.save_finetune_model, or a backbone name to export "
                                 "its own AudioSet tagger (yamnet, efficientat:mn04_as)")
    p.add_argument("--output", "-o", required=True,
                   help="folder to write: OUTPUT/saved_model and OUTPUT/model_<variant>.tflite")
    p.add_argument("--input-rate", type=int,
                   help="sample rate of the SavedModel's input in Hz; it resamples in-graph (default: the "
                        "backbone's: 16000 for YAMNet and Wav2Vec2, 32000 for EfficientAT). TFLite inputs are always "
                        "at the backbone's rate.")
    p.add_argument("--tflite", nargs="+", choices=VARIANTS, default=[], metavar="VARIANT",
                   help=f"TFLite variants to write: {', '.join(VARIANTS)} (int8 needs --representative)")
    p.add_argument("--frame-scores", action="store_true",
                   help="SavedModel: add the per-frame scores output (one row per backbone hop: 0.48 s for "
                        "YAMNet, 0.32 s for EfficientAT, 20 ms for Wav2Vec2; classifiers only)")
    p.add_argument("--audioset", action="store_true",
                   help="SavedModel: add the backbone's own AudioSet scores beside the classifier (YAMNet's 521, "
                        "EfficientAT's 527)")
    p.add_argument("--whole-clip", action="store_true",
                   help="TFLite: a dynamic input length (resize per clip) instead of a fixed window; written as "
                        "model_<variant>_whole_clip.tflite (MediaPipe needs the fixed window: omit this for Android)")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--window-samples", type=int,
                        help="TFLite window in samples at the backbone's rate (default: the frames of the classifier's "
                             "median training clip, at most 10 s, so the file scores a clip as the classifier does; "
                             "the backbone's window for models saved without that record: 15600 = 0.975 s at 16 kHz "
                             "for YAMNet, 32000 = 1 s at 32 kHz for EfficientAT). Short windows suit streaming apps")
    window.add_argument("--window-seconds", type=float,
                        help="the TFLite window in seconds instead (e.g. 1 for streaming; rounded to samples)")
    p.add_argument("--representative",
                   help="int8 calibration audio: a CSV manifest, an ESC-50 folder or a folder with class "
                        "sub-folders (e.g. the training data)")
    p.add_argument("--overwrite", action="store_true", help="replace existing exports")
    return p


def _size(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def run(args) -> int:
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.export.tflite import export_tflite

    out = pathlib.Path(args.output)
    suffix = "_whole_clip" if args.whole_clip else ""
    targets = [out / "saved_model"] + [out / f"model_{v}{suffix}.tflite" for v in args.tflite]
    if not args.overwrite:  # refuse before any work, so nothing is half-written
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            raise TfaudioError(f"{', '.join(existing)} already exist(s). Fix: pass --overwrite or another --output.")
    if args.window_seconds is not None and not args.window_seconds > 0:  # refused before any work
        raise TfaudioError(f"--window-seconds {args.window_seconds:g}: expected a length above 0 s. Fix: e.g. "
                           "--window-seconds 1 (or omit it for the training clips' length).")
    representative = None
    if any(v.startswith("int8") for v in args.tflite):
        if not args.representative:
            raise TfaudioError(
                "--tflite int8 needs calibration audio. Fix: add --representative DATA (a CSV manifest or a "
                "folder of clips like the training data), or use --tflite dynamic (no data needed)."
            )
        import random

        from tfaudio.data.manifest import Manifest

        representative = Manifest.from_source(args.representative).paths
        random.Random(0).shuffle(representative)  # calibration sees every class, not the first few

    from tfaudio.inference.loader import load_model

    loaded = load_model(args.model)
    if loaded.kind not in ("classifier", "finetune", "tagger"):
        raise TfaudioError(f"{args.model} is {'an' if loaded.kind[0] in 'ae' else 'a'} {loaded.kind}; `tfaudio export` "
                           "writes models saved by `tfaudio train` (or fine-tuned, or a backbone's tagger). Fix: "
                           "pass the model folder it came from.")
    clf = loaded.model if loaded.kind != "tagger" else loaded.backbone
    window_samples = args.window_samples
    if args.tflite and (window_samples is not None or args.window_seconds is not None) and not args.whole_clip:
        from tfaudio.tasks.clip_scorer import clip_scorer

        scorer = clip_scorer(clf)
        if args.window_seconds is not None:  # TFLite inputs are at the backbone's rate
            window_samples = int(round(args.window_seconds * scorer.sample_rate))
        least = scorer.contract.min_samples
        if window_samples < least:  # refused before the SavedModel is written
            raise TfaudioError(
                f"the TFLite window ({window_samples} samples, {window_samples / scorer.sample_rate:g} s) is shorter "
                f"than one frame: the backbone needs at least {least} samples ({least / scorer.sample_rate:g} s at "
                f"{scorer.sample_rate} Hz). Fix: --window-samples {least} or more (or omit it).")
    written = [export_saved_model(clf, targets[0], input_rate=args.input_rate, frame_scores=args.frame_scores,
                                  backbone_scores=args.audioset, overwrite=args.overwrite)]
    for variant, target in zip(args.tflite, targets[1:], strict=True):
        written.append(export_tflite(clf, target, quantization=variant, window_samples=window_samples,
                                     whole_clip=args.whole_clip, overwrite=args.overwrite,
                                     representative_data=representative if variant.startswith("int8") else None))
    for path in written:
        print(f"wrote {path} ({_size(path) / 1e6:.2f} MB)")
    return 0

"""tfaudio tag: the top-k AudioSet events of audio files with a pretrained backbone, no training needed.

Each file (WAV, FLAC, OGG or MP3 at any rate) goes through the one front door (decode, mix to mono,
resample to the backbone's rate) and the one clip scorer: YAMNet (521 classes) scores 0.96 s patches
every 0.48 s and a clip's score is the mean of its patch scores; EfficientAT (527 classes) scores the
clip as a whole. With --on-error skip, unusable files are listed and the good ones still tagged.
"""
from __future__ import annotations

import json

from tfaudio.backbones.registry import split_spec
from tfaudio.commands._common import add_backbone_arg, add_on_error_arg, report_skipped
from tfaudio.commands._engine_arg import add_engine_arg
from tfaudio.heads import decode

#: Files per model call.
_BATCH = 16


def add_parser(sub):
    p = sub.add_parser("tag", help="top-k AudioSet events of audio files (pretrained YAMNet or EfficientAT)",
                       description=__doc__)
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG, MP3; any rate)")
    p.add_argument("--top-k", type=int, default=5, help="events per file (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file instead of text")
    add_backbone_arg(p, tags_only=True)
    p.add_argument("--weights", help="YAMNet weights: a yamnet.h5, a SavedModel folder or a TF Hub URL "
                                     "(default: $TFAUDIO_YAMNET, ../shared, the cache, then TF Hub)")
    add_on_error_arg(p)
    add_engine_arg(p, extra=" (tag: tflite extracts embeddings only, so it scores with float32)")
    return p


def tag_files(backbone, files: list[str], top_k: int = 5, *, on_error: str = "raise",
              engine: str | None = "float32") -> list[dict]:
    """``[{"file", "seconds", "frames", "events": [{"label", "index", "score"}]}]`` per good file.

    With ``on_error="skip"`` an unusable file gets ``{"file", "error"}`` in its place instead.
    ``engine``: what runs the backbone (:func:`tfaudio.backbones.engines.scorer_engine`; the library
    default float32 is exact, ``tfaudio tag`` defaults to auto).

    Raises:
        AudioError: a file cannot be used (``on_error="raise"``; before any model call).
    """

    from tfaudio.backbones.engines import scorer_engine
    from tfaudio.inference.loader import load_model
    from tfaudio.log import info

    loaded = load_model(backbone, tagging=True)
    choice = scorer_engine(loaded.scorer, engine)
    if choice.fell_back:  # a request this machine / backbone cannot run: say what ran instead
        info(f"engine: {choice}")
    converted = loaded.converter().convert_many(list(files), on_error=on_error)
    outputs = loaded.scorer.outputs(converted.waves, batch_size=_BATCH)
    rate = loaded.sample_rate
    rows: dict[int, dict] = {}
    for i, wave, out in zip(converted.index, converted.waves, outputs, strict=True):
        clip = out["classifier"]
        rows[i] = {
            "file": str(files[i]),
            "seconds": round(len(wave) / rate, 3),
            "frames": int(len(out["frame_scores"])) if "frame_scores" in out else 1,
            "events": [{**t, "score": round(t["score"], 4)} for t in decode.top_k(clip, loaded.labels, top_k)],
        }
    bad = dict(converted.skipped)
    return [rows[i] if i in rows else {"file": str(f), "error": bad[str(f)]} for i, f in enumerate(files)]


def run(args) -> int:
    from tfaudio.errors import TfaudioError

    if args.top_k < 1:
        raise TfaudioError(f"--top-k must be >= 1, got {args.top_k}.")
    spec = args.backbone
    if args.weights:
        if split_spec(spec)[0] != "yamnet":
            raise TfaudioError("--weights names YAMNet weights; for another backbone give them in --backbone "
                               "(e.g. --backbone efficientat:/path/mn04_as_mAP_432.pt).")
        spec = f"yamnet:{args.weights}"
    rows = tag_files(spec, list(args.files), args.top_k, on_error=args.on_error, engine=args.engine)
    for item in rows:
        if "error" in item:
            continue
        if args.json:
            print(json.dumps(item, ensure_ascii=False))
        else:
            print(f"{item['file']}  ({item['seconds']:.2f} s)")
            for e in item["events"]:
                print(f"  {e['score']:.3f}  {e['label']}")
    return report_skipped([(r["file"], r["error"]) for r in rows if "error" in r], len(rows))

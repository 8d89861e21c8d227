"""tfaudio tag: the top-k AudioSet events (YAMNet's 521 classes) of audio files, no training needed.

Each file (WAV, FLAC, OGG or MP3 at any rate) is decoded, mixed to mono, resampled to 16 kHz and cut
into 0.96 s patches every 0.48 s; a clip's score for a class is the mean of its patch scores.
"""
from __future__ import annotations

import json

#: Files per YAMNet call (patches of the whole group go through the network at once).
_BATCH = 16


def add_parser(sub):
    p = sub.add_parser("tag", help="top-k AudioSet events of audio files (pretrained YAMNet)", description=__doc__)
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, OGG, MP3; any rate)")
    p.add_argument("--top-k", type=int, default=5, help="events per file (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file instead of text")
    p.add_argument("--weights", help="YAMNet weights: a yamnet.h5, a SavedModel folder or a TF Hub URL "
                                     "(default: $TFAUDIO_YAMNET, ../shared, the cache, then TF Hub)")
    return p


def _load(path: str, rate: int):
    import numpy as np

    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample

    audio, file_rate = load_audio(path)  # AudioError naming the file when it is unusable
    if file_rate != rate:
        audio = np.asarray(resample(audio, file_rate, rate))
    return audio, len(audio) / rate


def tag_files(backbone, files: list[str], top_k: int = 5) -> list[dict]:
    """``[{"file", "seconds", "patches", "events": [{"label", "index", "score"}]}]`` per file.

    Raises:
        AudioError: a file cannot be decoded (before any model call).
    """
    import numpy as np

    rate = backbone.sample_rate
    clips = [_load(f, rate) for f in files]
    names = backbone.class_names
    out = []
    for start in range(0, len(clips), _BATCH):
        chunk = clips[start : start + _BATCH]
        lengths = np.array([len(a) for a, _ in chunk], np.int32)
        batch = np.zeros([len(chunk), max(int(lengths.max()), 1)], np.float32)
        for i, (audio, _) in enumerate(chunk):
            batch[i, : len(audio)] = audio
        scores, mask = backbone.batch_scores(batch, lengths)
        scores, mask = np.asarray(scores), np.asarray(mask)
        for i, (_, seconds) in enumerate(chunk):
            clip = scores[i][mask[i]].mean(axis=0)  # [521]
            top = np.argsort(-clip, kind="stable")[:top_k]
            out.append({
                "file": files[start + i],
                "seconds": round(seconds, 3),
                "patches": int(mask[i].sum()),
                "events": [{"label": names[j] if names else f"class {j}", "index": int(j),
                            "score": round(float(clip[j]), 4)} for j in top],
            })
    return out


def run(args) -> int:
    from tfaudio.backbones.yamnet_backbone import YAMNetBackbone
    from tfaudio.errors import TfaudioError

    if args.top_k < 1:
        raise TfaudioError(f"--top-k must be >= 1, got {args.top_k}.")
    backbone = YAMNetBackbone.from_pretrained(args.weights)
    for item in tag_files(backbone, list(args.files), args.top_k):
        if args.json:
            print(json.dumps(item))
        else:
            print(f"{item['file']}  ({item['seconds']:.2f} s)")
            for e in item["events"]:
                print(f"  {e['score']:.3f}  {e['label']}")
    return 0

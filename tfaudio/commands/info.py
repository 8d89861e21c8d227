"""tfaudio info: what a model costs and contains: parameters (backbone + head), multiply-accumulates per
second of audio, peak activation memory for a 10 s clip, the file size of each export, labels and sample
rate. See tfaudio/export/model_info.py for how each number is counted."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("info", help="parameters, MACs, activation memory, export sizes and labels of a model",
                       description=__doc__)
    p.add_argument("model", help="a folder saved by `tfaudio train`, an export folder (`tfaudio export -o`), "
                                 "or 'yamnet' / a yamnet.h5 (YAMNet itself)")
    p.add_argument("--exports", nargs="+", default=[], metavar="PATH",
                   help="export folders or files to list too (e.g. the `tfaudio export -o` folder)")
    p.add_argument("--clip-seconds", type=float, default=10.0,
                   help="clip length of the activation-memory figure (default 10)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def run(args) -> int:
    from tfaudio.errors import TfaudioError
    from tfaudio.inference.model_info import format_info, model_info, to_json

    if not args.clip_seconds > 0:
        raise TfaudioError(f"--clip-seconds must be > 0, got {args.clip_seconds}.")
    info = model_info(args.model, exports=args.exports, clip_seconds=args.clip_seconds)
    print(to_json(info) if args.json else format_info(info))
    return 0

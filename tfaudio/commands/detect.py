"""tfaudio detect: sound events (onset, offset, label, score) in recordings of any length.

Each file is streamed (read ~60 s at a time, never whole), scored frame by frame with the model
(a folder saved by `tfaudio train`, an export, or 'yamnet' for AudioSet's classes), and the scores
become events: median filter → hysteresis (an event starts at --high and lasts while the score stays
>= --low) → events of one class closer than --min-gap merged. Writes events.csv, events.tsv (DCASE
form), events.json and, per file, an Audacity label track (<name>.labels.txt) and a timeline PNG into
--output; prints the events.
"""
from __future__ import annotations

from tfaudio.commands._common import report_skipped


def add_event_args(p) -> None:
    """The post-processing options (shared with ``tfaudio evaluate`` on strong labels)."""
    g = p.add_argument_group("events (how frame scores become events)")
    g.add_argument("--high", type=float, default=0.5, help="score that starts an event (default 0.5)")
    g.add_argument("--low", type=float, default=0.3, help="an event lasts while the score stays >= this (default 0.3)")
    g.add_argument("--median", type=float, default=0.5, help="median filter span in seconds (default 0.5; 0: off)")
    g.add_argument("--min-gap", type=float, default=0.5, help="merge events of one class closer than this (s, default 0.5)")
    g.add_argument("--min-duration", type=float, default=0.0, help="drop shorter events (s, default 0)")
    g.add_argument("--window", type=float, help="score windows of this many seconds as clips instead of the model's "
                                                "own frames (models without frame scores: default their input window)")
    g.add_argument("--hop", type=float, help="hop between those windows (s; default half the window)")
    g.add_argument("--labels", nargs="+", help="detect only these classes")
    g.add_argument("--block", type=float, default=60.0, help="seconds of audio read and scored per step (default 60)")


def event_config(args):
    from tfaudio.errors import TfaudioError
    from tfaudio.tasks.events import EventConfig

    if args.low > args.high:
        raise TfaudioError(f"--low {args.low} is above --high {args.high}. Fix: --low <= --high.")
    if args.block <= 0:
        raise TfaudioError(f"--block must be > 0 seconds, got {args.block}.")
    return EventConfig(high=args.high, low=args.low, median_seconds=args.median, min_gap_seconds=args.min_gap,
                       min_duration_seconds=args.min_duration)


def add_parser(sub):
    p = sub.add_parser("detect", help="sound events with onset and offset in long recordings", description=__doc__)
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings (WAV, FLAC, OGG, MP3; any rate and length)")
    p.add_argument("--model", "-m", default="yamnet",
                   help="a folder saved by `tfaudio train`, an export folder, or a tagger: yamnet (default), "
                        "efficientat:mn04_as")
    add_event_args(p)
    p.add_argument("--output", "-o", help="folder for events.csv/.tsv/.json, label tracks and timelines "
                                          "(default: print only)")
    p.add_argument("--no-figures", action="store_true", help="skip the timeline PNGs")
    p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help="bad audio files: stop at the first (default) or skip, count and report them")
    return p


def run(args) -> int:
    from tfaudio.errors import AudioError
    from tfaudio.inference.detection import EventDetectionModel, detect_events
    from tfaudio.io.audio_info import audio_info
    from tfaudio.tasks.event_outputs import write_detections

    config = event_config(args)
    files, skipped = [], []
    for f in args.files:
        try:
            audio_info(f)
            files.append(f)
        except AudioError as err:
            if args.on_error == "raise":
                raise
            skipped.append((f, err.problem))
    if not files:
        return report_skipped(skipped, len(args.files))
    model = EventDetectionModel(args.model, window_seconds=args.window, hop_seconds=args.hop)
    detections = detect_events(files, model, config=config, block_seconds=args.block, labels=args.labels,
                               progress=True)
    for d in detections:
        print(f"{d.file}  ({d.duration:.1f} s, {len(d.events)} events)")
        for e in d.events:
            print(f"  {e.onset:9.2f} {e.offset:9.2f}  {e.score:.3f}  {e.label}")
    if args.output:
        written = write_detections(detections, args.output, figures=not args.no_figures)
        print(f"wrote {', '.join(written['tables'])} and {len(written['labels'])} label track(s)"
              + (f", {len(written['figures'])} timeline(s)" if written["figures"] else ""))
    return report_skipped(skipped, len(args.files))

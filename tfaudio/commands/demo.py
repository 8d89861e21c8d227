"""tfaudio demo: a local web page (Gradio) to try a model: upload or record audio, see the top labels
with scores, the waveform, the log-mel spectrogram and the frame scores over time.

MODEL is a folder saved by `tfaudio train`, an export folder, or a backbone name to tag AudioSet events
(`yamnet`: 521 classes, `efficientat:mn04_as`: 527).
The page is served on --host:--port (localhost by default); --share asks Gradio for a public link.
Needs the `demo` extra: pip install 'tfaudio[demo]'.
"""
from __future__ import annotations

import pathlib

from tfaudio.backbones import registry


def add_parser(sub):
    p = sub.add_parser("demo", help="a web page to try a model on uploaded or recorded audio (Gradio)",
                       description=__doc__)
    p.add_argument("model", metavar="MODEL",
                   help="a model folder from `tfaudio train` or `tfaudio export`, or a backbone to tag with: "
                        + registry.help_text(tags_only=True, default=None))
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--top-k", type=int, default=5, help="labels shown (default 5)")
    p.add_argument("--weights", help="YAMNet weights for MODEL=yamnet: a yamnet.h5, a SavedModel folder or "
                                     "a TF Hub URL (default: $TFAUDIO_YAMNET, ../shared, the cache, then TF Hub)")
    return p


def run(args) -> int:
    import numpy as np

    from tfaudio.apps.gradio_demo import analyze, build_demo, import_gradio, load_model
    from tfaudio.errors import TfaudioError

    if args.top_k < 1:
        raise TfaudioError(f"--top-k must be >= 1, got {args.top_k}.")
    if not 1 <= args.port <= 65535:
        raise TfaudioError(f"--port must be in 1..65535, got {args.port}.")
    import_gradio()  # fail before loading the model when Gradio is missing
    model = load_model(args.model, weights=args.weights)
    # One silent second traces the TF functions now, so the first visitor does not wait for it.
    analyze(model, np.zeros(model.sample_rate, np.float32), model.sample_rate, args.top_k)
    name = pathlib.Path(args.model).name if pathlib.Path(args.model).is_dir() else model.source
    demo = build_demo(model, args.top_k, title=f"tfaudio demo: {name}")
    print(f"tfaudio demo: serving {args.model} on http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False)
    return 0

"""The sub-commands of ``tfaudio``, one module each: ``add_parser(subparsers)`` and ``run(args) -> int``.

Why a command imports its library modules inside ``run`` and not at the top: ``tfaudio`` builds every
sub-command's parser on each call, so ``tfaudio --help``, ``tfaudio X --help`` and argument errors answer
at once instead of after importing TensorFlow (~6 s). That is the one place in the package where core
modules are imported inside functions; elsewhere only optional dependencies are (transformers,
apache-beam, gradio, mediapipe, tensorflow-io, the TFLite interpreters), each with its reason, and
scikit-learn in :mod:`tfaudio.tasks.metrics` (1.5-2 s to import; scoring and predicting never need it).
"""

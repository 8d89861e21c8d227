"""``--engine``: one option, one help, for every command that extracts embeddings (``train``, ``cv``, ``tune``
and ``evaluate`` through :func:`tfaudio.commands._common.add_data_args`; ``embed``, ``tag``)."""
from __future__ import annotations

import argparse

#: ``tfaudio.backbones.engines.ENGINES``, spelled out so that building the parser does not import TensorFlow.
ENGINE_CHOICES = ("auto", "float32", "bfloat16", "tflite")
ENGINE_HELP = ("what extracts the embeddings: auto (default, or $TFAUDIO_ENGINE: bfloat16 for YAMNet where the CPU has "
               "it natively, else the body in TFLite/XNNPACK for YAMNet and EfficientAT, else float32), float32, "
               "bfloat16, tflite; each engine caches apart")


def add_engine_arg(p: argparse.ArgumentParser, *, extra: str = "") -> None:
    """Adds ``--engine`` (default None: ``$TFAUDIO_ENGINE`` or ``auto``, resolved by
    :func:`tfaudio.backbones.engines.choose_engine`)."""
    p.add_argument("--engine", choices=list(ENGINE_CHOICES), help=ENGINE_HELP + extra)

"""Backbones by name, and the spec a saved model stores to re-create its backbone."""
from __future__ import annotations

import os
from typing import Any

from tfaudio.errors import TfaudioError

NAMES = ("yamnet", "wav2vec2", "hubert", "speech-embedding")


def backbone_spec(backbone) -> dict[str, Any]:
    """What :func:`get_backbone` needs to build ``backbone`` again."""
    if hasattr(backbone, "spec"):
        return dict(backbone.spec())
    name = type(backbone).__name__.replace("Backbone", "").lower()
    return {"name": name, "source": _as_str(getattr(backbone, "source", None))}


def _as_str(x):
    return os.fspath(x) if isinstance(x, os.PathLike) else x


def get_backbone(spec: Any = "yamnet", **kwargs: Any):
    """A backbone from a name, a ``name:source`` string, a spec dict, or a backbone (returned as is).

    Examples: ``"yamnet"`` (weights found by YAMNetBackbone.from_pretrained), ``"yamnet:/path/yamnet.h5"``,
    ``"wav2vec2:facebook/wav2vec2-base"``, ``"hubert:/models/distilhubert"``, ``"speech-embedding"``
    (Google's speech embedding model, found or downloaded), ``"speech-embedding:/folder"`` (a folder
    with openWakeWord's ``embedding_model.tflite``),
    ``{"name": "wav2vec2", "source": "/models/w2v", "layer": 6}``.
    """
    if hasattr(spec, "contract"):
        return spec
    if isinstance(spec, str):
        name, _, source = spec.partition(":")
        if name not in NAMES and (os.path.exists(spec) or "/" in spec):
            # a bare path or hub id: YAMNet for .h5 or TF Hub, else transformers
            name, source = ("yamnet", spec) if spec.endswith(".h5") else ("wav2vec2", spec)
        spec = {"name": name, "source": source or None}
    spec = {**spec, **kwargs}
    name = spec.pop("name", "yamnet").lower()
    source = spec.pop("source", None)
    if name == "yamnet":
        from tfaudio.backbones.yamnet_backbone import YAMNetBackbone

        return YAMNetBackbone.from_pretrained(source, **spec)
    if name in ("wav2vec2", "hubert"):
        from tfaudio.backbones.wav2vec2_backbone import Wav2Vec2Backbone

        if not source:
            raise TfaudioError(f"the {name} backbone needs a model id or folder, e.g. '{name}:facebook/wav2vec2-base'")
        return Wav2Vec2Backbone.from_pretrained(source, **spec)
    if name == "speech-embedding":
        from tfaudio.backbones.speech_embedding_backbone import SpeechEmbeddingBackbone

        return SpeechEmbeddingBackbone.from_pretrained(source, **spec)
    raise TfaudioError(f"unknown backbone {name!r}. Known: {', '.join(NAMES)}.")

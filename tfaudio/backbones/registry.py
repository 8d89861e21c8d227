"""Backbones by name, and the spec a saved model stores to re-create its backbone."""
from __future__ import annotations

import os
from typing import Any

from tfaudio.errors import TfaudioError

NAMES = ("yamnet", "efficientat", "speech-embedding", "wav2vec2", "hubert", "whisper")


def backbone_spec(backbone) -> dict[str, Any]:
    """What :func:`get_backbone` needs to build ``backbone`` again."""
    if hasattr(backbone, "spec"):
        return dict(backbone.spec())
    name = type(backbone).__name__.replace("Backbone", "").lower()
    return {"name": name, "source": _as_str(getattr(backbone, "source", None))}


def _as_str(x):
    return os.fspath(x) if isinstance(x, os.PathLike) else x


def _transformers_name(source: str) -> str:
    """The registry name of a transformers checkpoint folder by its ``config.json`` (default wav2vec2)."""
    import json

    config = os.path.join(source, "config.json")
    try:
        with open(config, encoding="utf8") as f:
            model_type = json.load(f).get("model_type")
    except (OSError, ValueError, AttributeError):
        return "wav2vec2"
    return {"whisper": "whisper", "hubert": "hubert"}.get(model_type, "wav2vec2")


def get_backbone(spec: Any = "yamnet", **kwargs: Any):
    """A backbone from a name, a ``name:source`` string, a spec dict, or a backbone (returned as is).

    Examples: ``"yamnet"`` (weights found by YAMNetBackbone.from_pretrained), ``"yamnet:/path/yamnet.h5"``,
    ``"wav2vec2:facebook/wav2vec2-base"``, ``"hubert:/models/distilhubert"``, ``"whisper:openai/whisper-tiny"``,
    ``"efficientat"`` / ``"efficientat:mn10_as"`` (an EfficientAT release),
    ``"efficientat:/path/mn04_as_mAP_432.pt"`` or a bare ``.pt`` path,
    ``"speech-embedding"`` (Google's speech embedding model, found or downloaded), ``"speech-embedding:/folder"``
    (a folder with openWakeWord's ``embedding_model.tflite``),
    ``{"name": "wav2vec2", "source": "/models/w2v", "layer": 6}``.
    """
    if hasattr(spec, "contract"):
        return spec
    if isinstance(spec, str):
        name, _, source = spec.partition(":")
        if name not in NAMES and (os.path.exists(spec) or "/" in spec):
            # a bare path or hub id: YAMNet for .h5 or TF Hub, EfficientAT for a PyTorch checkpoint,
            # else transformers
            if spec.endswith(".h5"):
                name, source = "yamnet", spec
            elif spec.endswith((".pt", ".pth")):
                name, source = "efficientat", spec
            else:
                name, source = _transformers_name(spec), spec
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
    if name == "whisper":
        from tfaudio.backbones.whisper_backbone import WhisperBackbone

        if not source:
            raise TfaudioError("the whisper backbone needs a model id or folder, e.g. 'whisper:openai/whisper-tiny'")
        return WhisperBackbone.from_pretrained(source, **spec)
    if name == "efficientat":
        from tfaudio.backbones.efficientat_backbone import EfficientATBackbone

        return EfficientATBackbone.from_pretrained(source, **spec)
    if name == "speech-embedding":
        from tfaudio.backbones.speech_embedding_backbone import SpeechEmbeddingBackbone

        return SpeechEmbeddingBackbone.from_pretrained(source, **spec)
    raise TfaudioError(f"unknown backbone {name!r}. Known: {', '.join(NAMES)}.")

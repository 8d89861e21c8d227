"""Pretrained backbones, one folder each, named in one table (:mod:`tfaudio.backbones.registry`).
Each states its input contract (sample rate, frame and hop, embedding size)."""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Backbone": ".backbone",
        "InputContract": ".backbone",
        "YAMNetBackbone": ".yamnet.backbone",
        "Wav2Vec2Backbone": ".wav2vec2.backbone",
        "WhisperBackbone": ".whisper.backbone",
        "EfficientATBackbone": ".efficientat.backbone",
        "SpeechEmbeddingBackbone": ".speech_embedding.backbone",
        "get_backbone": ".registry",
        "register_backbone": ".registry",
        "BackboneEntry": ".entry",
    },
)

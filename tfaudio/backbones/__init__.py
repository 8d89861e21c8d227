"""Pretrained backbones. Each states its input contract (sample rate, frame and hop, embedding size)."""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Backbone": ".backbone",
        "InputContract": ".backbone",
        "YAMNetBackbone": ".yamnet_backbone",
        "Wav2Vec2Backbone": ".wav2vec2_backbone",
        "WhisperBackbone": ".whisper_backbone",
        "EfficientATBackbone": ".efficientat_backbone",
        "SpeechEmbeddingBackbone": ".speech_embedding_backbone",
        "get_backbone": ".registry",
    },
)

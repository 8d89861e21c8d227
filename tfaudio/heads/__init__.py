"""Keras heads on top of backbone embeddings."""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"HeadConfig": ".classification_head", "build_head": ".classification_head"},
)

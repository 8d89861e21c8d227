"""Google's speech embedding (keyword spotting), read from openWakeWord's TFLite files.

``params.py``, ``frontend.py`` (its mel spectrogram), ``tflite_weights.py`` (reads the ``.tflite``
weights), ``backbone.py``.
"""
import os

from tfaudio.backbones.entry import BackboneEntry

EMBEDDING_FILE = "embedding_model.tflite"


def _claims(text: str) -> bool:
    """``embedding_model.tflite`` or a folder holding it."""
    return os.path.basename(text) == EMBEDDING_FILE or os.path.isfile(os.path.join(text, EMBEDDING_FILE))


ENTRY = BackboneEntry(
    name="speech-embedding",
    cls="tfaudio.backbones.speech_embedding.backbone:SpeechEmbeddingBackbone",
    example="speech-embedding",
    summary="keyword spotting, 16 kHz",
    aliases=("speech_embedding",),
    claims=_claims,
)

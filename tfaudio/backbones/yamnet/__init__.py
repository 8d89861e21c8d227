"""YAMNet (AudioSet, 521 classes): the batched Keras re-implementation with the official weights.

``params.py`` (settings in seconds), ``backbone.py`` (log-mel patches → MobileNet body → embeddings and
scores); its log-mel frontend is :mod:`tfaudio.signal.melspec`, which other backbones share.
"""
import os

from tfaudio.backbones.entry import BackboneEntry


def _claims(text: str) -> bool:
    """A ``.h5`` file, a folder holding ``yamnet.h5``, or a TF Hub / Kaggle YAMNet handle."""
    return (text.endswith(".h5") or os.path.isfile(os.path.join(text, "yamnet.h5"))
            or "tfhub.dev" in text or "kaggle.com/models/google/yamnet" in text)


ENTRY = BackboneEntry(
    name="yamnet",
    cls="tfaudio.backbones.yamnet.backbone:YAMNetBackbone",
    example="yamnet",
    summary="AudioSet, 16 kHz; yamnet:/path/yamnet.h5 for a local copy",
    claims=_claims,
    tags=True,
    cost_model="patches",
    # BENCHMARKS.md "Extraction engines": bfloat16 1.4-1.85x float32 with the same 5-fold CV accuracy
    engines=("float32", "bfloat16", "tflite"),
    auto_engine="bfloat16",
)

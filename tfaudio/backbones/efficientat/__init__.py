"""EfficientAT MobileNetV3 (AudioSet, 527 classes, 32 kHz), official ``mn*_as`` weights read without PyTorch.

``params.py`` (architecture and releases), ``frontend.py`` (its log-mel), ``torch_checkpoint.py`` (reads
``.pt`` files), ``backbone.py`` (the network).
"""
import os

from tfaudio.backbones.entry import BackboneEntry


def _claims(text: str) -> bool:
    """A PyTorch checkpoint (``.pt``/``.pth``), or a folder holding ``mn*.pt`` files."""
    if text.endswith((".pt", ".pth")):
        return True
    return os.path.isdir(text) and any(n.startswith("mn") and n.endswith(".pt") for n in os.listdir(text))


def _presets():
    # here, not at the top: the registry must not import TensorFlow (params imports the frontend)
    from tfaudio.backbones.efficientat.params import RELEASES

    return tuple(RELEASES)


ENTRY = BackboneEntry(
    name="efficientat",
    cls="tfaudio.backbones.efficientat.backbone:EfficientATBackbone",
    example="efficientat:mn04_as",
    summary="AudioSet, 32 kHz; any mn*_as release or a .pt path",
    claims=_claims,
    presets=_presets,
    tags=True,
    # bfloat16 on request only: 0.43-0.59x float32 even natively; tflite (XNNPACK: less CPU) is what auto runs
    engines=("float32", "bfloat16", "tflite"),
)

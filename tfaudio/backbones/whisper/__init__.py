"""The Whisper encoder (transformers TF classes), with Whisper's log-mel frontend in plain TF."""
import os

from tfaudio.backbones.entry import BackboneEntry, is_hub_id, transformers_model_type


def _claims(text: str) -> bool:
    """A transformers folder whose ``config.json`` says ``whisper``, or a hub id naming Whisper."""
    if os.path.exists(text):
        return transformers_model_type(text) == "whisper"
    return is_hub_id(text) and "whisper" in text.lower()


ENTRY = BackboneEntry(
    name="whisper",
    cls="tfaudio.backbones.whisper.backbone:WhisperBackbone",
    example="whisper:<model id or folder>",
    summary="speech and language ID, 16 kHz",
    needs_source=True,
    claims=_claims,
)

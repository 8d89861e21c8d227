"""Wav2Vec2 / HuBERT (transformers TF classes): hidden states of one layer, or a learned mix of layers."""
import os

from tfaudio.backbones.entry import BackboneEntry, is_hub_id, transformers_model_type


def _claims(text: str) -> bool:
    """A transformers folder whose ``config.json`` is not Whisper's, or a hub id (``org/name``)."""
    if os.path.exists(text):
        model_type = transformers_model_type(text)
        return model_type is not None and model_type != "whisper"
    return is_hub_id(text) and "whisper" not in text.lower()


ENTRY = BackboneEntry(
    name="wav2vec2",
    cls="tfaudio.backbones.wav2vec2.backbone:Wav2Vec2Backbone",
    example="wav2vec2:<model id or folder>",
    summary="speech, 16 kHz; hubert:<...> for HuBERT",
    aliases=("hubert",),
    needs_source=True,
    claims=_claims,
)

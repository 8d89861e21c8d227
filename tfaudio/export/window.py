"""The fixed input window of a TFLite export: by default the span of the classifier's typical training clip.

A TFLite / MediaPipe user gives the file a clip and expects the classifier's answer. MediaPipe's
``AudioClassifier`` cuts a clip into windows of the model's fixed input and the app averages their
scores; a head trained on whole 5 s clips but asked about 1 s windows answers other questions (the
float32 file lost 6-8 points of 5-fold CV accuracy on ESC-50 against the classifier with the
backbones' 0.975 s / 1 s windows, and matched it with one window per clip: BENCHMARKS.md "int8
variants: 5-fold CV"). So the default window covers the frames of the median training clip, which
:meth:`~tfaudio.tasks.audio_classifier.AudioClassifier.fit` records (``train_clips`` in the
classifier's ``tfaudio.json``):

    window = min_samples + (median frames − 1) × hop_samples        (YAMNet, 5 s clips: 10 patches, 5.295 s)

clamped to ``[min_samples, MAX_DEFAULT_SECONDS]`` (on the backbone's frame grid). Models without the
record (saved before it existed, fine-tuned Wav2Vec2 / HuBERT models, a backbone's own tagger) keep the
backbone's window (``contract.window_samples``: YAMNet's 0.975 s, EfficientAT's 1 s). Streaming apps
that want short windows pass ``window_samples`` (``--window-samples`` / ``--window-seconds``).
"""
from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEFAULT_SECONDS", "default_window", "window_for_frames"]

#: The default window never exceeds this (longer training clips: an app still answers every 10 s).
MAX_DEFAULT_SECONDS = 10.0


def window_for_frames(contract: Any, frames: int) -> int:
    """Samples of a window that yields ``frames`` frames (at least one), at most :data:`MAX_DEFAULT_SECONDS`
    (whole frames: fewer frames when ``frames`` would exceed it)."""

    longest = max(contract.min_samples, int(MAX_DEFAULT_SECONDS * contract.sample_rate))
    most = 1 + (longest - contract.min_samples) // contract.hop_samples
    frames = int(min(max(int(frames), 1), most))
    return int(contract.min_samples + (frames - 1) * contract.hop_samples)


def default_window(classifier: Any, contract: Any) -> tuple[int, str]:
    """``(window_samples, source)``: the span of the median training clip's frames (source
    ``"training_clips"``) or, without that record, the backbone's window (``"backbone"``)."""

    record = getattr(classifier, "train_clips_", None)
    frames = record.get("median_frames") if isinstance(record, dict) else None
    if not frames:
        return int(contract.window_samples), "backbone"
    return window_for_frames(contract, int(frames)), "training_clips"

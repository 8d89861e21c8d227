"""Export a trained classifier (YAMNet or Wav2Vec2 / HuBERT backbone + head) or a fine-tuned Wav2Vec2 /
HuBERT model: a SavedModel for TF Serving (raw waveform in, scores and label out) and TFLite files with
model metadata for Android (MediaPipe Tasks / TFLite Task Library)."""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "export_saved_model": ".saved_model",
        "export_tflite": ".tflite",
        "tflite_model": ".tflite",
        "read_metadata": ".tflite",
        "read_export_metadata": ".saved_model",
    },
)

"""tfaudio: transfer learning for audio classification with Keras/TensorFlow.

Stream audio with ``tf.data``, embed it with a pretrained backbone (YAMNet, Wav2Vec2/HuBERT), train a
small Keras head on fixed folds or by cross-validation, and export one model from waveform to labels
as a SavedModel (TF Serving) and a TFLite file (Android).

TensorFlow is imported only when a submodule needs it, so ``import tfaudio`` is cheap.
"""
from tfaudio._lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "load_audio": ".io.decode",
        "resample": ".signal.resample",
        "Manifest": ".data.manifest",
        "AudioDataset": ".data.pipeline",
        "YAMNetBackbone": ".backbones.yamnet.backbone",
        "AudioClassifier": ".tasks.audio_classifier",
        "cross_validate": ".tasks.cross_validation",
        "pipeline": ".pipelines",
        "load_model": ".inference.loader",
        "AudioConverter": ".data.audio_converter",
    },
)

"""Tasks: a backbone + head classifier, fine-tuning of any backbone, cross-validation, reports (and the
earlier Wav2Vec2-only fine-tuning road, kept for the folders it wrote).

Names are imported lazily (``tfaudio._lazy``), so ``import tfaudio.tasks`` does not import TensorFlow.
"""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AudioClassifier": ".audio_classifier",
        "TrainConfig": ".recipe",
        "cross_validate": ".cross_validation",
        "cross_validate_finetune": ".cross_validation",
        "FineTuneRun": ".finetune",
        "FineTuneConfig": ".recipe",
        "tune": ".tuning",
        "Recipe": ".recipe",
        "get_recipe": ".recipe",
        "ClipScorer": ".clip_scorer",
        "clip_scorer": ".clip_scorer",
        "classification_report": ".report",
        "summarize_folds": ".report",
        "write_report": ".report",
        "write_cv_report": ".report",
        "format_report": ".report",
        "format_cv": ".report",
        "Wav2Vec2FineTuneModel": ".wav2vec2_finetune",
        "build_finetune_model": ".wav2vec2_finetune",
        "build_sequence_classification_model": ".wav2vec2_finetune",
        "save_finetune_model": ".wav2vec2_finetune",
        "load_finetune_model": ".wav2vec2_finetune",
        "mixed_precision_support": ".wav2vec2_finetune",
    },
)

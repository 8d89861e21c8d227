"""Manifests (CSV / folder / DataFrame), folds and splits, lazy tf.data pipelines, embedding cache."""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Manifest": ".manifest",
        "Split": ".manifest",
        "stratified_group_folds": ".manifest",
        "AudioDataset": ".pipeline",
        "PipelineConfig": ".pipeline",
        "EmbeddingCache": ".embedding_cache",
    },
)

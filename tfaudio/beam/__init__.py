"""Scale-out jobs on Apache Beam: the same pipeline runs on the DirectRunner here, on the PortableRunner
(what Flink and Dataflow run through), on Beam's DaskRunner (``pip install 'tfaudio[dask]'``, see
:mod:`tfaudio.beam.runners`) and on Dataflow, Flink or Spark elsewhere (``pip install 'tfaudio[beam]'``).
:mod:`tfaudio.beam.local_services` starts a local job service and worker pool, or a local Dask cluster,
on 127.0.0.1.

- :func:`run_embed` (``tfaudio embed``): backbone embeddings of a manifest, written as shards of the
  local embedding cache, so :class:`~tfaudio.data.embedding_cache.EmbeddingCache` (and training) reads
  them as if they had been extracted locally.
- :func:`run_predict` (``tfaudio predict EXPORT MANIFEST --runner ...``): batch scoring of an exported
  SavedModel to JSONL or CSV.

Bad files go to a dead-letter output instead of failing the job. Importing this package does not
import Beam; the functions do.
"""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "run_embed": ".embed",
        "EmbedResult": ".embed",
        "run_predict": ".predict",
        "PredictResult": ".predict",
        "prepare_clip": ".clips",
    },
)

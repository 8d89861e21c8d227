"""tfaudio embed: backbone embeddings of a manifest on Apache Beam, written into an embedding cache that
`tfaudio train --cache` (and EmbeddingCache) reads as if it had been extracted locally.

The same job runs on the DirectRunner here and on Dataflow, Flink or Spark: every option this command
does not know is passed to Beam, e.g. `--direct_num_workers=2 --direct_running_mode=multi_processing`
or `--runner DataflowRunner --project=P --region=R --temp_location=gs://B/tmp`. Bad files go to a
dead-letter file (file, error) instead of failing the job; a re-run skips the shards already complete.

On a cluster, the workers need tfaudio installed (e.g. Beam's --sdk_container_image or
--requirements_file), and the weights (--backbone yamnet:/path/yamnet.h5) on a file system every worker
mounts at the same path. --output is such a folder too, or a path of a Beam file system
(--output gs://bucket/cache, with apache-beam[gcp] on the driver and the workers): shards are then
written through Beam's FileSystems (temporary name, then rename; index last), and copying the folder to
a local disk gives a cache `tfaudio train --cache` reads.
"""
from __future__ import annotations

import pathlib

from tfaudio.commands._common import add_backbone_arg
from tfaudio.commands._engine_arg import add_engine_arg


def add_parser(sub):
    p = sub.add_parser("embed", help="extract embeddings of a manifest on Apache Beam (any runner)",
                       description=__doc__)
    p.add_argument("data", help="an ESC-50-style CSV, an ESC-50 folder, or a folder with one sub-folder per class")
    p.add_argument("--audio-dir", help="folder the CSV's file names are relative to")
    p.add_argument("--classes", nargs="+", help="embed only these classes")
    p.add_argument("--output", "-o",
                   help="cache folder, as `tfaudio train --cache` takes it (embeddings land in OUTPUT/embeddings; "
                        "default $TFAUDIO_CACHE or ~/.cache/tfaudio), or a Beam file system's path (gs://bucket/cache)")
    add_backbone_arg(p, extra="; on a cluster give a path every worker can read")
    p.add_argument("--runner", default="DirectRunner",
                   help="Beam runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...)")
    p.add_argument("--shard-size", type=int, default=256, help="clips per shard, the unit of resuming (default 256)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per backbone call (default 16)")
    add_engine_arg(p, extra=" (chosen here, on the driver: workers that cannot run it fail the job)")
    p.set_defaults(_pipeline_args=True)
    return p


def run(args) -> int:
    from tfaudio.beam._common import quiet_workers
    from tfaudio.beam.embed import run_embed
    from tfaudio.beam.files import has_scheme
    from tfaudio.commands._common import load_manifest
    from tfaudio.data.embedding_cache import default_cache_dir

    manifest = load_manifest(args)
    if args.output and has_scheme(args.output):  # gs://bucket/cache: written through Beam's FileSystems
        root = args.output.rstrip("/") + "/embeddings"
    else:
        root = pathlib.Path(args.output) / "embeddings" if args.output else default_cache_dir() / "embeddings"
    result = run_embed(manifest, args.backbone, root, shard_size=args.shard_size, batch_size=args.batch_size,
                       runner=args.runner, options=quiet_workers(getattr(args, "pipeline_args", None) or []),
                       engine=args.engine)
    print(result)
    return 0

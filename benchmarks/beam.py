"""Throughput of `tfaudio embed` on Beam's DirectRunner with 2 worker processes against the local
pipeline (`EmbeddingCache.extract`) on the same ESC-50 clips, then what AudioSet (2 M clips × 10 s)
would cost at the measured per-core speed: patches, embedding storage, core-hours and wall time on
100 and 1000 workers.

Each figure starts from an empty cache; the files are read once beforehand (page cache warm) and the
local backbone is warmed up (traced) on 4 other clips. The Beam job's wall time includes its fixed cost
(start the worker processes, import TensorFlow, load YAMNet in each); its workers also report the time
they spent decoding and in the backbone. The per-core speed the extrapolation uses comes from a third
run: one worker process whose TensorFlow is held to one thread (TF_NUM_INTRAOP_THREADS=1,
TF_NUM_INTEROP_THREADS=1), its CPU time for decoding + backbone per clip.

Run: .venv/bin/python benchmarks/beam.py [--clips N]   (default 120 of the 440 clips; writes the "Beam"
section of BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time

from _common import machine, shared_dir, write_section

WARMUP = 4  # clips that trace the local backbone before timing
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
AUDIOSET_CLIPS = 2_000_000
AUDIOSET_SECONDS = 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=120, help="ESC-50 clips to embed (max 440)")
    ap.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    logging.getLogger("apache_beam").setLevel(logging.WARNING)

    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone
    from tfaudio.beam.embed import run_embed
    from tfaudio.data.embedding_cache import EmbeddingCache, file_key
    from tfaudio.data.manifest import Manifest

    h5 = shared_dir() / "models" / "yamnet" / "yamnet.h5"
    esc = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    # every 440/N-th clip: the 44.1 kHz classes and the 16 kHz cats in their real proportion
    step = max(1, len(esc) // args.clips)
    paths = esc.paths[::step][: args.clips]
    n = len(paths)
    for p in paths:
        file_key(p)  # warm the page cache
    backbone = YAMNetBackbone.from_h5(h5)
    yamnet_fe = backbone.params.frontend
    beam_opts = {"direct_num_workers": args.workers, "direct_running_mode": "multi_processing"}
    audio_s = 5.0 * n
    patches_per_clip = backbone.num_frames(int(5.0 * 16000))

    with tempfile.TemporaryDirectory() as tmp:
        warm = Manifest.from_dataframe(esc.frame.iloc[-WARMUP:])
        EmbeddingCache(backbone, os.path.join(tmp, "warm")).extract(warm, progress=False)
        t = time.perf_counter()
        report = EmbeddingCache(backbone, os.path.join(tmp, "local"), shard_size=64).extract(
            Manifest.from_dataframe(esc.frame[esc.frame.path.isin(paths)]), progress=False)
        local_s = time.perf_counter() - t
        assert report.extracted == n, report

        t = time.perf_counter()
        res = run_embed(paths, f"yamnet:{h5}", os.path.join(tmp, "beam"), shard_size=64, options=beam_opts)
        beam_s = time.perf_counter() - t
        assert res.clips_embedded == n and res.timings, res

        # one worker on one core: the per-core speed (worker processes read the variables at start)
        saved = {k: os.environ.get(k) for k in THREAD_VARS}
        os.environ.update(dict.fromkeys(THREAD_VARS, "1"))
        try:
            one = run_embed(paths, f"yamnet:{h5}", os.path.join(tmp, "beam1"), shard_size=64,
                            options={"direct_num_workers": 1, "direct_running_mode": "multi_processing"})
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        assert one.clips_embedded == n and one.timings, one

    cores = os.cpu_count() or 1
    local_rate, beam_rate = n / local_s, n / beam_s
    busy = res.timings['decode'] + res.timings['backbone']  # worker seconds, summed over the workers
    cpu1 = one.timings["decode_cpu"] + one.timings["backbone_cpu"]  # one worker, one thread: core-seconds
    per_core = n / cpu1  # clips/s on one core

    # AudioSet on paper, at the Beam workers' speed per core (10 s clips cost ~2x a 5 s clip)
    as_samples = int(AUDIOSET_SECONDS * yamnet_fe.sample_rate)
    as_patches_clip = backbone.num_frames(as_samples)
    scale = as_patches_clip / patches_per_clip
    as_patches = AUDIOSET_CLIPS * as_patches_clip
    bytes_per_patch = backbone.embedding_dim * 4
    as_bytes = as_patches * bytes_per_patch
    core_h = AUDIOSET_CLIPS * scale / per_core / 3600
    walls = {w: core_h * 3600 / w for w in (100, 1000)}

    def hms(s: float) -> str:
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"

    lines = [
        f"clips: {n} ESC-50 clips of 5 s ({audio_s:.0f} s of audio, {patches_per_clip} patches each), {machine()}",
        f"local EmbeddingCache.extract: {local_s:.1f} s = {local_rate:.2f} clips/s ({audio_s / local_s:.0f}x real time)",
        f"Beam DirectRunner, {args.workers} processes: {beam_s:.1f} s = {beam_rate:.2f} clips/s; worker time "
        f"decoding {res.timings['decode']:.1f} s + backbone {res.timings['backbone']:.1f} s",
        f"one worker, one thread, CPU time: decoding {one.timings['decode_cpu']:.1f} s + backbone "
        f"{one.timings['backbone_cpu']:.1f} s (wall {one.timings['decode'] + one.timings['backbone']:.1f} s) "
        f"= {per_core:.2f} clips/s per core",
        f"AudioSet: {as_patches / 1e6:.0f} M patches, {as_bytes / 1e9:.0f} GB of float32 embeddings, "
        f"{core_h:,.0f} core-hours; wall {hms(walls[100])} on 100 workers, {hms(walls[1000])} on 1000",
    ]
    print("\n".join(lines))
    if args.no_write:
        return
    body = f"""`tfaudio embed` on Beam's DirectRunner with {args.workers} worker processes against the local pipeline
(`EmbeddingCache.extract`: one process, `tf.data` decoding in parallel), YAMNet on {n} of the 440 ESC-50
clips (5 s; 44.1 kHz FLAC, cats 16 kHz), each from an empty cache, on this machine ({machine()}).
Written by `benchmarks/beam.py`.

| pipeline | wall time | clips/s | audio s / wall s |
|---|---|---|---|
| local `EmbeddingCache.extract` | {local_s:.1f} s | {local_rate:.2f} | {audio_s / local_s:.0f} |
| Beam DirectRunner, {args.workers} processes (start-up included) | {beam_s:.1f} s | {beam_rate:.2f} | {audio_s / beam_s:.0f} |

The {args.workers} Beam workers spent {res.timings['decode']:.1f} s decoding (read, hash, decode, resample to 16 kHz) and
{res.timings['backbone']:.1f} s in YAMNet between them ({1e3 * busy / n:.0f} ms per clip); the rest of the Beam wall
time is the fixed cost of a job (starting {args.workers} processes that each import TensorFlow and load YAMNet)
and the DirectRunner's shuffling. On a cluster the start-up is paid once per worker, not per clip.

**Per core**: one worker process held to one TensorFlow thread used {one.timings['decode_cpu']:.1f} CPU seconds
decoding and {one.timings['backbone_cpu']:.1f} in YAMNet on the same {n} clips (CPU time, not wall time, so that
other load on the machine does not count): **{per_core:.2f} clips/s per core**
({1e3 / per_core:.0f} ms per 5 s clip; the local pipeline ran {local_rate:.2f} clips/s on {cores} cores).

**AudioSet on paper** ({AUDIOSET_CLIPS / 1e6:.0f} M clips × {AUDIOSET_SECONDS:.0f} s), at {per_core:.2f} five-second clips/s per
one-core worker measured above (a 10 s clip has {scale:.1f}× the patches):

| quantity | value |
|---|---|
| patches per clip (0.96 s, hop 0.48 s, padded like YAMNet) | {as_patches_clip} |
| patches | {as_patches / 1e6:.0f} M |
| embedding storage (1024 × float32 = {bytes_per_patch // 1024} KiB per patch) | {as_bytes / 1e9:.0f} GB ({as_bytes / 2**30:.0f} GiB) |
| compute | {core_h:,.0f} core-hours |
| wall time, 100 one-core workers | {hms(walls[100])} |
| wall time, 1000 one-core workers | {hms(walls[1000])} |

The wall times assume the work spreads evenly (2 M clips make {math.ceil(AUDIOSET_CLIPS / 256):,} shards of 256, plenty for
1000 workers) and that reading the audio keeps up; they leave out the job's start-up and the runner's own
overhead. float16 embeddings would halve the storage.
"""
    write_section("Beam", body)


if __name__ == "__main__":
    main()

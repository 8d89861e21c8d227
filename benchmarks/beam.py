"""Throughput of `tfaudio embed` on Beam's runners with 1 and 2 workers — the DirectRunner (worker
processes), the PortableRunner against a local job service with an external SDK worker pool, and the
DaskRunner on a local dask.distributed cluster — beside the local pipeline (`EmbeddingCache.extract`),
all in one run on the same ESC-50 clips; then what AudioSet (2 M clips × 10 s) would cost at the
measured per-core speed: patches, embedding storage, core-hours and wall time on 100 and 1000 workers.

Each figure starts from an empty cache; the files are read once beforehand (page cache warm) and the
local backbone is warmed up (traced) on 4 other clips. A Beam job's wall time includes its fixed cost
(start the worker processes, import TensorFlow, load YAMNet in each); the local services (job service
and worker pool, Dask scheduler and workers) are started before the timer, on 127.0.0.1, and stopped
after. The Dask workers import TensorFlow and load YAMNet during the timed job (they are fresh). The
per-core speed the extrapolation uses comes from one more run: one DirectRunner worker process whose
TensorFlow is held to one thread (TF_NUM_INTRAOP_THREADS=1, TF_NUM_INTEROP_THREADS=1), its CPU time for
decoding + backbone per clip.

Run: .venv/bin/python benchmarks/beam.py [--clips N] [--runners direct portable dask]   (default 120 of
the 440 clips; writes the "Beam" section of BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import tempfile
import time

from _common import ROOT, machine, shared_dir, write_section

WARMUP = 4  # clips that trace the local backbone before timing
THREAD_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
AUDIOSET_CLIPS = 2_000_000
AUDIOSET_SECONDS = 10.0


@contextlib.contextmanager
def _direct(workers: int, env, tmp):
    yield "DirectRunner", {"direct_num_workers": workers, "direct_running_mode": "multi_processing"}


@contextlib.contextmanager
def _portable(workers: int, env, tmp):
    from tfaudio.beam.local_services import LocalPortableCluster

    with LocalPortableCluster(workers=workers, env=env) as cluster:
        yield "PortableRunner", cluster.options()


@contextlib.contextmanager
def _dask(workers: int, env, tmp):
    from tfaudio.beam.local_services import LocalDaskCluster

    with LocalDaskCluster(workers=workers, env=env) as cluster:
        yield "DaskRunner", cluster.options()


#: runner key → context manager (workers, env, tmp) yielding (runner name, pipeline options).
RUNNERS = {"direct": _direct, "portable": _portable, "dask": _dask}
LABELS = {"direct": "Beam DirectRunner (worker processes)",
          "portable": "Beam PortableRunner (local job service, external worker pool)",
          "dask": "Beam DaskRunner (local dask.distributed, 1 thread per worker)",
          "dask-warm": "Beam DaskRunner, second job on the same workers"}


def _worker_time(res, table: bool = False) -> str:
    if not res.timings:
        return "not reported" if table else ""
    t = res.timings
    return (f"{t['decode']:.1f} s + {t['backbone']:.1f} s" if table
            else f"; worker time decoding {t['decode']:.1f} s + backbone {t['backbone']:.1f} s")


def _scaling(runs) -> str:
    """One sentence: for which runners 2 workers were faster than 1 in this run."""
    rate = {(name, w): secs for name, w, secs, _ in runs}
    faster = [LABELS[k].split(" (")[0] for k in dict.fromkeys(name for name, _, _, _ in runs)
              if (k, 1) in rate and (k, 2) in rate and rate[(k, 2)] < rate[(k, 1)]]
    if not faster:
        return "Two workers were not faster than one for any runner in this run."
    return f"Two workers were faster than one for: {', '.join(faster)}."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=120, help="ESC-50 clips to embed (max 440)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts per runner")
    ap.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.WARNING)

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
    audio_s = 5.0 * n
    patches_per_clip = backbone.num_frames(int(5.0 * 16000))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3"}

    runs = []  # (runner label, workers, seconds, EmbedResult)
    with tempfile.TemporaryDirectory() as tmp:
        warm = Manifest.from_dataframe(esc.frame.iloc[-WARMUP:])
        EmbeddingCache(backbone, os.path.join(tmp, "warm")).extract(warm, progress=False)
        t = time.perf_counter()
        report = EmbeddingCache(backbone, os.path.join(tmp, "local"), shard_size=64).extract(
            Manifest.from_dataframe(esc.frame[esc.frame.path.isin(paths)]), progress=False)
        local_s = time.perf_counter() - t
        assert report.extracted == n, report
        print(f"local: {local_s:.1f} s", flush=True)

        load_start = os.getloadavg()[0]
        for name in args.runners:
            for w in args.workers:
                with RUNNERS[name](w, env, tmp) as (runner, opts):
                    # the Dask workers outlive a job: a second job on them shows the speed without start-up
                    for key in (name, "dask-warm") if name == "dask" else (name,):
                        t = time.perf_counter()
                        res = run_embed(paths, f"yamnet:{h5}", os.path.join(tmp, f"{key}{w}"), shard_size=64,
                                        runner=runner, options=opts)
                        secs = time.perf_counter() - t
                        assert res.clips_embedded == n, res
                        runs.append((key, w, secs, res))
                        print(f"{key}, {w} worker(s): {secs:.1f} s = {n / secs:.2f} clips/s", flush=True)
        load_end = os.getloadavg()[0]

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
    local_rate = n / local_s
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
        *[f"{LABELS[name]}, {w} worker(s): {secs:.1f} s = {n / secs:.2f} clips/s{_worker_time(res)}"
          for name, w, secs, res in runs],
        f"one worker, one thread, CPU time: decoding {one.timings['decode_cpu']:.1f} s + backbone "
        f"{one.timings['backbone_cpu']:.1f} s (wall {one.timings['decode'] + one.timings['backbone']:.1f} s) "
        f"= {per_core:.2f} clips/s per core",
        f"AudioSet: {as_patches / 1e6:.0f} M patches, {as_bytes / 1e9:.0f} GB of float32 embeddings, "
        f"{core_h:,.0f} core-hours; wall {hms(walls[100])} on 100 workers, {hms(walls[1000])} on 1000",
    ]
    print("\n".join(lines))
    if args.no_write:
        return
    rows = "\n".join(f"| {LABELS[name]} | {w} | {secs:.1f} s | {n / secs:.2f} | {audio_s / secs:.0f} | "
                     f"{_worker_time(res, table=True)} |" for name, w, secs, res in runs)
    body = f"""`tfaudio embed` with YAMNet on {n} of the 440 ESC-50 clips (5 s; 44.1 kHz FLAC, cats 16 kHz), each run
from an empty cache, on Beam's runners with 1 and 2 workers and on the local pipeline
(`EmbeddingCache.extract`: one process, `tf.data` decoding in parallel), in one run of `benchmarks/beam.py`
on this machine ({machine()}). The machine was shared with other developers' jobs (tests, benchmarks)
during the run, so the wall times carry their load: compare within this table, not with other sections.

| pipeline | workers | wall time | clips/s | audio s / wall s | worker time: decode + backbone |
|---|---|---|---|---|---|
| local `EmbeddingCache.extract` | 1 process | {local_s:.1f} s | {local_rate:.2f} | {audio_s / local_s:.0f} | |
{rows}

Wall times include each job's fixed cost: starting the SDK worker processes (DirectRunner, PortableRunner:
per job) and, in every runner, importing TensorFlow and loading YAMNet once in each worker process. The
local services (job service and worker pool; Dask scheduler and workers) run on 127.0.0.1 and were
started before the timer; the Dask workers are fresh, so they too import TensorFlow and load YAMNet in
the timed job; the "second job" rows reuse them (TensorFlow imported, YAMNet loaded), so they show the
speed without that start-up. The DaskRunner reports no Beam metrics, hence no worker time.

The 1-minute load average was {load_start:.1f} when the Beam runs started and {load_end:.1f} when they ended,
on {cores} cores. {_scaling(runs)} A second worker process brings its own TensorFlow import and YAMNet load
and shares the same {cores} busy cores, and at {n} clips the workers' decoding and backbone time is a few
seconds of each job; on a cluster the start-up is paid once per worker, not per clip, and the work per
worker is far larger.

"""
    body += f"""**Per core**: one worker process held to one TensorFlow thread used {one.timings['decode_cpu']:.1f} CPU seconds
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

"""Backbone embeddings of a manifest on Apache Beam, written as shards of the local embedding cache.

Graph (one job; any runner)::

    plan file (shard id, path) lines                     written by the driver: only unfinished shards
      → ReadFromText → Reshuffle                          spread the clips over the workers
      → DecodeClip          → dead letters (file, error)  the local pipeline's decode → resample → crop
      → RunInference(backbone.batch_frames)               batches of ``batch_size``; backbone loaded once
                                                          per worker process, its fingerprint checked
      → CoGroupByKey(shard id) with the dead letters
      → WriteShard                                        temp file → rename → index (last)

On the PortableRunner (Flink, Dataflow) the same graph runs in SDK worker processes; on the DaskRunner,
:mod:`tfaudio.beam.runners` swaps in equivalents for the parts Dask lacks (plan sent in the graph,
outputs split by FlatMaps, batches by a GroupByKey).

The output folder is an :class:`~tfaudio.data.embedding_cache.EmbeddingCache` root: shards land in the
namespace folder the local cache uses for the same backbone and pipeline settings, in the same record
format, so ``EmbeddingCache(backbone, root).load(manifest)`` (and ``AudioClassifier.fit``) reads them
without extracting anything. The root may be a ``scheme://`` path (``gs://bucket/cache/embeddings``):
the workers then write each shard's records and then its index through Beam's ``FileSystems``
(temporary name, then rename), the same bytes as a local run's, and the driver lists the finished
shards through it (:mod:`tfaudio.beam.outputs`); copied to a local disk, that folder is a cache too.

Shards are planned by the driver from the sorted unique file paths (``shard_size`` per shard) and named
by a hash of their paths, so a re-run finds the shards already complete (their index exists) and leaves
them out of the job. A file changed since under the same name is still caught when reading: the cache
looks clips up by content hash, and extracts (locally) what it does not find.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from tfaudio.backbones.registry import backbone_spec, get_backbone, is_backbone
from tfaudio.beam import files
from tfaudio.beam._common import (
    DEAD,
    METRICS,
    DecodeClip,
    beam,
    counters,
    make_pipeline,
    pipeline_options,
    runner_name,
)
from tfaudio.beam.clips import ClipBatchesMixin, dead_letter
from tfaudio.beam.outputs import BeamFolder, LocalFolder, output_folder
from tfaudio.beam.runners import finish, join_sinks, read_lines, run_inference, split_outputs
from tfaudio.data.audio_converter import pad_batch
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import PipelineConfig
from tfaudio.errors import TfaudioError

JOB_FORMAT = 1
#: EmbedResult.timings key → the counter it sums.
_TIMERS = {"decode": "decode_micros", "backbone": "inference_micros", "decode_cpu": "decode_cpu_micros",
           "backbone_cpu": "inference_cpu_micros"}

# ---- backbones, once per process -----------------------------------------------------------------
_BACKBONES: dict[str, Any] = {}
_BACKBONES_LOCK = threading.Lock()


def _is_factory(spec: Any) -> bool:
    return isinstance(spec, type) or (callable(spec) and not is_backbone(spec))


def _spec_key(spec: Any) -> str:
    if _is_factory(spec):
        return f"factory:{getattr(spec, '__module__', '')}.{getattr(spec, '__qualname__', repr(spec))}"
    return json.dumps(spec, sort_keys=True, default=str)


def load_backbone(spec: Any):
    """The backbone for ``spec`` (a name/spec for :func:`~tfaudio.backbones.get_backbone`, or a
    zero-argument factory), built once per process and shared by every thread and DoFn in it."""
    key = _spec_key(spec)
    with _BACKBONES_LOCK:
        if key not in _BACKBONES:
            if _is_factory(spec):
                _BACKBONES[key] = spec()
            else:
                _BACKBONES[key] = get_backbone(spec)
        return _BACKBONES[key]


def _resolve_backbone(backbone: Any) -> tuple[Any, Any]:
    """(a picklable spec the workers rebuild the backbone from, the backbone in this process)."""
    if isinstance(backbone, (str, dict)) or _is_factory(backbone):
        return backbone, load_backbone(backbone)
    if is_backbone(backbone):  # an instance: workers rebuild it from its spec
        spec = backbone_spec(backbone)
        with _BACKBONES_LOCK:
            _BACKBONES[_spec_key(spec)] = backbone  # in-process workers reuse it as is
        return spec, backbone
    raise TfaudioError(f"backbone must be a name, a spec dict, a backbone or a factory, got {backbone!r}.")


class _EngineBackbone:
    """A backbone whose ``batch_frames`` runs an extraction engine (:mod:`tfaudio.backbones.engines`);
    everything else is the backbone's."""

    def __init__(self, backbone: Any, batch_frames: Any):
        self.backbone = backbone
        self.batch_frames = batch_frames

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backbone, name)


class BackboneModelHandler(ClipBatchesMixin, ModelHandler):
    """RunInference handler: prepared clips ``(audio, length)`` → embeddings float32 [frames, dim].

    The backbone is built from ``spec`` once per worker process (RunInference shares the model between
    threads) and must have the fingerprint the driver planned the cache namespace with; the worker runs
    the engine the driver chose (the namespace is the engine's), or fails when it cannot.

    Args:
        spec: what :func:`load_backbone` takes.
        fingerprint: the driver's backbone fingerprint (None: not checked).
        batch_size: clips per backbone call.
        engine: the engine the driver chose (:data:`tfaudio.backbones.engines.ENGINES`, not ``auto``).
    """

    def __init__(self, spec: Any, fingerprint: str | None, batch_size: int, engine: str = "float32"):
        super().__init__()
        self.spec = spec
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.engine = engine

    def load_model(self):
        backbone = load_backbone(self.spec)
        if self.fingerprint and backbone.fingerprint != self.fingerprint:
            raise TfaudioError(
                f"the worker built backbone {self.spec!r} with fingerprint {backbone.fingerprint}, the driver "
                f"planned the job with {self.fingerprint}: the workers found other weights. Fix: pass the "
                "weights explicitly (e.g. --backbone yamnet:/shared/path/yamnet.h5) so every machine loads "
                "the same file."
            )
        if self.engine == "float32":
            return backbone
        from tfaudio.backbones.engines import choose_engine, engine_functions

        choice = choose_engine(self.engine, backbone=backbone)
        if choice.name != self.engine:
            raise TfaudioError(
                f"the driver chose the {self.engine} engine (the cache namespace is that engine's), but this worker "
                f"cannot run it: {choice.reason}. Fix: run the job with --engine float32 (every machine runs it), "
                f"or on workers whose CPU / interpreter runs {self.engine}."
            )
        return _EngineBackbone(backbone, engine_functions(backbone, choice)[0])

    def run_inference(self, batch: Sequence[tuple[np.ndarray, int]], model, inference_args=None):
        import tensorflow as tf
        from apache_beam.metrics import Metrics

        t0, c0 = time.perf_counter(), time.process_time()
        from tfaudio.signal.frame_energy import frame_energy_db

        audio, lengths = pad_batch([a for a, _ in batch], [n for _, n in batch])  # [B, S], [B]
        emb, mask = model.batch_frames(tf.constant(audio), tf.constant(lengths))  # [B, F, D], [B, F]
        emb, mask = np.asarray(emb), np.asarray(mask)
        c = model.contract
        db = np.asarray(frame_energy_db(audio, lengths, c.frame_samples, c.hop_samples, emb.shape[1]))  # [B, F]
        Metrics.counter(METRICS, "inference_micros").inc(int((time.perf_counter() - t0) * 1e6))
        Metrics.counter(METRICS, "inference_cpu_micros").inc(int((time.process_time() - c0) * 1e6))
        return [(emb[i][mask[i]], db[i][mask[i]]) for i in range(len(batch))]

    def get_metrics_namespace(self) -> str:
        return f"{METRICS}.embed"


class WriteShard(beam.DoFn):
    """``(shard id, {"clips": [(path, key, embeddings)], "dead": [(path, error)]})`` → one shard of the
    cache, written atomically (temporary name, rename, index last) into a local folder or, for a
    ``scheme://`` directory, through Beam's ``FileSystems`` (:mod:`tfaudio.beam.outputs`). An all-bad
    shard is written empty, so a re-run does not try it again; its bad files are listed in the index
    (``failed``)."""

    def __init__(self, directory: str):
        self.directory = directory

    def setup(self):
        from apache_beam.metrics import Metrics

        self.shards = Metrics.counter(METRICS, "shards_written")
        self.clips = Metrics.counter(METRICS, "clips_embedded")

    def process(self, element):
        shard_id, grouped = element
        clips = sorted(grouped["clips"], key=lambda c: c[0])
        dead = sorted(grouped["dead"])
        output_folder(self.directory).write_shard(shard_id, [(key, emb) for _, key, emb in clips],
                                                  {"paths": [c[0] for c in clips], "failed": [list(d) for d in dead]})
        self.shards.inc()
        self.clips.inc(len(clips))
        yield shard_id


def _parse_plan(line: str) -> tuple[str, str]:
    row = json.loads(line)
    return row["shard"], row["path"]


def _by_shard(kv):
    (shard_id, path, key), embeddings = kv
    return shard_id, (path, key, embeddings)


def _dead_by_shard(d):
    return d[0], (d[1], d[2])


def _dead_line(d):
    return dead_letter(d[1], d[2])


# ---- planning ------------------------------------------------------------------------------------
def plan_shards(paths: Sequence[str], shard_size: int) -> list[tuple[str, list[str]]]:
    """``[(shard id, paths)]``: the sorted unique paths in groups of ``shard_size``, each named by a
    hash of its paths (the same files give the same shards on every run)."""
    if shard_size < 1:
        raise TfaudioError(f"shard_size must be >= 1, got {shard_size}.")
    unique = sorted(set(map(str, paths)))
    plan = []
    for start in range(0, len(unique), shard_size):
        chunk = unique[start : start + shard_size]
        digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:16]
        plan.append((f"beam{digest}", chunk))
    return plan


@dataclasses.dataclass
class EmbedResult:
    """What :func:`run_embed` did.

    Attributes:
        directory: the cache namespace folder the shards are in (a ``scheme://`` string for an output
            written through Beam's ``FileSystems``; so are ``job_index`` and ``dead_letters_path``).
        job_index: the job's summary ``beam-<job>.json`` (every planned shard, its clips and bad files).
        dead_letters_path: this run's dead letters (JSON lines ``{"file", "error"}``), None when the run
            had nothing to do.
        shards, shards_skipped, shards_written: planned, already complete before the run, written now.
        clips: unique files in the manifest; clips_embedded: embedded by this run.
        dead_letters: (file, error) of the bad files met by this run.
        failed_total: bad files of the whole job (earlier runs included), from the shard indexes.
        engine: the extraction engine and why it was chosen (e.g. ``"bfloat16 (the CPU has native ...)"``).
        timings: seconds the workers spent this run, summed over workers: ``decode`` (read, hash,
            decode, resample) and ``backbone`` wall time, and the CPU time of the worker processes
            meanwhile (``decode_cpu``, ``backbone_cpu``); None when the runner reports no metrics.
    """

    directory: pathlib.Path | str
    job_index: pathlib.Path | str
    dead_letters_path: pathlib.Path | str | None
    shards: int
    shards_skipped: int
    shards_written: int
    clips: int
    clips_embedded: int
    dead_letters: list[tuple[str, str]]
    failed_total: int
    runner: str
    seconds: float
    timings: dict[str, float] | None = None
    engine: str = "float32"

    def __str__(self) -> str:
        s = (f"{self.clips} clips in {self.shards} shards: {self.shards_skipped} already complete, "
             f"{self.shards_written} written ({self.clips_embedded} clips embedded) by {self.runner} in "
             f"{self.seconds:.1f} s\nengine: {self.engine}\nembeddings: {self.directory}\njob index: {self.job_index}")
        if self.timings and self.clips_embedded:
            t = self.timings
            s += (f"\nworker time: decoding {t['decode']:.1f} s, backbone {t['backbone']:.1f} s "
                  f"({1e3 * (t['decode'] + t['backbone']) / self.clips_embedded:.0f} ms per clip)")
        if self.dead_letters:
            s += f"\n{len(self.dead_letters)} bad file(s) → dead letters {self.dead_letters_path}:"
            s += "".join(f"\n  {f}: {e}" for f, e in self.dead_letters[:20])
            if len(self.dead_letters) > 20:
                s += f"\n  ... and {len(self.dead_letters) - 20} more"
        if self.failed_total > len(self.dead_letters):
            s += (f"\n{self.failed_total} bad file(s) in the whole job (earlier runs included), listed in the "
                  "job index")
        return s


def run_embed(
    manifest: Manifest | Sequence[str],
    backbone: Any = "yamnet",
    root: str | os.PathLike | None = None,
    *,
    pipeline: PipelineConfig | None = None,
    shard_size: int = 256,
    batch_size: int = 16,
    runner: str | None = None,
    options: Sequence[str] | dict[str, Any] | Any = None,
    engine: str | None = "float32",
) -> EmbedResult:
    """Embeds every file of ``manifest`` on Beam into the embedding cache at ``root``.

    Args:
        manifest: a :class:`~tfaudio.data.manifest.Manifest` or a list of audio paths.
        backbone: a name or spec for :func:`~tfaudio.backbones.get_backbone` (``"yamnet"``,
            ``"yamnet:/path/yamnet.h5"``), a zero-argument factory, or a backbone (workers in other
            processes rebuild it from its spec).
        root: the cache root, as for :class:`EmbeddingCache` (default ``$TFAUDIO_CACHE/embeddings``), or a
            ``scheme://`` path (``gs://bucket/cache/embeddings``, any Beam file system): the workers then
            write the shards, and the driver lists them, through Beam's ``FileSystems``; copied to a
            local disk, the folder is a cache :class:`EmbeddingCache` reads as is.
        pipeline: how clips are prepared (the sample rate is the backbone's); must match the settings
            training uses, since they pick the cache namespace.
        shard_size: clips per shard (the unit of resuming).
        batch_size: clips per backbone call.
        runner: a Beam runner name (default DirectRunner).
        options: pass-through pipeline options, see :func:`tfaudio.beam._common.pipeline_options`.
        engine: what runs the backbone, as for :class:`EmbeddingCache` (``"auto"`` is resolved here, on the
            driver; None: ``$TFAUDIO_ENGINE`` or auto). The shards land in that engine's namespace, exactly
            where a local cache of the same engine extracts; workers that cannot run it fail the job.

    Returns:
        An :class:`EmbedResult`; bad files do not fail the job, they are in ``dead_letters``.

    Example:
        >>> run_embed(manifest, "yamnet", "cache/embeddings",
        ...           options={"direct_num_workers": 2, "direct_running_mode": "multi_processing"})
        >>> EmbeddingCache(get_backbone("yamnet"), "cache/embeddings").load(manifest)  # no extraction
    """
    t0 = time.perf_counter()
    if root is not None and files.has_scheme(os.fspath(root)):
        files.check_filesystem(os.fspath(root))  # before loading anything
    spec, instance = _resolve_backbone(backbone)
    cache = EmbeddingCache(instance, root, pipeline=pipeline, shard_size=shard_size, batch_size=batch_size,
                           engine=engine)
    paths = list(manifest.paths) if isinstance(manifest, Manifest) else [os.fspath(p) for p in manifest]
    if not paths:
        raise TfaudioError("the manifest has no files to embed. Fix: check the CSV or folder you passed.")
    folder = _output(cache, root)
    directory = folder.directory
    plan = plan_shards(paths, shard_size)
    job = hashlib.sha256("\n".join(s for s, _ in plan).encode()).hexdigest()[:12]
    done_before = folder.complete_shards()
    todo = [(s, ps) for s, ps in plan if s not in done_before]
    opts = pipeline_options(runner, options)
    dead_name = f"beam-{job}.dead_letters.jsonl"
    dead_path = folder.path(dead_name)
    written = embedded = 0
    dead: list[tuple[str, str]] = []
    if todo:
        plan_name = f".beam-{job}.todo.jsonl"
        lines = [json.dumps({"shard": s, "path": p}) for s, ps in todo for p in ps]
        folder.write_text(plan_name, "".join(line + "\n" for line in lines))
        try:
            result = _run_pipeline(opts, str(folder.path(plan_name)), lines, str(directory), str(dead_path),
                                   cache.pipeline, spec, instance.fingerprint, batch_size, cache.engine.name)
        finally:
            folder.remove(plan_name)
        counts = counters(result, ["shards_written", "clips_embedded", *_TIMERS.values()])
        text = folder.read_text(dead_name)
        if text is not None:
            dead = [(r["file"], r["error"]) for r in map(json.loads, text.splitlines()) if r]
    done = folder.complete_shards()
    missing = [s for s, _ in todo if s not in done]
    if missing:
        raise TfaudioError(f"the Beam job finished but {len(missing)} of its shards are not in {directory} "
                           f"(e.g. shard-{missing[0]}). Fix: run the job again; complete shards are skipped.")
    if todo:
        written = counts["shards_written"] if counts["shards_written"] is not None else len(todo)
        embedded = counts["clips_embedded"] if counts["clips_embedded"] is not None else sum(
            len(done[s]["keys"]) for s, _ in todo)
    shards = [{"shard": s, "files": len(ps), "clips": len(done[s]["keys"]), "failed": done[s].get("failed", [])}
              for s, ps in plan]
    failed_total = sum(len(s["failed"]) for s in shards)
    seconds = time.perf_counter() - t0
    job_name = f"beam-{job}.json"
    folder.write_text(job_name, json.dumps({
        "format": JOB_FORMAT, "job": job, "settings": cache.settings, "shard_size": shard_size,
        "files": len(set(paths)), "clips": sum(s["clips"] for s in shards), "failed": failed_total,
        "last_run": {"runner": runner_name(opts), "shards_skipped": len(plan) - len(todo), "shards_written": written,
                     "clips_embedded": embedded, "dead_letters": len(dead), "seconds": round(seconds, 3)},
        "shards": shards,
    }, indent=1))
    timings = dict.fromkeys(_TIMERS, 0.0)
    if todo:
        timings = None if counts["decode_micros"] is None else {k: counts[c] / 1e6 for k, c in _TIMERS.items()}
    return EmbedResult(directory, folder.path(job_name), dead_path if todo else None, len(plan), len(plan) - len(todo), written,
                       len(set(paths)), embedded, dead, failed_total, runner_name(opts), seconds, timings,
                       str(cache.engine))


def _output(cache: EmbeddingCache, root: str | os.PathLike | None) -> LocalFolder | BeamFolder:
    """The namespace folder the job writes, created with its settings.json: the local cache's folder,
    or the same folder name under a ``scheme://`` root (through Beam's ``FileSystems``)."""
    if root is None or not files.has_scheme(os.fspath(root)):
        return LocalFolder(cache._ensure_dir())
    folder = BeamFolder(files.join(os.fspath(root), cache.directory.name))
    folder.make()
    if not files.exists(folder.path("settings.json")):
        folder.write_text("settings.json", json.dumps(cache.settings, indent=1, sort_keys=True))
    return folder


def _run_pipeline(opts, plan_file: str, lines: list[str], directory: str, dead_path: str,
                  config: PipelineConfig, spec: Any, fingerprint: str, batch_size: int, engine: str = "float32"):
    handler = BackboneModelHandler(spec, fingerprint, batch_size, engine)
    p = make_pipeline(opts)
    todo = (read_lines(p, plan_file, lines, runner_name(opts), "ReadPlan")
            | "ParsePlan" >> beam.Map(_parse_plan)
            | "Spread" >> beam.Reshuffle())
    decoded, dead = split_outputs(todo, "Decode", DecodeClip(config, with_key=True), DEAD, runner_name(opts))
    clips = (run_inference(decoded, "Embed", handler, runner_name(opts), len(lines))
             | "ClipsByShard" >> beam.Map(_by_shard))
    shards = ({"clips": clips, "dead": dead | "DeadByShard" >> beam.Map(_dead_by_shard)}
              | "GroupShards" >> beam.CoGroupByKey()
              | "WriteShards" >> beam.ParDo(WriteShard(directory)))
    dead_letters = (dead
                    | "DeadLetterLines" >> beam.Map(_dead_line)
                    | "WriteDeadLetters" >> beam.io.WriteToText(dead_path, shard_name_template=""))
    join_sinks(shards, dead_letters)
    result = p.run()
    finish(result)
    return result

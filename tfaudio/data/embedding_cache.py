"""On-disk cache of backbone frame embeddings, so every fold, run and head reuses one extraction.

Layout::

    <root>/<backbone name>-<namespace hash>/
        settings.json                  what the namespace hash covers (backbone fingerprint, pipeline)
        shard-<id>.tfrecord            tf.train.Example records: key, embeddings, num_frames, dim
        shard-<id>.index.json          the keys in that shard, its size and SHA-256; written last, so
                                       a shard without an index (an interrupted write) is never
                                       trusted. Shards written by Beam (``tfaudio embed``) also list
                                       their files (``paths``) and bad files (``failed``), and have
                                       deterministic ids (``beam<hash>``)
        beam-<job>.json                a Beam job's summary (``tfaudio.beam.embed``)

A clip's key is a hash of its file's bytes: a changed file gets a new key (only that clip is
re-extracted), a renamed or copied one is found again. Changing the backbone's weights or the
pipeline settings changes the namespace, which leaves other namespaces untouched.

Extraction commits every batch as a small shard (``part-<id>``: temporary name, rename, index), so an
interrupted run loses at most the batch in flight; a run that completes merges the parts into shards
of ``shard_size`` clips (fewer files to open when reading). The cache does not trust its files: a
shard is checked against the size and SHA-256 in its index when it is read, and a missing,
truncated or garbled shard or a damaged index costs a warning naming it and the re-extraction of
its clips, never an error. Temporaries of writers that were killed are swept by the next extraction
(:mod:`tfaudio.io.atomic`). The same record format is written by the Beam pipeline, so training
reads either output alike.

One file of ~540 lines on purpose: extraction, loading, repair and compaction share the cache's shard
index and its locking; the shard format (``shards.py``) and the clip store (``clip_embeddings.py``) are
apart.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tfaudio.backbones.engines import choose_engine, engine_functions
from tfaudio.backbones.registry import backbone_name
from tfaudio.data.clip_embeddings import ClipEmbeddings, ExtractionReport
from tfaudio.data.clip_stream import clip_stream
from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import PipelineConfig
from tfaudio.data.shards import (
    FORMAT_VERSION,
    ORPHAN_AFTER,
    ShardError,
    ShardWriter,
    clip_frame_db,
    complete_shards,
    decode_record,
    encode_record,
    index_path,
    read_shard,
    record_offsets,
    records_path,
    scan_shards,
    shard_records,
    stamp,
    verify_shard,
)
from tfaudio.datasets import cache_dir
from tfaudio.errors import AudioError, TfaudioError
from tfaudio.io.atomic import atomic_write_text, sweep_stale
from tfaudio.log import warn

__all__ = ["EmbeddingCache", "ClipEmbeddings", "ExtractionReport", "ShardWriter", "atomic_write_text",
           "complete_shards", "decode_record", "encode_record", "file_key", "index_path", "read_shard"]

#: Id prefix of the per-batch shards that a completed extraction merges.
PART_PREFIX = "part-"
_LOCAL_SHARD = re.compile(r"[0-9a-f]{16}")  # ids of the shards merged by compact() (Beam's are "beam<hash>")
_hash_memo: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def default_cache_dir() -> pathlib.Path:
    """``$TFAUDIO_CACHE`` or ``~/.cache/tfaudio``."""

    return cache_dir()


def file_key(path: str | os.PathLike) -> str:
    """Content hash of a file (BLAKE2b, 128 bit), memoised by (path, size, mtime) within a process."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as err:
        raise AudioError(path, f"cannot be read ({err.strerror}).", "check that the file exists.") from None
    memo = (path, st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if memo in _hash_memo:
            return _hash_memo[memo]
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    key = h.hexdigest()
    with _hash_lock:
        _hash_memo[memo] = key
    return key


@contextlib.contextmanager
def _exclusive(directory: pathlib.Path) -> Iterator[bool]:
    """An advisory lock on ``directory`` without waiting: yields False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; two merges at once only duplicate clips, harmlessly
        yield True
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError:  # a file system without locks
            yield True
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


class EmbeddingCache:
    """Backbone embeddings of audio files, extracted once and stored in sharded TFRecords.

    Args:
        backbone: a :class:`tfaudio.backbones.Backbone`.
        root: cache folder (default ``$TFAUDIO_CACHE`` or ``~/.cache/tfaudio``; a sub-folder
            ``embeddings/`` is used).
        pipeline: how clips are decoded (its ``sample_rate`` is forced to the backbone's).
        shard_size: clips per shard once a run completes (each batch is committed on its own meanwhile,
            so an interrupted run loses at most one batch).
        batch_size: clips per backbone call.
        engine: what runs the backbone (:data:`tfaudio.backbones.engines.ENGINES`; ``"auto"``: the
            fastest this CPU has; None: ``$TFAUDIO_ENGINE`` or auto). Engines other than float32 get
            their own namespace: never mixed.

    Example:
        >>> cache = EmbeddingCache(YAMNetBackbone.from_pretrained())
        >>> cache.extract(manifest)           # once; later calls only add what is missing
        >>> clips = cache.load(manifest)      # ClipEmbeddings in manifest order
    """

    def __init__(
        self,
        backbone,
        root: str | os.PathLike | None = None,
        *,
        pipeline: PipelineConfig | None = None,
        shard_size: int = 256,
        batch_size: int = 16,
        engine: str | None = "float32",
    ):
        self.backbone = backbone
        #: The engine that extracts (:mod:`tfaudio.backbones.engines`; ``"auto"`` picks by the CPU).
        self.engine = choose_engine(engine, backbone=backbone)
        self.root = pathlib.Path(root) if root is not None else default_cache_dir() / "embeddings"
        pipeline = pipeline or PipelineConfig()
        rate = int(backbone.contract.sample_rate)
        if pipeline.sample_rate not in (None, rate):
            raise TfaudioError(f"the pipeline's sample_rate ({pipeline.sample_rate} Hz) differs from the rate the "
                               f"backbone takes ({rate} Hz). Fix: leave PipelineConfig.sample_rate unset; the cache "
                               "takes it from the backbone's contract.")
        self.pipeline = dataclasses.replace(pipeline, sample_rate=rate)
        self.shard_size = shard_size
        self.batch_size = batch_size
        self._index: dict[str, tuple[str, int]] | None = None
        self._shards: dict[str, dict[str, Any]] = {}
        self._stamps: dict[str, tuple[int, int, int]] = {}
        # damaged shards this process could not remove (a read-only cache), by their index's stamp
        self._bad: dict[str, tuple[int, int, int]] = {}
        # keys of clips whose shard this object removed as damaged (and promised to extract again);
        # _lost_unknown: a removed shard whose index was unreadable (which clips it held is unknown)
        self._lost: set[str] = set()
        self._lost_unknown = False

    # ---- namespace ----------------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """Everything that changes the embeddings, besides the audio itself."""
        p = self.pipeline
        return {
            "format": FORMAT_VERSION,
            "frame_db": True,  # records carry each frame's energy (the silence gate's input)
            "backbone": type(self.backbone).__name__,
            "fingerprint": self.backbone.fingerprint,
            "sample_rate": p.sample_rate,
            "duration_seconds": p.duration_seconds,
            "align": p.align,
            # float32 adds nothing: the namespaces of caches written before engines existed stay valid
            **({"engine": self.engine.name} if self.engine.name != "float32" else {}),
        }

    @property
    def directory(self) -> pathlib.Path:
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]
        return self.root / f"{backbone_name(self.backbone)}-{digest}"

    def _ensure_dir(self) -> pathlib.Path:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "settings.json").exists():
            atomic_write_text(d / "settings.json", json.dumps(self.settings, indent=1, sort_keys=True))
        return d

    # ---- index --------------------------------------------------------------------------------
    def index(self, refresh: bool = False) -> dict[str, tuple[str, int]]:
        """key → (shard file, position), from every complete shard.

        A shard whose index is damaged or whose records file is gone is reported (a warning naming
        it) and removed, so its clips count as missing and are extracted again."""
        if self._index is not None and not refresh:
            return self._index
        for _ in range(3):  # a damaged shard that turns out to be replaced meanwhile: scan again
            shards, problems, stamps = scan_shards(self.directory)
            self._shards, self._stamps = shards, stamps
            for s in [s for s in shards if self._is_bad(s)]:
                del shards[s]
            replaced = [s for s, p in problems.items() if not self._is_bad(s) and not self._discard(s, p)]
            if not replaced:
                break
        out: dict[str, tuple[str, int]] = {}
        for shard_id, index in self._shards.items():
            for pos, key in enumerate(index["keys"]):
                out.setdefault(key, (f"shard-{shard_id}.tfrecord", pos))
        self._index = out
        return out

    def shard_index(self, shard: str) -> dict[str, Any]:
        """The index of a complete shard, by its id or by its records file's name (as :meth:`index` gives it)."""
        self.index()
        if shard.startswith("shard-") and shard.endswith(".tfrecord"):
            shard = shard[len("shard-") : -len(".tfrecord")]
        return self._shards[shard]

    def _discard(self, shard_id: str, problem: str) -> bool:
        """Warns about a damaged shard and removes it; False when it was in fact replaced or removed by
        another process since it was scanned (then it is not damaged: scan again)."""
        d = self.directory
        try:
            now = stamp(index_path(d, shard_id))
        except OSError:
            now = None
        if now is None or now != self._stamps.get(shard_id):
            return False
        n = len(self._shards.get(shard_id, {}).get("keys", []))
        what = f"its {n} clip(s) are" if n else "the clips it held are"
        warn(f"embedding cache: shard {records_path(d, shard_id)} {problem}; {what} extracted again.")
        self._lost.update(self._shards.get(shard_id, {}).get("keys", []))
        self._lost_unknown |= not n
        self._shards.pop(shard_id, None)
        self._index = None
        for f in (index_path(d, shard_id), records_path(d, shard_id)):  # index first: never a trusted half
            with contextlib.suppress(OSError):
                f.unlink()
        if index_path(d, shard_id).exists():
            self._bad[shard_id] = now  # could not be removed: ignore it (until it is replaced)
        return True

    def _is_bad(self, shard_id: str) -> bool:
        return shard_id in self._bad and self._bad[shard_id] == self._stamps.get(shard_id)

    def keys(self, manifest: Manifest, on_error: str = "raise") -> list[str | None]:
        """Content keys of the manifest's files (None for unreadable files when skipping)."""
        keys: list[str | None] = []
        for path in manifest.paths:
            try:
                keys.append(file_key(path))
            except AudioError:
                if on_error == "raise":
                    raise
                keys.append(None)
        return keys

    def missing(self, manifest: Manifest) -> list[int]:
        """Rows of the manifest whose embeddings are not cached yet."""
        index = self.index(refresh=True)
        return [i for i, k in enumerate(self.keys(manifest, on_error="skip")) if k is None or k not in index]

    # ---- extraction ---------------------------------------------------------------------------
    def extract(self, manifest: Manifest, *, on_error: str | None = None, progress: bool = True) -> ExtractionReport:
        """Embeds every clip that is not cached yet; returns what was done.

        Every batch is committed as it is done, so an interrupted run resumes after its last whole
        batch; a completed run then merges the batches into shards (:meth:`compact`).

        Args:
            manifest: the clips.
            on_error: "raise" or "skip" (default: the pipeline's setting). Skipped clips are listed
                in the report and not cached, so a later run tries them again.
            progress: show a progress bar.
        """
        on_error = on_error or self.pipeline.on_error
        keys = self.keys(manifest, on_error=on_error)
        return self._extract(manifest, keys, None, on_error, progress)

    def _extract(self, manifest: Manifest, keys: list[str | None], only: set[str] | None, on_error: str,
                 progress: bool) -> ExtractionReport:
        """Extracts the clips of ``manifest`` that are not cached (and whose key is in ``only``)."""

        index = self.index(refresh=True)
        todo_rows, seen = [], set()
        for i, k in enumerate(keys):
            if k is not None and k not in index and k not in seen and (only is None or k in only):
                todo_rows.append(i)
                seen.add(k)
        unreadable = [(manifest.paths[i], "cannot be read") for i, k in enumerate(keys) if k is None]
        total = len(manifest)
        if self.directory.is_dir():
            self.sweep()
        if not todo_rows:
            if sum(s.startswith(PART_PREFIX) for s in self._shards) > 1:
                self.compact()  # parts left by a run killed before it merged them
            return ExtractionReport(total, total - len(unreadable), 0, unreadable)
        directory = self._ensure_dir()
        sub = Manifest(manifest.frame.iloc[todo_rows].reset_index(drop=True), labels=manifest.labels)
        sub_keys = [keys[i] for i in todo_rows]
        # Backbones with a per-clip step (YAMNet's log-mel patches) get it run in the data workers.
        features = getattr(self.backbone, "clip_features", None)
        c = self.backbone.contract
        # the process's long-lived pipeline for these settings (built once, not per call: clip_stream)
        stream = clip_stream(self.pipeline, features, (c.frame_samples, c.hop_samples), keep_audio=features is None)
        done = 0

        # the tflite engine's converted bodies are kept beside the namespaces (<root>/engines)
        batch_frames, batch_frames_from_features = engine_functions(self.backbone, self.engine,
                                                                    model_dir=self.root / "engines")
        bar = tqdm(total=len(sub), desc="embedding", unit="clip", disable=not progress)
        try:
            for batch in stream.batches(sub.paths, self.batch_size, on_error):
                if features is None:
                    emb, mask = batch_frames(tf.constant(batch["audio"]), tf.constant(batch["length"]))
                else:
                    emb, mask = batch_frames_from_features(batch["features"], batch["feature_count"])
                emb, mask = np.asarray(emb), np.asarray(mask)
                # one committed part per batch: an interruption loses at most the batch in flight
                writer = ShardWriter(directory, PART_PREFIX + uuid.uuid4().hex[:16])
                try:
                    for j, row in enumerate(batch["index"]):
                        n = int(mask[j].sum())
                        db = clip_frame_db(batch["frame_db"][j], batch["frame_db_count"][j], n)
                        writer.write(sub_keys[row], emb[j][mask[j]], db)
                    writer.close()
                except BaseException:
                    writer.abort()
                    raise
                done += len(batch["index"])
                bar.update(len(batch["index"]))
        finally:
            bar.close()
            self._index = None
        self.compact()
        skipped = unreadable + stream.skipped
        return ExtractionReport(total, total - len(todo_rows) - len(unreadable), done, skipped)

    def sweep(self) -> list[pathlib.Path]:
        """Removes what killed writers left in the namespace folder: their temporaries (when their
        process is gone, see :func:`tfaudio.io.atomic.sweep_stale`) and records files without an
        index that are older than an hour. Returns the removed paths."""
        d = self.directory
        removed = sweep_stale(directory=d)
        now = time.time()
        for records in d.glob("shard-*.tfrecord"):
            shard_id = records.name[len("shard-") : -len(".tfrecord")]
            try:
                if not index_path(d, shard_id).exists() and now - records.stat().st_mtime > ORPHAN_AFTER:
                    records.unlink()
                    removed.append(records)
            except OSError:
                continue
        return removed

    def compact(self) -> int:
        """Merges the per-batch parts (and small shards merged earlier) into shards of ``shard_size``
        clips, so reading opens few files. Safe to interrupt: the new shards are complete before the
        parts are removed, and a clip found twice is read from either. Shards written by Beam are
        left alone (their ids tell a Beam re-run what is done). Returns the shards merged."""
        d = self.directory
        if not d.is_dir():
            return 0
        with _exclusive(d) as locked:
            if not locked:
                return 0  # another process is merging
            self.index(refresh=True)
            small = [s for s, idx in self._shards.items() if s.startswith(PART_PREFIX)
                     or (_LOCAL_SHARD.fullmatch(s) and len(idx["keys"]) < self.shard_size // 2)]
            if not any(s.startswith(PART_PREFIX) for s in small) or len(small) < 2:
                return 0
            small_set = set(small)
            kept = {k for s, idx in self._shards.items() if s not in small_set for k in idx["keys"]}
            writer: ShardWriter | None = None
            merged = []
            try:
                for shard_id in sorted(small):
                    index = self._shards[shard_id]
                    try:
                        records = shard_records(d, shard_id, index)
                    except ShardError as err:
                        self._discard(shard_id, str(err))
                        continue
                    frames = index.get("num_frames") or [None] * len(records)
                    for key, record, n in zip(index["keys"], records, frames):
                        if key in kept:
                            continue  # already in a merged shard (an earlier merge was interrupted)
                        if n is None:
                            n = decode_record(record)[1].shape[0]
                        if writer is None:
                            writer = ShardWriter(d)
                        writer.write_record(key, bytes(record), n)
                        kept.add(key)
                        if len(writer) >= self.shard_size:
                            writer.close()
                            writer = None
                    merged.append(shard_id)
                if writer is not None:
                    writer.close()
                    writer = None
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            for shard_id in merged:  # index first: never a trusted half
                for f in (index_path(d, shard_id), records_path(d, shard_id)):
                    with contextlib.suppress(OSError):
                        f.unlink()
            self._index = None
            return len(merged)

    # ---- reading ------------------------------------------------------------------------------
    def _read_shards(self, wanted: set[str]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray | None]], dict[str, str]]:
        """(key → (embeddings, frame dB) of the wanted keys that could be read, shard id → problem of the
        shards that could not)."""
        index = self.index()
        by_shard: dict[str, dict[int, str]] = {}
        for k in wanted:
            if k in index:
                shard, pos = index[k]
                by_shard.setdefault(shard[len("shard-") : -len(".tfrecord")], {})[pos] = k
        out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        damaged: dict[str, str] = {}
        for shard_id, positions in by_shard.items():
            try:
                clips = read_shard(self.directory, shard_id, self._shards[shard_id], sorted(positions))
            except ShardError as err:
                damaged[shard_id] = str(err)
                continue
            out.update((key, (emb, db)) for key, emb, db in clips)
        return out, damaged

    def _repair(self, damaged: dict[str, str], manifest: Manifest, keys: list[str | None], *,
                on_error: str | None, progress: bool) -> bool:
        """Removes damaged shards (with a warning each) and extracts again the clips of ``manifest`` that
        any removed shard held (found now, or when :meth:`index` scanned), as the warning promised.
        Returns whether anything was extracted."""
        for shard_id, problem in damaged.items():
            self._discard(shard_id, problem)
        self._lost -= set(self.index(refresh=True))  # extracted again meanwhile (by extract())
        lost = self._lost & {k for k in keys if k is not None}
        if not lost and not self._lost_unknown:
            return False
        # an unreadable index hides which clips its shard held: every clip not cached is extracted
        self._extract(manifest, keys, None if self._lost_unknown else lost, on_error or self.pipeline.on_error,
                      progress)
        self._lost -= lost
        self._lost_unknown = False
        return True

    def load(self, manifest: Manifest, *, extract: bool = True, on_error: str | None = None,
             progress: bool = True) -> ClipEmbeddings:
        """Embeddings of the manifest's clips in manifest order (extracting what is missing).

        A shard found damaged while reading is removed with a warning and its clips are extracted
        again in this call, as the warning says: ``extract=False`` only leaves out clips that were
        never cached (those are what :meth:`extract` is for), not clips that were cached and lost."""
        if extract:
            report = self.extract(manifest, on_error=on_error, progress=progress)
            if report.skipped:
                warn(str(report))
        keys = self.keys(manifest, on_error="skip")
        arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for _ in range(3):
            index = self.index(refresh=True)
            got, damaged = self._read_shards({k for k in keys if k is not None and k in index and k not in arrays})
            arrays.update(got)
            if not self._repair(damaged, manifest, keys, on_error=on_error, progress=progress) and not damaged:
                break
        rows = [i for i, k in enumerate(keys) if k is not None and k in arrays]
        if not rows:
            raise TfaudioError(
                f"none of the {len(manifest)} clips has cached embeddings in {self.directory}. "
                f"Fix: run extract() first (or fix the files listed above)."
            )
        targets = manifest.targets
        folds = manifest.frame["fold"].fillna(-1).to_numpy(np.int64)
        rows_arr = np.asarray(rows)
        return ClipEmbeddings([arrays[keys[i]][0] for i in rows], targets[rows_arr], rows_arr, folds[rows_arr],
                              [arrays[keys[i]][1] for i in rows])

    def frames_dataset(self, manifest: Manifest, *, shuffle: bool = False, seed: int | None = None):
        """A streaming ``tf.data`` of frame records ``{"embedding", "label", "clip"}`` read straight
        from the shards, for data sets too large to load (labels joined from the manifest: a class
        index, int32; multi-label data: the clip's multi-hot row, float32 ``[classes]``).

        The shards are checked against their checksums first (read in blocks, not kept in memory); a
        damaged one is removed with a warning and its clips of ``manifest`` are extracted again."""

        multi = manifest.multi_label

        def frames(clip):
            n = tf.shape(clip["embeddings"])[0]
            label = clip["label"]
            labels = tf.tile(label[None], [n, 1]) if multi else tf.fill([n], label)  # [n] or [n, classes]
            return {"embedding": clip["embeddings"], "label": labels, "clip": tf.fill([n], clip["clip"])}

        ds = self.clips_dataset(manifest).map(frames, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        if shuffle:
            ds = ds.shuffle(10_000, seed=seed)
        return ds

    def _checked_rows(self, manifest: Manifest) -> tuple[dict[str, int], dict[str, tuple[str, int]]]:
        """(key → manifest row of the cached clips of ``manifest``, the index), after checking their shards
        against their checksums (damaged ones removed with a warning and their clips extracted again)."""
        keys = self.keys(manifest, on_error="skip")
        for _ in range(3):
            index = self.index(refresh=True)
            rows = {k: i for i, k in enumerate(keys) if k is not None and k in index}
            shards = sorted({index[k][0] for k in rows})
            damaged = {}
            for shard in shards:
                shard_id = shard[len("shard-") : -len(".tfrecord")]
                problem = verify_shard(self.directory, shard_id, self._shards[shard_id])
                if problem is not None:
                    damaged[shard_id] = problem
            if not self._repair(damaged, manifest, keys, on_error=None, progress=False) and not damaged:
                break
        return rows, index

    def _clip_parser(self, manifest: Manifest, rows: dict[str, int]):
        """Serialized record → ``{"embeddings", "label", "clip"}`` (``clip`` -1 for a clip not in ``rows``)."""
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(rows), tf.string), tf.constant(list(rows.values()), tf.int64)
            ),
            default_value=-1,
        )
        multi = manifest.multi_label
        targets = tf.constant(manifest.targets, tf.float32 if multi else tf.int32)  # [rows, classes] or [rows]
        dim = self.backbone.contract.embedding_dim
        spec = {
            "key": tf.io.FixedLenFeature([], tf.string),
            "embeddings": tf.io.FixedLenFeature([], tf.string),
        }

        def parse(record):
            ex = tf.io.parse_single_example(record, spec)
            row = table.lookup(ex["key"])
            emb = tf.reshape(tf.io.decode_raw(ex["embeddings"], tf.float32), [-1, dim])
            label = tf.gather(targets, tf.maximum(row, 0))  # [] or [classes]
            return {"embeddings": emb, "label": label, "clip": tf.cast(row, tf.int32)}

        return parse

    def clips_in_order(self, manifest: Manifest, order: Sequence[int]) -> tf.data.Dataset:
        """The cached clips of ``manifest`` rows ``order``, in that order (as :meth:`clips_dataset` gives
        them; rows not cached are left out): each record read by its byte offset, so the order is the
        caller's (e.g. a permutation per epoch), whatever the shards' layout, in bounded memory."""
        rows, index = self._checked_rows(manifest)
        keys = {row: key for key, row in rows.items()}
        wanted = [index[keys[int(r)]] for r in order if int(r) in keys]
        offsets = {shard: record_offsets(self.directory / shard) for shard in sorted({s for s, _ in wanted})}
        directory = self.directory

        def records():
            files: dict[str, Any] = {}
            try:
                for shard, pos in wanted:
                    f = files.get(shard) or files.setdefault(shard, open(directory / shard, "rb"))  # noqa: SIM115
                    start, length = offsets[shard][pos]
                    f.seek(start)
                    yield f.read(length)
            finally:
                for f in files.values():
                    f.close()

        ds = tf.data.Dataset.from_generator(records, output_signature=tf.TensorSpec([], tf.string))
        return ds.map(self._clip_parser(manifest, rows), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def clips_dataset(self, manifest: Manifest, *, shuffle_files: bool = False, seed: int | None = None):
        """A streaming ``tf.data`` of the manifest's cached clips ``{"embeddings": [n, dim], "label",
        "clip"}`` (``clip``: the manifest row, int32; ``label`` as :meth:`frames_dataset`), read straight
        from the shards in shard order (``shuffle_files``: the shards in a random order, by ``seed``).
        Clips that are not cached are left out; see :meth:`frames_dataset` for damaged shards.
        :meth:`clips_in_order` reads them in an order of the caller's."""

        rows, index = self._checked_rows(manifest)
        shards = sorted({index[k][0] for k in rows})
        parse = self._clip_parser(manifest, rows)
        files = [str(self.directory / s) for s in shards]
        if shuffle_files:
            files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
        ds = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.filter(lambda e: e["clip"] >= 0)

"""On-disk cache of backbone frame embeddings, so every fold, run and head reuses one extraction.

Layout::

    <root>/<backbone name>-<namespace hash>/
        settings.json                  what the namespace hash covers (backbone fingerprint, pipeline)
        shard-<id>.tfrecord            tf.train.Example records: key, embeddings, num_frames, dim
        shard-<id>.index.json          the keys in that shard; written last, so a shard without an
                                       index (an interrupted write) is never trusted. Shards written
                                       by Beam (``tfaudio embed``) also list their files (``paths``)
                                       and bad files (``failed``), and have deterministic ids
        beam-<job>.json                a Beam job's summary (``tfaudio.beam.embed``)

A clip's key is a hash of its file's bytes: a changed file gets a new key (only that clip is
re-extracted), a renamed or copied one is found again. Changing the backbone's weights or the
pipeline settings changes the namespace, which leaves other namespaces untouched. Shards are written
to a temporary name and renamed, so an interrupted extraction resumes from the last whole shard.
The same record format is written by the Beam pipeline, so training reads either output alike.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import threading
import uuid
from typing import Any

import numpy as np

from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import AudioDataset, PipelineConfig
from tfaudio.errors import AudioError, TfaudioError

FORMAT_VERSION = 1
_hash_memo: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def default_cache_dir() -> pathlib.Path:
    """``$TFAUDIO_CACHE`` or ``~/.cache/tfaudio``."""
    from tfaudio.datasets import cache_dir

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


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def encode_record(key: str, embeddings: np.ndarray) -> bytes:
    """One clip as a serialized tf.train.Example (the cache's record format)."""
    import tensorflow as tf

    emb = np.ascontiguousarray(embeddings, dtype="<f4")
    feature = {
        "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[key.encode()])),
        "embeddings": tf.train.Feature(bytes_list=tf.train.BytesList(value=[emb.tobytes()])),
        "num_frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[emb.shape[0]])),
        "dim": tf.train.Feature(int64_list=tf.train.Int64List(value=[emb.shape[1]])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def decode_record(record: bytes) -> tuple[str, np.ndarray]:
    import tensorflow as tf

    ex = tf.train.Example.FromString(record)
    f = ex.features.feature
    n, d = f["num_frames"].int64_list.value[0], f["dim"].int64_list.value[0]
    emb = np.frombuffer(f["embeddings"].bytes_list.value[0], dtype="<f4").reshape(n, d)
    return f["key"].bytes_list.value[0].decode(), emb


class ShardWriter:
    """Writes one shard atomically: records go to a temporary file, ``close`` renames it and then
    writes the index (the index is what makes a shard trusted).

    Args:
        directory: the namespace folder.
        shard_id: the shard's name (default: random). The Beam pipeline passes a deterministic id, so
            a re-run can tell which shards are complete; the temporary name is unique per attempt,
            so two attempts at one shard (a retried bundle) never write into the same file.
    """

    def __init__(self, directory: pathlib.Path, shard_id: str | None = None):
        import tensorflow as tf

        self.directory = pathlib.Path(directory)
        self.shard_id = shard_id or uuid.uuid4().hex[:16]
        self.final = self.directory / f"shard-{self.shard_id}.tfrecord"
        self.tmp = self.directory / f".shard-{self.shard_id}.{uuid.uuid4().hex[:8]}.tfrecord.tmp"
        self._writer = tf.io.TFRecordWriter(str(self.tmp))
        self.keys: list[str] = []
        self.num_frames: list[int] = []

    def write(self, key: str, embeddings: np.ndarray) -> None:
        self._writer.write(encode_record(key, embeddings))
        self.keys.append(key)
        self.num_frames.append(int(embeddings.shape[0]))

    def __len__(self) -> int:
        return len(self.keys)

    def close(self, extra: dict[str, Any] | None = None, *, keep_empty: bool = False) -> None:
        """Renames the records into place, then writes the index.

        Args:
            extra: more fields for the index (the Beam pipeline adds ``paths`` and ``failed``).
            keep_empty: write an empty shard and its index too (a Beam shard whose clips were all
                bad is still complete: a re-run must not try it again).
        """
        self._writer.close()
        if not self.keys and not keep_empty:
            self.tmp.unlink(missing_ok=True)
            return
        os.replace(self.tmp, self.final)
        index = {"format": FORMAT_VERSION, "keys": self.keys, "num_frames": self.num_frames, **(extra or {})}
        atomic_write_text(index_path(self.directory, self.shard_id), json.dumps(index))

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)


def index_path(directory: pathlib.Path, shard_id: str) -> pathlib.Path:
    """The index file of shard ``shard_id`` (written last: its presence marks the shard complete)."""
    return pathlib.Path(directory) / f"shard-{shard_id}.index.json"


def complete_shards(directory: pathlib.Path) -> dict[str, dict[str, Any]]:
    """shard id → its index, for every complete shard (records and a readable index) in ``directory``."""
    out: dict[str, dict[str, Any]] = {}
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return out
    for idx_file in sorted(directory.glob("shard-*.index.json")):
        shard_id = idx_file.name[len("shard-") : -len(".index.json")]
        if not (directory / f"shard-{shard_id}.tfrecord").is_file():
            continue
        try:
            index = json.loads(idx_file.read_text())
        except ValueError:
            continue  # a damaged index: its shard is simply not trusted
        if isinstance(index, dict) and isinstance(index.get("keys"), list):
            out[shard_id] = index
    return out


@dataclasses.dataclass
class ClipEmbeddings:
    """Embeddings of the clips of a manifest, in manifest order (bad clips left out).

    Attributes:
        embeddings: one float32 [frames, dim] array per clip.
        targets: int32 [clips] class index (from the manifest's label list).
        rows: int [clips] row of each clip in the manifest.
        folds: int [clips] fold (-1 when none).
    """

    embeddings: list[np.ndarray]
    targets: np.ndarray
    rows: np.ndarray
    folds: np.ndarray

    def __len__(self) -> int:
        return len(self.embeddings)

    def frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame-level arrays: (embeddings [N, dim], targets [N], clip index [N]) — one record per
        frame carrying its clip's label, as in the YAMNet transfer-learning tutorial."""
        counts = np.array([e.shape[0] for e in self.embeddings])
        x = np.concatenate(self.embeddings).astype(np.float32, copy=False)
        return x, np.repeat(self.targets, counts), np.repeat(np.arange(len(self)), counts)

    def subset(self, mask: np.ndarray) -> ClipEmbeddings:
        idx = np.flatnonzero(mask)
        return ClipEmbeddings([self.embeddings[i] for i in idx], self.targets[idx], self.rows[idx], self.folds[idx])


@dataclasses.dataclass
class ExtractionReport:
    total: int
    cached: int
    extracted: int
    skipped: list[tuple[str, str]]

    def __str__(self) -> str:
        s = f"{self.total} clips: {self.cached} from the cache, {self.extracted} extracted"
        if self.skipped:
            s += f", {len(self.skipped)} skipped:\n" + "\n".join(f"  {p}: {why}" for p, why in self.skipped)
        return s


class EmbeddingCache:
    """Backbone embeddings of audio files, extracted once and stored in sharded TFRecords.

    Args:
        backbone: a :class:`tfaudio.backbones.Backbone`.
        root: cache folder (default ``$TFAUDIO_CACHE`` or ``~/.cache/tfaudio``; a sub-folder
            ``embeddings/`` is used).
        pipeline: how clips are decoded (its ``sample_rate`` is forced to the backbone's).
        shard_size: clips per shard (also the granularity of resuming).
        batch_size: clips per backbone call.

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
    ):
        self.backbone = backbone
        self.root = pathlib.Path(root) if root is not None else default_cache_dir() / "embeddings"
        self.pipeline = dataclasses.replace(pipeline or PipelineConfig(), sample_rate=backbone.contract.sample_rate)
        self.shard_size = shard_size
        self.batch_size = batch_size
        self._index: dict[str, tuple[str, int]] | None = None

    # ---- namespace ----------------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """Everything that changes the embeddings, besides the audio itself."""
        p = self.pipeline
        return {
            "format": FORMAT_VERSION,
            "backbone": type(self.backbone).__name__,
            "fingerprint": self.backbone.fingerprint,
            "sample_rate": p.sample_rate,
            "duration_seconds": p.duration_seconds,
            "align": p.align,
        }

    @property
    def directory(self) -> pathlib.Path:
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]
        name = type(self.backbone).__name__.replace("Backbone", "").lower()
        return self.root / f"{name}-{digest}"

    def _ensure_dir(self) -> pathlib.Path:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "settings.json").exists():
            atomic_write_text(d / "settings.json", json.dumps(self.settings, indent=1, sort_keys=True))
        return d

    # ---- index --------------------------------------------------------------------------------
    def index(self, refresh: bool = False) -> dict[str, tuple[str, int]]:
        """key → (shard file, position), from every complete shard."""
        if self._index is not None and not refresh:
            return self._index
        out: dict[str, tuple[str, int]] = {}
        for shard_id, index in complete_shards(self.directory).items():
            for pos, key in enumerate(index["keys"]):
                out.setdefault(key, (f"shard-{shard_id}.tfrecord", pos))
        self._index = out
        return out

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

        Args:
            manifest: the clips.
            on_error: "raise" or "skip" (default: the pipeline's setting). Skipped clips are listed
                in the report and not cached, so a later run tries them again.
            progress: show a progress bar.
        """
        import tensorflow as tf
        from tqdm.auto import tqdm

        on_error = on_error or self.pipeline.on_error
        keys = self.keys(manifest, on_error=on_error)
        index = self.index(refresh=True)
        todo_rows, seen = [], set()
        for i, k in enumerate(keys):
            if k is not None and k not in index and k not in seen:
                todo_rows.append(i)
                seen.add(k)
        unreadable = [(manifest.paths[i], "cannot be read") for i, k in enumerate(keys) if k is None]
        total = len(manifest)
        if not todo_rows:
            return ExtractionReport(total, total - len(unreadable), 0, unreadable)
        directory = self._ensure_dir()
        sub = Manifest(manifest.frame.iloc[todo_rows].reset_index(drop=True), labels=manifest.labels)
        sub_keys = [keys[i] for i in todo_rows]
        # Backbones with a per-clip step (YAMNet's log-mel patches) get it run in the data workers.
        features = getattr(self.backbone, "clip_features", None)
        data = AudioDataset(sub, dataclasses.replace(self.pipeline, on_error=on_error), features=features,
                            keep_audio=features is None)
        writer = ShardWriter(directory)
        done = 0
        bar = tqdm(total=len(sub), desc="embedding", unit="clip", disable=not progress)
        try:
            for batch in data.iterate(self.batch_size):
                if features is None:
                    emb, mask = self.backbone.batch_frames(tf.constant(batch["audio"]), tf.constant(batch["length"]))
                else:
                    emb, mask = self.backbone.batch_frames_from_features(batch["features"], batch["feature_count"])
                emb, mask = np.asarray(emb), np.asarray(mask)
                for j, row in enumerate(batch["index"]):
                    writer.write(sub_keys[row], emb[j][mask[j]])
                    if len(writer) >= self.shard_size:
                        writer.close()
                        writer = ShardWriter(directory)
                done += len(batch["index"])
                bar.update(len(batch["index"]))
            writer.close()
        except BaseException:
            writer.abort()  # the partial shard is dropped; whole shards written so far stay
            raise
        finally:
            bar.close()
            self._index = None
        skipped = unreadable + data.skipped
        return ExtractionReport(total, total - len(todo_rows) - len(unreadable), done, skipped)

    # ---- reading ------------------------------------------------------------------------------
    def _read_shards(self, wanted: dict[str, list[int]]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        index = self.index()
        by_shard: dict[str, set[str]] = {}
        for k in wanted:
            by_shard.setdefault(index[k][0], set()).add(k)
        out: dict[str, np.ndarray] = {}
        for shard, ks in by_shard.items():
            for record in tf.data.TFRecordDataset(str(self.directory / shard)).as_numpy_iterator():
                key, emb = decode_record(record)
                if key in ks:
                    out[key] = emb
        return out

    def load(self, manifest: Manifest, *, extract: bool = True, on_error: str | None = None,
             progress: bool = True) -> ClipEmbeddings:
        """Embeddings of the manifest's clips in manifest order (extracting what is missing)."""
        if extract:
            report = self.extract(manifest, on_error=on_error, progress=progress)
            if report.skipped:
                import warnings

                warnings.warn(str(report), stacklevel=2)
        keys = self.keys(manifest, on_error="skip")
        index = self.index(refresh=True)
        rows = [i for i, k in enumerate(keys) if k is not None and k in index]
        if not rows:
            raise TfaudioError(
                f"none of the {len(manifest)} clips has cached embeddings in {self.directory}. "
                f"Fix: run extract() first (or fix the files listed above)."
            )
        wanted: dict[str, list[int]] = {}
        for i in rows:
            wanted.setdefault(keys[i], []).append(i)
        arrays = self._read_shards(wanted)
        targets = manifest.targets
        folds = manifest.frame["fold"].fillna(-1).to_numpy(np.int64)
        rows_arr = np.asarray(rows)
        return ClipEmbeddings([arrays[keys[i]] for i in rows], targets[rows_arr], rows_arr, folds[rows_arr])

    def frames_dataset(self, manifest: Manifest, *, shuffle: bool = False, seed: int | None = None):
        """A streaming ``tf.data`` of frame records ``{"embedding", "label", "clip"}`` read straight
        from the shards, for data sets too large to load (labels joined from the manifest)."""
        import tensorflow as tf

        keys = self.keys(manifest, on_error="skip")
        index = self.index(refresh=True)
        rows = {k: i for i, k in enumerate(keys) if k is not None and k in index}
        shards = sorted({index[k][0] for k in rows})
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(rows), tf.string), tf.constant(list(rows.values()), tf.int64)
            ),
            default_value=-1,
        )
        targets = tf.constant(manifest.targets, tf.int32)
        dim = self.backbone.contract.embedding_dim
        spec = {
            "key": tf.io.FixedLenFeature([], tf.string),
            "embeddings": tf.io.FixedLenFeature([], tf.string),
            "num_frames": tf.io.FixedLenFeature([], tf.int64),
        }

        def parse(record):
            ex = tf.io.parse_single_example(record, spec)
            row = table.lookup(ex["key"])
            emb = tf.reshape(tf.io.decode_raw(ex["embeddings"], tf.float32), [-1, dim])
            n = tf.shape(emb)[0]
            label = tf.gather(targets, tf.maximum(row, 0))
            return {"embedding": emb, "label": tf.fill([n], label), "clip": tf.fill([n], tf.cast(row, tf.int32))}

        files = [str(self.directory / s) for s in shards]
        ds = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.filter(lambda e: e["clip"][0] >= 0).unbatch()
        if shuffle:
            ds = ds.shuffle(10_000, seed=seed)
        return ds


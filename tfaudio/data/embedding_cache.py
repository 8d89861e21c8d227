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
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np

from tfaudio.data.manifest import Manifest
from tfaudio.data.pipeline import AudioDataset, PipelineConfig
from tfaudio.errors import AudioError, TfaudioError
from tfaudio.io.atomic import atomic_write_text, sweep_stale, temp_path
from tfaudio.log import warn

__all__ = ["EmbeddingCache", "ClipEmbeddings", "ExtractionReport", "ShardWriter", "atomic_write_text",
           "complete_shards", "decode_record", "encode_record", "file_key", "index_path", "read_shard"]

FORMAT_VERSION = 1
#: Id prefix of the per-batch shards that a completed extraction merges.
PART_PREFIX = "part-"
#: Seconds after which records without an index (a writer killed between the two renames) are removed.
ORPHAN_AFTER = 3600.0
_LOCAL_SHARD = re.compile(r"[0-9a-f]{16}")  # ids of the shards merged by compact() (Beam's are "beam<hash>")
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


def encode_record(key: str, embeddings: np.ndarray, frame_db: np.ndarray | None = None) -> bytes:
    """One clip as a serialized tf.train.Example (the cache's record format): its embeddings
    ``[frames, dim]`` and, when given, each frame's energy in dB ``[frames]`` (the silence gate's input)."""
    import tensorflow as tf

    emb = np.ascontiguousarray(embeddings, dtype="<f4")
    feature = {
        "key": tf.train.Feature(bytes_list=tf.train.BytesList(value=[key.encode()])),
        "embeddings": tf.train.Feature(bytes_list=tf.train.BytesList(value=[emb.tobytes()])),
        "num_frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[emb.shape[0]])),
        "dim": tf.train.Feature(int64_list=tf.train.Int64List(value=[emb.shape[1]])),
    }
    if frame_db is not None:
        db = np.ascontiguousarray(frame_db, dtype="<f4")
        if db.shape != (emb.shape[0],):
            raise ValueError(f"frame_db must have one value per frame ({emb.shape[0]}), got shape {db.shape}")
        feature["frame_db"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[db.tobytes()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def decode_record(record: bytes) -> tuple[str, np.ndarray]:
    """``(key, embeddings [frames, dim])`` of a record."""
    return decode_record_full(record)[:2]


def decode_record_full(record: bytes) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(key, embeddings [frames, dim], frame energies in dB [frames] or None)`` of a record."""
    import tensorflow as tf

    ex = tf.train.Example.FromString(record)
    f = ex.features.feature
    n, d = f["num_frames"].int64_list.value[0], f["dim"].int64_list.value[0]
    emb = np.frombuffer(f["embeddings"].bytes_list.value[0], dtype="<f4").reshape(n, d)
    db = np.frombuffer(f["frame_db"].bytes_list.value[0], dtype="<f4") if "frame_db" in f else None
    return f["key"].bytes_list.value[0].decode(), emb, db


def clip_frame_db(frame_db: np.ndarray, count: int, num_frames: int) -> np.ndarray:
    """The energies of a clip's frames from the pipeline's ``frame_db`` (``count`` frames that start in
    the clip), padded with silence to the backbone's ``num_frames`` (frames past the clip see only the
    zeros the backbone pads with, exactly as the clip scorer's graph computes them)."""
    from tfaudio.signal.frame_energy import SILENT_DB

    db = np.asarray(frame_db, np.float32)[: min(int(count), num_frames)]
    return np.pad(db, (0, num_frames - len(db)), constant_values=SILENT_DB).astype(np.float32)


def _file_digest(path: pathlib.Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, read in blocks."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


class ShardWriter:
    """Writes one shard atomically: records go to a temporary file, ``close`` renames it and then
    writes the index (the index, with the file's size and SHA-256, is what makes a shard trusted).

    Args:
        directory: the namespace folder.
        shard_id: the shard's name (default: random). The Beam pipeline passes a deterministic id, so
            a re-run can tell which shards are complete; the temporary name is unique per attempt
            (and carries the writer's pid, see :mod:`tfaudio.io.atomic`), so two attempts at one
            shard (a retried bundle) never write into the same file.
    """

    def __init__(self, directory: pathlib.Path, shard_id: str | None = None):
        import tensorflow as tf

        self.directory = pathlib.Path(directory)
        self.shard_id = shard_id or uuid.uuid4().hex[:16]
        self.final = self.directory / f"shard-{self.shard_id}.tfrecord"
        self.tmp = temp_path(self.final)
        self._writer = tf.io.TFRecordWriter(str(self.tmp))
        self.keys: list[str] = []
        self.num_frames: list[int] = []

    def write(self, key: str, embeddings: np.ndarray, frame_db: np.ndarray | None = None) -> None:
        self.write_record(key, encode_record(key, embeddings, frame_db), int(embeddings.shape[0]))

    def write_record(self, key: str, record: bytes, num_frames: int) -> None:
        """Appends an already serialized record (see :func:`encode_record`) of clip ``key``."""
        self._writer.write(record)
        self.keys.append(key)
        self.num_frames.append(int(num_frames))

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
        size, digest = _file_digest(self.tmp)
        os.replace(self.tmp, self.final)
        index = {"format": FORMAT_VERSION, "keys": self.keys, "num_frames": self.num_frames, "bytes": size,
                 "sha256": digest, **(extra or {})}
        # no fsync: a shard that a power loss leaves short or empty fails its checksum and is redone
        atomic_write_text(index_path(self.directory, self.shard_id), json.dumps(index), sync=False, sweep=False)

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)


def index_path(directory: pathlib.Path, shard_id: str) -> pathlib.Path:
    """The index file of shard ``shard_id`` (written last: its presence marks the shard complete)."""
    return pathlib.Path(directory) / f"shard-{shard_id}.index.json"


def records_path(directory: pathlib.Path, shard_id: str) -> pathlib.Path:
    return pathlib.Path(directory) / f"shard-{shard_id}.tfrecord"


def _index_problem(index: Any) -> str | None:
    """What is wrong with a parsed index, or None."""
    if not isinstance(index, dict) or not isinstance(index.get("keys"), list):
        return "has a damaged index (no key list)"
    keys, frames = index["keys"], index.get("num_frames")
    if not all(isinstance(k, str) for k in keys):
        return "has a damaged index (keys that are not strings)"
    if frames is not None and (not isinstance(frames, list) or len(frames) != len(keys)):
        return "has a damaged index (frame counts do not match its keys)"
    if "sha256" in index and not (isinstance(index["sha256"], str) and isinstance(index.get("bytes"), int)):
        return "has a damaged index (a malformed checksum)"
    return None


def _stamp(path: pathlib.Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def _scan(directory: pathlib.Path):
    """(complete shards {id: index}, damaged shards {id: problem}, index file stamps {id: stamp})."""
    complete: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    stamps: dict[str, tuple[int, int, int]] = {}
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return complete, problems, stamps
    for idx_file in sorted(directory.glob("shard-*.index.json")):
        shard_id = idx_file.name[len("shard-") : -len(".index.json")]
        try:
            with open(idx_file, "rb") as f:
                st = os.fstat(f.fileno())
                raw = f.read()
        except FileNotFoundError:
            continue  # removed meanwhile (merged into a bigger shard)
        except OSError as err:
            with contextlib.suppress(OSError):
                stamps[shard_id] = _stamp(idx_file)
                problems[shard_id] = f"has an unreadable index ({err.strerror})"
            continue
        stamps[shard_id] = (st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            index = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            problems[shard_id] = "has a damaged index (not valid JSON)" if raw.strip() else "has an empty index"
            continue
        problem = _index_problem(index)
        if problem is None and not records_path(directory, shard_id).is_file():
            problem = "is missing (its index is there, its records file is not)"
        if problem is not None:
            problems[shard_id] = problem
            continue
        complete[shard_id] = index
    return complete, problems, stamps


def complete_shards(directory: pathlib.Path) -> dict[str, dict[str, Any]]:
    """shard id → its index, for every complete shard (records and a readable index) in ``directory``.

    The records are not read here: a shard whose records are damaged is found (and redone) when it is
    read, see :func:`read_shard`."""
    return _scan(directory)[0]


class ShardError(Exception):
    """A shard that cannot be used; the message says what is wrong with it ("is truncated ...")."""


def _split_records(data: bytes | memoryview) -> list[memoryview]:
    """The records of a TFRecord file's bytes (framing: uint64 length, uint32 CRC, data, uint32 CRC).

    The per-record CRCs are not checked: the caller has already checked the whole file's SHA-256."""
    view, out, pos, n = memoryview(data), [], 0, len(data)
    while pos < n:
        if pos + 12 > n:
            raise ShardError(f"is truncated (a record header at byte {pos} is cut off)")
        (length,) = struct.unpack_from("<Q", view, pos)
        end = pos + 12 + length
        if end + 4 > n:
            raise ShardError(f"is truncated (record {len(out)} runs past the end of the file)")
        out.append(view[pos + 12 : end])
        pos = end + 4
    return out


def _tf_records(path: pathlib.Path) -> list[bytes]:
    """Records read by TensorFlow, which checks each record's CRC (shards without a SHA-256)."""
    import tensorflow as tf

    try:
        return list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    except tf.errors.OpError as err:
        raise ShardError(f"is damaged ({str(err.message).splitlines()[0]})") from None


def _shard_records(directory: pathlib.Path, shard_id: str, index: dict[str, Any]) -> list:
    """The shard's serialized records, checked against its index (size, SHA-256, record count)."""
    path = records_path(directory, shard_id)
    if "sha256" not in index:  # written before checksums were recorded
        records = _tf_records(path) if path.is_file() else None
    else:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as err:
            raise ShardError(f"cannot be read ({err.strerror})") from None
        if data is not None:
            want = index["bytes"]
            if len(data) < want:
                raise ShardError(f"is truncated ({len(data)} of {want} bytes)")
            if len(data) > want:
                raise ShardError(f"has {len(data)} bytes, its index says {want}")
            if hashlib.sha256(data).hexdigest() != index["sha256"]:
                raise ShardError("is damaged (its SHA-256 does not match its index)")
            records = _split_records(data)
        else:
            records = None
    if records is None:
        raise ShardError("is missing")
    if len(records) != len(index["keys"]):
        raise ShardError(f"holds {len(records)} records, its index lists {len(index['keys'])}")
    return records


def read_shard(directory: pathlib.Path, shard_id: str, index: dict[str, Any],
               positions: list[int] | None = None) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """The clips of a shard, checked: ``[(key, embeddings float32 [frames, dim], frame dB [frames] or None)]``.

    Args:
        directory: the namespace folder.
        shard_id: the shard.
        index: its index (from :func:`complete_shards`).
        positions: the records to decode (default: all).

    Raises:
        ShardError: the shard is missing, truncated, garbled or does not match its index.
    """
    records = _shard_records(pathlib.Path(directory), shard_id, index)
    keys = index["keys"]
    out = []
    for pos in range(len(records)) if positions is None else positions:
        try:
            key, emb, db = decode_record_full(records[pos])
        except Exception as err:  # noqa: BLE001 - any decoding failure means a bad record
            raise ShardError(f"has an unreadable record {pos} ({type(err).__name__})") from None
        if key != keys[pos]:
            raise ShardError(f"does not match its index (record {pos} is another clip)")
        out.append((key, emb, db))
    return out


def _verify_file(directory: pathlib.Path, shard_id: str, index: dict[str, Any]) -> str | None:
    """What is wrong with a shard's records file, checked in blocks (no decoding), or None."""
    path = records_path(directory, shard_id)
    if "sha256" not in index:  # written before checksums were recorded: TFRecord's CRCs, streamed
        import tensorflow as tf

        if not path.is_file():
            return "is missing"
        try:
            count = sum(1 for _ in tf.data.TFRecordDataset(str(path)))
        except tf.errors.OpError as err:
            return f"is damaged ({str(err.message).splitlines()[0]})"
        return None if count == len(index["keys"]) else f"holds {count} records, its index lists {len(index['keys'])}"
    try:
        size, digest = _file_digest(path)
    except FileNotFoundError:
        return "is missing"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if size != index["bytes"]:
        return f"is truncated ({size} of {index['bytes']} bytes)" if size < index["bytes"] else \
            f"has {size} bytes, its index says {index['bytes']}"
    return None if digest == index["sha256"] else "is damaged (its SHA-256 does not match its index)"


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


@dataclasses.dataclass
class ClipEmbeddings:
    """Embeddings of the clips of a manifest, in manifest order (bad clips left out).

    Attributes:
        embeddings: one float32 [frames, dim] array per clip.
        targets: int32 [clips] class index (from the manifest's label list).
        rows: int [clips] row of each clip in the manifest.
        folds: int [clips] fold (-1 when none).
        energies: one float32 [frames] array per clip, each frame's energy in dB (None for a clip cached
            without them: all its frames count as sound).
    """

    embeddings: list[np.ndarray]
    targets: np.ndarray
    rows: np.ndarray
    folds: np.ndarray
    energies: list[np.ndarray | None] | None = None

    def __len__(self) -> int:
        return len(self.embeddings)

    def gates(self) -> list[np.ndarray]:
        """Per clip, bool [frames]: the frames :func:`~tfaudio.signal.frame_energy.silence_gate` keeps
        (every frame of a clip without energies)."""
        from tfaudio.signal.frame_energy import silence_gate

        out = []
        for i, emb in enumerate(self.embeddings):
            db = self.energies[i] if self.energies is not None else None
            if db is None or len(db) != len(emb) or not len(emb):
                out.append(np.ones(len(emb), bool))
            else:
                out.append(np.asarray(silence_gate(np.asarray(db, np.float32)[None]))[0])
        return out

    def frames(self, *, gate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame-level arrays: (embeddings [N, dim], targets [N], clip index [N]) — one record per
        frame carrying its clip's label, as in the YAMNet transfer-learning tutorial; with ``gate``
        only the frames the silence gate keeps (silence does not carry its clip's label)."""
        keep = self.gates() if gate else [np.ones(len(e), bool) for e in self.embeddings]
        counts = np.array([int(k.sum()) for k in keep])
        x = np.concatenate([e[k] for e, k in zip(self.embeddings, keep)]).astype(np.float32, copy=False)
        return x, np.repeat(self.targets, counts), np.repeat(np.arange(len(self)), counts)

    def subset(self, mask: np.ndarray) -> ClipEmbeddings:
        idx = np.flatnonzero(mask)
        energies = [self.energies[i] for i in idx] if self.energies is not None else None
        return ClipEmbeddings([self.embeddings[i] for i in idx], self.targets[idx], self.rows[idx], self.folds[idx],
                              energies)


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
        from tfaudio.backbones.engines import choose_engine

        self.backbone = backbone
        #: The engine that extracts (:mod:`tfaudio.backbones.engines`; ``"auto"`` picks by the CPU).
        self.engine = choose_engine(engine, backbone=backbone)
        self.root = pathlib.Path(root) if root is not None else default_cache_dir() / "embeddings"
        self.pipeline = dataclasses.replace(pipeline or PipelineConfig(), sample_rate=backbone.contract.sample_rate)
        self.shard_size = shard_size
        self.batch_size = batch_size
        self._index: dict[str, tuple[str, int]] | None = None
        self._shards: dict[str, dict[str, Any]] = {}
        self._stamps: dict[str, tuple[int, int, int]] = {}
        # damaged shards this process could not remove (a read-only cache), by their index's stamp
        self._bad: dict[str, tuple[int, int, int]] = {}

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
        """key → (shard file, position), from every complete shard.

        A shard whose index is damaged or whose records file is gone is reported (a warning naming
        it) and removed, so its clips count as missing and are extracted again."""
        if self._index is not None and not refresh:
            return self._index
        for _ in range(3):  # a damaged shard that turns out to be replaced meanwhile: scan again
            shards, problems, stamps = _scan(self.directory)
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

    def _discard(self, shard_id: str, problem: str) -> bool:
        """Warns about a damaged shard and removes it; False when it was in fact replaced or removed by
        another process since it was scanned (then it is not damaged: scan again)."""
        d = self.directory
        try:
            now = _stamp(index_path(d, shard_id))
        except OSError:
            now = None
        if now is None or now != self._stamps.get(shard_id):
            return False
        n = len(self._shards.get(shard_id, {}).get("keys", []))
        what = f"its {n} clip(s) are" if n else "the clips it held are"
        warn(f"embedding cache: shard {records_path(d, shard_id)} {problem}; {what} extracted again.")
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
        import tensorflow as tf
        from tqdm.auto import tqdm

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
        data = AudioDataset(sub, dataclasses.replace(self.pipeline, on_error=on_error), features=features,
                            keep_audio=features is None, frame_energy=(c.frame_samples, c.hop_samples))
        done = 0
        from tfaudio.backbones.engines import engine_functions

        batch_frames, batch_frames_from_features = engine_functions(self.backbone, self.engine)
        bar = tqdm(total=len(sub), desc="embedding", unit="clip", disable=not progress)
        try:
            for batch in data.iterate(self.batch_size):
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
        skipped = unreadable + data.skipped
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
                        records = _shard_records(d, shard_id, index)
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

    def _repair(self, damaged: dict[str, str], manifest: Manifest, keys: list[str | None], *, extract: bool,
                on_error: str | None, progress: bool) -> None:
        """Removes damaged shards (with a warning each) and re-extracts their clips of ``manifest``."""
        lost: set[str] = set()
        for shard_id, problem in damaged.items():
            held = self._shards.get(shard_id, {}).get("keys", [])
            if self._discard(shard_id, problem):
                lost.update(held)
        if extract and lost:
            self._extract(manifest, keys, lost, on_error or self.pipeline.on_error, progress)

    def load(self, manifest: Manifest, *, extract: bool = True, on_error: str | None = None,
             progress: bool = True) -> ClipEmbeddings:
        """Embeddings of the manifest's clips in manifest order (extracting what is missing).

        A shard found damaged while reading is removed with a warning and its clips are extracted
        again (with ``extract=False`` they are left out)."""
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
            if not damaged:
                break
            self._repair(damaged, manifest, keys, extract=extract, on_error=on_error, progress=progress)
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
        from the shards, for data sets too large to load (labels joined from the manifest).

        The shards are checked against their checksums first (read in blocks, not kept in memory); a
        damaged one is removed with a warning and its clips of ``manifest`` are extracted again."""
        import tensorflow as tf

        keys = self.keys(manifest, on_error="skip")
        for _ in range(3):
            index = self.index(refresh=True)
            rows = {k: i for i, k in enumerate(keys) if k is not None and k in index}
            shards = sorted({index[k][0] for k in rows})
            damaged = {}
            for shard in shards:
                shard_id = shard[len("shard-") : -len(".tfrecord")]
                problem = _verify_file(self.directory, shard_id, self._shards[shard_id])
                if problem is not None:
                    damaged[shard_id] = problem
            if not damaged:
                break
            self._repair(damaged, manifest, keys, extract=True, on_error=None, progress=False)
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

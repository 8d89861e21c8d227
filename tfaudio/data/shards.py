"""The embedding cache's shard format: one clip per ``tf.train.Example`` record, shards of records
written atomically with an index (keys, size, SHA-256) written last, and the checks that make a reader
never trust a half-written or damaged shard. The local cache (:mod:`tfaudio.data.embedding_cache`) and
the Beam jobs (:mod:`tfaudio.beam.embed`) write and read shards only through these functions."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import struct
import tempfile
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.io.atomic import atomic_write_text, temp_path
from tfaudio.signal.frame_energy import SILENT_DB

__all__ = ["FORMAT_VERSION", "ShardWriter", "ShardError", "encode_record", "decode_record", "decode_record_full",
           "clip_frame_db", "index_path", "records_path", "complete_shards", "read_shard", "scan_shards",
           "shard_records", "stamp", "verify_shard", "ORPHAN_AFTER", "shard_bytes", "shard_index", "parse_index"]

FORMAT_VERSION = 1
#: Seconds after which records without an index (a writer killed between the two renames) are removed.
ORPHAN_AFTER = 3600.0


def encode_record(key: str, embeddings: np.ndarray, frame_db: np.ndarray | None = None) -> bytes:
    """One clip as a serialized tf.train.Example (the cache's record format): its embeddings
    ``[frames, dim]`` and, when given, each frame's energy in dB ``[frames]`` (the silence gate's input)."""

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
        index = shard_index(self.keys, self.num_frames, size, digest, extra)
        # no fsync: a shard that a power loss leaves short or empty fails its checksum and is redone
        atomic_write_text(index_path(self.directory, self.shard_id), json.dumps(index), sync=False, sweep=False)

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)


def shard_index(keys: Sequence[str], num_frames: Sequence[int], size: int, sha256: str,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A shard's index (serialised with ``json.dumps``): its keys, frame counts, and its records file's
    size and SHA-256, plus ``extra`` fields."""
    return {"format": FORMAT_VERSION, "keys": list(keys), "num_frames": [int(n) for n in num_frames],
            "bytes": int(size), "sha256": sha256, **(extra or {})}


def shard_bytes(records: Sequence[bytes]) -> bytes:
    """A shard's records file as bytes, for writers that do not write a local file (the Beam workers
    writing through Beam's ``FileSystems``): the bytes :class:`ShardWriter` writes for the same records.

    TensorFlow's TFRecord writer frames them (into a local temporary file, removed here): the framing's
    CRC32C has no other implementation among tfaudio's dependencies.
    """
    with tempfile.TemporaryDirectory(prefix="tfaudio-shard-") as tmp:
        path = os.path.join(tmp, "shard.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)
        with open(path, "rb") as f:
            return f.read()


def parse_index(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the index, None) of an index file's bytes, or (None, what is wrong with it)."""
    try:
        index = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "has a damaged index (not valid JSON)" if raw.strip() else "has an empty index"
    problem = _index_problem(index)
    return (None, problem) if problem else (index, None)


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


def stamp(path: pathlib.Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def scan_shards(directory: pathlib.Path):
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
                stamps[shard_id] = stamp(idx_file)
                problems[shard_id] = f"has an unreadable index ({err.strerror})"
            continue
        stamps[shard_id] = (st.st_ino, st.st_mtime_ns, st.st_size)
        index, problem = parse_index(raw)
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
    return scan_shards(directory)[0]


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


def record_offsets(path: pathlib.Path) -> list[tuple[int, int]]:
    """``(byte offset, length)`` of each record's data in a TFRecord file, from the record headers alone
    (12 bytes read per record): for reading single records in any order
    (:meth:`~tfaudio.data.embedding_cache.EmbeddingCache.clips_in_order`)."""
    out, pos = [], 0
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            header = f.read(12)
            if len(header) < 12:
                raise ShardError(f"is truncated (a record header at byte {pos} is cut off)")
            (length,) = struct.unpack_from("<Q", header)
            if pos + 16 + length > size:
                raise ShardError(f"is truncated (record {len(out)} runs past the end of the file)")
            out.append((pos + 12, length))
            pos += 16 + length
    return out


def _tf_records(path: pathlib.Path) -> list[bytes]:
    """Records read by TensorFlow, which checks each record's CRC (shards without a SHA-256)."""

    try:
        return list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    except tf.errors.OpError as err:
        raise ShardError(f"is damaged ({str(err.message).splitlines()[0]})") from None


def shard_records(directory: pathlib.Path, shard_id: str, index: dict[str, Any]) -> list:
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
    records = shard_records(pathlib.Path(directory), shard_id, index)
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


def verify_shard(directory: pathlib.Path, shard_id: str, index: dict[str, Any]) -> str | None:
    """What is wrong with a shard's records file, checked in blocks (no decoding), or None."""
    path = records_path(directory, shard_id)
    if "sha256" not in index:  # written before checksums were recorded: TFRecord's CRCs, streamed

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

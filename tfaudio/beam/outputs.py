"""Where ``tfaudio embed`` writes: a cache namespace folder that is local (today's code: the local cache's
:class:`~tfaudio.data.shards.ShardWriter` and atomic writes) or a ``scheme://`` path (``gs://bucket/cache``)
written and listed through Beam's ``FileSystems`` (:mod:`tfaudio.beam.files`).

Both write the same bytes: records framed by :func:`~tfaudio.data.shards.shard_bytes`, then the index
(:func:`~tfaudio.data.shards.shard_index`, last, so a shard without one is never trusted). Copying a
``gs://`` output folder to a local disk gives a cache that
:class:`~tfaudio.data.embedding_cache.EmbeddingCache` reads without extracting.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfaudio.beam import files
from tfaudio.data.shards import (
    ShardWriter,
    complete_shards,
    encode_record,
    parse_index,
    shard_bytes,
    shard_index,
)
from tfaudio.io.atomic import atomic_write_text

_INDEX, _RECORDS = ".index.json", ".tfrecord"


class LocalFolder:
    """A namespace folder on a local (or mounted) file system."""

    def __init__(self, directory: str | pathlib.Path):
        self.directory = pathlib.Path(directory)

    def path(self, name: str) -> pathlib.Path:
        return self.directory / name

    def make(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.path(name), text)

    def read_text(self, name: str) -> str | None:
        path = self.path(name)
        return path.read_text() if path.is_file() else None

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def complete_shards(self) -> dict[str, dict[str, Any]]:
        return complete_shards(self.directory)

    def write_shard(self, shard_id: str, clips: Sequence[tuple[str, tuple[np.ndarray, np.ndarray]]],
                    extra: dict[str, Any]) -> None:
        writer = ShardWriter(self.directory, shard_id)
        try:
            for key, (embeddings, frame_db) in clips:
                writer.write(key, embeddings, frame_db)
            writer.close(extra, keep_empty=True)
        except BaseException:
            writer.abort()
            raise


class BeamFolder:
    """A namespace folder at a ``scheme://`` path, through Beam's ``FileSystems``."""

    def __init__(self, directory: str):
        self.directory = str(directory)

    def path(self, name: str) -> str:
        return files.join(self.directory, name)

    def make(self) -> None:
        files.make_dirs(self.directory)

    def write_text(self, name: str, text: str) -> None:
        files.write_bytes(self.path(name), text.encode())

    def read_text(self, name: str) -> str | None:
        path = self.path(name)
        return files.read_bytes(path).decode() if files.exists(path) else None

    def remove(self, name: str) -> None:
        files.delete(self.path(name))

    def complete_shards(self) -> dict[str, dict[str, Any]]:
        """shard id → its index, for every shard with a readable index and a records file (as
        :func:`~tfaudio.data.shards.complete_shards`: the records are checked when the cache reads them)."""
        names = set(files.list_names(self.directory, "shard-*"))
        complete = {}
        for name in sorted(n for n in names if n.endswith(_INDEX)):
            shard_id = name[len("shard-") : -len(_INDEX)]
            if f"shard-{shard_id}{_RECORDS}" not in names:
                continue
            try:
                raw = files.read_bytes(self.path(name))
            except Exception:  # noqa: BLE001 - removed meanwhile or unreadable (each file system has its errors): redo
                continue
            index, problem = parse_index(raw)
            if problem is None:
                complete[shard_id] = index
        return complete

    def write_shard(self, shard_id: str, clips: Sequence[tuple[str, tuple[np.ndarray, np.ndarray]]],
                    extra: dict[str, Any]) -> None:
        """The records file, then the index (each under a temporary name, then renamed)."""
        data = shard_bytes([encode_record(key, emb, db) for key, (emb, db) in clips])
        index = shard_index([k for k, _ in clips], [int(emb.shape[0]) for _, (emb, _) in clips], len(data),
                            hashlib.sha256(data).hexdigest(), extra)
        files.write_bytes(self.path(f"shard-{shard_id}{_RECORDS}"), data)
        files.write_bytes(self.path(f"shard-{shard_id}{_INDEX}"), json.dumps(index).encode())


def output_folder(directory: str | pathlib.Path) -> LocalFolder | BeamFolder:
    """A :class:`BeamFolder` for a ``scheme://`` path, else a :class:`LocalFolder`."""
    return BeamFolder(str(directory)) if files.has_scheme(str(directory)) else LocalFolder(directory)

"""Files the Beam workers read and write through Beam's ``FileSystems``.

Reading: a path with a scheme (``gs://``, ``s3://``, ``hdfs://``, any registered Beam file system) is
copied to a local temporary file first, so the decoders (which need a local file) and the content hash
see the same bytes a local run sees. Plain local paths are used as they are.

Writing (:func:`write_bytes`): to a temporary name in the same folder, then renamed into place, as
Beam's own file sinks do, so a reader never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tfaudio.errors import AudioError, TfaudioError
from tfaudio.io.atomic import temp_path

_CHUNK = 1 << 20


def has_scheme(path: str) -> bool:
    return FileSystems.get_scheme(str(path)) is not None


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path with the content of ``path``: ``path`` itself when it is local, else a temporary copy
    (same suffix, for decoders that go by it) removed on exit.

    Raises:
        AudioError: the file system cannot open ``path`` (naming it and the file system's message).
    """
    if not has_scheme(path):
        yield path
        return

    suffix = os.path.splitext(path)[1]
    fd, local = tempfile.mkstemp(prefix="tfaudio-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                # compression_type: the file's bytes as stored (no gunzip of a .gz by its name)
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            except Exception as err:  # each file system raises its own error type
                raise AudioError(path, f"cannot be read through Beam's file systems ({err}).",
                                 "check the path and that the workers have the file system's extra "
                                 "(e.g. apache-beam[gcp]) and credentials.") from None
        yield local
    finally:
        with contextlib.suppress(OSError):
            os.unlink(local)


def check_filesystem(path: str, what: str = "output") -> None:
    """Raises a clear error when no Beam file system handles ``path``'s scheme (``gs://`` without
    ``apache-beam[gcp]``)."""

    try:
        FileSystems.get_filesystem(str(path))
    except ValueError:
        scheme = FileSystems.get_scheme(str(path))
        raise TfaudioError(
            f"the {what} {path} has the scheme {scheme}://, which no installed Beam file system handles. Fix: "
            "install the file system's extra on the driver and the workers (gs://: pip install 'apache-beam[gcp]'; "
            "s3://: 'apache-beam[aws]'), or give a local folder.") from None


def join(directory: str, *names: str) -> str:
    """``directory/name...`` as the directory's file system joins paths."""

    return FileSystems.join(str(directory), *names)


def exists(path: str) -> bool:
    return FileSystems.exists(str(path))


def make_dirs(path: str) -> None:
    """Creates folder ``path`` unless it exists (object stores have no folders: nothing to do there)."""

    if not FileSystems.exists(path):
        with contextlib.suppress(OSError):  # created meanwhile by another writer
            FileSystems.mkdirs(path)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path``: created under a temporary name in the same folder (tagged like the
    local temporaries, see :func:`tfaudio.io.atomic.temp_path`), then renamed into place."""

    folder, name = FileSystems.split(path)
    tmp = FileSystems.join(folder, temp_path(name).name)
    try:
        with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        FileSystems.rename([tmp], [path])
    except BaseException:
        with contextlib.suppress(Exception):  # each file system raises its own error type
            FileSystems.delete([tmp])
        raise


def delete(path: str) -> None:
    """Removes ``path`` if it exists."""

    if FileSystems.exists(path):
        with contextlib.suppress(OSError):
            FileSystems.delete([path])


def list_names(directory: str, pattern: str) -> list[str]:
    """The names (not paths) of the files directly in ``directory`` matching the glob ``pattern``."""

    found = FileSystems.match([join(directory, pattern)])[0].metadata_list
    return sorted({FileSystems.split(m.path)[1] for m in found})

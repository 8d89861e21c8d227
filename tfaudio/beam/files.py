"""Audio files the Beam workers read through Beam's ``FileSystems``: a path with a scheme (``gs://``,
``s3://``, ``hdfs://``, any registered Beam file system) is copied to a local temporary file first, so
the decoders (which need a local file) and the content hash see the same bytes a local run sees. Plain
local paths are used as they are."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from tfaudio.errors import AudioError

_CHUNK = 1 << 20


def has_scheme(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

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
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

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

"""Atomic writes, and the sweeping of temporaries that writers killed mid-write left behind.

Every writer in tfaudio (the embedding cache's shards, a saved classifier, a SavedModel or TFLite export)
writes to a hidden temporary next to its target and renames it into place, so a reader never sees a
half-written file. A process killed meanwhile (``kill -9``, out of memory, power loss) leaves its
temporary behind; the next write to the same place removes it.

A temporary's name says who writes it::

    .<target name>.<pid>@<host>.<random>.tmp     e.g. .saved_model.4711@build-7.3fa2c9e1.tmp

so a sweep removes exactly the temporaries whose writer is dead: on this host, a pid that no longer
runs (or that now belongs to a process started after the temporary was last written: a reused pid).
A live writer's temporary is never removed. When the owner cannot be checked (another host on a shared
file system, Windows, or a temporary named by an older tfaudio without pid) the temporary is removed
only once it has not been touched for ``max_age`` (a day by default).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

from tfaudio.errors import TfaudioError
from tfaudio.log import warn

__all__ = ["temp_path", "sweep_stale", "atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_directory",
           "STALE_AFTER"]

#: Seconds after which a temporary whose writer cannot be checked counts as abandoned.
STALE_AFTER = 24 * 3600.0
# A reused pid is told apart from the writer by its start time; this margin absorbs clock steps.
_START_MARGIN = 60.0

_TEMP = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[0-9a-f]{8}\.(?P<kind>tmp|old)$")
# Temporaries of tfaudio before pids were recorded: ".<target>.<8 or 32 hex>[.tfrecord].tmp" (and
# ".<target>.<8 hex>.old" of a SavedModel export). Their owner is unknown: removed by age only.
_LEGACY = re.compile(r"^\.(?P<target>.+?)\.(?:\d+\.)?(?:[0-9a-f]{32}|[0-9a-f]{8})(?:\.tfrecord)?\.(?P<kind>tmp|old)$")


def _host() -> str:
    name = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9-]", "-", name)[:40] or "host"


def temp_path(path: str | os.PathLike, kind: str = "tmp") -> pathlib.Path:
    """A fresh hidden temporary name next to ``path``, tagged with this process's pid and host.

    Args:
        path: the final file or folder.
        kind: ``"tmp"`` (the new content) or ``"old"`` (the previous content, moved aside while a
            folder is replaced; a sweep puts it back if its writer died before the new one was in place).
    """
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}@{_host()}.{uuid.uuid4().hex[:8]}.{kind}")


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc on Linux; None elsewhere."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22: start time in clock ticks since boot
        boot = next(float(line.split()[1]) for line in pathlib.Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(pid: int, last_written: float) -> bool:
    """Whether the process that wrote a temporary (last modified at ``last_written``) may still run."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, under another user
    except OSError:
        return True
    started = _start_time(pid)
    # a process started after the temporary was last written cannot be its writer: the pid was reused
    return started is None or started <= last_written + _START_MARGIN


def _is_stale(entry: pathlib.Path, match: re.Match, max_age: float) -> bool:
    try:
        mtime = entry.lstat().st_mtime
    except OSError:
        return False
    pid, host = match.groupdict().get("pid"), match.groupdict().get("host")
    if pid is not None and host == _host():
        return not _writer_alive(int(pid), mtime)
    return time.time() - mtime > max_age


def _remove(entry: pathlib.Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def sweep_stale(path: str | os.PathLike | None = None, *, directory: str | os.PathLike | None = None,
                max_age: float = STALE_AFTER) -> list[pathlib.Path]:
    """Removes the temporaries of dead writers: those of ``path``, or every one in ``directory``.

    A moved-aside previous version (``kind="old"``) whose writer died before the new version was
    renamed into place is put back instead (with a warning), so an interrupted replacement never
    loses the previous export. Temporaries of live writers are kept.

    Args:
        path: the final file or folder whose temporaries (hidden siblings) are swept.
        directory: sweep the temporaries of every target in this folder instead (the embedding cache).
        max_age: seconds without a write after which a temporary whose writer cannot be checked is
            removed.

    Returns:
        The temporaries removed or restored.
    """
    if (path is None) == (directory is None):
        raise TypeError("pass either path or directory")
    folder = pathlib.Path(directory) if directory is not None else pathlib.Path(path).parent
    target = None if path is None else pathlib.Path(path).name
    try:
        names = [n for n in os.listdir(folder) if n.startswith(".")]
    except OSError:
        return []
    done = []
    for name in sorted(names, key=lambda n: not n.endswith(".old")):  # restore before removing
        match = _TEMP.match(name) or _LEGACY.match(name)
        if match is None or (target is not None and match["target"] != target):
            continue
        entry = folder / name
        if not _is_stale(entry, match, max_age):
            continue
        final = folder / match["target"]
        if match["kind"] == "old" and not final.exists():
            try:
                os.replace(entry, final)
            except OSError:
                continue
            warn(f"{final} was being replaced by a process that died; its previous version "
                 f"was put back from {name}.")
        else:
            _remove(entry)
        done.append(entry)
    return done


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, sync: bool = True,
                 sweep: bool = True) -> None:
    """Calls ``write(f)`` on a temporary file next to ``path``, then renames it to ``path``.

    Args:
        path: the file to write (its folder must exist).
        write: writes the content to the binary file object it is given.
        sync: fsync before the rename (the content survives a power loss once the name is there).
        sweep: first remove ``path``'s temporaries left by dead writers (see :func:`sweep_stale`).
    """
    path = pathlib.Path(path)
    if sweep:
        sweep_stale(path)
    tmp = temp_path(path)
    try:
        # os.open with 0o666 respects the umask (mkstemp would leave the file readable by us only)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            write(f)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, sync: bool = True, sweep: bool = True) -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(path, lambda f: f.write(data), sync=sync, sweep=sweep)


def atomic_write_text(path: str | os.PathLike, text: str, *, sync: bool = True, sweep: bool = True) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), sync=sync, sweep=sweep)


def atomic_directory(path: str | os.PathLike, write: Callable[[pathlib.Path], Any], *,
                     overwrite: bool = False, merge: bool = False) -> pathlib.Path:
    """Runs ``write(tmp)`` on a fresh temporary folder next to ``path``, then renames it to ``path``:
    the one way tfaudio writes a folder (a saved classifier, a fine-tuned model, an export).

    An interrupted write leaves no half-written ``path`` (its temporary folder is removed, by this call
    or, after a kill, by the next write to ``path``, which puts a moved-aside previous version back).

    Args:
        path: the folder to write.
        write: fills the temporary folder it is given.
        overwrite: replace an existing ``path`` (else an error).
        merge: into an existing ``path``, move the written files one by one (each rename is atomic) and
            keep what else lives there (a model folder's reports and exports).

    Raises:
        TfaudioError: ``path`` exists and ``overwrite`` is False.
    """
    path = pathlib.Path(path)
    sweep_stale(path)  # what a write killed midway left (its previous version is put back)
    if path.exists() and not overwrite:
        raise TfaudioError(f"{path} already exists. Fix: pass overwrite=True (--overwrite) or choose another "
                           "destination.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = temp_path(path), temp_path(path, "old")
    try:
        tmp.mkdir()
        write(tmp)
        if merge and path.is_dir():
            for f in tmp.iterdir():
                os.replace(f, path / f.name)
            return path
        if path.exists():
            os.replace(path, old)  # a rename cannot replace a non-empty folder: move it aside first
        try:
            os.replace(tmp, path)
        except BaseException:
            if old.exists() and not path.exists():
                os.replace(old, path)  # put the previous export back
            raise
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()
    return path

"""Reads PyTorch state-dict checkpoints (``torch.save`` zip files) without PyTorch.

A ``.pt`` file written by ``torch.save`` (PyTorch >= 1.6) is a zip archive::

    <name>/data.pkl        the pickled object (here a state dict: {"features.0.0.weight": tensor, ...})
    <name>/data/<key>      one raw little-endian storage per key
    <name>/version         the format version (``3``)
    <name>/byteorder       ``little`` or ``big`` (newer files; absent means little)

The pickle names each tensor's storage through a *persistent id* ``("storage", <dtype class>, key,
location, numel)`` and rebuilds the tensor with ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)``. :func:`read_state_dict` resolves both itself, with numpy, and refuses every
other global the pickle asks for: a checkpoint cannot run code while it is read (plain
``pickle.load`` would import and call whatever the file names).
"""
from __future__ import annotations

import collections
import os
import pathlib
import pickle
import zipfile
from typing import Any

import numpy as np

from tfaudio.errors import WeightsNotFoundError

__all__ = ["read_state_dict"]

#: torch storage classes → numpy dtypes (bfloat16 is widened to float32 after reading).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """What ``torch.FloatStorage`` & co. unpickle to: only their dtype is needed."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """One storage's elements as a flat numpy array (read from ``data/<key>`` once)."""

    def __init__(self, values: np.ndarray, key: str):
        self.values = values
        self.key = key


def _rebuild_tensor_v2(storage: _Storage, offset: int, size, stride, requires_grad=False, hooks=None,
                       metadata=None) -> np.ndarray:
    """numpy version of ``torch._utils._rebuild_tensor_v2``: a strided view copied into its own array."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    flat = storage.values
    if len(size) != len(stride) or any(s < 0 for s in (*size, *stride)) or offset < 0:
        raise _CheckpointError(f"tensor on storage {storage.key} has an invalid layout (size {size}, "
                               f"stride {stride}, offset {offset}).")
    if 0 in size:
        return np.zeros(size, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise _CheckpointError(f"tensor of size {size} on storage {storage.key} reaches element {last}, but "
                               f"the storage holds {flat.size} (truncated or damaged file).")
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=tuple(s * flat.itemsize for s in stride), writeable=False)
    return np.array(view)  # contiguous copy


def _rebuild_parameter(data, requires_grad=False, hooks=None, *args):
    return data  # an nn.Parameter is just its tensor here


class _CheckpointError(Exception):
    """A problem inside the file (wrapped into a WeightsNotFoundError naming it)."""


#: The only globals a state-dict pickle may name.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._byteorder = "<" if byteorder == "little" else ">"
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _CheckpointError(f"the pickle asks for {module}.{name}, which a plain state dict of tensors "
                                   "does not need (refused: reading it would run code from the file).") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise _CheckpointError(f"unknown persistent id {pid!r:.80} (not a tensor storage).")
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in self._storages:
            entry = f"{self._prefix}data/{key}"
            try:
                raw = self._archive.read(entry)
            except KeyError:
                raise _CheckpointError(f"storage {entry} is missing from the archive.") from None
            dtype = storage_type.dtype
            if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 high bits into float32
                halves = np.frombuffer(raw, np.dtype(np.uint16).newbyteorder(self._byteorder))
                values = (halves.astype(np.uint32) << 16).view(np.float32)
            else:
                values = np.frombuffer(raw, np.dtype(dtype).newbyteorder(self._byteorder))
            if values.size < int(numel):
                raise _CheckpointError(f"storage {entry} holds {values.size} elements, the pickle says "
                                       f"{numel} (truncated or damaged file).")
            self._storages[key] = _Storage(values[: int(numel)].astype(values.dtype.newbyteorder("=")), key)
        return self._storages[key]


def _find_pickle(names: list[str]) -> str | None:
    candidates = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    return min(candidates, key=len) if candidates else None


def read_state_dict(path: str | os.PathLike, *, fix: str = "") -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save`` checkpoint as ``{name: numpy array}``, without PyTorch.

    Only plain state dicts (names → tensors, possibly under a ``"state_dict"`` or ``"model"`` key)
    are accepted; the unpickler resolves tensor storages itself and refuses any other global.

    Args:
        path: the ``.pt`` / ``.pth`` file (the zip format of PyTorch >= 1.6).
        fix: what the user should do when the file is unusable (appended to error messages, e.g.
            where to download the right file).

    Returns:
        ``{"features.0.0.weight": float32 [8, 1, 3, 3], ...}`` in the file's order; arrays in
        PyTorch's layout (OIHW convolutions, ``[out, in]`` linear weights).

    Raises:
        WeightsNotFoundError: the file is missing, not a zip (random bytes, a legacy pre-1.6 file),
            truncated, has no ``data.pkl``, or holds something other than a state dict.

    Example:
        >>> state = read_state_dict("mn04_as_mAP_432.pt")
        >>> state["classifier.5.weight"].shape
        (527, 512)
    """
    path = pathlib.Path(path)
    fix_text = f" Fix: {fix}" if fix else ""

    def fail(problem: str) -> WeightsNotFoundError:
        return WeightsNotFoundError(f"{path}: {problem}{fix_text}")

    if not path.is_file():
        raise fail("no such file.")
    if not zipfile.is_zipfile(path):
        raise fail("not a PyTorch checkpoint (not a zip archive: random bytes, a truncated download, or the "
                   "legacy pre-1.6 torch.save format).")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pkl = _find_pickle(names)
            if pkl is None:
                raise fail(f"a zip archive without data.pkl (holds {', '.join(names[:3]) or 'nothing'}"
                           f"{', ...' if len(names) > 3 else ''}): not a torch.save checkpoint.")
            prefix = pkl[: -len("data.pkl")]
            byteorder = "little"
            if f"{prefix}byteorder" in names:
                byteorder = archive.read(f"{prefix}byteorder").decode("ascii", "replace").strip() or "little"
            with archive.open(pkl) as f:
                obj = _RestrictedUnpickler(f, archive, prefix, byteorder).load()
    except WeightsNotFoundError:
        raise
    except _CheckpointError as err:
        raise fail(str(err)) from None
    except (zipfile.BadZipFile, EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError, KeyError,
            IndexError, AttributeError, RuntimeError) as err:  # damaged archive or pickle
        raise fail(f"cannot be read as a PyTorch checkpoint ({type(err).__name__}: {err}); the file is "
                   "truncated or damaged.") from None
    return _as_state_dict(obj, fail)


def _as_state_dict(obj: Any, fail) -> dict[str, np.ndarray]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise fail(f"holds a {type(obj).__name__}, not a state dict of tensors.")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise fail(f"holds entries that are not named tensors (e.g. {bad[0]!r}): not a plain state dict.")
    return dict(obj)

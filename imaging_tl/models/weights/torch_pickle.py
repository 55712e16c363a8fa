"""Read PyTorch's legacy (non-zip) ``.pth`` files without torch, refusing anything but tensors.

The legacy format is five pickles in a row (magic number, protocol version, sys info, the
object whose tensors refer to storages by persistent id, the list of storage keys), followed
by each storage in key order as an int64 little-endian element count and its raw
little-endian data. Unpickling arbitrary classes executes code, so the unpickler here only
resolves ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
``torch.*Storage`` (to inert stand-ins) and raises :class:`UnsafePickleError` for anything
else. No TensorFlow, no torch.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging_tl.models.weights.errors import WeightsFileError

__all__ = ["UnsafePickleError", "read_legacy_state_dict", "sha256_of"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch storage class name -> little-endian numpy dtype
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class UnsafePickleError(WeightsFileError):
    """The pickle names a class other than the few a tensor file needs.

    Examples
    --------
    >>> isinstance(UnsafePickleError("w.pth", "os.system"), WeightsFileError)
    True
    """


@dataclass(frozen=True)
class _StorageType:
    dtype: str


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: str


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafePickleError(
            self._path, f"refusing to unpickle {module}.{name}: only tensors are allowed"
        )

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(self._path, f"unexpected persistent id {pid!r:.80}")
        return _StorageRef(str(pid[2]), pid[1].dtype)


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"")
    >>> sha256_of(p)[:8]
    'e3b0c442'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_legacy_state_dict(path: str | Path, *, check_hash: bool = True) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict into numpy arrays, without torch.

    Parameters
    ----------
    path : str or Path
        A ``.pth`` file in PyTorch's legacy serialisation.
    check_hash : bool
        When the file name ends in ``-<hex>.pth`` (torch hub convention), require the file's
        sha256 to start with that hex.

    Returns
    -------
    dict
        Parameter name -> numpy array (a copy; the file is not kept open).

    Raises
    ------
    UnsafePickleError
        The pickle names any class other than OrderedDict, ``_rebuild_tensor_v2`` or a
        torch storage type.
    WeightsFileError
        Missing file, wrong hash, wrong magic number or truncated data.

    Examples
    --------
    >>> from imaging_tl.models.weights.lite import lite_weights_source
    >>> sd = read_legacy_state_dict(lite_weights_source("efficientnet_lite0"))
    >>> sd["_conv_stem.weight"].shape
    (32, 3, 3, 3)
    """
    path = Path(path)
    _check_file(path, check_hash)
    data = path.read_bytes()
    f = io.BytesIO(data)
    state, keys = _read_header(f, path)
    dtype_of = {r.storage.key: r.storage.dtype for r in state.values()
                if isinstance(r, _TensorRef)}
    storages = _read_storages(data, f.tell(), keys, dtype_of, path)
    return _tensors(state, storages, path)


def _check_file(path: Path, check_hash: bool) -> None:
    """Raise WeightsFileError for a missing file or one whose sha256 breaks its name."""
    if not path.is_file():
        raise WeightsFileError(path, "file not found")
    if check_hash:
        m = re.search(r"-([0-9a-f]{6,64})\.pth?$", path.name)
        if m and not sha256_of(path).startswith(m.group(1)):
            raise WeightsFileError(
                path, f"sha256 does not start with {m.group(1)} (damaged or replaced file)"
            )


def _read_header(f: io.BytesIO, path: Path) -> tuple[dict, list]:
    """The five leading pickles: check the magic number, return (state dict, storage keys)."""
    try:
        magic = _RestrictedUnpickler(f, path).load()
        if magic != _LEGACY_MAGIC:
            raise WeightsFileError(path, "not a legacy PyTorch file (bad magic number); "
                                         "zip-format .pth files are not supported")
        _RestrictedUnpickler(f, path).load()  # protocol version
        _RestrictedUnpickler(f, path).load()  # sys info (endianness, type sizes)
        state = _RestrictedUnpickler(f, path).load()
        keys = _RestrictedUnpickler(f, path).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, WeightsFileError):
            raise
        raise WeightsFileError(path, f"cannot parse pickle header ({exc})") from exc
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsFileError(path, "expected a state dict and a list of storage keys")
    return state, keys


def _read_storages(data: bytes, pos: int, keys: list, dtype_of: dict[str, str],
                   path: Path) -> dict[str, np.ndarray]:
    """Storage key -> flat array (a view of ``data``), each an int64 count then raw data."""
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        if pos + 8 > len(data):
            raise WeightsFileError(path, f"truncated before storage {key}")
        numel = int(np.frombuffer(data, "<i8", 1, pos)[0])
        pos += 8
        dtype = np.dtype(dtype_of.get(str(key), "<f4"))
        end = pos + numel * dtype.itemsize
        if end > len(data):
            raise WeightsFileError(path, f"truncated inside storage {key}")
        storages[str(key)] = np.frombuffer(data, dtype, numel, pos)
        pos = end
    return storages


def _tensors(state: dict, storages: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """Parameter name -> native-endian copy of its (offset, size, stride) view of a storage."""
    out: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise WeightsFileError(path, f"entry {name!r} is not a tensor")
        flat = storages[ref.storage.key]
        itemsize = flat.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(
            flat[ref.offset:],
            shape=ref.size,
            strides=tuple(s * itemsize for s in ref.stride),
        )
        out[str(name)] = np.array(arr, dtype=flat.dtype.newbyteorder("="))
    return out

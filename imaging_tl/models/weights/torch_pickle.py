"""Read PyTorch's legacy (non-zip) ``.pth`` files without torch, refusing anything but tensors.

The legacy format is five pickles in a row (magic number, protocol version, sys info, the
object whose tensors refer to storages by persistent id, the list of storage keys), followed
by each storage in key order as an int64 little-endian element count and its raw
little-endian data. Unpickling arbitrary classes executes code, so the unpickler here only
resolves ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
``torch.*Storage`` (to inert stand-ins) and raises :class:`UnsafePickleError` for anything
else. No TensorFlow, no torch.

Every tensor reference is checked before any array is made (:func:`check_tensor_ref`):
its storage exists and holds as many elements as declared, offset, sizes and strides are
non-negative integers, and the last element it reaches lies inside the storage. A
malformed file raises :class:`WeightsFileError` (or :class:`UnsafePickleError`), never a
bare ``KeyError`` or a read outside the file's data. The zip format (PyTorch >= 1.6) is
read by :mod:`imaging_tl.models.weights.torch_zip` with the same unpickler and checks.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import pickletools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.models.weights.errors import WeightsFileError
from imaging_tl.models.weights.integrity import sha256_of, verify_sha256

__all__ = ["RestrictedUnpickler", "StorageRef", "TensorRef", "UnsafePickleError",
           "check_tensor_ref", "check_weights_file", "read_legacy_state_dict",
           "sha256_of", "storage_itemsize", "storage_raw_dtype", "tensors_from_storages"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_BF16 = "bfloat16"  # numpy has none: read as uint16, widened to float32
_MAX_NDIM = 32
# protocol-5 out-of-band buffers: never in torch files (protocol 2), and CPython's C
# unpickler mishandles them on malformed input
_BUFFER_OPS = {"BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"}

# torch storage class name -> little-endian numpy dtype
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": _BF16,
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
class StorageRef:
    """A storage as the pickle declares it: key, element dtype and element count.

    Examples
    --------
    >>> StorageRef("0", "<f4", 6).numel
    6
    """

    key: str
    dtype: str
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor as the pickle declares it, not yet checked (see :func:`check_tensor_ref`).

    Examples
    --------
    >>> TensorRef(StorageRef("0", "<f4", 6), 0, (2, 3), (3, 1)).size
    (2, 3)
    """

    storage: Any
    offset: Any
    size: Any
    stride: Any


def storage_itemsize(dtype: str) -> int:
    """Bytes per element of a storage dtype (``"bfloat16"`` included).

    Examples
    --------
    >>> storage_itemsize("<f4"), storage_itemsize("bfloat16")
    (4, 2)
    """
    return 2 if dtype == _BF16 else np.dtype(dtype).itemsize


def storage_raw_dtype(dtype: str) -> np.dtype:
    """The numpy dtype a storage's bytes are read as (bfloat16 as ``<u2``).

    Examples
    --------
    >>> storage_raw_dtype("bfloat16")
    dtype('uint16')
    """
    return np.dtype("<u2") if dtype == _BF16 else np.dtype(dtype)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return TensorRef(storage, storage_offset, size, stride)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only what a tensor state dict needs.

    ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` (to a
    :class:`TensorRef`) and the ``torch.*Storage`` types; storages come as persistent ids
    ``('storage', type, key, location, numel[, view_metadata])`` and are recorded in
    :attr:`storages`. Anything else raises :class:`UnsafePickleError` before it is built.

    Examples
    --------
    >>> import io, pickle
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps({"a": 1}, 2)), "w.pth").load()
    {'a': 1}
    """

    def __init__(self, file: Any, path: str | Path) -> None:
        super().__init__(file)
        self._file = file
        self._path = path
        self.storages: dict[str, StorageRef] = {}

    def load(self) -> Any:
        """Check the opcodes (a well-formed pickle without out-of-band buffers), then load."""
        start = self._file.tell()
        try:
            for op, _, _ in pickletools.genops(self._file):
                if op.name in _BUFFER_OPS:
                    raise UnsafePickleError(self._path, f"pickle opcode {op.name} (out-of-band "
                                                        "buffers) is not used by torch files")
        except ValueError as exc:
            if isinstance(exc, WeightsFileError):
                raise
            raise WeightsFileError(self._path, f"malformed pickle ({exc!s:.80})") from exc
        self._file.seek(start)
        return super().load()

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
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(self._path, f"unexpected persistent id {pid!r:.80}")
        key, numel = pid[2], pid[4]
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise WeightsFileError(self._path, f"storage key {key!r:.40} is not a string")
        if not _is_count(numel):
            raise WeightsFileError(self._path, f"storage {key}: element count {numel!r:.40} "
                                               "is not a non-negative integer")
        if len(pid) == 6 and pid[5] is not None:
            raise WeightsFileError(self._path, f"storage {key} is a view of another storage "
                                               "(pre-1.0 PyTorch files are not supported)")
        ref = StorageRef(str(key), pid[1].dtype, int(numel))
        known = self.storages.setdefault(ref.key, ref)
        if known != ref:
            raise WeightsFileError(self._path, f"storage {ref.key} is declared twice, as "
                                               f"{known.dtype} x {known.numel} and "
                                               f"{ref.dtype} x {ref.numel}")
        return ref


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_weights_file(path: Path, check_hash: bool, sha256: str | None) -> None:
    """Raise WeightsFileError for a missing file or one whose sha256 breaks its name or pin.

    ``check_hash``: torch hub names end in ``-<hex prefix>.pth``; the file's full sha256
    must start with that prefix (the hub convention). ``sha256``: a pinned full digest,
    compared in full.

    Examples
    --------
    >>> try:
    ...     check_weights_file(Path("/nonexistent.pth"), True, None)
    ... except WeightsFileError as e:
    ...     print(e.reason)
    file not found
    """
    if not path.is_file():
        raise WeightsFileError(path, "file not found")
    if sha256 is not None:
        verify_sha256(path, sha256)
    if check_hash:
        m = re.search(r"-([0-9a-f]{6,64})\.pth?$", path.name)
        if m and not sha256_of(path).startswith(m.group(1)):
            raise WeightsFileError(
                path, f"sha256 does not start with {m.group(1)}, the prefix its torch hub "
                      "name carries (damaged or replaced file)")


def read_legacy_state_dict(path: str | Path, *, check_hash: bool = True,
                           sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict into numpy arrays, without torch.

    Parameters
    ----------
    path : str or Path
        A ``.pth`` file in PyTorch's legacy serialisation.
    check_hash : bool
        When the file name ends in ``-<hex>.pth`` (torch hub convention), require the file's
        sha256 to start with that hex.
    sha256 : str, optional
        The file's pinned full sha256 (64 hex digits), compared in full.

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
        Missing file, wrong hash, wrong magic number, a zip-format file (read those with
        :func:`imaging_tl.models.weights.torch_zip.read_torch_state_dict`), truncated data,
        or a tensor that does not fit its storage.

    Examples
    --------
    >>> from imaging_tl.models.weights.lite import lite_weights_source
    >>> sd = read_legacy_state_dict(lite_weights_source("efficientnet_lite0"))
    >>> sd["_conv_stem.weight"].shape
    (32, 3, 3, 3)
    """
    path = Path(path)
    check_weights_file(path, check_hash, sha256)
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        raise WeightsFileError(path, "a zip-format PyTorch checkpoint, not the legacy format: "
                                     "read it with read_torch_state_dict")
    f = io.BytesIO(data)
    state, keys, declared = _read_header(f, path)
    storages = _read_storages(data, f.tell(), keys, declared, path)
    return tensors_from_storages(state, storages, declared, path)


def _read_header(f: io.BytesIO, path: Path) -> tuple[Any, list, dict[str, StorageRef]]:
    """The five leading pickles: check magic and byte order, return (state, keys, storages)."""
    try:
        magic = RestrictedUnpickler(f, path).load()
        if magic != _LEGACY_MAGIC:
            raise WeightsFileError(path, "not a PyTorch file (bad magic number)")
        RestrictedUnpickler(f, path).load()  # protocol version
        sys_info = RestrictedUnpickler(f, path).load()
        if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
            raise WeightsFileError(path, "big-endian PyTorch file: not supported")
        unpickler = RestrictedUnpickler(f, path)
        state = unpickler.load()
        keys = RestrictedUnpickler(f, path).load()
    except WeightsFileError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, IndexError, KeyError,
            AttributeError, RecursionError, MemoryError, OverflowError) as exc:
        raise WeightsFileError(path, f"cannot parse pickle header ({type(exc).__name__}: "
                                     f"{exc!s:.80})") from exc
    if not isinstance(keys, list):
        raise WeightsFileError(path, "expected a list of storage keys after the state dict")
    return state, keys, unpickler.storages


def _read_storages(data: bytes, pos: int, keys: list, declared: dict[str, StorageRef],
                   path: Path) -> dict[str, np.ndarray]:
    """Storage key -> flat raw array (a view of ``data``), each an int64 count then data."""
    storages: dict[str, np.ndarray] = {}
    for raw_key in keys:
        key = str(raw_key)
        if key in storages:
            raise WeightsFileError(path, f"storage {key} is listed twice")
        ref = declared.get(key)
        if ref is None:
            raise WeightsFileError(path, f"storage {key} is listed but no tensor declares it")
        if pos + 8 > len(data):
            raise WeightsFileError(path, f"truncated before storage {key}")
        numel = int.from_bytes(data[pos:pos + 8], "little", signed=True)
        pos += 8
        if numel < 0:
            raise WeightsFileError(path, f"storage {key}: negative element count {numel}")
        end = pos + numel * storage_itemsize(ref.dtype)
        if end > len(data):
            raise WeightsFileError(path, f"truncated inside storage {key} ({numel} elements "
                                         f"declared, {len(data) - pos} bytes left)")
        storages[key] = np.frombuffer(data, storage_raw_dtype(ref.dtype), numel, pos)
        pos = end
    return storages


def _int_tuple(value: Any, what: str, name: str, path: Path) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or len(value) > _MAX_NDIM:
        raise WeightsFileError(path, f"tensor {name!r}: {what} {value!r:.60} is not a tuple "
                                     f"of at most {_MAX_NDIM} integers")
    if not all(_is_count(v) for v in value):
        raise WeightsFileError(path, f"tensor {name!r}: {what} {tuple(value)!r:.60} has a "
                                     "negative or non-integer entry")
    return tuple(int(v) for v in value)


def check_tensor_ref(name: str, ref: TensorRef, available: dict[str, int],
                     path: str | Path) -> tuple[StorageRef, int, tuple[int, ...], tuple[int, ...]]:
    """Check one tensor reference against the storages present; return its checked parts.

    Parameters
    ----------
    name : str
        The state-dict key (for messages).
    ref : TensorRef
        As unpickled.
    available : dict
        Storage key -> elements actually present in the file.
    path : str or Path
        The file (for messages).

    Returns
    -------
    tuple
        ``(storage, offset, size, stride)``, safe to view with ``as_strided``.

    Raises
    ------
    WeightsFileError
        Missing storage, element counts that disagree, negative or non-integer offset,
        size or stride, size and stride of different lengths, or an extent past the end.

    Examples
    --------
    >>> ref = TensorRef(StorageRef("0", "<f4", 6), 0, (2, 3), (3, 1))
    >>> check_tensor_ref("w", ref, {"0": 6}, "w.pth")[2]
    (2, 3)
    >>> try:
    ...     check_tensor_ref("w", TensorRef(ref.storage, 1, (2, 3), (3, 1)), {"0": 6}, "w.pth")
    ... except WeightsFileError as e:
    ...     print(e.reason)
    tensor 'w' reaches element 6 of storage 0, which has 6 elements
    """
    path = Path(path)
    st = ref.storage
    if not isinstance(st, StorageRef):
        raise WeightsFileError(path, f"tensor {name!r}: storage is not a storage reference")
    if st.key not in available:
        raise WeightsFileError(path, f"tensor {name!r} refers to storage {st.key}, which the "
                                     "file lacks (missing storage key)")
    present = available[st.key]
    if present != st.numel:
        raise WeightsFileError(path, f"storage {st.key} holds {present} elements but is "
                                     f"declared with {st.numel}")
    if not _is_count(ref.offset):
        raise WeightsFileError(path, f"tensor {name!r}: offset {ref.offset!r:.40} is not a "
                                     "non-negative integer")
    size = _int_tuple(ref.size, "size", name, path)
    stride = _int_tuple(ref.stride, "stride", name, path)
    if len(size) != len(stride):
        raise WeightsFileError(path, f"tensor {name!r}: size {size} and stride {stride} "
                                     "differ in length")
    offset = int(ref.offset)
    if offset > present:
        raise WeightsFileError(path, f"tensor {name!r}: offset {offset} is past the end of "
                                     f"storage {st.key} ({present} elements)")
    if math.prod(size) > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= present:
            raise WeightsFileError(path, f"tensor {name!r} reaches element {last} of storage "
                                         f"{st.key}, which has {present} elements")
    return st, offset, size, stride


def tensors_from_storages(state: Any, storages: dict[str, np.ndarray],
                          declared: dict[str, StorageRef],
                          path: str | Path) -> dict[str, np.ndarray]:
    """Parameter name -> native-endian copy of its checked (offset, size, stride) view.

    ``storages`` maps keys to flat raw arrays as read from the file; ``declared`` is what
    the pickle declared (:attr:`RestrictedUnpickler.storages`). Every reference passes
    :func:`check_tensor_ref` before any view is made.

    Examples
    --------
    >>> st = StorageRef("0", "<f4", 4)
    >>> out = tensors_from_storages({"w": TensorRef(st, 1, (3,), (1,))},
    ...                             {"0": np.arange(4, dtype="<f4")}, {"0": st}, "w.pth")
    >>> out["w"].tolist()
    [1.0, 2.0, 3.0]
    """
    path = Path(path)
    if not isinstance(state, dict):
        raise WeightsFileError(path, f"expected a state dict (parameter name -> tensor), got "
                                     f"{type(state).__name__}")
    available = {k: int(a.size) for k, a in storages.items() if k in declared}
    out: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, TensorRef):
            raise WeightsFileError(path, f"entry {name!r:.60} is not a tensor")
        st, offset, size, stride = check_tensor_ref(str(name), ref, available, path)
        flat = storages[st.key]
        if math.prod(size) == 0:
            arr = np.zeros(size, flat.dtype)
        else:
            arr = np.lib.stride_tricks.as_strided(
                flat[offset:], shape=size, strides=tuple(s * flat.itemsize for s in stride))
        out[str(name)] = _native_copy(arr, st.dtype)
    return out


def _native_copy(arr: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == _BF16:  # bfloat16 is the top half of a float32
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return np.array(arr, dtype=arr.dtype.newbyteorder("="))

"""Write PyTorch state-dict files (zip or legacy format) without torch.

The files have the exact layout ``torch.save(state_dict, path)`` produces (pickle
protocol 2, ``torch._utils._rebuild_tensor_v2`` tensors over ``torch.*Storage``
persistent ids), so they can stand in for real checkpoints: the tests write files of a
real checkpoint's layout with random values and load them through the real reader, and
:class:`TensorSpec` / :class:`StorageSpec` can describe deliberately malformed tensors
(offsets, sizes and strides that do not fit their storage) for the reader's checks.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["StorageSpec", "TensorSpec", "write_torch_file", "write_torch_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage", np.dtype("int16"): "ShortStorage",
    np.dtype("int8"): "CharStorage", np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


@dataclass(frozen=True)
class StorageSpec:
    """One storage: its torch type name, its raw data and the element count declared.

    ``numel`` defaults to ``data.size``; set it to declare another count. ``written=False``
    declares the storage in the pickle but leaves its data out of the file.

    Examples
    --------
    >>> StorageSpec("FloatStorage", np.zeros(3, np.float32)).count
    3
    """

    type_name: str
    data: np.ndarray
    numel: int | None = None
    written: bool = True

    @property
    def count(self) -> int:
        """The element count written into the persistent id."""
        return int(self.data.size if self.numel is None else self.numel)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: a view ``(offset, size, stride)`` of the storage named ``key``.

    Examples
    --------
    >>> TensorSpec("0", 0, (2, 2), (2, 1)).size
    (2, 2)
    """

    key: str
    offset: int
    size: tuple
    stride: tuple


class _Global:
    """A module-level name written into the pickle (torch's, without importing torch)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _TorchPickler(pickle._Pickler):  # the Python pickler: its dispatch table is open
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, storages: dict[str, StorageSpec], legacy: bool) -> None:
        super().__init__(file, protocol=2)
        self._storages, self._legacy = storages, legacy

    def persistent_id(self, obj):
        if isinstance(obj, _StorageKey):
            spec = self._storages[obj.key]
            pid = ("storage", _Global("torch", spec.type_name), obj.key, "cpu", spec.count)
            return (*pid, None) if self._legacy else pid
        return None

    def _save_global_name(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    def _save_tensor(self, obj: TensorSpec) -> None:
        self.save(_Global("torch._utils", "_rebuild_tensor_v2"))
        size, stride = (tuple(v) if isinstance(v, list) else v for v in (obj.size, obj.stride))
        self.save((_StorageKey(obj.key), obj.offset, size, stride, False,
                   collections.OrderedDict()))
        self.write(pickle.REDUCE)

    dispatch[_Global] = _save_global_name
    dispatch[TensorSpec] = _save_tensor


@dataclass(frozen=True)
class _StorageKey:
    key: str


def _pickle(obj: object, storages: dict[str, StorageSpec], legacy: bool) -> bytes:
    buf = io.BytesIO()
    _TorchPickler(buf, storages, legacy).dump(obj)
    return buf.getvalue()


def write_torch_file(path: str | Path, state: dict, storages: dict[str, StorageSpec],
                     fmt: str = "zip") -> Path:
    """Write ``state`` (name -> :class:`TensorSpec`, or any picklable object) as a torch file.

    Parameters
    ----------
    path : str or Path
        Output file.
    state : dict
        The pickled object; :class:`TensorSpec` values become tensors.
    storages : dict
        Storage key -> :class:`StorageSpec`.
    fmt : {"zip", "legacy"}
        ``torch.save``'s default zip format or the pre-1.6 legacy format.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "w.pth"
    >>> st = {"0": StorageSpec("FloatStorage", np.arange(4, dtype=np.float32))}
    >>> write_torch_file(p, {"w": TensorSpec("0", 0, (2, 2), (2, 1))}, st, "legacy").name
    'w.pth'
    """
    path = Path(path)
    body = _pickle(state, storages, legacy=(fmt == "legacy"))
    if fmt == "legacy":
        buf = io.BytesIO()
        for obj in (_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                          "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(obj, buf, protocol=2)
        buf.write(body)
        written = {k: v for k, v in storages.items() if v.written}
        pickle.dump(list(written), buf, protocol=2)
        for spec in written.values():
            buf.write(int(spec.data.size).to_bytes(8, "little", signed=True))
            buf.write(spec.data.astype(spec.data.dtype.newbyteorder("<")).tobytes())
        path.write_bytes(buf.getvalue())
        return path
    if fmt != "zip":
        raise ValueError(f"fmt={fmt!r}: expected 'zip' or 'legacy'")
    root = path.stem or "archive"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{root}/data.pkl", body)
        zf.writestr(f"{root}/byteorder", "little")
        for key, spec in storages.items():
            if spec.written:
                    zf.writestr(f"{root}/data/{key}",
                            spec.data.astype(spec.data.dtype.newbyteorder("<")).tobytes())
        zf.writestr(f"{root}/version", "3\n")
    return path


def write_torch_state_dict(path: str | Path, arrays: dict[str, np.ndarray],
                           fmt: str = "zip") -> Path:
    """Write numpy arrays as a torch state dict (one contiguous storage per tensor).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "w.pt"
    >>> write_torch_state_dict(p, {"w": np.ones((2, 3), np.float32)}).stat().st_size > 0
    True
    """
    state: dict[str, TensorSpec] = collections.OrderedDict()
    storages: dict[str, StorageSpec] = {}
    for i, (name, value) in enumerate(arrays.items()):
        arr = np.array(value, order="C")  # a copy; 0-d stays 0-d
        key = str(i)
        storages[key] = StorageSpec(_STORAGE_NAMES[arr.dtype.newbyteorder("=")],
                                    arr.reshape(-1))
        stride = tuple(s // arr.itemsize for s in arr.strides) if arr.ndim else ()
        state[name] = TensorSpec(key, 0, tuple(arr.shape), stride)
    return write_torch_file(path, state, storages, fmt)

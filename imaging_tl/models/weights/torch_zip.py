"""Read PyTorch's zip-format checkpoints (``torch.save`` since 1.6) without torch.

A zip checkpoint holds ``<archive>/data.pkl`` (the object, whose tensors refer to storages
by persistent id ``('storage', type, key, location, numel)``), one member
``<archive>/data/<key>`` of raw little-endian data per storage, and small ``version`` /
``byteorder`` members. ``data.pkl`` goes through the same
:class:`~imaging_tl.models.weights.torch_pickle.RestrictedUnpickler` as legacy files (no
class but OrderedDict, tensors and storage types is ever built, no pickle code runs), and
every tensor passes the same bounds checks before an array is made.

Only what a state dict needs is read: a checkpoint holding a whole pickled ``nn.Module``
(``torch.save(model)``) names the module's classes and is refused with
:class:`~imaging_tl.models.weights.torch_pickle.UnsafePickleError`; save
``model.state_dict()`` instead. PyTorch writes every member uncompressed; a compressed
member is refused (a decompression bomb could hide there).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.models.weights.errors import WeightsFileError
from imaging_tl.models.weights.torch_pickle import (
    RestrictedUnpickler,
    StorageRef,
    check_weights_file,
    read_legacy_state_dict,
    storage_itemsize,
    storage_raw_dtype,
    tensors_from_storages,
)

__all__ = ["read_torch_state_dict", "read_zip_state_dict"]

_MAX_PICKLE_BYTES = 64 << 20  # data.pkl of a state dict is a few hundred KB


def read_torch_state_dict(path: str | Path, *, check_hash: bool = True,
                          sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict in either format (zip or legacy), without torch.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` / ``.pth`` file written by ``torch.save(state_dict, path)``.
    check_hash : bool
        Torch hub names (``name-<hex>.pth``): the file's sha256 must start with that hex.
    sha256 : str, optional
        Pinned full sha256 of the file, compared in full.

    Raises
    ------
    UnsafePickleError
        The pickle names a class other than those a state dict needs (e.g. a whole
        pickled model).
    WeightsFileError
        Any other malformed, truncated or mismatching file (the message says what).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from imaging_tl.models.weights.torch_writer import write_torch_state_dict
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
    >>> _ = write_torch_state_dict(p, {"w": np.arange(3, dtype=np.float32)})
    >>> read_torch_state_dict(p)["w"].tolist()
    [0.0, 1.0, 2.0]
    """
    path = Path(path)
    check_weights_file(path, check_hash, sha256)
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        return read_zip_state_dict(path, check_hash=False)
    return read_legacy_state_dict(path, check_hash=False)


def read_zip_state_dict(path: str | Path, *, check_hash: bool = True,
                        sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a zip-format PyTorch state dict (see the module docstring), without torch.

    Raises
    ------
    UnsafePickleError, WeightsFileError
        As :func:`read_torch_state_dict`; also a zip without ``data.pkl``, a storage
        member that is missing, compressed or of the wrong length, or a big-endian file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from imaging_tl.models.weights.torch_writer import write_torch_state_dict
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
    >>> _ = write_torch_state_dict(p, {"b": np.ones((2, 2), np.float16)})
    >>> read_zip_state_dict(p)["b"].dtype
    dtype('float16')
    """
    path = Path(path)
    check_weights_file(path, check_hash, sha256)
    try:
        with zipfile.ZipFile(path) as zf:
            prefix = _archive_prefix(zf, path)
            state, declared = _load_pickle(zf, prefix + "data.pkl", path)
            storages = {ref.key: _read_storage(zf, prefix, ref, path)
                        for ref in declared.values()}
    except WeightsFileError:
        raise
    # zipfile's own errors for damaged archives: bad headers and names (ValueError),
    # encrypted members (RuntimeError), unknown versions or flags (NotImplementedError)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            RuntimeError, NotImplementedError) as exc:
        raise WeightsFileError(path, f"damaged zip archive ({type(exc).__name__}: "
                                     f"{exc!s:.80})") from exc
    return tensors_from_storages(state, storages, declared, path)


def _archive_prefix(zf: zipfile.ZipFile, path: Path) -> str:
    """The archive's top folder (``"archive/"`` or the saved file's stem), from data.pkl."""
    pickles = [n for n in zf.namelist() if n.endswith("data.pkl")
               and n.count("/") <= 1 and (n == "data.pkl" or n.endswith("/data.pkl"))]
    if len(pickles) != 1:
        found = "no data.pkl" if not pickles else f"{len(pickles)} data.pkl members"
        raise WeightsFileError(path, f"a zip file with {found}: not a PyTorch checkpoint")
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "byteorder" in zf.namelist():
        order = _read_member(zf, prefix + "byteorder", 16, path).strip()
        if order != b"little":
            raise WeightsFileError(path, f"byte order {order!r:.20}: only little-endian "
                                         "checkpoints are supported")
    return prefix


def _read_member(zf: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    """An uncompressed member of at most ``limit`` bytes."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise WeightsFileError(path, f"member {name} is compressed; PyTorch writes "
                                     "uncompressed members (refusing a possible zip bomb)")
    if info.file_size > limit:
        raise WeightsFileError(path, f"member {name} has {info.file_size} bytes, more than "
                                     f"the {limit} expected")
    return zf.read(name)


def _load_pickle(zf: zipfile.ZipFile, name: str,
                 path: Path) -> tuple[Any, dict[str, StorageRef]]:
    data = _read_member(zf, name, _MAX_PICKLE_BYTES, path)
    unpickler = RestrictedUnpickler(io.BytesIO(data), path)
    try:
        state = unpickler.load()
    except WeightsFileError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, IndexError, KeyError,
            AttributeError, RecursionError, MemoryError, OverflowError) as exc:
        raise WeightsFileError(path, f"cannot parse {name} ({type(exc).__name__}: "
                                     f"{exc!s:.80})") from exc
    return state, unpickler.storages


def _read_storage(zf: zipfile.ZipFile, prefix: str, ref: StorageRef, path: Path) -> np.ndarray:
    """The flat raw array of one storage, its length checked against the declared count."""
    name = f"{prefix}data/{ref.key}"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise WeightsFileError(path, f"storage {ref.key} is declared but the archive lacks "
                                     f"{name} (missing storage key)") from None
    itemsize = storage_itemsize(ref.dtype)
    if info.file_size != ref.numel * itemsize:
        raise WeightsFileError(path, f"storage {ref.key} has {info.file_size} bytes, its "
                                     f"declared {ref.numel} elements need "
                                     f"{ref.numel * itemsize} (truncated or altered)")
    data = _read_member(zf, name, ref.numel * itemsize, path)
    return np.frombuffer(data, storage_raw_dtype(ref.dtype), ref.numel)

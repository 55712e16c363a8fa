"""On-disk cache of preprocessed arrays that is never stale.

An entry is keyed by

- the input file's content: size + modification time + a hash of sampled blocks (default),
  or a hash of the whole file (``hash="full"``);
- the frame index;
- the pipeline's ``fingerprint()`` and the cache format / library version (a loader fix
  must not reuse arrays decoded by the old loader).

so changing a stage parameter or an input file never hits an old entry. Layout::

    <root>/CACHEDIR.TAG                       marks the folder as a cache (clear() checks it)
    <root>/<namespace>/pipeline.json          what the namespace holds (pipeline config)
    <root>/<namespace>/e/<k[:2]>/<k>.json     entry metadata (shape, offset, hashes, provenance)
    <root>/<namespace>/e/<k[:2]>/<k>.npy      the array: float32, C order, little endian
                                              (grey repeated to RGB is stored once: "tiled")
    <root>/<namespace>/quarantine/<k>.json    a file that failed, with the reason
    <root>/<namespace>/index-<hash>.json      look-up index (a hint, never the truth): input
                                              path -> stat + file key, entry key -> metadata

The entry files are the truth and stay safe to write from many processes at once; the index
only spares a warm run the hashing of inputs and one JSON read per sample. An input's file
key is reused only when its device, inode, size, mtime *and ctime* are unchanged (ctime
cannot be set back by a program, so a rewrite with the old mtime restored is still seen) and
its last change was at least a second older than the hash (a change within the file
system's timestamp granularity cannot hide); an indexed entry is used only when its array
file is there with the recorded size. Lost index updates (two runs saving at once) only
cost speed.

Writes are atomic: each file is written under a temporary name in the same folder and moved
into place with :func:`os.replace`; the ``.npy`` is moved last and is the commit point, and a
reader checks its size against the metadata. A run killed half-way leaves at most a ``*.tmp``
file that no reader opens (``info()`` counts them, ``clear()`` removes them).
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from imaging_tl._version import __version__
from imaging_tl.data.hashing import content_hash
from imaging_tl.io.pseudonyms import cache_home

__all__ = [
    "CACHE_FORMAT", "ArrayCache", "CacheInfo", "CacheIntegrityError", "default_cache_dir",
    "file_key", "file_mode", "load_entry", "open_entry",
]

CACHE_FORMAT = 4  # 3: content_hash records are XXH3-128 (were SHA-256); 4: entry checksums
_SAMPLE = 16 * 1024  # 8 blocks of 16 KiB: the header and 7 points of the pixel data
_SAMPLE_COUNT = 8
_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# imaging_tl array cache\n"


class CacheIntegrityError(OSError):
    """A cache entry whose array no longer matches the checksum recorded when it was written
    (the message names the entry file and the cache)."""


def file_mode(directory: bool = False) -> int:
    """The mode of files (``0o666``) or folders (``0o777``) the package writes, less the
    process umask: 0644 / 0755 with the usual umask 022 (the pseudonym key alone is 0600).

    Examples
    --------
    >>> oct(file_mode() & 0o600)
    '0o600'
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def default_cache_dir() -> Path:
    """``$IMAGING_TL_CACHE_DIR``, else ``$XDG_CACHE_HOME/imaging_tl``, else ``~/.cache/...``.

    The one home of every cache of the package: preprocessed arrays, converted weights,
    engine exports.

    Examples
    --------
    >>> default_cache_dir().name
    'imaging_tl'
    """
    return cache_home()


def file_key(path: str | os.PathLike, hash: Literal["sampled", "full"] = "sampled") -> str:
    """A key that changes whenever the file's content changes.

    ``"sampled"``: size, mtime (ns) and a SHA-256 of the first and last 16 KiB and 6
    blocks in between (the whole file up to 128 KiB): reads 128 KiB at most, catches any
    rewrite (the mtime moves) and content swapped in with the old mtime restored, unless it
    differs only between samples.
    ``"full"``: a SHA-256 of the whole file (pure content: copies share entries).

    Parameters
    ----------
    path : path
        The input file.
    hash : {"sampled", "full"}
        Which key.

    Returns
    -------
    str
        Hex digest.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"abc"); f.flush(); k1 = file_key(f.name)
    ...     _ = f.write(b"d"); f.flush(); k2 = file_key(f.name)
    >>> k1 != k2
    True
    """
    # sha256: the fastest of hashlib's strong hashes on CPUs with SHA extensions.
    h = hashlib.sha256()
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if hash == "full":
            h.update(b"full")
            while chunk := f.read(1 << 20):
                h.update(chunk)
            return h.hexdigest()[:32]
        if hash != "sampled":
            raise ValueError(f"hash={hash!r}: expected 'sampled' or 'full'")
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        if st.st_size <= _SAMPLE_COUNT * _SAMPLE:
            h.update(f.read())
        else:
            for off in np.linspace(0, st.st_size - _SAMPLE, _SAMPLE_COUNT).astype(np.int64):
                f.seek(int(off))
                h.update(f.read(_SAMPLE))
    return h.hexdigest()[:32]


@dataclass
class CacheInfo:
    """What a cache folder holds.

    Attributes
    ----------
    root : pathlib.Path
        The cache folder.
    namespaces : list of dict
        Per pipeline: ``name``, ``entries``, ``bytes``, ``quarantined``, ``pipeline``.
    temporary : int
        Left-over ``*.tmp`` files of interrupted writes (never read).

    Examples
    --------
    >>> print(CacheInfo(Path("/tmp/c")).format())
    cache /tmp/c: 0 entries, 0.0 MB, 0 quarantined, 0 pipeline(s)
    """

    root: Path
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    temporary: int = 0

    @property
    def entries(self) -> int:
        """Number of cached arrays."""
        return sum(n["entries"] for n in self.namespaces)

    @property
    def bytes(self) -> int:
        """Bytes on disk."""
        return sum(n["bytes"] for n in self.namespaces)

    def format(self) -> str:
        """Human-readable summary, one line per pipeline."""
        q = sum(n["quarantined"] for n in self.namespaces)
        lines = [f"cache {self.root}: {self.entries} entries, {self.bytes / 1e6:.1f} MB, "
                 f"{q} quarantined, {len(self.namespaces)} pipeline(s)"
                 + (f", {self.temporary} interrupted write(s)" if self.temporary else "")]
        for n in self.namespaces:
            lines.append(f"  {n['name']}: {n['entries']} entries, {n['bytes'] / 1e6:.1f} MB, "
                         f"{n['quarantined']} quarantined; {n['pipeline']}")
        return "\n".join(lines)


def _write_atomic(path: Path, write) -> None:
    """Write via a temporary file in the same folder, then rename (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.fchmod(fd, file_mode())  # mkstemp makes 0600: cache files get the usual mode
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_RACY_NS = 1_000_000_000  # a file changed this recently is hashed again next time


class ArrayCache:
    """Preprocessed arrays on disk, keyed by file content and pipeline fingerprint.

    Parameters
    ----------
    root : path, optional
        Cache folder (default :func:`default_cache_dir`).
    hash : {"sampled", "full"}
        How input files are keyed (see :func:`file_key`).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> cache = ArrayCache(tempfile.mkdtemp())
    >>> ns = cache.namespace("fp123")
    >>> k = cache.entry_key("filekey", None, ns)
    >>> cache.put(ns, k, np.ones((2, 2), np.float32), {"path": "x.dcm"})["shape"]
    [2, 2]
    >>> cache.load(ns, k).sum()
    np.float32(4.0)
    """

    def __init__(
        self, root: str | os.PathLike | None = None, *, hash: Literal["sampled", "full"] = "sampled"
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.hash = hash
        self._index: dict[str, dict[str, dict]] = {}  # namespace -> {"files", "entries"}
        self._dirty: set[str] = set()
        self._dropped: dict[str, set[str]] = {}  # stale entries, kept out of the next save
        self.evicted: list[str] = []  # entries that failed their checksum, and where

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the folder, not the parent's look-up index.
        return {**self.__dict__, "_index": {}, "_dirty": set(), "_dropped": {}, "evicted": []}

    def __repr__(self) -> str:
        return f"ArrayCache({str(self.root)!r}, hash={self.hash!r})"

    # -- keys ------------------------------------------------------------------------------
    def namespace(self, fingerprint: str, pipeline_config: Any = None) -> str:
        """Folder name for a pipeline fingerprint (created, with its ``pipeline.json``)."""
        ns = hashlib.blake2b(
            f"{CACHE_FORMAT}|{__version__}|{fingerprint}".encode(), digest_size=10
        ).hexdigest()
        d = self.root / ns
        if not (d / "pipeline.json").exists():
            self._ensure_root()
            desc = {"fingerprint": fingerprint, "format": CACHE_FORMAT,
                    "imaging_tl": __version__, "pipeline": pipeline_config}
            payload = json.dumps(desc, default=str, indent=1).encode()
            _write_atomic(d / "pipeline.json", lambda f: f.write(payload))
        return ns

    def file_key(self, path: str | os.PathLike, namespace: str | None = None) -> str:
        """The content key of an input file (see :func:`file_key`).

        With ``namespace``, a key recorded in that namespace's index is reused while the
        file's stat (device, inode, size, mtime, ctime) is unchanged; otherwise the file is
        hashed and the key recorded (saved by :meth:`save_index`).
        """
        if namespace is None:
            return file_key(path, self.hash)
        files = self._load_index(namespace)["files"]
        name = os.fspath(path)
        st = os.stat(name)
        sig = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        rec = files.get(name)
        if rec is not None and rec[:5] == sig:
            return rec[5]
        now = time.time_ns()
        key = file_key(name, self.hash)
        if max(st.st_mtime_ns, st.st_ctime_ns) < now - _RACY_NS:
            files[name] = [*sig, key]
            self._dirty.add(namespace)
        return key

    # -- look-up index ---------------------------------------------------------------------
    def _index_path(self, namespace: str) -> Path:
        return self.root / namespace / f"index-{self.hash}.json"

    def _load_index(self, namespace: str) -> dict[str, dict]:
        idx = self._index.get(namespace)
        if idx is None:
            idx = self._index[namespace] = self._read_index(namespace)
        return idx

    def _read_index(self, namespace: str) -> dict[str, dict]:
        try:
            idx = json.loads(self._index_path(namespace).read_bytes())
            if idx.get("format") == CACHE_FORMAT:
                return {"files": dict(idx["files"]), "entries": dict(idx["entries"])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # missing or damaged: an index is only a hint
        return {"files": {}, "entries": {}}

    def _drop(self, namespace: str, key: str) -> None:
        self._index[namespace]["entries"].pop(key, None)
        self._dropped.setdefault(namespace, set()).add(key)
        self._dirty.add(namespace)

    def remember(self, namespace: str, key: str, meta: dict[str, Any]) -> None:
        """Record an entry's metadata in the namespace's look-up index (see :meth:`put`)."""
        self._load_index(namespace)["entries"][key] = {
            k: v for k, v in meta.items() if k != "file"}
        self._dirty.add(namespace)

    def save_index(self, namespace: str) -> None:
        """Write the look-up index of ``namespace`` (merged with what is on disk), if changed."""
        if namespace not in self._dirty:
            return
        mine = self._index[namespace]
        disk = self._read_index(namespace)
        entries = {**disk["entries"], **mine["entries"]}
        for key in self._dropped.pop(namespace, ()):
            if key not in mine["entries"]:
                entries.pop(key, None)
        merged = {"format": CACHE_FORMAT, "files": {**disk["files"], **mine["files"]},
                  "entries": entries}
        payload = json.dumps(merged, default=str, separators=(",", ":")).encode()
        try:
            _write_atomic(self._index_path(namespace), lambda f: f.write(payload))
        except OSError:
            return  # a read-only cache still serves hits; the index is only a hint
        self._dirty.discard(namespace)

    @staticmethod
    def entry_key(file_key: str, frame: int | None, namespace: str) -> str:
        """Key of one (file content, frame, pipeline) entry."""
        return hashlib.blake2b(f"{file_key}|{frame}|{namespace}".encode(),
                               digest_size=16).hexdigest()

    def _entry(self, namespace: str, key: str) -> Path:
        return self.root / namespace / "e" / key[:2] / key

    def _ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tag = self.root / "CACHEDIR.TAG"
        if not tag.exists():
            _write_atomic(tag, lambda f: f.write(_TAG.encode()))

    # -- entries ---------------------------------------------------------------------------
    def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """Metadata of a complete entry (with ``"file"``, the ``.npy`` path), or None.

        An entry whose array file is missing or has the wrong size (a write that did not
        finish, a damaged disk) is a miss and is removed. So is one whose array no longer
        matches the XXH3 checksum recorded when it was written (corrupted in place, same
        size): it is evicted, reported on stderr and in :attr:`evicted`, and the caller
        computes it again.
        """
        base = self._entry(namespace, key)
        idx = self._index.get(namespace)
        meta = idx["entries"].get(key) if idx is not None else None
        if meta is not None:
            try:
                if os.stat(base.with_suffix(".npy")).st_size == meta.get("file_bytes"):
                    return self._verified(namespace, key, {**meta,
                                                           "file": str(base.with_suffix(".npy"))})
            except OSError:
                pass
            self._drop(namespace, key)  # stale hint: ask the entry files
        try:
            meta = json.loads(base.with_suffix(".json").read_bytes())
            size = os.stat(base.with_suffix(".npy")).st_size
        except (OSError, ValueError):
            return None
        if size != meta.get("file_bytes"):
            self.discard(namespace, key)
            return None
        meta["file"] = str(base.with_suffix(".npy"))
        meta = self._verified(namespace, key, meta)
        if meta is not None and idx is not None:
            self.remember(namespace, key, {k: v for k, v in meta.items() if k != "file"})
        return meta

    def _verified(self, namespace: str, key: str,
                  meta: dict[str, Any]) -> dict[str, Any] | None:
        """``meta`` when its array matches its checksum; else the entry is evicted."""
        try:
            with open_entry(meta["file"]) as f:  # a FIFO in its place: evicted, not a hang
                ok = _array_checksum(np.load(f, allow_pickle=False)) == meta.get("checksum")
        except (OSError, ValueError, EOFError):  # CacheIntegrityError is an OSError
            ok = False
        if ok:
            return meta
        self.discard(namespace, key)
        src = meta.get("path") or meta.get("source") or "?"
        why = (f"cache entry {meta['file']} (of {src}) failed its checksum in cache "
               f"{self.root}: evicted, it is computed again")
        self.evicted.append(why)
        import sys

        print(f"imaging-tl: {why}", file=sys.stderr)
        return None

    def put(
        self, namespace: str, key: str, array: np.ndarray, meta: dict[str, Any]
    ) -> dict[str, Any]:
        """Store an array (as float32) with its metadata; returns the metadata written."""
        a = np.ascontiguousarray(array, dtype="<f4")
        shape = list(a.shape)
        tiled = 0
        if a.ndim == 3 and a.shape[-1] > 1 and all(
            np.array_equal(a[..., 0], a[..., c]) for c in range(1, a.shape[-1])
        ):
            # Grey repeated to RGB (ToRGB): store one channel, a third of the disk and reads.
            tiled = a.shape[-1]
            a = np.ascontiguousarray(a[..., :1])
        base = self._entry(namespace, key)
        base.parent.mkdir(parents=True, exist_ok=True)
        header = _npy_header_len(a)
        meta = {**meta, "shape": shape, "tiled": tiled, "offset": header,
                "file_bytes": header + a.nbytes, "checksum": _array_checksum(a)}
        payload = json.dumps(meta, default=str).encode()
        _write_atomic(base.with_suffix(".json"), lambda f: f.write(payload))
        # The array goes last: its rename commits the entry.
        _write_atomic(base.with_suffix(".npy"), lambda f: np.lib.format.write_array(
            f, a, version=(1, 0), allow_pickle=False))
        meta["file"] = str(base.with_suffix(".npy"))
        return meta

    def load(self, namespace: str, key: str) -> np.ndarray:
        """The cached array, checked against its checksum (raises KeyError on a miss)."""
        meta = self.get(namespace, key)
        if meta is None:
            raise KeyError(key)
        return load_entry(meta["file"], meta.get("tiled", 0), meta.get("checksum"))

    def discard(self, namespace: str, key: str) -> None:
        """Remove an entry (both files), ignoring what is already gone."""
        base = self._entry(namespace, key)
        if namespace in self._index:
            self._drop(namespace, key)
        for suffix in (".npy", ".json"):
            try:
                os.unlink(base.with_suffix(suffix))
            except OSError:
                pass

    # -- quarantine ------------------------------------------------------------------------
    def quarantine(self, namespace: str, key: str, record: dict[str, Any]) -> None:
        """Remember that an input failed (``record`` holds path, frame, reason)."""
        payload = json.dumps(record, default=str).encode()
        _write_atomic(self.root / namespace / "quarantine" / f"{key}.json",
                      lambda f: f.write(payload))

    def quarantined(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The quarantine record of an input, or None."""
        try:
            return json.loads((self.root / namespace / "quarantine" / f"{key}.json").read_bytes())
        except (OSError, ValueError):
            return None

    def release(self, namespace: str, key: str) -> None:
        """Forget a quarantine record (to retry the file)."""
        try:
            os.unlink(self.root / namespace / "quarantine" / f"{key}.json")
        except OSError:
            pass

    # -- housekeeping ----------------------------------------------------------------------
    def info(self) -> CacheInfo:
        """Entries, bytes and quarantined files per pipeline, and left-over temporaries."""
        out = CacheInfo(self.root)
        if not self.root.is_dir():
            return out
        for d in sorted(p for p in self.root.iterdir() if (p / "pipeline.json").is_file()):
            entries = nbytes = temps = 0
            for dirpath, _, files in os.walk(d / "e"):
                for name in files:
                    if name.endswith(".tmp"):
                        temps += 1
                    elif name.endswith(".npy"):
                        entries += 1
                    nbytes += os.path.getsize(os.path.join(dirpath, name))
            q = len(list((d / "quarantine").glob("*.json"))) if (d / "quarantine").is_dir() else 0
            try:
                desc = json.loads((d / "pipeline.json").read_text())
                pipe = desc.get("pipeline") or desc.get("fingerprint")
            except (OSError, ValueError):
                pipe = "?"
            text = json.dumps(pipe, default=str) if not isinstance(pipe, str) else pipe
            out.namespaces.append({"name": d.name, "entries": entries, "bytes": nbytes,
                                   "quarantined": q, "pipeline": text[:200]})
            out.temporary += temps
        return out

    def clear(self, *, namespace: str | None = None, quarantine_only: bool = False) -> int:
        """Delete cached entries (all pipelines, or one); returns the number of arrays removed.

        Refuses a folder that is not an imaging_tl cache (no ``CACHEDIR.TAG`` of ours), so a
        mistyped ``--dir`` cannot delete unrelated files.
        """
        if not self.root.exists():
            return 0
        tag = self.root / "CACHEDIR.TAG"
        if not tag.is_file() or "imaging_tl" not in tag.read_text(errors="replace"):
            raise ValueError(f"{self.root}: not an imaging_tl cache folder (no CACHEDIR.TAG "
                             "written by imaging_tl); refusing to delete anything")
        removed = 0
        if not quarantine_only:
            for ns in [namespace] if namespace else list(self._index):
                self._index.pop(ns, None)
                self._dropped.pop(ns, None)
                self._dirty.discard(ns)
        dirs = [self.root / namespace] if namespace else [
            p for p in self.root.iterdir() if (p / "pipeline.json").is_file()]
        for d in dirs:
            if quarantine_only:
                shutil.rmtree(d / "quarantine", ignore_errors=True)
                continue
            removed += sum(1 for _ in (d / "e").rglob("*.npy")) if (d / "e").is_dir() else 0
            shutil.rmtree(d, ignore_errors=True)
        return removed


def _array_checksum(a: np.ndarray) -> str:
    """XXH3-128 of a stored array's values and shape (:func:`content_hash`)."""
    return content_hash(a)


def open_entry(file: str | os.PathLike) -> Any:
    """Open a cache entry for binary reading; a FIFO, device or folder in its place is a
    :class:`CacheIntegrityError` naming it, never a hang.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "entry.npy")
    >>> np.save(path, np.zeros(3, np.float32))
    >>> with open_entry(path) as f:
    ...     np.load(f).shape
    (3,)
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever (no
    # effect on a regular file)
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CacheIntegrityError(f"{file}: cache entry is not a regular file; run "
                                  "`imaging-tl cache clear` or run again")
    return os.fdopen(fd, "rb")


def load_entry(file: str | os.PathLike, tiled: int = 0,
               checksum: str | None = None) -> np.ndarray:
    """Read a cached array; ``tiled`` channels stored once are repeated back.

    With ``checksum`` (the entry's recorded XXH3), a mismatch raises
    :class:`CacheIntegrityError` naming the file.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "entry.npy")
    >>> np.save(path, np.zeros((8, 8, 1), np.float32))
    >>> load_entry(path, tiled=3).shape
    (8, 8, 3)
    """
    try:
        with open_entry(file) as f:
            a = np.load(f, allow_pickle=False)
    except ValueError as exc:
        raise CacheIntegrityError(f"{file}: cache entry unreadable ({exc}); run "
                                  "`imaging-tl cache clear` or run again") from None
    if checksum is not None and _array_checksum(a) != checksum:
        raise CacheIntegrityError(f"{file}: cache entry changed since it was written (checksum "
                                  "mismatch); run again to recompute it")
    return np.repeat(a, int(tiled), axis=-1) if tiled else a


def _npy_header_len(a: np.ndarray) -> int:
    """Bytes before the data in the ``.npy`` file np.lib.format writes for ``a``."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(a))
    return buf.tell()

"""Pseudonyms of identifiers (PatientID, StudyInstanceUID, a CSV group column): one definition.

A pseudonym is ``<prefix>:`` followed by the first 16 hex digits of the HMAC-SHA-256 of the
identifier's UTF-8 text under a per-project secret key. It is stable (files of one patient
keep one pseudonym, so grouping and patient-level splits still work) and short; the
identifier itself is never written. Without the key, trying every medical record number of
a range finds nothing: the digest cannot be recomputed.

The key is a file of 64 random hex digits, kept OUTSIDE every run directory:

- ``$IMAGING_TL_PSEUDONYM_KEY_FILE`` when set (a group sharing one key, so that their
  pseudonyms agree: copy the file to each machine and point the variable at it);
- else ``<cache dir>/pseudonym.key`` (:func:`cache_home`: ``$IMAGING_TL_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/imaging_tl``, else ``~/.cache/imaging_tl``).

It is created on first use with mode 0600 (readable by its owner only). Losing it changes
every pseudonym written afterwards; anyone holding it can test guesses, so keep it as
private as the data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

__all__ = ["KEY_FILE_ENV", "PSEUDONYM_RE", "cache_home", "is_pseudonym", "pseudonym",
           "pseudonym_key", "pseudonym_key_file", "pseudonymize"]

KEY_FILE_ENV = "IMAGING_TL_PSEUDONYM_KEY_FILE"
PSEUDONYM_RE = re.compile(r"^[a-z]+:[0-9a-f]{16}$")
_KEYS: dict[tuple[str, int, int], bytes] = {}


def cache_home() -> Path:
    """``$IMAGING_TL_CACHE_DIR``, else ``$XDG_CACHE_HOME/imaging_tl``, else ``~/.cache/...``.

    The one home of every cache of the package (``imaging_tl.data.cache.default_cache_dir``
    returns this) and of the pseudonym key.

    Examples
    --------
    >>> cache_home().name
    'imaging_tl'
    """
    env = os.environ.get("IMAGING_TL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "imaging_tl"


def pseudonym_key_file() -> Path:
    """Where the pseudonym key lives: ``$IMAGING_TL_PSEUDONYM_KEY_FILE``, else
    ``<cache dir>/pseudonym.key``.

    Examples
    --------
    >>> pseudonym_key_file().name  # doctest: +SKIP
    'pseudonym.key'
    """
    env = os.environ.get(KEY_FILE_ENV)
    return Path(env).expanduser() if env else cache_home() / "pseudonym.key"


def pseudonym_key() -> bytes:
    """The secret key of :func:`pseudonym`, created (mode 0600) on first use.

    Raises
    ------
    ValueError
        The key file exists but holds fewer than 32 hex digits (naming the file), or
        ``$IMAGING_TL_PSEUDONYM_KEY_FILE`` names a file that does not exist (a shared key
        is never replaced by a new one silently).

    Examples
    --------
    >>> len(pseudonym_key()) >= 16  # doctest: +SKIP
    True
    """
    path = pseudonym_key_file()
    if not path.exists():
        if os.environ.get(KEY_FILE_ENV):
            raise ValueError(f"{path}: pseudonym key file not found (named by "
                             f"${KEY_FILE_ENV}; copy the group's key there or unset it)")
        _create_key(path)
    st = path.stat()
    cached = _KEYS.get((str(path), st.st_mtime_ns, st.st_size))
    if cached is not None:
        return cached
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if len(text) < 32 or not re.fullmatch(r"[0-9a-fA-F]+", text):
        raise ValueError(f"{path}: not a pseudonym key (needs at least 32 hex digits)")
    key = bytes.fromhex(text if len(text) % 2 == 0 else text[:-1])
    _KEYS[(str(path), st.st_mtime_ns, st.st_size)] = key
    return key


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)  # never replaces a key another process made meanwhile
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def pseudonym(value: str, prefix: str = "pid", key: bytes | None = None) -> str:
    """``prefix + ":" +`` the first 16 hex digits of HMAC-SHA-256(key, ``value``).

    Parameters
    ----------
    value : str
        The identifier (e.g. a PatientID, a medical record number).
    prefix : str
        Says what kind of identifier it was (``"pid"``, ``"study"``, ``"file"``, ``"grp"``).
    key : bytes, optional
        The secret; default :func:`pseudonym_key` (the project's key file).

    Returns
    -------
    str
        E.g. ``"pid:0f6a4c1b2d3e4f50"``.

    Examples
    --------
    >>> pseudonym("1CT1", key=b"k" * 32)
    'pid:3423f45f6c90aeb4'
    >>> pseudonym("1.2.3", prefix="study", key=b"k" * 32)[:6]
    'study:'
    """
    k = pseudonym_key() if key is None else key
    digest = hmac.new(k, str(value).encode("utf-8", "surrogateescape"), hashlib.sha256)
    return f"{prefix}:" + digest.hexdigest()[:16]


def is_pseudonym(value: object) -> bool:
    """Whether ``value`` already has the form of a pseudonym (``word:`` + 16 hex digits).

    Examples
    --------
    >>> is_pseudonym("pid:0123456789abcdef"), is_pseudonym("MRN 12345")
    (True, False)
    """
    return isinstance(value, str) and bool(PSEUDONYM_RE.match(value))


def pseudonymize(values: Iterable[object], prefix: str = "grp") -> list[str]:
    """Each value as a pseudonym; values that already are pseudonyms are kept as they are.

    For group or patient keys about to be written (``splits.csv``, ``predictions.csv``): a
    CSV ``group_column`` holding medical record numbers never reaches an output file.

    Examples
    --------
    >>> out = pseudonymize(["pid:0123456789abcdef", "MRN-1"])  # doctest: +SKIP
    >>> out[0], out[1].startswith("grp:")  # doctest: +SKIP
    ('pid:0123456789abcdef', True)
    """
    key: bytes | None = None
    out: list[str] = []
    for v in values:
        if is_pseudonym(v):
            out.append(str(v))
            continue
        key = key or pseudonym_key()
        out.append(pseudonym(str(v), prefix, key))
    return out

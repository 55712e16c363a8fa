"""File hashes for weights files: the sha256 of a file and the check of a pinned one.

A pinned hash (``model.weights_sha256``, ``build_backbone(..., weights_sha256=...)``) is
always the full 64-hex sha256, compared in full. The only prefix comparison in the package
is torch hub's file-name convention (``name-<8 hex>.pth``), done by the torch readers.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from imaging_tl.models.weights.errors import WeightsFileError

__all__ = ["normalize_sha256", "sha256_of", "verify_sha256"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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


def normalize_sha256(value: str, what: str = "weights_sha256") -> str:
    """A pinned sha256 in canonical form (64 lower-case hex digits, an optional
    ``sha256:`` prefix removed).

    Raises
    ------
    ValueError
        Not 64 hex digits (a prefix is not a pin: the message says so).

    Examples
    --------
    >>> normalize_sha256("SHA256:" + "AB" * 32) == "ab" * 32
    True
    """
    text = str(value).strip().lower().removeprefix("sha256:")
    if not _HEX64.match(text):
        raise ValueError(f"{what}: expected the full sha256 (64 hex digits), got {value!r} "
                         f"({len(text)} characters); compute it with `sha256sum FILE`")
    return text


def verify_sha256(path: str | Path, expected: str) -> str:
    """Check a file against a pinned full sha256; return the digest.

    Raises
    ------
    WeightsFileError
        The digest differs (the message names the file, the expected and the actual
        digest), or the file is missing.
    ValueError
        ``expected`` is not a full sha256.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.h5"; _ = p.write_bytes(b"")
    >>> verify_sha256(p, sha256_of(p)) == sha256_of(p)
    True
    >>> try:
    ...     verify_sha256(p, "0" * 64)
    ... except WeightsFileError as e:
    ...     print("expected 0000" in str(e))
    True
    """
    want = normalize_sha256(expected)
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(path, "file not found (its sha256 is pinned)")
    got = sha256_of(path)
    if got != want:
        raise WeightsFileError(
            path, f"sha256 mismatch: expected {want}, actual {got} (damaged, replaced or a "
                  "different release: fetch the file again or update model.weights_sha256)")
    return got

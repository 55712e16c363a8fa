"""Pseudonyms of identifiers (PatientID, StudyInstanceUID): one definition for the package.

A pseudonym is ``<prefix>:`` followed by the first 16 hex digits of the SHA-256 of the
identifier's UTF-8 text. It is stable (files of one patient keep one pseudonym, so grouping
and patient-level splits still work) and short; the identifier itself is never written.
Short numeric IDs can be found again by trying them all: a pseudonym, not anonymisation.
"""

from __future__ import annotations

import hashlib

__all__ = ["pseudonym"]


def pseudonym(value: str, prefix: str = "pid") -> str:
    """``prefix + ":" +`` the first 16 hex digits of the SHA-256 of ``value`` (UTF-8).

    Parameters
    ----------
    value : str
        The identifier (e.g. a PatientID).
    prefix : str
        Says what kind of identifier it was (``"pid"``, ``"study"``, ``"file"``).

    Returns
    -------
    str
        E.g. ``"pid:1c3ee9adf6f95ec4"``.

    Examples
    --------
    >>> pseudonym("1CT1")
    'pid:1c3ee9adf6f95ec4'
    >>> pseudonym("1.2.3", prefix="study")[:6]
    'study:'
    """
    return f"{prefix}:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:16]

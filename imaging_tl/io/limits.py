"""Limits that keep a hostile or broken file from exhausting memory or time.

Every limit has a default, an environment variable that overrides it for a whole process
(a batch job, a worker pool) and, for ``max_pixels``, a keyword argument of
:func:`imaging_tl.io.read_scan` and :func:`imaging_tl.io.read_header`:

============================  ===============================  ==========================
limit                         environment variable             default
============================  ===============================  ==========================
values one read may decode    ``IMAGING_TL_MAX_PIXELS``         2**29 (536,870,912)
bytes a gzip file may inflate ``IMAGING_TL_MAX_INFLATED_BYTES`` 2**31 (2 GiB)
gzip inflation ratio          ``IMAGING_TL_MAX_GZIP_RATIO``     200 (checked past 4 MiB)
============================  ===============================  ==========================

``max_pixels`` counts values: frames x rows x columns x samples (3 for colour). 2**29
values are 2 GiB as float32: a 1,000-frame 512 x 512 CT series, or a 4,000 x 5,000
mammogram 26 times over. It is checked from the header *before* anything is decoded.

Examples
--------
>>> max_pixels() == DEFAULT_MAX_PIXELS or "IMAGING_TL_MAX_PIXELS" in os.environ
True
>>> pixel_count(rows=512, columns=512, frames=2, samples=1)
524288
"""

from __future__ import annotations

import os

from imaging_tl.io.errors import ImageTooLargeError

#: Default of :func:`max_pixels`.
DEFAULT_MAX_PIXELS = 1 << 29
#: Default of :func:`max_inflated_bytes`.
DEFAULT_MAX_INFLATED_BYTES = 1 << 31
#: Default of :func:`max_gzip_ratio`.
DEFAULT_MAX_GZIP_RATIO = 200
#: Inflated size below which the gzip ratio is not checked (small files compress well).
RATIO_CHECK_FROM = 4 << 20


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    if value < 1:
        raise ValueError(f"{name}={text!r} must be at least 1")
    return value


def max_pixels() -> int:
    """The number of values one read may decode (``IMAGING_TL_MAX_PIXELS`` or default).

    Examples
    --------
    >>> max_pixels() > 0
    True
    """
    return _env_int("IMAGING_TL_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_inflated_bytes() -> int:
    """The bytes a gzip-wrapped file may inflate to (``IMAGING_TL_MAX_INFLATED_BYTES``).

    Examples
    --------
    >>> max_inflated_bytes() > 0
    True
    """
    return _env_int("IMAGING_TL_MAX_INFLATED_BYTES", DEFAULT_MAX_INFLATED_BYTES)


def max_gzip_ratio() -> int:
    """The largest inflated/compressed size ratio accepted (``IMAGING_TL_MAX_GZIP_RATIO``).

    Examples
    --------
    >>> max_gzip_ratio() > 1
    True
    """
    return _env_int("IMAGING_TL_MAX_GZIP_RATIO", DEFAULT_MAX_GZIP_RATIO)


def pixel_count(*, rows: int, columns: int, frames: int = 1, samples: int = 1) -> int:
    """Values an image of this shape holds (frames x rows x columns x samples).

    Examples
    --------
    >>> pixel_count(rows=3, columns=4, samples=3)
    36
    """
    return int(frames) * int(rows) * int(columns) * int(samples)


def check_pixel_count(path: str, count: int, limit: int | None = None, what: str = "") -> None:
    """Raise :class:`ImageTooLargeError` when ``count`` values exceed the limit.

    Parameters
    ----------
    path : str
        The file, named in the error.
    count : int
        Values the image would hold once decoded.
    limit : int, optional
        The limit (default :func:`max_pixels`).
    what : str
        Where the size comes from, e.g. ``"the header declares 20000 x 20000"``.

    Examples
    --------
    >>> check_pixel_count("a.png", 100, limit=1000)
    >>> try:
    ...     check_pixel_count("a.png", 10**10, limit=1000, what="65535 x 65535 x 3")
    ... except ImageTooLargeError as e:
    ...     print(e.reason[:37])
    the image holds 10,000,000,000 values
    """
    limit = max_pixels() if limit is None else int(limit)
    if count > limit:
        detail = f" ({what})" if what else ""
        raise ImageTooLargeError(
            path, f"the image holds {count:,} values{detail}, more than max_pixels={limit:,}; "
            "raise it with read_scan(..., max_pixels=N) or IMAGING_TL_MAX_PIXELS=N if the "
            "file is genuine"
        )

"""Atomic writes: a reader (or a later ``--resume``) never sees a half-written artefact.

Everything is written under a temporary name in the target's own folder and renamed into
place with :func:`os.replace`, which is atomic on POSIX and Windows file systems.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    ``suffix`` lets writers that insist on an extension (Keras' ``.weights.h5``) have it.
    On an exception the temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    # mkstemp makes 0600 files; an output gets the mode any new file would (0644 usually)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def _umask() -> int:
    """The process umask (read once by setting it and restoring it: not thread-safe, so
    never while writers run)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented, strict JSON (no NaN) atomically; return the path."""
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


#: A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def readable_text(text: str) -> str:
    """``text`` with the bytes of an undecodable file name (surrogate escapes) as ``\\xNN``.

    Python represents a file name that is not valid UTF-8 with lone surrogates; they cannot
    be written to a UTF-8 file. The escape keeps the name readable and unique.

    Examples
    --------
    >>> import os
    >>> readable_text(os.fsdecode(b"scan\\xff.dcm"))
    'scan\\\\xff.dcm'
    >>> readable_text("plain.dcm")
    'plain.dcm'
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def csv_cell(value: Any) -> Any:
    """A value as it may safely go into a CSV cell (or header).

    Strings are made writable (:func:`readable_text`) and, when a spreadsheet would run
    them as a formula (a first character in :data:`FORMULA_STARTS`), prefixed with ``'``.
    Numbers, and strings that are plain numbers such as ``"-0.5"``, are kept as they are.

    Examples
    --------
    >>> csv_cell("=HYPERLINK(1)"), csv_cell("-0.5"), csv_cell(-0.5), csv_cell("@a")
    ("'=HYPERLINK(1)", '-0.5', -0.5, "'@a")
    """
    if not isinstance(value, str):
        return value
    text = readable_text(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_uncell(value: Any) -> Any:
    """Undo :func:`csv_cell`'s formula escape (for tables the package reads back).

    Examples
    --------
    >>> csv_uncell("'=HYPERLINK(1)"), csv_uncell("'quoted"), csv_uncell(0.5)
    ('=HYPERLINK(1)', "'quoted", 0.5)
    """
    if isinstance(value, str) and value[:1] == "'" and value[1:2] in FORMULA_STARTS \
            and value[1:2] != "":
        return value[1:]
    return value


def read_csv(path: str | os.PathLike, **kwargs: Any) -> Any:
    """``pandas.read_csv`` of a CSV written by :func:`write_csv`, escapes undone.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", [{"path": "-a.png"}])
    >>> read_csv(p)["path"].tolist()
    ['-a.png']
    """
    import pandas as pd

    df = pd.read_csv(path, **kwargs)
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype):
            df[col] = df[col].map(csv_uncell)
    df.columns = [csv_uncell(c) for c in df.columns]
    return df


def safe_table(table: Any, columns: Sequence[str] | None = None) -> Any:
    """A DataFrame (or list of row dicts) with every string cell and header through
    :func:`csv_cell`; numeric columns untouched.

    Examples
    --------
    >>> safe_table([{"label": "=1+1", "p": 0.5}]).to_dict("records")
    [{'label': "'=1+1", 'p': 0.5}]
    """
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        df = table if columns is None else table.loc[:, list(columns)]
        df = df.copy()
    else:
        # object dtype: a column of ints with blanks stays ints (not 512.0)
        df = pd.DataFrame(list(table), columns=columns, dtype=object)
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype):
            df[col] = df[col].map(csv_cell)
    df.columns = [csv_cell(str(c)) for c in df.columns]
    return df


def csv_text(table: Any, columns: Sequence[str] | None = None) -> str:
    """The CSV text of a table, made safe by :func:`safe_table` (no index, ``\\n`` lines).

    Examples
    --------
    >>> csv_text([{"path": "a.dcm", "label": "+x"}])
    "path,label\\na.dcm,'+x\\n"
    """
    return str(safe_table(table, columns).to_csv(index=False, lineterminator="\n"))


def write_csv(path: str | os.PathLike, table: Any, columns: Sequence[str] | None = None) -> Path:
    """Write a table as CSV atomically; return the path. The one CSV writer of the package.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; an existing one is replaced only once the new one is complete.
    table : pandas.DataFrame or iterable of dict
        The rows.
    columns : sequence of str, optional
        The columns, in order (default: all).

    Returns
    -------
    pathlib.Path

    Notes
    -----
    Cells and headers are escaped against spreadsheet formula injection and undecodable
    file names are written readably (:func:`csv_cell`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_csv(pathlib.Path(tempfile.mkdtemp()) / "t.csv", [{"a": "=1", "b": 2}])
    >>> p.read_text()
    "a,b\\n'=1,2\\n"
    """
    return write_text(path, csv_text(table, columns))


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Fill a temporary folder, then swap it in for ``path`` (a folder is never half-full)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

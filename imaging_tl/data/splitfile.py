"""The ``splits.csv`` file: written by the splitters, read back (ours or a user's own).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from imaging_tl._atomic import read_csv, write_csv
from imaging_tl.data.errors import DatasetError
from imaging_tl.data.labels import label_columns
from imaging_tl.io.pseudonyms import pseudonymize

__all__ = ["read_splits", "write_splits"]


def write_splits(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``splits.csv``: path, frame, split/fold, group and group key, labels.

    The group column is written as pseudonyms
    (:func:`imaging_tl.io.pseudonyms.pseudonymize`): a CSV ``group_column`` holding
    medical record numbers never reaches the file; header-derived groups already are.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`~imaging_tl.data.splits.split_table` or
        :func:`~imaging_tl.data.splits.kfold_table`.
    path : path
        The CSV file to write (its folder is created).

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> from imaging_tl.data.splits import split_table
    >>> write_splits(split_table(df), "runs/x/splits.csv")  # doctest: +SKIP
    """
    cols = [c for c in ("path", "frame", "split", "fold", "group", "group_key") if c in df.columns]
    cols += [c for c in label_columns(df) if c in df.columns]
    cols += [c for c in ("SOPInstanceUID", "content_hash") if c in df.columns]
    out = df[cols]
    if "group" in out.columns:
        out = out.assign(group=pseudonymize(out["group"].astype(str)))
    return write_csv(path, out)


def read_splits(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``splits.csv`` (ours, or a user's own with ``path``, ``split`` and ``group``).

    Parameters
    ----------
    path : path
        The CSV file. Relative paths in it are resolved against its folder.

    Returns
    -------
    pandas.DataFrame
        The table, ready for :func:`imaging_tl.data.audit.audit_splits`.

    Examples
    --------
    >>> from imaging_tl.data.audit import audit_splits
    >>> audit_splits(read_splits("my_splits.csv"))  # doctest: +SKIP
    """
    path = Path(path)
    df = read_csv(path, dtype={"group": str, "split": str, "SOPInstanceUID": str})
    if "path" not in df.columns:
        raise DatasetError([f"column 'path' missing (columns: {list(df.columns)})"], str(path))
    base = path.resolve().parent
    df["path"] = [str(Path(p) if Path(p).is_absolute() else (base / p).resolve())
                  for p in df["path"].astype(str)]
    if "frame" in df.columns:
        df["frame"] = pd.to_numeric(df["frame"], errors="coerce").astype("Int64")
    known = {"path", "frame", "split", "fold", "group", "group_key", "SOPInstanceUID",
             "content_hash", "label"}
    if "label" in df.columns:
        df.attrs["label_columns"] = ["label"]
    else:
        # multi-label columns: 1, 0 and -1 (a missing label, see data.labels.MISSING)
        extra = [c for c in df.columns
                 if c not in known and set(df[c].dropna().unique()) <= {0, 1, -1}]
        if extra:
            df.attrs["label_columns"] = extra
    df.attrs["source"] = str(path)
    return df

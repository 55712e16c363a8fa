"""Labels per slice of a series task (``data.slice_labels``): a CSV giving each slice its
own label, for :func:`imaging_tl.data.series.from_series`.

The CSV is keyed in one of three ways, the first that its columns allow:

``path`` (``data.path_column``)
    one row per file (a single-frame slice), relative to the CSV's folder or absolute;
series column + ``instance_number`` (or ``InstanceNumber``)
    one row per (SeriesInstanceUID, InstanceNumber of the slice's header);
series column + ``slice``
    one row per (SeriesInstanceUID, the slice's 0-based place along the slice normal).

Rules: slice labels are for binary tasks (a series' label is derived from its slices':
positive when any slice is positive); a series is either labelled on every slice or on
none (a series with some slices labelled and others not is left out with a message: a
silent default for the missing slices could mislabel a lesion); rows that match no slice
are reported by CSV row (never by UID).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from imaging_tl.data.errors import DatasetError
from imaging_tl.data.table import resolve_path
from imaging_tl.io.series import Series

__all__ = ["SliceLabels", "read_slice_labels"]

#: Columns read as the SeriesInstanceUID, and as the slice's key within its series.
SERIES_COLUMNS = ("series_uid", "SeriesInstanceUID", "series_instance_uid", "series")
INSTANCE_COLUMNS = ("instance_number", "InstanceNumber")


@dataclass
class SliceLabels:
    """The slice labels of a CSV, looked up per series.

    Attributes
    ----------
    key : {"path", "instance_number", "slice"}
        How rows name their slice.
    labels : dict
        ``{(file or SeriesInstanceUID, slice key): (label, CSV row)}``.
    source : str
        The CSV, for messages.
    used : set
        The keys a series has looked up (the rest match no slice).

    Examples
    --------
    >>> sl = SliceLabels("slice", {("1.2", 0): ("lesion", 2)}, "s.csv")
    >>> sl.classes()
    ['lesion']
    """

    key: str
    labels: dict[tuple[str, int | str], tuple[str, int]]
    source: str
    used: set[tuple[str, int | str]] = field(default_factory=set)

    def classes(self) -> list[str]:
        """The labels the CSV uses, sorted."""
        return sorted({label for label, _ in self.labels.values()})

    def of(self, series: Series) -> tuple[list[str] | None, str | None]:
        """The label of every slice of ``series`` (in order), or None when the CSV labels
        none of them; or a problem (some slices labelled and some not, a multi-frame file
        keyed by path)."""
        keys: list[tuple[str, int | str]] = []
        for i, s in enumerate(series.slices):
            if self.key == "path":
                keys.append((str(Path(s.path).resolve()), ""))
            elif self.key == "slice":
                keys.append((series.uid, i))
            else:
                keys.append((series.uid, -1 if s.instance_number is None else s.instance_number))
        found = [k in self.labels for k in keys]
        self.used.update(k for k, hit in zip(keys, found, strict=True) if hit)
        if not any(found):
            return None, None
        if self.key == "path" and any(s.frame is not None for s in series.slices):
            return None, (f"{series.name}: a multi-frame file is labelled by path in "
                          f"{Path(self.source).name}; key its frames by series and "
                          "instance_number, left out")
        if not all(found):
            return None, (f"{series.name}: {sum(found)} of {len(found)} slices have a row in "
                          f"{Path(self.source).name}, the others none; label every slice of "
                          "a series or none, left out")
        return [self.labels[k][0] for k in keys], None

    def unused(self) -> list[str]:
        """A report line on the rows that matched no slice of a scanned series (empty when
        every row did)."""
        rows = sorted(row for k, (_, row) in self.labels.items() if k not in self.used)
        if not rows:
            return []
        files = [str(k[0]) for k, (_, row) in self.labels.items()
                 if k not in self.used and self.key == "path"][:3]
        named = f" ({', '.join(files)}{' ...' if len(rows) > 3 else ''})" if files else ""
        return [f"{Path(self.source).name}: {len(rows)} slice label row(s) match no slice "
                f"of a readable series, ignored: rows {', '.join(map(str, rows[:10]))}"
                f"{' ...' if len(rows) > 10 else ''}{named}"]


def _key_of(columns: list[str], path_column: str, series_column: str | None
            ) -> tuple[str, str | None, str | None]:
    """(key kind, series column, slice column) from the CSV's columns; raises when none fits."""
    if path_column in columns:
        return "path", None, path_column
    series = series_column or next((c for c in SERIES_COLUMNS if c in columns), None)
    slice_column = next((c for c in INSTANCE_COLUMNS if c in columns), None)
    kind = "instance_number" if slice_column else "slice"
    slice_column = slice_column or ("slice" if "slice" in columns else None)
    if series is None or series not in columns or slice_column is None:
        raise DatasetError([
            f"data.slice_labels: key the rows by file (a {path_column!r} column) or by series "
            f"(one of {list(SERIES_COLUMNS)}) and slice ({list(INSTANCE_COLUMNS)} or 'slice', "
            f"0-based); columns: {', '.join(columns)}"])
    return kind, series, slice_column


def read_slice_labels(
    csv: str | os.PathLike,
    *,
    path_column: str = "path",
    series_column: str | None = None,
    label_column: str = "label",
    label_map: Mapping[str, str] | None = None,
) -> SliceLabels:
    """Read and check a slice-label CSV (every problem at once).

    Parameters
    ----------
    csv : path
        One row per slice (see the module for the three ways to key it).
    path_column, series_column, label_column : str
        Its file column, SeriesInstanceUID column (default: the first of
        ``series_uid``, ``SeriesInstanceUID``, ``series_instance_uid``, ``series``) and
        label column.
    label_map : mapping, optional
        Label value -> class name.

    Raises
    ------
    DatasetError
        The CSV cannot be read, names no key, or has empty or duplicated keys, bad slice
        numbers or empty labels (each named by row).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = Path(d, "s.csv")
    ...     _ = f.write_text("series_uid,slice,label\\n1.2,0,normal\\n1.2,1,lesion\\n")
    ...     sl = read_slice_labels(f)
    >>> sl.key, sl.labels[("1.2", 1)]
    ('slice', ('lesion', 3))
    """
    source = str(csv)
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DatasetError([f"cannot be read as a CSV file ({exc})"], source=source) from None
    try:
        kind, series, slice_column = _key_of(list(table.columns), path_column, series_column)
    except DatasetError as exc:
        raise DatasetError(exc.problems, source=source) from None
    if label_column not in table.columns:
        raise DatasetError([f"data.label_column: {label_column!r} is not a column (columns: "
                            f"{', '.join(table.columns)})"], source=source)
    problems: list[str] = []
    out: dict[tuple[str, int | str], tuple[str, int]] = {}
    base = Path(csv).parent
    for i, row in enumerate(table.to_dict("records")):
        where, label = f"row {i + 2}", row[label_column].strip()
        key: tuple[str, int | str] | None = None
        if kind == "path":
            resolved = resolve_path(row[path_column], base)
            key = (resolved, "") if resolved else None
            if key is None:
                problems.append(f"{where}: empty {path_column!r}")
        else:
            assert series is not None and slice_column is not None
            uid, number = row[series].strip(), row[slice_column].strip()
            if not uid:
                problems.append(f"{where}: empty {series!r}")
            elif not number.lstrip("-").isdigit() or int(number) < 0:
                problems.append(f"{where}: {slice_column!r} must be a whole number >= 0, "
                                f"got {number!r}")
            else:
                key = (uid, int(number))
        if key is not None and key in out:
            problems.append(f"{where}: the same slice as row {out[key][1]}")
        elif key is not None and not label:
            problems.append(f"{where}: empty label {label_column!r}")
        elif key is not None:
            out[key] = ((label_map or {}).get(label, label), i + 2)
    if problems:
        raise DatasetError(problems, source=source)
    if not out:
        raise DatasetError(["no slice label rows"], source=source)
    return SliceLabels(kind, out, source)

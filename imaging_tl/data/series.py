"""The dataset table of a series task (``data.unit: series``): one row per slice, in order.

The DICOM files under a folder are grouped into series and ordered
(:func:`imaging_tl.io.series.scan_series`); each series takes its label from a CSV keyed by
SeriesInstanceUID or from the class folder it lies in. Every slice becomes a row of the
usual table (:mod:`imaging_tl.data.table`) with the series' label, plus

``series``
    the series key, a pseudonym of its SeriesInstanceUID (``ser:`` + 16 hex digits);
``slice``
    the slice's 0-based place along the slice normal; ``n_slices`` the series' length,
    ``slice_spacing`` the distance between its slices (mm; empty when not known).

Splits group by patient as for images (PatientID pseudonyms from the headers, or
``data.group_column``), so all slices of a series, and all series of a patient, share a
split. A flagged series (gaps, duplicated positions, mixed sizes or orientations, a single
slice), a file whose header cannot be read and a series without a label are left out and
reported in ``df.attrs["series_report"]``; the other series go on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from imaging_tl._atomic import readable_text
from imaging_tl.data.errors import DatasetError
from imaging_tl.data.files import file_kind
from imaging_tl.data.labels import order_classes
from imaging_tl.data.slice_labels import SERIES_COLUMNS, SliceLabels, read_slice_labels
from imaging_tl.data.table import validate
from imaging_tl.io.pseudonyms import pseudonym
from imaging_tl.io.series import Series, scan_series

__all__ = ["from_series", "sample_around_positive", "sample_slices", "series_key"]

#: CSV columns read as the SeriesInstanceUID when ``series_column`` is not given.
_SERIES_COLUMN_NAMES = SERIES_COLUMNS


def series_key(uid: str) -> str:
    """The pseudonym a series is known by in tables and files (never the UID itself).

    Examples
    --------
    >>> k = series_key("1.2.3")
    >>> k[:4], len(k), k == series_key("1.2.3")
    ('ser:', 20, True)
    """
    return pseudonym(str(uid), "ser")


def _dicom_files(root: Path) -> list[str]:
    return [str(f.resolve()) for f in sorted(root.rglob("*"))
            if f.is_file() and not any(p.startswith(".") for p in f.relative_to(root).parts)
            and file_kind(f) == "dicom"]


def _slice_rows(series: Series, label: Any, group: tuple[str, str] | None,
                slice_labels: list[str] | None = None) -> list[dict]:
    """One table row per slice of ``series``, in order: labelled ``slice_labels`` (one per
    slice) when given, else ``label``; ``series_label`` is ``label``."""
    key = series_key(series.uid)
    if group is None:
        pid = next((s.patient_id for s in series.slices if s.patient_id), None)
        group = (pseudonym(pid, "pid"), "PatientID") if pid else (key, "SeriesInstanceUID")
    own = slice_labels or [label] * len(series.slices)
    return [{"path": s.path, "frame": pd.NA if s.frame is None else s.frame, "label": own[i],
             "series_label": label, "group": group[0], "group_key": group[1], "series": key,
             "slice": i,
             "n_slices": len(series.slices), "slice_spacing": series.spacing,
             "SOPInstanceUID": s.sop_uid}
            for i, s in enumerate(series.slices)]


def _read_labels(csv: Path, series_column: str | None, label_column: str,
                 group_column: str | None) -> tuple[dict[str, tuple[str, str | None]], str]:
    """``{SeriesInstanceUID: (label, group)}`` from the CSV, every problem at once."""
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DatasetError([f"cannot be read as a CSV file ({exc})"], source=str(csv)) from None
    column = series_column or next((c for c in _SERIES_COLUMN_NAMES if c in table.columns), None)
    wanted = {"data.series_column": column, "data.label_column": label_column,
              "data.group_column": group_column}
    missing = [f"{key}: {col!r} is not a column (columns: {', '.join(table.columns)})"
               for key, col in wanted.items() if col is not None and col not in table.columns]
    if column is None:
        missing.append(f"data.series_column: none of {list(_SERIES_COLUMN_NAMES)} is a "
                       "column; name the column of SeriesInstanceUIDs")
    if missing:
        raise DatasetError(missing, source=str(csv))
    assert column is not None
    problems, out = [], {}
    for i, row in enumerate(table.to_dict("records")):
        uid, label = row[column].strip(), row[label_column].strip()
        where = f"row {i + 2}"  # as a spreadsheet numbers it (header = row 1)
        if not uid:
            problems.append(f"{where}: empty {column!r}")
        elif uid in out:
            problems.append(f"{where}: series {column} listed twice")
        elif not label:
            problems.append(f"{where}: empty label {label_column!r}")
        else:
            group = row[group_column].strip() if group_column else None
            if group_column and not group:
                problems.append(f"{where}: empty {group_column!r}")
            out[uid] = (label, group or None)
    if problems:
        raise DatasetError(problems, source=str(csv))
    return out, column


def _class_of(series: Series, root: Path) -> str | None:
    """The class folder holding every file of the series, else None."""
    tops = {Path(s.path).relative_to(root).parts[0] for s in series.slices}
    if len(tops) != 1:
        return None
    top = tops.pop()
    return top if (root / top).is_dir() else None


def from_series(
    folder: str | os.PathLike,
    *,
    csv: str | os.PathLike | None = None,
    series_column: str | None = None,
    label_column: str = "label",
    group_column: str | None = None,
    label_map: Mapping[str, str] | None = None,
    slice_labels: str | os.PathLike | None = None,
    path_column: str = "path",
    positive: str | None = None,
) -> pd.DataFrame:
    """The slice table of the series under ``folder``, labelled per series or per slice.

    Parameters
    ----------
    folder : path
        Searched recursively for DICOM files. Without ``csv`` and ``slice_labels``, its
        sub-folders are the classes (``folder/<class>/<series folder>/<files>``).
    csv : path, optional
        Labels per series: one row per series, keyed by SeriesInstanceUID.
    series_column : str, optional
        The CSV's column of SeriesInstanceUIDs (default: the first of ``series_uid``,
        ``SeriesInstanceUID``, ``series_instance_uid``, ``series``).
    label_column, group_column : str
        The CSV's label column, and its patient column (default: PatientID from headers).
    label_map : mapping, optional
        Class value or folder name -> class name.
    slice_labels : path, optional
        Labels per slice (:mod:`imaging_tl.data.slice_labels`; binary tasks): a series
        labelled there trains on its slices' labels, and its series label is derived
        (``positive`` when any slice is); where ``csv`` labels it too, the two must agree.
        Without ``csv``, every series needs slice labels (class folders are not read).
    path_column : str
        The file column of a slice-label CSV keyed by file.
    positive : str, optional
        The positive class (default: the class order of
        :func:`~imaging_tl.data.labels.order_classes`); read with ``slice_labels`` only.

    Returns
    -------
    pandas.DataFrame
        ``path, frame, label, series_label, group, group_key, series, slice, n_slices,
        slice_spacing, SOPInstanceUID``, by series then slice (``label`` the slice's own,
        ``series_label`` the series'). ``attrs["series_report"]`` lists what was left out
        and why; ``attrs["unit"]`` is ``"series"``; ``attrs["slice_labelled"]`` counts the
        series labelled per slice.

    Raises
    ------
    DatasetError
        Not a folder, a bad CSV (every problem at once), slice labels of more than two
        classes, or no usable series left.

    Examples
    --------
    >>> df = from_series("sample_dicoms/ct_series", csv="sample_dicoms/ct_series/series_labels.csv")
    >>> df["series"].nunique(), len(df), df.attrs["series_report"]
    (12, 96, [])
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError([f"{root}: not a folder"], source=str(root))
    found, failed = scan_series(_dicom_files(root))
    report = [f"{readable_text(p)}: header unreadable, left out ({why})"
              for p, why in failed.items()]
    labels = _read_labels(Path(csv), series_column, label_column, group_column) if csv else None
    per_slice = None if slice_labels is None else read_slice_labels(
        slice_labels, path_column=path_column, series_column=series_column,
        label_column=label_column, label_map=label_map)
    positive = _positive_class(labels, per_slice, label_map, positive)
    rows: list[dict] = []
    seen: set[str] = set()
    resolved = root.resolve()  # the scanned paths are resolved: class folders relative to it
    n_sliced = 0
    for one in found:
        entry = (labels[0].get(one.uid) if labels is not None else
                 (_class_of(one, resolved), None) if per_slice is None else None)
        own, problem = per_slice.of(one) if per_slice is not None else (None, None)
        if problem is None and own is None and (entry is None or entry[0] is None):
            report.append(_no_label(one, csv, slice_labels, root))
            continue
        seen.add(one.uid)
        if problem is not None or one.flagged:
            report.append(problem or f"{one.message()}; left out")
            continue
        label = None if entry is None else (label_map or {}).get(str(entry[0]), str(entry[0]))
        if own is not None:
            derived = positive if positive in own else own[0]
            if label is not None and label != derived:
                report.append(f"{one.name}: series label {label!r} but its slice labels make "
                              f"it {derived!r}, left out")
                continue
            label, n_sliced = derived, n_sliced + 1
        group = None if entry is None else entry[1]
        by = (group, str(group_column)) if group else None
        rows.extend(_slice_rows(one, label, by, own))
    report += per_slice.unused() if per_slice is not None else []
    df = _finish_series(rows, report, labels, seen, root, csv)
    df.attrs["slice_labelled"] = n_sliced
    return df


def _no_label(one: Series, csv: Any, slice_labels: Any, root: Path) -> str:
    """The report line of a series that nothing labels."""
    if slice_labels is not None:
        also = f" nor a row in {Path(str(csv)).name}" if csv else ""
        return f"{one.name}: no slice labels in {Path(str(slice_labels)).name}{also}, left out"
    if csv:
        return f"{one.name}: no row in {Path(str(csv)).name}, left out"
    return f"{one.name}: not inside one class folder of {root}, left out"


def _positive_class(labels: Any, per_slice: SliceLabels | None,
                    label_map: Mapping[str, str] | None, positive: str | None) -> str | None:
    """The positive class a slice-labelled series is derived with (None without slice
    labels); refuses more than two classes."""
    if per_slice is None:
        return None
    classes = set(per_slice.classes())
    if labels is not None:
        classes |= {(label_map or {}).get(v[0], v[0]) for v in labels[0].values()}
    if len(classes) > 2:
        raise DatasetError([f"slice labels are for binary tasks (a series' label is derived "
                            f"from its slices': positive when any slice is); the labels are "
                            f"{sorted(classes)}"], source=per_slice.source)
    if positive is not None and len(classes) == 2 and positive not in classes:
        raise DatasetError([f"task.positive: {positive!r} is not one of the labels "
                            f"{sorted(classes)}"], source=per_slice.source)
    return positive if positive is not None else order_classes(classes)[-1]


def _finish_series(rows: list[dict], report: list[str], labels: Any, seen: set[str],
                   root: Path, csv: Any) -> pd.DataFrame:
    source = str(csv or root)
    if labels is not None:
        lost = [uid for uid in labels[0] if uid not in seen]
        if lost:
            report.append(f"{len(lost)} labelled series (column {labels[1]!r}) have no "
                          f"readable DICOM files under {root}, left out: e.g. CSV row "
                          f"{list(labels[0]).index(lost[0]) + 2}")
    if not rows:
        raise DatasetError([f"{root}: no usable series"] + report[:20], source=source)
    df = pd.DataFrame(rows)
    df["frame"] = df["frame"].astype("Int64")
    df.attrs.update(label_columns=["label"], source=source, unit="series",
                    series_report=report)
    validate(df, source=source)
    return df


def sample_slices(table: pd.DataFrame, step: int, split: str = "train") -> pd.DataFrame:
    """``table`` with only every ``step``-th slice of each series of ``split`` (the slices
    0, step, 2 step, ... of each series); other splits and image tables unchanged.

    Examples
    --------
    >>> t = pd.DataFrame({"series": ["a"] * 5 + ["b"] * 5, "slice": list(range(5)) * 2,
    ...                   "split": ["train"] * 5 + ["test"] * 5})
    >>> sample_slices(t, 2)["slice"].tolist()
    [0, 2, 4, 0, 1, 2, 3, 4]
    """
    if step < 1:
        raise ValueError(f"data.slice_step: must be at least 1, got {step}")
    if step == 1 or "slice" not in table.columns:
        return table
    keep = (table["split"] != split) | (table["slice"].astype(int) % step == 0)
    return table[keep.to_numpy()].reset_index(drop=True)


def sample_around_positive(table: pd.DataFrame, positive: str, *, margin: int = 2,
                           rest: float = 0.1, seed: int = 0,
                           split: str = "train") -> pd.DataFrame:
    """``table`` with the slices of each series of ``split`` sampled around its positive
    slices: every slice labelled ``positive``, every slice within ``margin`` slices of one,
    and a seeded share ``rest`` of the others (rounded up per series, so a negative series
    keeps at least one slice while ``rest > 0``). Other splits are unchanged; the order of
    the rows is kept.

    Examples
    --------
    >>> t = pd.DataFrame({"series": ["a"] * 8 + ["b"] * 4, "slice": list(range(8)) + [0, 1, 2, 3],
    ...                   "label": ["n"] * 4 + ["y"] + ["n"] * 7, "split": ["train"] * 12})
    >>> out = sample_around_positive(t, "y", margin=1, rest=0.25, seed=0)
    >>> out[out.series == "a"]["slice"].tolist(), len(out[out.series == "b"])  # 3-5, 2 others
    ([0, 3, 4, 5, 7], 1)
    """
    import math

    import numpy as np

    if margin < 0 or not 0.0 <= rest <= 1.0:
        raise ValueError(f"slice sampling: margin must be >= 0 and rest in [0, 1], got "
                         f"{margin} and {rest}")
    if "slice" not in table.columns:
        return table
    rng = np.random.default_rng([seed, 2025])
    in_split = (table["split"] == split).to_numpy()
    pos = (table["label"].astype(str) == positive).to_numpy()
    number = table["slice"].astype(int).to_numpy()
    series = table["series"].astype(str).to_numpy()
    keep = np.ones(len(table), bool)
    for key in sorted(set(series[in_split])):
        idx = np.flatnonzero(in_split & (series == key))
        hits = number[idx][pos[idx]]
        near = pos[idx].copy()
        if len(hits):
            near |= np.abs(number[idx][:, None] - hits[None, :]).min(axis=1) <= margin
        others = idx[~near]
        keep[others] = False
        chosen = rng.choice(others, math.ceil(rest * len(others)), replace=False)
        keep[chosen] = True
    return table[keep].reset_index(drop=True)

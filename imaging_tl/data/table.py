"""The dataset table: one row per sample, built from a folder, a CSV manifest or DICOM headers.

A dataset is a :class:`pandas.DataFrame` with the columns

``path``
    absolute path of the file (str);
``frame``
    frame index for multi-frame files (nullable ``Int64``; ``<NA>`` for single images);
``label`` or the label columns
    one ``label`` column of class names (binary / multi-class), or several int8 columns of
    1, 0 and -1 for a missing label (multi-label); their names are in
    ``df.attrs["label_columns"]``, and how they were read (uncertain policy, label map,
    counts per label) in ``df.attrs["label_summary"]``;
``group``
    the grouping key used for patient-level splits (str), with ``group_key`` saying where
    it came from (``"PatientID"``, ``"StudyInstanceUID"``, ``"file"`` or the CSV column);
extras
    e.g. ``SOPInstanceUID`` (used by the leakage audit) or any other CSV column.

Group keys read from DICOM headers are pseudonyms (a short SHA-256 digest of the identifier,
:mod:`imaging_tl.io.pseudonyms`), never the identifier itself, so ``splits.csv`` and error
messages carry no patient identifiers. Labels are handled in :mod:`imaging_tl.data.labels`,
file kinds and headers in :mod:`imaging_tl.data.files`.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from imaging_tl.data.errors import DatasetError
from imaging_tl.data.files import (
    DICOM_EXTENSIONS,
    RASTER_EXTENSIONS,
    Frames,
    check_frames,
    file_kind,
    header_rows,
)
from imaging_tl.data.labels import (
    MISSING,
    encode_labels,
    label_columns,
    map_class_names,
    parse_multilabel,
    task_of,
)

__all__ = [
    "DatasetError",
    "encode_labels",
    "from_csv",
    "from_dicom_headers",
    "from_census",
    "from_folder",
    "from_image_folder",
    "label_columns",
    "task_of",
    "resolve_path",
    "validate",
    "RASTER_EXTENSIONS",
    "DICOM_EXTENSIONS",
]

_PATIENT_COLUMNS = ("patient_id", "PatientID", "patient", "subject_id", "subject")
_STUDY_COLUMNS = ("study_uid", "StudyInstanceUID", "study_id", "study")


def _finish(
    df: pd.DataFrame, labels: list[str], source: str, *, check_files: bool = True,
    summary: dict[str, Any] | None = None,
) -> pd.DataFrame:
    df["frame"] = df["frame"].astype("Int64")
    front = ["path", "frame", *labels, "group", "group_key"]
    df = df[front + [c for c in df.columns if c not in front]].reset_index(drop=True)
    df.attrs["label_columns"] = list(labels)
    df.attrs["source"] = source
    if summary is not None:
        df.attrs["label_summary"] = summary
    validate(df, check_files=check_files, source=source)
    return df


def from_folder(
    root: str | os.PathLike,
    *,
    frames: Frames = "all",
    extensions: Iterable[str] | None = None,
    label_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Build a table from a folder per class: ``root/<label>/**/<file>``.

    Files are found recursively; DICOM is recognised by content for extension-less files
    (and names such as ``1.2.840.113619``), rasters by extension. Hidden files are skipped.
    The group key is the PatientID of DICOM files, then the StudyInstanceUID, then the file.

    Parameters
    ----------
    root : path
        Folder whose sub-folders are the class names.
    frames : {"all", "middle", "first"}
        Multi-frame files give one sample per frame, or only their middle / first frame.
    extensions : iterable of str, optional
        Only take files with these extensions (e.g. ``[".dcm"]``); extension-less DICOM
        files are still taken.
    label_map : mapping of str to str, optional
        Folder name -> class name (e.g. two sites' names of one finding to one class);
        folders it does not name keep their name.

    Returns
    -------
    pandas.DataFrame
        Columns ``path, frame, label, group, group_key, SOPInstanceUID``; sorted by label, path.

    Examples
    --------
    >>> df = from_folder("sample_dicoms")  # doctest: +SKIP
    >>> df["label"].value_counts()  # doctest: +SKIP
    """
    check_frames(frames)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError([f"{root}: not a folder"], source=str(root))
    wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions or []}
    paths: list[str] = []
    labels: list[str] = []
    empty: list[str] = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = []
        for f in sorted(class_dir.rglob("*")):
            if not f.is_file() or any(part.startswith(".") for part in f.relative_to(root).parts):
                continue
            kind = file_kind(f)
            if kind is None:
                continue
            if wanted and f.suffix.lower() not in wanted and f.suffix != "":
                continue
            found.append(str(f.resolve()))
        if not found:
            empty.append(f"class folder {class_dir}: no image files")
        paths.extend(found)
        labels.extend([class_dir.name] * len(found))
    if empty or not paths:
        raise DatasetError(empty or [f"{root}: no class sub-folders with images"], source=str(root))
    rows = header_rows(paths, frames)
    label_of = dict(zip(paths, labels, strict=True))
    df = pd.DataFrame(rows)
    df.insert(2, "label", map_class_names(pd.Series([label_of[p] for p in df["path"]]),
                                          label_map).to_numpy())
    return _finish(df, ["label"], str(root), summary=_class_summary(df["label"], label_map))


def from_image_folder(root: str | os.PathLike, *, frames: Frames = "all") -> pd.DataFrame:
    """An unlabelled table of every image file under a folder (searched recursively).

    For self-supervised pretraining: no class sub-folders, no labels. Hidden files are
    skipped; DICOM is recognised by content, rasters by extension; the group key is found
    as in :func:`from_folder`.

    Returns
    -------
    pandas.DataFrame
        ``path, frame, group, group_key, SOPInstanceUID``, sorted by path.

    Raises
    ------
    DatasetError
        Not a folder, or no image file in it.

    Examples
    --------
    >>> df = from_image_folder("sample_dicoms", frames="middle")
    >>> len(df) > 100, df.attrs["label_columns"]
    (True, [])
    """
    check_frames(frames)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError([f"{root}: not a folder"], source=str(root))
    paths = [str(f.resolve()) for f in sorted(root.rglob("*"))
             if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts)
             and file_kind(f) is not None]
    if not paths:
        raise DatasetError([f"{root}: no image files (DICOM, PNG, JPEG, TIFF) found"],
                           source=str(root))
    return _finish(pd.DataFrame(header_rows(paths, frames)), [], str(root))


def from_census(csv_path: str | os.PathLike, *, frames: Frames = "all") -> pd.DataFrame:
    """An unlabelled table of the scans a ``census.csv`` lists (``imaging-tl census``).

    Rows the census found not to be images (``status`` ``not_image``) are left out; rows
    that failed to read stay in (preparing them quarantines and counts them). Relative
    paths resolve against the CSV's folder; the group key comes from the headers, as in
    :func:`from_image_folder`.

    Raises
    ------
    DatasetError
        No ``path`` column, missing files (each named), or no scan listed.

    Examples
    --------
    >>> from_census("runs/census.csv")  # doctest: +SKIP
    """
    check_frames(frames)
    csv_path = Path(csv_path)
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if "path" not in df.columns:
        raise DatasetError([f"{csv_path}: no 'path' column (is it a census?)"], str(csv_path))
    if "status" in df.columns:
        df = df[df["status"] != "not_image"]
    paths = [p for p in (resolve_path(v, csv_path.parent) for v in df["path"]) if p is not None]
    missing = [f"{p}: file not found" for p in paths if not os.path.isfile(p)]
    if missing or not paths:
        raise DatasetError(missing or [f"{csv_path}: lists no scan"], source=str(csv_path))
    return _finish(pd.DataFrame(header_rows(paths, frames)), [], str(csv_path))


def _class_summary(labels: pd.Series, label_map: Mapping[str, str] | None) -> dict[str, Any]:
    """How a single-label table's classes were read: the map and the count per class."""
    return {"label_map": dict(label_map) if label_map else None,
            "classes": {str(k): int(v) for k, v in
                        labels.astype(str).value_counts().sort_index().items()}}


def resolve_path(path_value: Any, base: Path) -> str | None:
    """A CSV's path cell as an absolute resolved path (relative to ``base``, the CSV's
    folder); None for an empty cell.

    Examples
    --------
    >>> resolve_path("a/b.dcm", Path("/data")), resolve_path("  ", Path("/data"))
    ('/data/a/b.dcm', None)
    """
    if path_value is None or (isinstance(path_value, float) and np.isnan(path_value)):
        return None
    text = str(path_value).strip()
    if not text:
        return None
    p = Path(text).expanduser()
    return str((p if p.is_absolute() else base / p).resolve())


def from_csv(
    csv_path: str | os.PathLike,
    *,
    path_column: str = "path",
    label_column: str | None = "label",
    label_columns: Sequence[str] | None = None,
    group_column: str | None = None,
    frame_column: str | None = None,
    frames: Frames = "all",
    uncertain: str | None = None,
    label_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Build a table from a CSV manifest.

    Relative paths are resolved against the CSV's folder. The group key is, in order: the
    ``group_column`` if given, else a patient column (``patient_id``, ``PatientID``, ...),
    else a study column (``study_uid``, ...), else the DICOM headers (as :func:`from_folder`).

    Parameters
    ----------
    csv_path : path
        The manifest.
    path_column : str
        Column holding the file paths.
    label_column : str or None
        Column of class names (binary / multi-class). ``None`` for an unlabelled table.
    label_columns : sequence of str, optional
        Several label columns for a multi-label task (overrides ``label_column``). Cells:
        1/0 (also true/false, yes/no), blank for a missing label, ``-1``, ``u`` or
        ``uncertain`` for an uncertain one (see
        :func:`~imaging_tl.data.labels.parse_multilabel`).
    group_column : str, optional
        Column to group by (patient); auto-detected when not given.
    frame_column : str, optional
        Column of frame indices; when absent, multi-frame files expand as ``frames`` says.
    frames : {"all", "middle", "first"}
        How multi-frame files expand when the CSV names no frame.
    uncertain : {"ignore", "zeros", "ones"}, optional
        Multi-label only: uncertain cells become missing (masked), 0 or 1 (CheXpert's
        U-Ignore, U-Zeros, U-Ones). None: an uncertain cell is an error.
    label_map : mapping of str to str, optional
        Multi-label: CSV column -> canonical label name (columns mapped to one name are
        merged); single-label: class value -> canonical class name.

    Returns
    -------
    pandas.DataFrame
        ``path, frame, <labels>, group, group_key`` and the CSV's other columns.

    Raises
    ------
    DatasetError
        Listing every missing file, empty or unreadable label (row and column named) and
        duplicate row.

    Examples
    --------
    >>> df = from_csv("sample_dicoms/labels.csv", label_columns=["effusion", "nodule"])
    >>> df.attrs["label_columns"], df["group_key"].iloc[0]
    (['effusion', 'nodule'], 'patient_id')
    """
    check_frames(frames)
    csv_path = Path(csv_path)
    source = str(csv_path)
    labels = list(label_columns) if label_columns else ([label_column] if label_column else [])
    summary: dict[str, Any] | None = None
    df = _read_manifest(csv_path, path_column, [*labels, group_column, frame_column])
    if label_columns:
        df, labels, summary = parse_multilabel(df, labels, uncertain=uncertain,
                                               label_map=label_map, source=source)
    elif label_column:
        if uncertain is not None:
            raise DatasetError(["uncertain= (task.uncertain) applies to multi-label tables "
                                "(label_columns); this CSV has one label column"], source)
        df["label"] = map_class_names(df.pop(label_column).str.strip(), label_map)
        labels = ["label"]
        summary = _class_summary(df["label"], label_map)
    if group_column is None:
        group_column = next((c for c in _PATIENT_COLUMNS if c in df.columns), None)
        group_column = group_column or next((c for c in _STUDY_COLUMNS if c in df.columns), None)
    if frame_column:
        df["frame"] = pd.to_numeric(df.pop(frame_column).replace("", None), errors="coerce")
    if group_column:
        df = _group_from_column(df, group_column, source)
    else:
        df = _group_from_headers(df, frames, source)
    return _finish(df, labels, source, summary=summary)


def _read_manifest(
    csv_path: Path, path_column: str, columns: Sequence[str | None]
) -> pd.DataFrame:
    """The CSV as text, with the needed columns checked and ``path`` resolved (absolute)."""
    try:
        raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError([f"cannot read the CSV: {exc}"], source=str(csv_path)) from exc
    needed = [path_column] + [c for c in columns if c]
    absent = [c for c in needed if c not in raw.columns]
    if absent:
        raise DatasetError(
            [f"column {c!r} not found (columns: {list(raw.columns)})" for c in absent],
            source=str(csv_path),
        )
    base = csv_path.resolve().parent
    df = raw.copy()
    df["path"] = [resolve_path(v, base) for v in raw[path_column]]
    if path_column != "path":
        df = df.drop(columns=[path_column])
    bad_paths = [f"row {i + 2}: empty path" for i, p in enumerate(df["path"]) if p is None]
    if bad_paths:
        raise DatasetError(bad_paths, source=str(csv_path))
    return df


def _group_from_column(df: pd.DataFrame, group_column: str, source: str) -> pd.DataFrame:
    """Group by a column of the CSV (every row must have a value)."""
    empty = [f"row {i + 2}: empty {group_column!r}" for i, g in enumerate(df[group_column])
             if not str(g).strip()]
    if empty:
        raise DatasetError(empty, source=source)
    df["group"] = df[group_column].astype(str).str.strip()
    df["group_key"] = group_column
    if "frame" not in df.columns:
        df["frame"] = pd.NA
    return df


def _group_from_headers(df: pd.DataFrame, frames: Frames, source: str) -> pd.DataFrame:
    """No group column: take it from the headers (and expand multi-frame files)."""
    missing = [f"{p}: file not found" for p in df["path"] if not os.path.isfile(p)]
    if missing:
        raise DatasetError(missing, source=source)
    if "frame" in df.columns:
        hdr = pd.DataFrame(header_rows(list(df["path"]), "first")).drop(columns="frame")
        return pd.concat([df.reset_index(drop=True), hdr.drop(columns="path")], axis=1)
    unique = list(dict.fromkeys(df["path"]))
    hdr = pd.DataFrame(header_rows(unique, frames))
    return hdr.merge(df, on="path", how="left", sort=False)


def from_dicom_headers(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    label_field: str | None = None,
    label_map: Mapping[str, str] | Callable[[str], str | None] | None = None,
    unmapped: Literal["error", "drop"] = "error",
    frames: Frames = "all",
) -> pd.DataFrame:
    """Build a table from DICOM files, with the group key and optionally the label from headers.

    Parameters
    ----------
    paths : path or iterable of paths
        A folder (walked recursively, DICOM found by content) or a list of files.
    label_field : str, optional
        Header keyword whose value gives the label, e.g. ``"BodyPartExamined"``.
    label_map : mapping or callable, optional
        Maps the header value (stripped) to the label; values it does not map are an error,
        or dropped with ``unmapped="drop"``. Without a map the value itself is the label.
    unmapped : {"error", "drop"}
        What to do with files whose header value has no label (or lacks the field).
    frames : {"all", "middle", "first"}
        How multi-frame files expand.

    Returns
    -------
    pandas.DataFrame
        ``path, frame, [label], group, group_key, SOPInstanceUID, StudyInstanceUID``.

    Examples
    --------
    >>> parts = {"CHEST": "chest", "ABDOMEN": "abdomen"}
    >>> df = from_dicom_headers("scans/", label_field="BodyPartExamined",
    ...                         label_map=parts)  # doctest: +SKIP
    """
    check_frames(frames)
    if isinstance(paths, (str, os.PathLike)) and Path(paths).is_dir():
        root = Path(paths)
        files = [str(f.resolve()) for f in sorted(root.rglob("*"))
                 if f.is_file() and not f.name.startswith(".") and file_kind(f) == "dicom"]
        source = str(root)
    else:
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        files = [str(Path(p).resolve()) for p in items]
        source = "dicom headers"
        missing = [f"{p}: file not found" for p in files if not os.path.isfile(p)]
        if missing:
            raise DatasetError(missing, source=source)
    if not files:
        raise DatasetError([f"{source}: no DICOM files found"], source=source)
    df = pd.DataFrame(header_rows(files, frames))
    labels: list[str] = []
    if label_field:
        import pydicom

        values: dict[str, str | None] = {}
        for p in dict.fromkeys(df["path"]):
            try:
                ds = pydicom.dcmread(p, force=True, stop_before_pixels=True,
                                     specific_tags=[label_field])
                raw = ds.get(label_field)
            except Exception:  # noqa: BLE001 - reported below as "no value"
                raw = None
            text = None if raw is None else str(raw).strip() or None
            if text is not None and label_map is not None:
                text = label_map(text) if callable(label_map) else label_map.get(text)
            values[p] = text
        df["label"] = df["path"].map(values)
        unlabelled = df["label"].isna()
        if unlabelled.any() and unmapped == "error":
            raise DatasetError(
                [f"{p}: {label_field} gives no label"
                 for p in dict.fromkeys(df["path"][unlabelled])],
                source=source,
            )
        df = df[~unlabelled].copy()
        labels = ["label"]
    return _finish(df, labels, source)


def validate(
    df: pd.DataFrame,
    *,
    classes: Sequence[str] | None = None,
    check_files: bool = True,
    source: str | None = None,
) -> None:
    """Check a table and raise one :class:`DatasetError` listing every problem.

    Checks: required columns; missing files (all of them); empty labels; labels outside
    ``classes``; multi-label values other than 0, 1 and -1 (missing); duplicate (path, frame)
    rows; empty groups.

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    classes : sequence of str, optional
        The allowed class names (single-label tables).
    check_files : bool
        Whether to check that every path exists.
    source : str, optional
        Named in the error message (e.g. the CSV file).

    Examples
    --------
    >>> import pandas as pd
    >>> bad = pd.DataFrame({"path": ["/nope.dcm"], "label": ["x"], "group": ["p1"]})
    >>> validate(bad)
    Traceback (most recent call last):
    ...
    imaging_tl.data.errors.DatasetError: 1 problem(s) in the dataset:
      /nope.dcm: file not found
    """
    problems: list[str] = []
    for col in ("path", "group"):
        if col not in df.columns:
            problems.append(f"column {col!r} missing")
    if problems:
        raise DatasetError(problems, source=source)
    if len(df) == 0:
        raise DatasetError(["no samples"], source=source)
    if check_files:
        seen: set[str] = set()
        for p in df["path"]:
            if p not in seen:
                seen.add(p)
                if not os.path.isfile(p):
                    problems.append(f"{p}: file not found")
    cols = label_columns(df)
    if cols == ["label"]:
        labels = df["label"]
        empty = labels.isna() | (labels.astype(str).str.strip() == "")
        problems += [f"{p}: empty label" for p in df["path"][empty]]
        if classes is not None:
            unknown = ~empty & ~labels.isin(list(classes))
            problems += [f"{p}: unknown label {v!r} (classes: {list(classes)})"
                         for p, v in zip(df["path"][unknown], labels[unknown], strict=True)]
    else:
        for c in cols:
            if c not in df.columns:
                problems.append(f"label column {c!r} missing")
                continue
            bad = ~df[c].isin([0, 1, MISSING])
            problems += [f"{p}: label {c!r} is {v!r}, expected 0, 1 or {MISSING} (missing)"
                         for p, v in zip(df["path"][bad], df[c][bad], strict=True)]
    frame = df["frame"] if "frame" in df.columns else pd.Series(pd.NA, index=df.index)
    keys = pd.DataFrame({"path": df["path"], "frame": frame.astype("Int64").fillna(-1)})
    dup = keys.duplicated(keep="first")
    for p, f in zip(keys["path"][dup], keys["frame"][dup], strict=True):
        problems.append(f"{p}: duplicate row" + (f" (frame {f})" if f >= 0 else ""))
    empty_group = df["group"].isna() | (df["group"].astype(str).str.strip() == "")
    problems += [f"{p}: empty group key" for p in df["path"][empty_group]]
    if problems:
        raise DatasetError(problems, source=source)

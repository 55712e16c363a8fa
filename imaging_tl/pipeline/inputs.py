"""The data of a run: its table, task and classes, splits, census, and the manifest hash.

Everything here works on the dataset table (:mod:`imaging_tl.data.table`) and raises
:class:`InputError` with every problem found, which the command line prints without a
stack trace (exit code 2). No TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from imaging_tl.config import RunConfig
from imaging_tl.data import (
    DatasetError,
    LeakageError,
    audit_splits,
    crossval_table,
    fold_split,
    from_csv,
    from_folder,
    label_columns,
    read_splits,
    split_table,
    task_of,
)
from imaging_tl.data.labels import order_classes

__all__ = ["InputError", "census_root", "census_table", "cv_split_table", "data_manifest_hash",
           "expand_inputs", "is_crossval", "label_hint", "label_targets", "load_inputs",
           "split_of", "task_and_classes"]


class InputError(ValueError):
    """The data a run or a prediction was given is unusable (named with the reason).

    The command line prints it without a stack trace and exits with code 2.
    """


def data_manifest_hash(table: pd.DataFrame, file_keys: Sequence[str] | None = None) -> str:
    """sha256 of the sorted (path, frame, labels, group[, file key]) rows: the data version.

    Examples
    --------
    >>> t = pd.DataFrame({"path": ["/a", "/b"], "label": ["x", "y"], "group": ["1", "2"]})
    >>> data_manifest_hash(t) == data_manifest_hash(t.iloc[::-1])
    True
    """
    cols = [c for c in ("path", "frame", "label", "group") if c in table.columns]
    cols += [c for c in table.attrs.get("label_columns", []) if c not in cols]
    df = table[cols].astype(str)
    if file_keys is not None:
        df = df.assign(file_key=list(file_keys))
    rows = sorted(df.itertuples(index=False, name=None))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def load_inputs(cfg: RunConfig) -> pd.DataFrame:
    """The dataset table of a configuration (see :mod:`imaging_tl.data.table`).

    Raises
    ------
    InputError
        The table cannot be built (missing files, bad labels ...), with every problem.

    Examples
    --------
    >>> from imaging_tl.config import load_config
    >>> cfg = load_config({"data": {"folder": "sample_dicoms"}})  # doctest: +SKIP
    >>> load_inputs(cfg)["label"].value_counts()  # doctest: +SKIP
    """
    d = cfg.data
    try:
        if d.unit == "series":
            from imaging_tl.data.series import from_series

            t = cfg.task
            positive = t.positive or (t.classes[-1] if t.classes and len(t.classes) == 2
                                      else None)
            return from_series(d.folder, csv=d.csv, series_column=d.series_column,
                               label_column=d.label_column or "label",
                               group_column=d.group_column, label_map=t.label_map,
                               slice_labels=d.slice_labels, path_column=d.path_column,
                               positive=positive)
        if d.folder is not None:
            return from_folder(d.folder, frames=d.frames, label_map=cfg.task.label_map)
        return from_csv(d.csv, path_column=d.path_column, label_column=d.label_column,
                        label_columns=d.label_columns, group_column=d.group_column,
                        frames=d.frames, uncertain=cfg.task.uncertain,
                        label_map=cfg.task.label_map)
    except DatasetError as exc:
        raise InputError(str(exc)) from None


def label_hint(value: str, labels: Sequence[str]) -> str:
    """``" (did you mean 'X'?)"`` for the label that differs from ``value`` only in case,
    else the closest by a small edit (difflib), else ``""``.

    Examples
    --------
    >>> label_hint("pneumonia", ["NORMAL", "PNEUMONIA"])
    " (did you mean 'PNEUMONIA'?)"
    >>> label_hint("nodlue", ["normal", "nodule"])
    " (did you mean 'nodule'?)"
    """
    import difflib

    same = [c for c in labels if str(c).casefold() == str(value).casefold()]
    close = same or difflib.get_close_matches(str(value), [str(c) for c in labels], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def label_targets(labels: Sequence[str], classes: Sequence[str], task: str) -> np.ndarray:
    """Labels as a model's targets: 1.0 for the positive class (``classes[1]``) and 0.0 for
    the other (binary), or class indices (multiclass).

    Raises :class:`InputError` naming the labels that are not classes of the model.

    Examples
    --------
    >>> label_targets(["a", "b", "b"], ["a", "b"], "binary").tolist()
    [0.0, 1.0, 1.0]
    >>> label_targets(["c", "a"], ["a", "b", "c"], "multiclass").tolist()
    [2, 0]
    """
    labels = pd.Series(labels, dtype=object).astype(str)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise InputError(f"labels {unknown} are not classes of the model ({list(classes)})")
    if task == "binary":
        return (labels == classes[1]).to_numpy(np.float32)
    return labels.map({c: i for i, c in enumerate(classes)}).to_numpy()


def task_and_classes(cfg: RunConfig, table: pd.DataFrame) -> tuple[str, list[str]]:
    """The task and its class names in model order (binary: the positive class second).

    Examples
    --------
    >>> from imaging_tl.config import RunConfig
    >>> cfg = RunConfig.model_validate({"data": {"folder": "x"}})
    >>> task_and_classes(cfg, pd.DataFrame({"label": ["nodule", "normal", "nodule"]}))
    ('binary', ['normal', 'nodule'])
    """
    if task_of(table) == "multilabel":
        return "multilabel", label_columns(table)
    labels = sorted(table["label"].astype(str).unique())
    task = cfg.task.type or task_of(table)
    if task == "multilabel":
        raise InputError("task.type is multilabel but data has one label column; give "
                         "data.label_columns")
    if cfg.task.classes is not None:
        unknown = sorted(set(labels) - set(cfg.task.classes))
        if unknown:
            raise InputError(f"labels {unknown} in the data are not in task.classes "
                             f"{cfg.task.classes}")
        classes = list(cfg.task.classes)
    else:
        classes = order_classes(labels)  # a "no finding" class first: the positive second
    if task == "binary":
        if len(classes) != 2:
            raise InputError(f"a binary task needs exactly 2 classes; the data has "
                             f"{len(classes)}: {classes} (set task.type: multiclass?)")
        if cfg.task.positive is not None:
            if cfg.task.positive not in classes:
                raise InputError(f"task.positive: {cfg.task.positive!r} is not a label of the "
                                 f"data{label_hint(cfg.task.positive, classes)} ({classes})")
            classes = [c for c in classes if c != cfg.task.positive] + [cfg.task.positive]
    elif len(classes) < 2:
        raise InputError(f"the data has only one class ({classes}); nothing to learn")
    return task, classes


def split_of(cfg: RunConfig, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``split`` column: from ``split.file``, k-fold, or a seeded split.

    k-fold: a ``fold`` column too (``-1`` for the test split outside the folds); the
    ``split`` column is that of ``split.fold`` (its fold validates, the others train), or
    of fold 0 when every fold is trained (:func:`is_crossval`). A series table is split by
    its series' labels (``series_label``), whatever its slices' labels.
    """
    s = cfg.split
    if "series_label" in table.columns:  # slice labels: stratify by the series' labels
        by_series = table.drop(columns="series_label").assign(label=table["series_label"])
        return split_of(cfg, by_series).assign(label=table["label"].to_numpy(),
                                               series_label=table["series_label"].to_numpy())
    try:
        if s.file is not None:
            return _split_from_file(s.file, table)
        if s.method == "kfold":
            out = crossval_table(table, s.folds, test=s.test, seed=cfg.seed)
            return fold_split(out, s.fold or 0)
        return split_table(table, val=s.val, test=s.test, seed=cfg.seed)
    except (DatasetError, LeakageError) as exc:
        raise InputError(str(exc)) from None


def cv_split_table(table: pd.DataFrame) -> pd.DataFrame:
    """A cross-validated run's split table: ``split`` is ``test`` for the images outside
    the folds (``fold`` -1) and ``cv`` for the folds' images (``attrs`` kept).

    Examples
    --------
    >>> cv_split_table(pd.DataFrame({"fold": [-1, 0, 2]}))["split"].tolist()
    ['test', 'cv', 'cv']
    """
    return table.assign(split=np.where(table["fold"] < 0, "test", "cv"))


def is_crossval(cfg: RunConfig) -> bool:
    """Whether a run trains every fold of a k-fold split (``split.method: kfold`` without
    ``split.fold`` or ``split.file``).

    Examples
    --------
    >>> from imaging_tl.config import load_config
    >>> data = {"folder": "sample_dicoms"}
    >>> is_crossval(load_config({"data": data, "split": {"method": "kfold"}}))
    True
    >>> is_crossval(load_config({"data": data, "split": {"method": "kfold", "fold": 2}}))
    False
    """
    s = cfg.split
    return s.method == "kfold" and s.fold is None and s.file is None


def _split_from_file(file: str, table: pd.DataFrame) -> pd.DataFrame:
    own = read_splits(file)
    if "split" not in own.columns:
        raise InputError(f"split.file {file}: needs a 'split' column (train/val/test)")
    key = dict(zip(own["path"], own["split"].astype(str), strict=False))
    missing = [p for p in table["path"] if p not in key]
    if missing:
        raise InputError(f"split.file {file}: {len(missing)} file(s) of the data "
                         f"have no split, e.g. {missing[0]}")
    out = table.copy()
    out["split"] = [key[p] for p in table["path"]]
    bad = sorted(set(out["split"]) - {"train", "val", "test"})
    if bad:
        raise InputError(f"split.file {file}: unknown split names {bad}; use train, val, test")
    audit_splits(out, split_column="split", pixels=False)
    return out


def census_root(cfg: RunConfig) -> Path:
    """The folder the paths of a run's ``census.csv`` are relative to: ``data.folder``, else
    the folder of ``data.csv`` (as configured, not resolved).

    Examples
    --------
    >>> from imaging_tl.config import load_config
    >>> census_root(load_config({"data": {"folder": "sample_dicoms"}})).name
    'sample_dicoms'
    """
    return Path(cfg.data.folder) if cfg.data.folder else Path(str(cfg.data.csv)).parent


def census_table(table: pd.DataFrame, root: Path | None) -> pd.DataFrame:
    """The census of a run's files: one row per file, the PatientID as a pseudonym."""
    from imaging_tl.io.census import COLUMNS, census_row, csv_value
    from imaging_tl.io.pseudonyms import pseudonym
    from imaging_tl.io.series import add_series_columns

    rows = []
    for p in dict.fromkeys(table["path"]):
        row = census_row(p, root=root)
        if row.get("PatientID"):  # keep the grouping, never the identifier
            row["PatientID"] = pseudonym(str(row["PatientID"]))
        rows.append(row)
    add_series_columns(rows)  # slice order and per-series problems
    return pd.DataFrame([{k: csv_value(r.get(k)) for k in COLUMNS} for r in rows])


_NOT_IMAGES = (".csv", ".txt", ".json", ".yaml", ".yml", ".md", ".html")


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Files to read: the files given, and every file under the folders given (recursively,
    skipping hidden names and tables, configs and pages).

    Examples
    --------
    >>> len(expand_inputs(["sample_dicoms/labels.csv"]))
    1
    """
    files: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not any(s.startswith(".") for s in f.relative_to(p).parts) \
                        and f.suffix.lower() not in _NOT_IMAGES:
                    files.append(str(f))
        elif p.exists():
            files.append(str(p))
        else:
            raise InputError(f"{p}: no such file or folder")
    return files

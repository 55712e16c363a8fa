"""Evaluation of a run's predictions table (``predictions.csv``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import read_csv
from imaging_tl.evaluate.evaluation import evaluate
from imaging_tl.evaluate.inputs import Task

__all__ = ["evaluate_predictions"]


def evaluate_predictions(
    table: pd.DataFrame | str | os.PathLike,
    *,
    task: Task,
    class_names: Sequence[str],
    test_split: str = "test",
    val_split: str = "val",
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`evaluate` on a predictions table (``predictions.csv`` of a run).

    Expected columns: ``split`` (``val``/``test``), ``prob_<name>`` per class (binary:
    ``prob_<positive>``, the second name), the truth as ``label`` (a class name or
    index; binary/multiclass) or ``label_<name>`` per label (multilabel: 1, 0, -1 or
    empty for missing), and optionally ``group`` (the patient key; CIs then resample
    patients).

    Parameters
    ----------
    table : pandas.DataFrame or str or path
        The table, or a CSV file.
    task, class_names :
        As in :func:`evaluate`; class_names also names the columns.
    test_split, val_split : str
        Values of ``split`` that mark the two splits.
    **kwargs :
        Passed to :func:`evaluate`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"split": ["val"] * 4 + ["test"] * 4,
    ...                   "label": ["no", "yes"] * 4,
    ...                   "prob_yes": [.2, .7, .4, .9, .1, .8, .75, .7]})
    >>> evaluate_predictions(t, task="binary", class_names=["no", "yes"],
    ...                      n_bootstraps=0)["roc_auc"]["value"]
    0.75
    """
    df = table if isinstance(table, pd.DataFrame) else read_csv(table)
    names = [str(c) for c in class_names]
    if "split" not in df.columns:
        raise ValueError("predictions table has no 'split' column")
    test = df[df["split"].astype(str) == test_split]
    val = df[df["split"].astype(str) == val_split]
    if test.empty:
        raise ValueError(f"predictions table has no rows with split == {test_split!r}")
    yt, st, gt = _split_arrays(test, task, names)
    if not val.empty:
        yv, sv, gv = _split_arrays(val, task, names)
        kwargs.setdefault("val_true", yv)
        kwargs.setdefault("val_score", sv)
        kwargs.setdefault("val_groups", gv)
    return evaluate(yt, st, task=task, groups=gt, class_names=names, **kwargs)


def _split_arrays(
    part: pd.DataFrame, task: str, names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels, scores and groups (or None) of the rows of one split."""
    if task == "multilabel":
        need = [f"label_{n}" for n in names] + [f"prob_{n}" for n in names]
    elif task == "binary":
        need = ["label", f"prob_{names[-1]}"]
    else:
        need = ["label"] + [f"prob_{n}" for n in names]
    missing = [c for c in need if c not in part.columns]
    if missing:
        raise ValueError(f"predictions table lacks column(s) {missing}")
    grp = part["group"].to_numpy() if "group" in part.columns else None
    if task == "multilabel":
        yt = part[[f"label_{n}" for n in names]].to_numpy(dtype=float)
        sc = part[[f"prob_{n}" for n in names]].to_numpy(dtype=float)
        return yt, sc, grp
    cols = [f"prob_{names[-1]}"] if task == "binary" else [f"prob_{n}" for n in names]
    sc = part[cols].to_numpy(dtype=float)
    if task == "binary":
        sc = sc[:, 0]
    return _class_indices(part["label"], names), sc, grp


def _class_indices(labels: pd.Series, names: list[str]) -> np.ndarray:
    """Class names (or indices already) as int64 indices into ``names``."""
    index = {n: i for i, n in enumerate(names)}
    mapped = labels.astype(str).map(index)
    if mapped.isna().any():
        try:
            mapped = labels.astype(int)
        except (TypeError, ValueError):
            bad = sorted(set(labels.astype(str)) - set(names))[:5]
            raise ValueError(f"labels {bad} are not among class_names {names}") from None
    return mapped.to_numpy(dtype=np.int64)
